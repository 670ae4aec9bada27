// What a fuzz case is: a `Call`, a symbolic description of one ext_authz
// Check (which certificate, which headers, how they travel), and its
// renderings: the EnvoyView (the facts Envoy put in the CheckRequest, which
// the reference decider reads), the core's CheckInput, and the protobuf
// CheckRequest the gRPC server reads.
//
// Certificates and tokens are named (`front:valid`, `S5:alice:expired`), not
// inlined, so a counterexample printed by one run reads the same in the next
// (the fixture makes fresh keys each run) and stays short.
//
// Adding a field (SPEC 8's MCP metadata, a caller bound by XFCC): add it to
// Call, render it in `renderView` / `toCheckInput` / `toCheckRequest`, and
// teach the reference decider what it means. Generators that do not know the
// field leave it undefined.

import { create, type MessageInitShape } from "@bufbuild/protobuf";
import { CheckRequestSchema, type CheckRequest } from "../../src/gen/envoy/service/auth/v3/external_auth_pb.js";
import type { CheckInput } from "../../src/core/decision/check-input.js";

export const HEADER = {
  subject: "x-agent-subject",
  onBehalfOf: "x-agent-on-behalf-of",
  chain: "x-agent-delegation-chain",
  token: "x-agent-delegation-token",
} as const;

/** url: as Envoy sends it; raw: PEM as is; withCa: the CA after the leaf; caFirst: the CA before it; lowerHex: %2f not %2F; truncated: the first half. */
export type CertEncoding = "url" | "raw" | "withCa" | "caFirst" | "lowerHex" | "truncated";

/** A certificate of the fixture by name ("front:valid"), or a literal string sent as the certificate. */
export type CertValue = { readonly cert: string; readonly encoding: CertEncoding } | { readonly raw: string };

/** A token of the fixture by name ("S5:alice:valid"), or a literal header value. */
export type TokenValue = { readonly token: string } | { readonly raw: string };

export type Binding =
  | { readonly kind: "certificate"; readonly cert: CertValue }
  | { readonly kind: "principal"; readonly principal: string }
  /** Both sent: the certificate is preferred (SPEC 1). */
  | { readonly kind: "both"; readonly cert: CertValue; readonly principal: string }
  | { readonly kind: "none" };

export type Callee =
  | { readonly kind: "context"; readonly value: string }
  | { readonly kind: "destination"; readonly value: string }
  | { readonly kind: "both"; readonly context: string; readonly destination: string }
  | { readonly kind: "none" };

export interface Call {
  readonly binding: Binding;
  /** Each security header: one element per time it is sent ([] = absent). */
  readonly subject: readonly string[];
  readonly onBehalfOf: readonly string[];
  readonly chain: readonly string[];
  readonly token: readonly TokenValue[];
  readonly callee: Callee;
  readonly method: string;
  /** The request target: path and query. */
  readonly path: string;
  /**
   * "headers": the lower-cased `headers` map (a header sent twice arrives
   * joined with ",", as Envoy merges it). "header_map": one entry per
   * occurrence (encode_raw_headers, proxyless gRPC).
   */
  readonly transport: "headers" | "header_map";
  /** How header_map spells names (matching is case-insensitive). */
  readonly nameCase: "lower" | "upper" | "mixed";
  /** header_map: raw_value (bytes) rather than value. */
  readonly rawValues: boolean;
  readonly extraHeaders: readonly (readonly [string, string])[];
}

/** The facts a CheckRequest carries, as the reference decider reads them. */
export interface EnvoyView {
  readonly certificate: string;
  readonly principal: string;
  readonly destinationPrincipal: string;
  readonly contextExtensions: Readonly<Record<string, string>>;
  readonly transport: "headers" | "header_map";
  /**
   * headers transport: unique names as sent in the map. header_map: one pair
   * per entry, names as sent.
   */
  readonly headers: readonly (readonly [string, string])[];
  readonly method: string;
  readonly path: string;
}

export interface Renderer {
  certificate(value: CertValue): string;
  token(value: TokenValue): string;
}

