// The production CheckRequest decoder (SPEC 1): where each input comes from,
// header_map read like headers, and repeated security headers marked so the
// pipeline can refuse them (finding 7). The properties beside this file
// compare it with the generated schema on random requests and bytes.

import { create, fromBinary, toBinary, type JsonObject } from "@bufbuild/protobuf";
import { BinaryWriter, WireType as PbWireType } from "@bufbuild/protobuf/wire";
import { describe, expect, it } from "vitest";
import { toCheckInput } from "../../../test/support/reference-codec.js";
import { MAX_MCP_METADATA_BYTES, MAX_MCP_METADATA_DEPTH, MAX_MCP_METADATA_PIECES, MCP_METADATA_OVER_BOUNDS } from "../../core/mcp/mcp-metadata.js";
import { CheckRequestSchema, type CheckRequest } from "../../gen/envoy/service/auth/v3/external_auth_pb.js";
import { WireError } from "../protobuf/wire.js";
import { decodeCheckRequest } from "./check-request-decoder.js";

const bytes = (request: CheckRequest) => Buffer.from(toBinary(CheckRequestSchema, request));

function withHeaderMap(headers: Array<{ key: string; value?: string; raw?: string }>): Buffer {
  return bytes(
    create(CheckRequestSchema, {
      attributes: {
        request: {
          http: {
            method: "GET",
            path: "/query",
            headerMap: { headers: headers.map((h) => ({ key: h.key, value: h.value ?? "", rawValue: new TextEncoder().encode(h.raw ?? "") })) },
          },
        },
      },
    }),
  );
}

describe("decoding a CheckRequest", () => {
  it("takes the peer certificate, principals, context extensions, method, path and headers", () => {
    const input = decodeCheckRequest(
      bytes(
        create(CheckRequestSchema, {
          attributes: {
            source: { certificate: "-----BEGIN%20CERTIFICATE-----", principal: "spiffe://example.org/agent/research" },
            destination: { principal: "spiffe://example.org/agent/db" },
            contextExtensions: { agent: "db" },
            request: { http: { method: "GET", path: "/query?x=1", headers: { "x-agent-subject": "spiffe://example.org/agent/research" } } },
          },
        }),
      ),
    );
    expect(input).toEqual({
      peerCertificate: "-----BEGIN%20CERTIFICATE-----",
      peerPrincipal: "spiffe://example.org/agent/research",
      destinationPrincipal: "spiffe://example.org/agent/db",
      contextExtensions: { agent: "db" },
      headers: { "x-agent-subject": "spiffe://example.org/agent/research" },
      method: "GET",
      path: "/query?x=1",
    });
  });

  it("reads an empty request as empty strings, never as undefined", () => {
    expect(decodeCheckRequest(bytes(create(CheckRequestSchema, {})))).toEqual({
      peerCertificate: "",
      peerPrincipal: "",
      destinationPrincipal: "",
      contextExtensions: {},
      headers: {},
      method: "",
      path: "",
    });
  });

  it("lower-cases header_map names, prefers raw_value, and joins repeated headers with ','", () => {
    const input = decodeCheckRequest(
      withHeaderMap([
        { key: "X-Agent-Delegation-Chain", raw: "spiffe://example.org/agent/a" },
        { key: "x-agent-delegation-chain", value: "spiffe://example.org/agent/b" },
        { key: "X-Agent-Subject", value: "s" },
      ]),
    );
    expect({ ...input.headers }).toEqual({
      "x-agent-delegation-chain": "spiffe://example.org/agent/a,spiffe://example.org/agent/b",
      "x-agent-subject": "s",
    });
  });

  it("reads header_map when it is present, even empty, and the headers map only without one", () => {
    const request = (headerMap: boolean) =>
      bytes(create(CheckRequestSchema, { attributes: { request: { http: { headers: { "x-agent-subject": "s" }, ...(headerMap && { headerMap: {} }) } } } }));
    expect({ ...decodeCheckRequest(request(false)).headers }).toEqual({ "x-agent-subject": "s" });
    expect({ ...decodeCheckRequest(request(true)).headers }).toEqual({});
  });

  it("folds only A-Z in header_map names: no other letter spells a security header (the Kelvin sign is not k)", () => {
    const input = decodeCheckRequest(withHeaderMap([{ key: "X-Agent-Delegation-To\u212Aen", value: "forged" }]));
    expect(input.headers["x-agent-delegation-token"]).toBeUndefined();
    expect(Object.keys(input.headers)).toEqual(["x-agent-delegation-to\u212Aen"]);
  });

  it("lower-cases header_map names and prefers raw_value", () => {
    const input = decodeCheckRequest(withHeaderMap([{ key: "X-Agent-Subject", value: "v", raw: "raw" }, { key: "X-Other", value: "o" }]));
    expect({ ...input.headers }).toEqual({ "x-agent-subject": "raw", "x-other": "o" });
    expect(input.repeatedHeaders).toBeUndefined();
  });

  it("joins a header_map name sent twice with ',' and marks it repeated, whatever its case", () => {
    const input = decodeCheckRequest(
      withHeaderMap([
        { key: "x-agent-on-behalf-of", value: "mallory@evil.com" },
        { key: "X-Agent-On-Behalf-Of", value: "alice@example.com" },
        { key: "x-agent-subject", value: "s" },
      ]),
    );
    expect(input.headers["x-agent-on-behalf-of"]).toBe("mallory@evil.com,alice@example.com");
    expect([...(input.repeatedHeaders ?? [])]).toEqual(["x-agent-on-behalf-of"]);
  });

  it("keeps only the wanted header_map names when told which it reads", () => {
    const input = decodeCheckRequest(
      withHeaderMap([{ key: "x-agent-subject", value: "s" }, { key: "cookie", value: "secret" }, { key: "cookie", value: "again" }]),
      new Set(["x-agent-subject"]),
    );
    expect({ ...input.headers }).toEqual({ "x-agent-subject": "s" });
    expect(input.repeatedHeaders).toBeUndefined();
  });

  it("throws a WireError on bytes that are not a CheckRequest, for the caller to deny", () => {
    expect(() => decodeCheckRequest(Buffer.from([0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f]))).toThrow(WireError);
  });

  it("throws a WireError naming the field when a string it reads is not UTF-8", () => {
    // attributes { source { principal: 0xff } }
    expect(() => decodeCheckRequest(Buffer.from([0x0a, 0x05, 0x0a, 0x03, 0x22, 0x01, 0xff]))).toThrow(/Peer.principal is not valid UTF-8/);
  });
});

