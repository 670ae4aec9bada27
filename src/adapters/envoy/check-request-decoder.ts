// Decodes CheckRequest bytes straight into the core's CheckInput, reading only
// what Check uses (source and destination principals, the peer certificate,
// context extensions, method, path, headers or header_map, and the MCP
// namespace of metadata_context: metadata-struct-reader.ts) and skipping the
// rest by wire type. Malformed bytes raise WireError; the caller denies.
//
// What it reads, it reads as protobuf does (the generated protobuf-es decoder
// is the reference: check-request-decoder.properties.spec.ts compares them):
// a field sent twice is merged (the last scalar wins, map entries and header
// lists accumulate), strings must be UTF-8. It is stricter than protobuf-es
// where that decoder is lax: a read field with the wrong wire type, a nested
// field running past its message, groups and varints over 10 bytes are
// refused. What it skips, it only frames (tag, wire type, length in bounds),
// so a defect inside a skipped field (bad UTF-8 in http.body, say) is not
// seen. Header values are text. A `value` that is not UTF-8 breaks the
// message (a proto3 string), so it is refused; a raw_value is bytes, so one
// that is not UTF-8 is read with U+FFFD and its header noted in
// notUtf8Headers: Check then refuses that header with its own reason, since
// two different byte strings must never pass for one principal (SPEC 3).
//
// Field numbers are Envoy's (envoy/service/auth/v3/*.proto; see proto/).

import type { CheckInput } from "../../core/decision/check-input.js";
import { TextIntern } from "../protobuf/text-intern.js";
import { decodedWhole, utf8Text, WireError, WireReader, WireType } from "../protobuf/wire.js";
import { findNamespace, readNamespaceStruct, type NamespaceEntry } from "./metadata-struct-reader.js";

/** Peer certificates repeat across Checks: decoded once, then matched by bytes (see text-intern.ts). */
const certificates = new TextIntern();

/**
 * One reader for every leaf message (a Peer, a map entry, a HeaderValue),
 * pointed at each in turn: a request holds a dozen or more of them, and none
 * contains another, so no two are read at once. Decoding is synchronous, so
 * no other request's decode can come in between.
 */
const NO_BYTES = Buffer.alloc(0);
const leaf = new WireReader(NO_BYTES);

const ATTRIBUTE_FIELDS: Readonly<Record<number, string>> = { 1: ".source", 2: ".destination", 4: ".request", 10: ".context_extensions", 11: ".metadata_context" };

interface Peer {
  principal: string;
  certificate: string;
}

function expect(wireType: number, expected: number, what: string, part = ""): void {
  if (wireType !== expected) throw new WireError(`${what}${part} has wire type ${wireType}, expected ${expected}`);
}

/** Peer { principal = 4; certificate = 5 }, merged into `into` as protobuf merges a message sent twice. */
function readPeer(buf: Buffer, start: number, end: number, into: Peer): void {
  const r = leaf.reset(buf, start, end);
  while (!r.done()) {
    const tag = r.tag();
    const field = tag >>> 3;
    const wt = tag & 7;
    if (field === 4) {
      expect(wt, WireType.LEN, "Peer.principal");
      into.principal = r.string("Peer.principal");
    } else if (field === 5) {
      expect(wt, WireType.LEN, "Peer.certificate");
      const s = r.field();
      into.certificate = certificates.text(buf, s, r.fieldEnd, "Peer.certificate");
    } else r.skip(wt);
  }
}

/** Field names for errors in a map's entries. */
interface MapNames {
  readonly key: string;
  readonly value: string;
}
const HEADERS_MAP: MapNames = { key: "HttpRequest.headers key", value: "HttpRequest.headers value" };
const CONTEXT_EXTENSIONS_MAP: MapNames = { key: "AttributeContext.context_extensions key", value: "AttributeContext.context_extensions value" };

/**
 * The header names Check reads, as bytes: an entry of Envoy's `headers` map
 * (whose keys Envoy lower-cases) is matched against them byte by byte, so the
 * dozen headers a request carries that Check never reads cost no string.
 */
class WantedNames {
  private readonly byLength = new Map<number, { name: string; bytes: Buffer }[]>();

  constructor(names: ReadonlySet<string>) {
    for (const name of names) {
      const bytes = Buffer.from(name, "utf8");
      const list = this.byLength.get(bytes.length) ?? [];
      list.push({ name, bytes });
      this.byLength.set(bytes.length, list);
    }
  }

  /** The wanted name these bytes spell, or undefined. */
  match(buf: Buffer, start: number, end: number): string | undefined {
    const candidates = this.byLength.get(end - start);
    if (candidates === undefined) return undefined;
    for (const { name, bytes } of candidates) {
      let i = 0;
      while (i < bytes.length && buf[start + i] === bytes[i]) i++;
      if (i === bytes.length) return name;
    }
    return undefined;
  }
}

const wantedNamesOf = new WeakMap<ReadonlySet<string>, WantedNames>();

