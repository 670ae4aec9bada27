// One set of facts (who calls whom, for whom, through which chain, with
// which method and path) written as the CheckRequest each kind of ext_authz
// client sends (SPEC 8):
//   - Envoy: the peer certificate, the callee in context_extensions, headers
//     in `headers` (or in `header_map` with encode_raw_headers);
//   - proxyless gRPC (gRFC A92): `header_map` only, no context_extensions,
//     the callee in destination.principal, the caller's first URI SAN in
//     source.principal (the certificate only when configured);
//   - agentgateway: the caller in source.principal, no certificate, the
//     callee in context_extensions (its `protocol.grpc.context`), headers in
//     `headers`, a repeated header joined with ", ".
// The suites send each to one hopwarden and compare the answers.

import { X509Certificate } from "node:crypto";
import { create, type MessageInitShape } from "@bufbuild/protobuf";
import { CheckRequestSchema, type CheckRequest } from "../../src/gen/envoy/service/auth/v3/external_auth_pb.js";
import { spiffe, type IssuedCertificate } from "./pki.js";

export interface HopFacts {
  /** The calling agent's certificate (its SPIFFE ID is the one URI SAN). */
  readonly caller: IssuedCertificate;
  /** The callee's policy alias, which is also its agent name under spiffe://example.org/agent/. */
  readonly callee: string;
  readonly method: string;
  readonly path: string;
  /** Request headers; a value given as a list is a header sent more than once. */
  readonly headers: Readonly<Record<string, string | readonly string[]>>;
}

export const EXT_AUTHZ_CLIENTS = ["envoy", "envoy-header-map", "proxyless-grpc", "proxyless-grpc-with-certificate", "agentgateway"] as const;
export type ExtAuthzClient = (typeof EXT_AUTHZ_CLIENTS)[number];

type HttpInit = NonNullable<NonNullable<NonNullable<MessageInitShape<typeof CheckRequestSchema>["attributes"]>["request"]>["http"]>;

function headerMap(headers: HopFacts["headers"]): HttpInit["headerMap"] {
  const list: { key: string; rawValue: Uint8Array }[] = [];
  for (const [key, value] of Object.entries(headers)) {
    for (const v of typeof value === "string" ? [value] : value) list.push({ key, rawValue: new TextEncoder().encode(v) });
  }
  return { headers: list };
}

/** `headers` as a map: Envoy joins repeats with ",", agentgateway with ", ". */
function joined(headers: HopFacts["headers"], separator: string): Record<string, string> {
  return Object.fromEntries(Object.entries(headers).map(([k, v]) => [k, typeof v === "string" ? v : v.join(separator)]));
}

/** The certificate's first URI SAN: what a proxy puts in source.principal (gRFC A92's rule). */
export function firstUriSan(certificate: IssuedCertificate): string {
  const uri = (new X509Certificate(certificate.certPem).subjectAltName ?? "").split(", ").find((san) => san.startsWith("URI:"));
  return uri === undefined ? "" : uri.slice(4);
}

export function checkRequestFrom(client: ExtAuthzClient, facts: HopFacts): CheckRequest {
  const callerId = firstUriSan(facts.caller);
  const calleeId = spiffe(facts.callee);
  const http = { method: facts.method, path: facts.path, protocol: "HTTP/2" };
  const attributes: MessageInitShape<typeof CheckRequestSchema>["attributes"] = (() => {
    switch (client) {
      case "envoy":
        return {
          source: { certificate: facts.caller.urlEncodedPem, principal: callerId },
          contextExtensions: { agent: facts.callee },
          request: { http: { ...http, headers: joined(facts.headers, ",") } },
        };
      case "envoy-header-map":
        return {
          source: { certificate: facts.caller.urlEncodedPem, principal: callerId },
          contextExtensions: { agent: facts.callee },
          request: { http: { ...http, headerMap: headerMap(facts.headers) } },
        };
      case "proxyless-grpc":
        return {
          source: { principal: callerId },
          destination: { principal: calleeId },
          request: { http: { ...http, headerMap: headerMap(facts.headers) } },
        };
      case "proxyless-grpc-with-certificate":
        return {
          source: { principal: callerId, certificate: facts.caller.urlEncodedPem },
          destination: { principal: calleeId },
          request: { http: { ...http, headerMap: headerMap(facts.headers) } },
        };
      case "agentgateway":
        return {
          source: { principal: callerId },
          contextExtensions: { agent: facts.callee },
          request: { http: { ...http, headers: joined(facts.headers, ", ") } },
        };
    }
  })();
  return create(CheckRequestSchema, { attributes });
}