describe("decoding the MCP namespace of metadata_context (SPEC 8)", () => {
  const NS = "envoy.filters.http.mcp";
  const TOOLS_CALL = { id: 1, is_mcp_request: true, jsonrpc: "2.0", method: "tools/call", params: { name: "search_docs" }, status: "mcp_ok" };
  const withMetadata = (filterMetadata: Record<string, JsonObject>) => bytes(create(CheckRequestSchema, { attributes: { metadataContext: { filterMetadata } } }));
  const reference = (b: Uint8Array) => toCheckInput(fromBinary(CheckRequestSchema, b), NS).mcpMetadata;
  const w = () => new BinaryWriter();
  /** CheckRequest { attributes { metadata_context { filter_metadata { NS: <struct bytes pieces> } } } } */
  const rawNamespace = (...pieces: Uint8Array[]) => {
    const entry = w().tag(1, PbWireType.LengthDelimited).string(NS);
    for (const p of pieces) entry.tag(2, PbWireType.LengthDelimited).bytes(p);
    const metadata = w().tag(1, PbWireType.LengthDelimited).bytes(entry.finish()).finish();
    return Buffer.from(w().tag(1, PbWireType.LengthDelimited).bytes(w().tag(11, PbWireType.LengthDelimited).bytes(metadata).finish()).finish());
  };
  /** Struct { fields { key: value } } with `value` a Value's bytes. */
  const field = (key: string, value: Uint8Array) => w().tag(1, PbWireType.LengthDelimited).bytes(w().tag(1, PbWireType.LengthDelimited).string(key).tag(2, PbWireType.LengthDelimited).bytes(value).finish()).finish();
  const str = (s: string) => w().tag(3, PbWireType.LengthDelimited).string(s).finish();

  it("reads what Envoy 1.40 sends into JSON objects without a prototype", () => {
    const input = decodeCheckRequest(withMetadata({ [NS]: TOOLS_CALL, other: { x: 1 } }), undefined, NS);
    expect(input.mcpMetadata).toStrictEqual(reference(withMetadata({ [NS]: TOOLS_CALL })));
    expect(JSON.parse(JSON.stringify(input.mcpMetadata))).toEqual(TOOLS_CALL);
    expect(Object.getPrototypeOf(input.mcpMetadata)).toBeNull();
  });

  it("leaves mcpMetadata out when the namespace is absent, or when no namespace is asked for", () => {
    expect(decodeCheckRequest(withMetadata({ other: TOOLS_CALL }), undefined, NS)).not.toHaveProperty("mcpMetadata");
    expect(decodeCheckRequest(withMetadata({ [NS]: TOOLS_CALL }))).not.toHaveProperty("mcpMetadata");
  });

  it("never decodes another namespace's value: a string in it that is not UTF-8 goes unseen, in ours it is refused", () => {
    const other = (name: string) => {
      const entry = w().tag(1, PbWireType.LengthDelimited).string(name).tag(2, PbWireType.LengthDelimited).bytes(field("k", Uint8Array.from([0x1a, 0x01, 0xff]))).finish();
      return Buffer.from(w().tag(1, PbWireType.LengthDelimited).bytes(w().tag(11, PbWireType.LengthDelimited).bytes(w().tag(1, PbWireType.LengthDelimited).bytes(entry).finish()).finish()).finish());
    };
    expect(decodeCheckRequest(other("envoy.filters.http.other"), undefined, NS)).not.toHaveProperty("mcpMetadata");
    expect(() => decodeCheckRequest(other(NS), undefined, NS)).toThrow(/Value.string_value is not valid UTF-8/);
  });

  it("merges as protobuf merges: pieces of the Struct, a struct_value or list_value sent twice; a kind switch and a repeated key replace", () => {
    const struct = (key: string, s: string) => w().tag(5, PbWireType.LengthDelimited).bytes(field(key, str(s))).finish();
    const list = (s: string) => w().tag(6, PbWireType.LengthDelimited).bytes(w().tag(1, PbWireType.LengthDelimited).bytes(str(s)).finish()).finish();
    const cases = [
      rawNamespace(field("a", str("1")), field("b", str("2")), field("a", str("3"))),
      rawNamespace(field("v", Buffer.concat([struct("x", "1"), struct("y", "2")]))),
      rawNamespace(field("v", Buffer.concat([list("a"), list("b")]))),
      rawNamespace(field("v", Buffer.concat([struct("x", "1"), str("s"), struct("y", "2")]))),
      rawNamespace(field("v", new Uint8Array(0))), // a Value with no kind is null
      rawNamespace(field("__proto__", str("x"))),
      rawNamespace(field("n", w().tag(2, PbWireType.Bit64).double(Number.NaN).finish())),
      rawNamespace(field("b", Buffer.from([0x20, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01]))), // bool_value with only bit 63 set
      rawNamespace(),
    ];
    for (const b of cases) expect(decodeCheckRequest(b, undefined, NS).mcpMetadata).toStrictEqual(reference(b));
    expect(JSON.stringify(decodeCheckRequest(cases[1]!, undefined, NS).mcpMetadata)).toBe('{"v":{"x":"1","y":"2"}}');
    expect(decodeCheckRequest(cases[7]!, undefined, NS).mcpMetadata).toStrictEqual(Object.assign(Object.create(null) as object, { b: true }));
  });

  it("is MCP_METADATA_OVER_BOUNDS past 64 KiB or nested deeper than the bound, and reads up to both", () => {
    const big = { ...TOOLS_CALL, params: { name: "x".repeat(MAX_MCP_METADATA_BYTES) } };
    expect(decodeCheckRequest(withMetadata({ [NS]: big }), undefined, NS).mcpMetadata).toBe(MCP_METADATA_OVER_BOUNDS);
    const nest = (n: number): JsonObject => (n === 1 ? { leaf: true } : { k: nest(n - 1) });
    expect(decodeCheckRequest(withMetadata({ [NS]: nest(MAX_MCP_METADATA_DEPTH) }), undefined, NS).mcpMetadata).not.toBe(MCP_METADATA_OVER_BOUNDS);
    expect(decodeCheckRequest(withMetadata({ [NS]: nest(MAX_MCP_METADATA_DEPTH + 1) }), undefined, NS).mcpMetadata).toBe(MCP_METADATA_OVER_BOUNDS);
    for (const n of [MAX_MCP_METADATA_DEPTH, MAX_MCP_METADATA_DEPTH + 1]) {
      const b = withMetadata({ [NS]: nest(n) });
      expect(decodeCheckRequest(b, undefined, NS).mcpMetadata).toStrictEqual(reference(b));
    }
  });

  it("is MCP_METADATA_OVER_BOUNDS in more than MAX_MCP_METADATA_PIECES pieces, even empty ones adding up to 0 bytes, and reads up to that", () => {
    const at = MAX_MCP_METADATA_PIECES;
    const within = rawNamespace(...Array.from({ length: at }, (_, i) => field(`k${i}`, str("v"))));
    expect(decodeCheckRequest(within, undefined, NS).mcpMetadata).toStrictEqual(reference(within));
    expect(Object.keys(decodeCheckRequest(within, undefined, NS).mcpMetadata as object)).toHaveLength(at);
    expect(decodeCheckRequest(rawNamespace(...Array.from({ length: at + 1 }, () => new Uint8Array(0))), undefined, NS).mcpMetadata).toBe(MCP_METADATA_OVER_BOUNDS);
  });

  it("reads a namespace nested a thousand levels deep quickly, without recursing through it", () => {
    let value = str("leaf");
    for (let i = 0; i < 1000; i++) value = w().tag(5, PbWireType.LengthDelimited).bytes(field("k", value)).finish();
    const started = performance.now();
    expect(decodeCheckRequest(rawNamespace(field("deep", value)), undefined, NS).mcpMetadata).toBe(MCP_METADATA_OVER_BOUNDS);
    expect(performance.now() - started).toBeLessThan(100);
  });
});