function wantedNames(names: ReadonlySet<string>): WantedNames {
  let prepared = wantedNamesOf.get(names);
  if (prepared === undefined) {
    prepared = new WantedNames(names);
    wantedNamesOf.set(names, prepared);
  }
  return prepared;
}

/**
 * A map<string,string> entry: key = 1, value = 2. With `wanted`, entries whose
 * key is not in it are dropped without decoding their key or value (most
 * request headers are of no interest to Check).
 */
function readStringEntry(buf: Buffer, start: number, end: number, into: Record<string, string>, wanted: WantedNames | undefined, what: MapNames): void {
  const r = leaf.reset(buf, start, end);
  let keyStart = -1;
  let keyEnd = -1;
  let valueStart = -1;
  let valueEnd = -1;
  while (!r.done()) {
    const tag = r.tag();
    const wt = tag & 7;
    const field = tag >>> 3;
    if (field === 1) {
      expect(wt, WireType.LEN, what.key);
      keyStart = r.field();
      keyEnd = r.fieldEnd;
    } else if (field === 2) {
      expect(wt, WireType.LEN, what.value);
      valueStart = r.field();
      valueEnd = r.fieldEnd;
    } else r.skip(wt);
  }
  let key: string | undefined;
  if (wanted !== undefined) {
    key = keyStart === -1 ? undefined : wanted.match(buf, keyStart, keyEnd);
    if (key === undefined) return;
  } else {
    key = keyStart === -1 ? "" : utf8Text(buf, keyStart, keyEnd, what.key);
  }
  into[key] = valueStart === -1 ? "" : utf8Text(buf, valueStart, valueEnd, what.value, key);
}

/** Header names are ASCII and case-insensitive (RFC 9110 5.1): only A-Z fold, so no other letter (K, the Kelvin sign) can spell a name it is not. */
function lowerAscii(name: string): string {
  for (let i = 0; i < name.length; i++) {
    const c = name.charCodeAt(i);
    if (c >= 65 && c <= 90) return name.replace(/[A-Z]/g, (letter) => String.fromCharCode(letter.charCodeAt(0) + 32));
  }
  return name;
}

/**
 * HeaderMap { repeated HeaderValue headers = 1 }; HeaderValue { key = 1;
 * value = 2; raw_value = 3 }. raw_value wins when it is not empty (Envoy sends
 * it with encode_raw_headers). A name that comes twice is joined with "," (as
 * Envoy joins the `headers` map) and noted in `noted.repeated`, so that a security
 * header sent twice can be refused rather than merged (SPEC 1). raw_value is
 * bytes, passed on as the client sent them: one that is not UTF-8 is read
 * with U+FFFD for its bad sequences and noted in `noted.notUtf8`, so that the
 * check of that header refuses it with its own reason, and the decision still
 * names the caller. Values of names not `wanted` are never decoded.
 */
function readHeaderMap(
  buf: Buffer,
  start: number,
  end: number,
  into: Record<string, string>,
  noted: { repeated: Set<string> | undefined; notUtf8: Set<string> | undefined },
  wanted: ReadonlySet<string> | undefined,
): void {
  const r = new WireReader(buf, start, end);
  while (!r.done()) {
    const tag = r.tag();
    if (tag >>> 3 !== 1) {
      r.skip(tag & 7);
      continue;
    }
    expect(tag & 7, WireType.LEN, "HeaderMap.headers");
    const s = r.field();
    const h = leaf.reset(buf, s, r.fieldEnd);
    let key = "";
    let valueStart = -1;
    let valueEnd = -1;
    let rawStart = -1;
    let rawEnd = -1;
    while (!h.done()) {
      const t = h.tag();
      const f = t >>> 3;
      if (f === 1) {
        expect(t & 7, WireType.LEN, "HeaderValue.key");
        key = h.string("HeaderValue.key");
      } else if (f === 2) {
        expect(t & 7, WireType.LEN, "HeaderValue.value");
        valueStart = h.field();
        valueEnd = h.fieldEnd;
      } else if (f === 3) {
        expect(t & 7, WireType.LEN, "HeaderValue.raw_value");
        rawStart = h.field();
        rawEnd = h.fieldEnd;
      } else h.skip(t & 7);
    }
    const name = lowerAscii(key);
    if (wanted !== undefined && !wanted.has(name)) continue;
    // value is checked even when raw_value wins: protobuf refuses a string that is not UTF-8 wherever it is.
    const value = valueStart === -1 ? "" : utf8Text(buf, valueStart, valueEnd, "HeaderValue.value", name);
    let v = value;
    if (rawEnd > rawStart) {
      v = buf.toString("utf8", rawStart, rawEnd);
      if (!decodedWhole(v, buf, rawStart, rawEnd)) (noted.notUtf8 ??= new Set<string>()).add(name);
    }
    const prior = into[name];
    if (prior === undefined) into[name] = v;
    else {
      into[name] = `${prior},${v}`;
      (noted.repeated ??= new Set<string>()).add(name);
    }
  }
}

