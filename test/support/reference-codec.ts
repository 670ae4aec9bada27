// The reference for hopwarden's hand-written Envoy codec: the same mapping
// (CheckRequest → CheckInput, Decision → CheckResponse) written with the
// generated protobuf-es schemas. Production uses the hand-written codec
// (src/adapters/envoy/check-request-decoder.ts, check-response-encoder.ts);
// the property tests beside it check that both say the same.
//
// Semantics both sides share (SPEC 1 and 4):
// - headers come from header_map when it is present, even empty, else from
//   the `headers` map (kept as sent);
// - header_map names are lower-cased in ASCII only (RFC 9110 names are ASCII;
//   no other letter may fold into one), and a name sent twice is joined with
//   "," and listed in repeatedHeaders;
// - a non-empty raw_value wins over value and must be UTF-8, like every
//   string protobuf decodes: bytes that are not are refused (this function
//   throws), never turned into U+FFFD; a leading U+FEFF is kept;
// - the MCP namespace of metadata_context (SPEC 8) is its Struct as JSON, in
//   objects without a prototype; one that encodes to more than
//   MAX_MCP_METADATA_BYTES, or nests structs and lists deeper than
//   MAX_MCP_METADATA_DEPTH (the namespace's own struct is depth 1), is
//   MCP_METADATA_OVER_BOUNDS (the generated Struct is one piece, so
//   MAX_MCP_METADATA_PIECES, which the decoder also applies, never matters
//   here: check-request-as-read.ts sees pieces).

import { create, fromJson, toBinary, type JsonObject, type JsonValue } from "@bufbuild/protobuf";
import { StructSchema } from "@bufbuild/protobuf/wkt";
import { MAX_MCP_METADATA_BYTES, MAX_MCP_METADATA_DEPTH, MCP_METADATA_OVER_BOUNDS } from "../../src/core/mcp/mcp-metadata.js";
import { HeaderValueOption_HeaderAppendAction, HeaderValueOptionSchema, type HeaderValueOption } from "../../src/gen/envoy/config/core/v3/base_pb.js";
import { CheckResponseSchema, type CheckResponse } from "../../src/gen/envoy/service/auth/v3/external_auth_pb.js";
import { StatusSchema } from "../../src/gen/google/rpc/status_pb.js";
import type { CheckInput } from "../../src/core/decision/check-input.js";
import type { Decision } from "../../src/core/decision/decision.js";
import { GrpcCode, REASON_STATUS } from "../../src/core/reasons.js";
import { denialBody, REASON_HEADER, VERIFIED_HEADERS } from "../../src/adapters/envoy/check-response-fields.js";
import { boundText } from "../../src/adapters/text/bounded-text.js";

/** The parts of a CheckRequest Check reads: the generated CheckRequest has this shape (and more). */
export interface CheckRequestView {
  readonly attributes?:
    | {
        readonly source?: { readonly principal: string; readonly certificate: string } | undefined;
        readonly destination?: { readonly principal: string } | undefined;
        readonly contextExtensions: Readonly<Record<string, string>>;
        readonly request?: { readonly http?: HttpRequestView | undefined } | undefined;
        /** A namespace's value is the generated Struct (JSON), or what another reader made of it already (BoundedMetadata). */
        readonly metadataContext?: { readonly filterMetadata: Readonly<Record<string, JsonObject | BoundedMetadata>> } | undefined;
      }
    | undefined;
}

/** A namespace another reader has already bounded and turned into JSON (test/support/check-request-as-read.ts). */
export class BoundedMetadata {
  constructor(readonly value: unknown) {}
}

/** How deep the structs and lists of `value` nest: a scalar 0, an object or array 1 more than its deepest member. */
function nesting(value: JsonValue): number {
  if (value === null || typeof value !== "object") return 0;
  let deepest = 0;
  for (const member of Array.isArray(value) ? value : Object.values(value)) deepest = Math.max(deepest, nesting(member));
  return deepest + 1;
}

/** A copy of JSON whose objects have no prototype (what the decoder builds). */
function withoutPrototypes(value: JsonValue): unknown {
  if (value === null || typeof value !== "object") return value;
  if (Array.isArray(value)) return value.map(withoutPrototypes);
  const out = Object.create(null) as Record<string, unknown>;
  for (const key of Object.keys(value)) out[key] = withoutPrototypes(value[key]!);
  return out;
}

/** The namespace's Struct as CheckInput.mcpMetadata holds it: JSON, or the marker past the bounds. */
export function boundedMcpMetadata(struct: JsonObject): unknown {
  if (toBinary(StructSchema, fromJson(StructSchema, struct)).byteLength > MAX_MCP_METADATA_BYTES) return MCP_METADATA_OVER_BOUNDS;
  if (nesting(struct) > MAX_MCP_METADATA_DEPTH) return MCP_METADATA_OVER_BOUNDS;
  return withoutPrototypes(struct);
}

export interface HttpRequestView {
  readonly method: string;
  readonly path: string;
  readonly headers: Readonly<Record<string, string>>;
  readonly headerMap?: { readonly headers: readonly { readonly key: string; readonly value: string; readonly rawValue: Uint8Array }[] } | undefined;
}

