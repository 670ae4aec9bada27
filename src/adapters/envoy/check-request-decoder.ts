// Decodes CheckRequest bytes straight into the core's CheckInput, reading only
// what Check uses (source and destination principals, the peer certificate,
// context extensions, method, path, headers or header_map) and skipping the
// rest by wire type. Malformed bytes raise WireError; the caller denies.
//
// Field numbers are Envoy's (envoy/service/auth/v3/*.proto; see proto/).

import type { CheckInput } from "../../core/decision/check-input.js";
import { WireError, WireReader, WireType } from "./wire.js";

interface Peer {
  principal: string;
  certificate: string;
}

function expect(wireType: number, expected: number, what: string): void {
  if (wireType !== expected) throw new WireError(`${what} has wire type ${wireType}, expected ${expected}`);
}

/**
 * Reads a Peer into `peer`. A message field that comes twice is merged, as
 * protobuf reads it (a field of the second copy replaces the first's, the
 * others stay), so no spelling of a request reads differently here.
 */
function readPeer(r: WireReader, end: number, peer: Peer): Peer {
  const sub = new WireReader(r.buf, r.pos, end);
  while (!sub.done()) {
    const tag = sub.varint();
    const field = (tag >>> 3);
    const wt = tag & 7;
    if (field === 4) {
      expect(wt, WireType.LEN, "Peer.principal");
      peer.principal = sub.string();
    } else if (field === 5) {
      expect(wt, WireType.LEN, "Peer.certificate");
      peer.certificate = sub.string();
    } else sub.skip(wt);
  }
  return peer;
}

/**
 * A map<string,string> entry: key = 1, value = 2. With `wanted`, entries whose
 * key is not in it are dropped without decoding their value (most request
 * headers are of no interest to Check).
 */
function readStringEntry(buf: Buffer, start: number, end: number, into: Record<string, string>, wanted: ReadonlySet<string> | undefined): void {
  const r = new WireReader(buf, start, end);
  let key = "";
  let valueStart = -1;
  let valueEnd = -1;
  while (!r.done()) {
    const tag = r.varint();
    const wt = tag & 7;
    const field = tag >>> 3;
    if (field === 1) {
      expect(wt, WireType.LEN, "map key");
      key = r.string();
    } else if (field === 2) {
      expect(wt, WireType.LEN, "map value");
      [valueStart, valueEnd] = r.lengthDelimited();
    } else r.skip(wt);
  }
  if (wanted !== undefined && !wanted.has(key)) return;
  into[key] = valueStart === -1 ? "" : buf.toString("utf8", valueStart, valueEnd);
}

/**
 * HeaderMap { repeated HeaderValue headers = 1 }; HeaderValue { key = 1;
 * value = 2; raw_value = 3 }. A name that comes twice is joined with "," (as
 * Envoy joins the `headers` map) and noted in `repeated`, so that a security
 * header sent twice can be refused rather than merged (SPEC 1).
 */
function readHeaderMap(
  buf: Buffer,
  start: number,
  end: number,
  into: Record<string, string>,
  repeated: Set<string>,
  wanted: ReadonlySet<string> | undefined,
): void {
  const r = new WireReader(buf, start, end);
  while (!r.done()) {
    const tag = r.varint();
    if ((tag >>> 3) !== 1) {
      r.skip(tag & 7);
      continue;
    }
    expect(tag & 7, WireType.LEN, "HeaderMap.headers");
    const [s, e] = r.lengthDelimited();
    const h = new WireReader(buf, s, e);
    let key = "";
    let value = "";
    let raw: string | undefined;
    while (!h.done()) {
      const t = h.varint();
      const f = (t >>> 3);
      if (f === 1) {
        expect(t & 7, WireType.LEN, "HeaderValue.key");
        key = h.string();
      } else if (f === 2) {
        expect(t & 7, WireType.LEN, "HeaderValue.value");
        value = h.string();
      } else if (f === 3) {
        expect(t & 7, WireType.LEN, "HeaderValue.raw_value");
        raw = h.string();
      } else h.skip(t & 7);
    }
    const name = key.toLowerCase();
    if (wanted !== undefined && !wanted.has(name)) continue;
    const v = raw !== undefined && raw.length > 0 ? raw : value;
    const prior = into[name];
    if (prior === undefined) into[name] = v;
    else {
      into[name] = `${prior},${v}`;
      repeated.add(name);
    }
  }
}