function spell(name: string, nameCase: Call["nameCase"], i: number): string {
  if (nameCase === "lower") return name;
  if (nameCase === "upper") return name.toUpperCase();
  // "X-Agent-Subject", and every other occurrence upper case, so one header can come in two spellings.
  if (i % 2 === 1) return name.toUpperCase();
  return name.replace(/(^|-)([a-z])/g, (_, dash: string, c: string) => dash + c.toUpperCase());
}

export function renderView(call: Call, r: Renderer): EnvoyView {
  const b = call.binding;
  const certificate = b.kind === "certificate" || b.kind === "both" ? r.certificate(b.cert) : "";
  const principal = b.kind === "principal" || b.kind === "both" ? b.principal : "";
  const c = call.callee;
  const contextExtensions: Record<string, string> = {};
  if (c.kind === "context") contextExtensions.agent = c.value;
  if (c.kind === "both") contextExtensions.agent = c.context;
  const destinationPrincipal = c.kind === "destination" ? c.value : c.kind === "both" ? c.destination : "";

  const security: [string, readonly string[]][] = [
    [HEADER.subject, call.subject],
    [HEADER.onBehalfOf, call.onBehalfOf],
    [HEADER.chain, call.chain],
    [HEADER.token, call.token.map((t) => r.token(t))],
  ];
  let headers: [string, string][];
  if (call.transport === "headers") {
    // Envoy's map: lower-case names, one value each, repeats joined with ",".
    const map = new Map<string, string>();
    for (const [name, value] of call.extraHeaders) map.set(name, value);
    for (const [name, values] of security) if (values.length > 0) map.set(name, values.join(","));
    headers = [...map];
  } else {
    headers = [];
    let i = 0;
    for (const [name, value] of call.extraHeaders) headers.push([spell(name, call.nameCase, i++), value]);
    for (const [name, values] of security) for (const v of values) headers.push([spell(name, call.nameCase, i++), v]);
  }
  return {
    certificate,
    principal,
    destinationPrincipal,
    contextExtensions,
    transport: call.transport,
    headers,
    method: call.method,
    path: call.path,
  };
}

/** The core's input, built as the Envoy adapter builds it (lower-cased header_map names, repeats joined and noted). */
export function toCheckInput(view: EnvoyView): CheckInput {
  const headers: Record<string, string> = Object.create(null) as Record<string, string>;
  const repeated = new Set<string>();
  if (view.transport === "headers") {
    for (const [name, value] of view.headers) headers[name] = value;
  } else {
    for (const [name, value] of view.headers) {
      const key = name.toLowerCase();
      const prior = headers[key];
      if (prior !== undefined) repeated.add(key);
      headers[key] = prior === undefined ? value : `${prior},${value}`;
    }
  }
  return {
    peerCertificate: view.certificate,
    peerPrincipal: view.principal,
    destinationPrincipal: view.destinationPrincipal,
    contextExtensions: view.contextExtensions,
    headers,
    ...(repeated.size > 0 && { repeatedHeaders: repeated }),
    method: view.method,
    path: view.path,
  };
}

const utf8 = new TextEncoder();

/** The CheckRequest Envoy would send for this view. */
export function toCheckRequest(view: EnvoyView, rawValues: boolean): CheckRequest {
  const http: NonNullable<NonNullable<NonNullable<MessageInitShape<typeof CheckRequestSchema>["attributes"]>["request"]>["http"]> = {
    id: "fuzz",
    method: view.method,
    path: view.path,
    host: "db.example.org",
    scheme: "https",
    protocol: "HTTP/2",
  };
  if (view.transport === "headers") {
    http.headers = Object.fromEntries(view.headers);
  } else {
    http.headerMap = {
      headers: view.headers.map(([key, value]) => (rawValues ? { key, rawValue: utf8.encode(value) } : { key, value })),
    };
  }
  return create(CheckRequestSchema, {
    attributes: {
      source: { certificate: view.certificate, principal: view.principal, address: { address: { case: "socketAddress", value: { address: "10.0.0.7", portSpecifier: { case: "portValue", value: 43210 } } } } },
      destination: { principal: view.destinationPrincipal },
      contextExtensions: { ...view.contextExtensions },
      request: { http },
    },
  });
}
