// Envoy wire → core: turns a decoded CheckRequest into the plain CheckInput the
// pipeline reads. Headers arrive either as the lower-cased `headers` map or,
// with encode_raw_headers, as `header_map`; both become one lower-case record.

import type { CheckRequest } from "../../gen/envoy/service/auth/v3/external_auth_pb.js";
import type { CheckInput } from "../../core/decision/check-input.js";

const utf8 = new TextDecoder("utf-8", { fatal: false });
const EMPTY: Readonly<Record<string, string>> = Object.freeze({});

export function toCheckInput(request: CheckRequest): CheckInput {
  const attributes = request.attributes;
  const http = attributes?.request?.http;
  let headers: Record<string, string> = http?.headers ?? {};
  const repeated = new Set<string>();
  const raw = http?.headerMap?.headers;
  if (raw !== undefined && raw.length > 0) {
    headers = {};
    for (const h of raw) {
      const key = h.key.toLowerCase();
      const value = h.rawValue.length > 0 ? utf8.decode(h.rawValue) : h.value;
      const prior = headers[key];
      if (prior !== undefined) repeated.add(key);
      headers[key] = prior === undefined ? value : `${prior},${value}`;
    }
  }
  return {
    peerCertificate: attributes?.source?.certificate ?? "",
    peerPrincipal: attributes?.source?.principal ?? "",
    destinationPrincipal: attributes?.destination?.principal ?? "",
    contextExtensions: attributes?.contextExtensions ?? EMPTY,
    headers,
    ...(repeated.size > 0 && { repeatedHeaders: repeated }),
    method: http?.method ?? "",
    path: http?.path ?? "",
  };
}
