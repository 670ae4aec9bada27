// The production CheckRequest decoder (SPEC 1): where each input comes from,
// header_map read like headers, and repeated security headers marked so the
// pipeline can refuse them (finding 7). The properties beside this file
// compare it with the generated schema on random requests and bytes.

import { create, toBinary } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
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
