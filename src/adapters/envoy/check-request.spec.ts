// CheckRequest → CheckInput (SPEC 1): where each input comes from, and header
// names matched case-insensitively whether Envoy sends `headers` or `header_map`.

import { create } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import { CheckRequestSchema } from "../../gen/envoy/service/auth/v3/external_auth_pb.js";
import { toCheckInput } from "./check-request.js";

describe("reading a CheckRequest", () => {
  it("takes the peer certificate, principals, context extensions, method, path and headers", () => {
    const request = create(CheckRequestSchema, {
      attributes: {
        source: { certificate: "-----BEGIN%20CERTIFICATE-----", principal: "spiffe://example.org/agent/research" },
        destination: { principal: "spiffe://example.org/agent/db" },
        contextExtensions: { agent: "db" },
        request: { http: { method: "GET", path: "/query?x=1", headers: { "x-agent-subject": "spiffe://example.org/agent/research" } } },
      },
    });
    expect(toCheckInput(request)).toEqual({
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
    expect(toCheckInput(create(CheckRequestSchema, {}))).toEqual({
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
    const request = create(CheckRequestSchema, {
      attributes: {
        request: {
          http: {
            headerMap: {
              headers: [
                { key: "X-Agent-Delegation-Chain", value: "", rawValue: new TextEncoder().encode("spiffe://example.org/agent/a") },
                { key: "x-agent-delegation-chain", value: "spiffe://example.org/agent/b" },
                { key: "X-Agent-Subject", value: "s" },
              ],
            },
          },
        },
      },
    });
    expect(toCheckInput(request).headers).toEqual({
      "x-agent-delegation-chain": "spiffe://example.org/agent/a,spiffe://example.org/agent/b",
      "x-agent-subject": "s",
    });
  });
});
