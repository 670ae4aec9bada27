// The production CheckRequest decoder (SPEC 1): where each input comes from,
// header_map read like headers, and repeated security headers marked so the
// pipeline can refuse them (finding 7).

import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import { CheckRequestSchema, type CheckRequest } from "../../gen/envoy/service/auth/v3/external_auth_pb.js";
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

  it("reads a request sent in two parts as protobuf merges it, so a Peer in two parts keeps the certificate (found by npm run fuzz)", () => {
    // Protobuf reads concatenated messages as one: a message field sent twice is merged, not replaced.
    const certificatePart = create(CheckRequestSchema, { attributes: { source: { certificate: "CERT" }, destination: { principal: "spiffe://example.org/agent/db" } } });
    const principalPart = create(CheckRequestSchema, { attributes: { source: { principal: "spiffe://example.org/agent/research" }, destination: { service: "db" } } });
    const both = Buffer.concat([bytes(certificatePart), bytes(principalPart)]);
    const reference = fromBinary(CheckRequestSchema, both).attributes!;
    const input = decodeCheckRequest(both);
    expect([input.peerCertificate, input.peerPrincipal, input.destinationPrincipal]).toEqual([reference.source!.certificate, reference.source!.principal, reference.destination!.principal]);
    expect(input.peerCertificate).toBe("CERT");
  });

  it("throws on bytes that are not a CheckRequest, for the caller to deny", () => {
    expect(() => decodeCheckRequest(Buffer.from([0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f]))).toThrow();
  });
});