const utf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });
const utf8Lossy = new TextDecoder("utf-8", { ignoreBOM: true });

function record(from: Readonly<Record<string, string>> | undefined): Record<string, string> {
  const out = Object.create(null) as Record<string, string>;
  for (const [k, v] of Object.entries(from ?? {})) out[k] = v;
  return out;
}

const lowerAscii = (name: string) => name.replace(/[A-Z]/g, (c) => c.toLowerCase());

/**
 * The CheckInput a decoded CheckRequest means. A raw_value that is not UTF-8
 * is read with U+FFFD for its bad sequences and its header listed in
 * notUtf8Headers. `mcpNamespace`: the metadata_context namespace read (none
 * without it).
 */
export function toCheckInput(request: CheckRequestView, mcpNamespace?: string): CheckInput {
  const attributes = request.attributes;
  const http = attributes?.request?.http;
  let headers = record(http?.headers);
  const repeated = new Set<string>();
  const notUtf8 = new Set<string>();
  if (http?.headerMap !== undefined) {
    headers = Object.create(null) as Record<string, string>;
    for (const h of http.headerMap.headers) {
      const key = lowerAscii(h.key);
      let value = h.value;
      if (h.rawValue.length > 0) {
        value = utf8Lossy.decode(h.rawValue);
        try {
          utf8.decode(h.rawValue);
        } catch {
          notUtf8.add(key);
        }
      }
      const prior = headers[key];
      if (prior !== undefined) repeated.add(key);
      headers[key] = prior === undefined ? value : `${prior},${value}`;
    }
  }
  return {
    peerCertificate: attributes?.source?.certificate ?? "",
    peerPrincipal: attributes?.source?.principal ?? "",
    destinationPrincipal: attributes?.destination?.principal ?? "",
    contextExtensions: record(attributes?.contextExtensions),
    headers,
    ...(repeated.size > 0 && { repeatedHeaders: repeated }),
    ...(notUtf8.size > 0 && { notUtf8Headers: notUtf8 }),
    method: http?.method ?? "",
    path: http?.path ?? "",
    ...mcpMetadataOf(attributes?.metadataContext?.filterMetadata, mcpNamespace),
  };
}

function mcpMetadataOf(filterMetadata: Readonly<Record<string, JsonObject | BoundedMetadata>> | undefined, namespace: string | undefined): { mcpMetadata?: unknown } {
  if (namespace === undefined || filterMetadata === undefined || !Object.hasOwn(filterMetadata, namespace)) return {};
  const struct = filterMetadata[namespace]!;
  return { mcpMetadata: struct instanceof BoundedMetadata ? struct.value : boundedMcpMetadata(struct) };
}

function header(key: string, value: string): HeaderValueOption {
  return create(HeaderValueOptionSchema, {
    header: { key, value },
    appendAction: HeaderValueOption_HeaderAppendAction.OVERWRITE_IF_EXISTS_OR_ADD,
  });
}

/** Struct fields are plain JSON in protobuf-es; numbers become number_value. */
function decisionMetadata(decision: Decision): JsonObject {
  const metadata: JsonObject = {
    decision_id: decision.decisionId,
    policy_version: decision.policyVersion,
    caller: decision.caller ?? "",
    callee: decision.callee ?? "",
    // A deny's claim is bounded as records bound it (SPEC 6); an allow's is the verified value.
    on_behalf_of: decision.allowed ? (decision.onBehalfOf ?? "") : boundText(decision.onBehalfOf ?? ""),
    chain_depth: decision.chain.length,
    caller_binding: decision.callerBinding ?? "",
  };
  if (decision.reason !== undefined) metadata.reason = decision.reason;
  return metadata;
}

/** The CheckResponse a Decision must encode to (SPEC 4). */
export function toCheckResponse(decision: Decision): CheckResponse {
  if (decision.allowed) {
    const headers = [
      header(VERIFIED_HEADERS.subject, decision.caller ?? ""),
      header(VERIFIED_HEADERS.chain, decision.chain.join(",")),
      header(VERIFIED_HEADERS.decisionId, decision.decisionId),
    ];
    const headersToRemove: string[] = [];
    if (decision.onBehalfOf !== undefined) headers.push(header(VERIFIED_HEADERS.onBehalfOf, decision.onBehalfOf));
    else headersToRemove.push(VERIFIED_HEADERS.onBehalfOf);
    return create(CheckResponseSchema, {
      status: create(StatusSchema, { code: GrpcCode.OK }),
      httpResponse: { case: "okResponse", value: { headers, headersToRemove } },
      dynamicMetadata: decisionMetadata(decision),
    });
  }
  const reason = decision.reason;
  const status = REASON_STATUS[reason];
  return create(CheckResponseSchema, {
    status: create(StatusSchema, { code: status.grpc, message: reason }),
    httpResponse: {
      case: "deniedResponse",
      value: {
        status: { code: status.http },
        headers: [header("content-type", "application/json"), header(REASON_HEADER, reason), header(VERIFIED_HEADERS.decisionId, decision.decisionId)],
        body: denialBody(decision),
      },
    },
    dynamicMetadata: decisionMetadata(decision),
  });
}