function readHttp(
  buf: Buffer,
  start: number,
  end: number,
  out: { method: string; path: string; headers: Record<string, string>; headerMap: Record<string, string> | undefined; repeated: Set<string> },
  wanted: ReadonlySet<string> | undefined,
): void {
  const r = new WireReader(buf, start, end);
  while (!r.done()) {
    const tag = r.varint();
    const field = (tag >>> 3);
    const wt = tag & 7;
    switch (field) {
      case 2:
        expect(wt, WireType.LEN, "HttpRequest.method");
        out.method = r.string();
        break;
      case 3: {
        expect(wt, WireType.LEN, "HttpRequest.headers");
        const [s, e] = r.lengthDelimited();
        readStringEntry(buf, s, e, out.headers, wanted);
        break;
      }
      case 4:
        expect(wt, WireType.LEN, "HttpRequest.path");
        out.path = r.string();
        break;
      case 13: {
        expect(wt, WireType.LEN, "HttpRequest.header_map");
        const [s, e] = r.lengthDelimited();
        out.headerMap ??= Object.create(null) as Record<string, string>;
        readHeaderMap(buf, s, e, out.headerMap, out.repeated, wanted);
        break;
      }
      default:
        r.skip(wt);
    }
  }
}

/**
 * `wantedHeaders` (lower case) limits the headers kept to those Check reads;
 * without it every header is kept (explain, tests).
 */
export function decodeCheckRequest(buf: Buffer, wantedHeaders?: ReadonlySet<string>): CheckInput {
  const source: Peer = { principal: "", certificate: "" };
  const destination: Peer = { principal: "", certificate: "" };
  const contextExtensions = Object.create(null) as Record<string, string>;
  const http = {
    method: "",
    path: "",
    headers: Object.create(null) as Record<string, string>,
    headerMap: undefined as Record<string, string> | undefined,
    repeated: new Set<string>(),
  };

  const top = new WireReader(buf);
  while (!top.done()) {
    const tag = top.varint();
    if ((tag >>> 3) !== 1) {
      top.skip(tag & 7);
      continue;
    }
    expect(tag & 7, WireType.LEN, "CheckRequest.attributes");
    const [aStart, aEnd] = top.lengthDelimited();
    const a = new WireReader(buf, aStart, aEnd);
    while (!a.done()) {
      const t = a.varint();
      const field = (t >>> 3);
      const wt = t & 7;
      if (field === 1 || field === 2 || field === 4 || field === 10) {
        expect(wt, WireType.LEN, `AttributeContext field ${field}`);
        const [s, e] = a.lengthDelimited();
        if (field === 1) {
          a.pos = s;
          readPeer(a, e, source);
          a.pos = e;
        } else if (field === 2) {
          a.pos = s;
          readPeer(a, e, destination);
          a.pos = e;
        } else if (field === 10) {
          readStringEntry(buf, s, e, contextExtensions, undefined);
        } else {
          // Request { time = 1; http = 2 }
          const q = new WireReader(buf, s, e);
          while (!q.done()) {
            const qt = q.varint();
            if ((qt >>> 3) === 2) {
              expect(qt & 7, WireType.LEN, "Request.http");
              const [hs, he] = q.lengthDelimited();
              readHttp(buf, hs, he, http, wantedHeaders);
            } else q.skip(qt & 7);
          }
        }
      } else a.skip(wt);
    }
  }
  return {
    peerCertificate: source.certificate,
    peerPrincipal: source.principal,
    destinationPrincipal: destination.principal,
    contextExtensions,
    // With encode_raw_headers Envoy sends header_map instead of headers.
    headers: http.headerMap ?? http.headers,
    ...(http.headerMap !== undefined && http.repeated.size > 0 && { repeatedHeaders: http.repeated }),
    method: http.method,
    path: http.path,
  };
}