function readHttp(
  buf: Buffer,
  start: number,
  end: number,
  out: { method: string; path: string; headers: Record<string, string>; headerMap: Record<string, string> | undefined; repeated: Set<string> | undefined; notUtf8: Set<string> | undefined },
  wanted: ReadonlySet<string> | undefined,
): void {
  const names = wanted === undefined ? undefined : wantedNames(wanted);
  const r = new WireReader(buf, start, end);
  while (!r.done()) {
    const tag = r.tag();
    const field = tag >>> 3;
    const wt = tag & 7;
    switch (field) {
      case 2:
        expect(wt, WireType.LEN, "HttpRequest.method");
        out.method = r.string("HttpRequest.method");
        break;
      case 3: {
        expect(wt, WireType.LEN, "HttpRequest.headers");
        const s = r.field();
        readStringEntry(buf, s, r.fieldEnd, out.headers, names, HEADERS_MAP);
        break;
      }
      case 4:
        expect(wt, WireType.LEN, "HttpRequest.path");
        out.path = r.string("HttpRequest.path");
        break;
      case 13: {
        expect(wt, WireType.LEN, "HttpRequest.header_map");
        const s = r.field();
        out.headerMap ??= Object.create(null) as Record<string, string>;
        readHeaderMap(buf, s, r.fieldEnd, out.headerMap, out, wanted);
        break;
      }
      default:
        r.skip(wt);
    }
  }
}

/** The deny message for bytes the decoder refuses: serve and explain say the same. */
export function undecodableCheckRequest(problem: string): string {
  return `the CheckRequest does not decode as envoy.service.auth.v3.CheckRequest: ${problem}`;
}

/**
 * `wantedHeaders` (lower case) limits the headers kept to those Check reads;
 * without it every header is kept. A header_map that is present, even empty,
 * is the request's headers; the `headers` map is read only without one.
 * `mcpNamespace` is the metadata_context namespace read into
 * CheckInput.mcpMetadata (SPEC 8); without it metadata_context is skipped.
 */
export function decodeCheckRequest(buf: Buffer, wantedHeaders?: ReadonlySet<string>, mcpNamespace?: string): CheckInput {
  try {
    return decodeAttributes(buf, wantedHeaders, mcpNamespace);
  } finally {
    // The shared reader would otherwise hold this request's bytes (up to the 4 MiB message limit) until the next one.
    leaf.reset(NO_BYTES, 0, 0);
  }
}

function decodeAttributes(buf: Buffer, wantedHeaders: ReadonlySet<string> | undefined, mcpNamespace: string | undefined): CheckInput {
  const source: Peer = { principal: "", certificate: "" };
  const destination: Peer = { principal: "", certificate: "" };
  const contextExtensions = Object.create(null) as Record<string, string>;
  const http = {
    method: "",
    path: "",
    headers: Object.create(null) as Record<string, string>,
    headerMap: undefined as Record<string, string> | undefined,
    // Made only when a header_map repeats a name, or sends a raw_value that is not UTF-8: almost never.
    repeated: undefined as Set<string> | undefined,
    notUtf8: undefined as Set<string> | undefined,
  };
  let mcpEntry: NamespaceEntry | undefined;

  const top = new WireReader(buf);
  while (!top.done()) {
    const tag = top.tag();
    if (tag >>> 3 !== 1) {
      top.skip(tag & 7);
      continue;
    }
    expect(tag & 7, WireType.LEN, "CheckRequest.attributes");
    const aStart = top.field();
    const a = new WireReader(buf, aStart, top.fieldEnd);
    while (!a.done()) {
      const t = a.tag();
      const field = t >>> 3;
      const wt = t & 7;
      if (field === 1 || field === 2 || field === 4 || field === 10 || (field === 11 && mcpNamespace !== undefined)) {
        expect(wt, WireType.LEN, "AttributeContext", ATTRIBUTE_FIELDS[field]);
        const s = a.field();
        const e = a.fieldEnd;
        if (field === 1) readPeer(buf, s, e, source);
        else if (field === 2) readPeer(buf, s, e, destination);
        else if (field === 10) readStringEntry(buf, s, e, contextExtensions, undefined, CONTEXT_EXTENSIONS_MAP);
        else if (field === 11) {
          if (mcpNamespace !== undefined) mcpEntry = findNamespace(buf, s, e, mcpNamespace, mcpEntry);
        } else {
          // Request { time = 1; http = 2 }
          const q = new WireReader(buf, s, e);
          while (!q.done()) {
            const qt = q.tag();
            if (qt >>> 3 === 2) {
              expect(qt & 7, WireType.LEN, "Request.http");
              const hs = q.field();
              readHttp(buf, hs, q.fieldEnd, http, wantedHeaders);
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
    ...(http.headerMap !== undefined && http.repeated !== undefined && { repeatedHeaders: http.repeated }),
    ...(http.headerMap !== undefined && http.notUtf8 !== undefined && { notUtf8Headers: http.notUtf8 }),
    method: http.method,
    path: http.path,
    ...(mcpEntry !== undefined && { mcpMetadata: readNamespaceStruct(buf, mcpEntry) }),
  };
}
