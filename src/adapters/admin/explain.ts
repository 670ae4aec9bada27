// Explain (dry-run) shared by the admin API and `hopwarden explain`: decides
// either a full CheckRequest, exactly as serve would, or a shorthand (caller,
// callee, headers, method, path, MCP method and tool), and lays the decision
// out as a hop-by-hop table with how the caller was bound, the MCP facts and
// the transaction (SPEC 8).

import { toBinary } from "@bufbuild/protobuf";
import { CheckRequestSchema, type CheckRequest } from "../../gen/envoy/service/auth/v3/external_auth_pb.js";
import type { CheckInput } from "../../core/decision/check-input.js";
import type { CheckPipeline } from "../../core/decision/check-pipeline.js";
import { reasonOf, type Decision } from "../../core/decision/decision.js";
import { mcpMetadataFor, type McpMetadataKeys } from "../../core/mcp/mcp-metadata.js";
import { REASON_STATUS, GrpcCode } from "../../core/reasons.js";
import { decodeCheckRequest, undecodableCheckRequest } from "../envoy/check-request-decoder.js";
import { WireError } from "../protobuf/wire.js";

export interface ExplainShorthand {
  readonly caller?: string;
  readonly callee?: string;
  readonly headers?: Readonly<Record<string, string>>;
  readonly method?: string;
  readonly path?: string;
  /** The MCP request as Envoy's MCP filter would report it; "" or absent: no MCP metadata. */
  readonly mcpMethod?: string;
  readonly mcpTool?: string;
  readonly mcpResource?: string;
}

/**
 * A full CheckRequest decided as serve decides it: its wire bytes go through
 * serve's decoder, reading the headers this pipeline reads (as serve's does),
 * so a header Check ignores cannot fail here what serve accepts; bytes the
 * decoder refuses are denied with serve's internal_error. The MCP namespace
 * of metadata_context is read as serve reads it.
 */
export function decideCheckRequest(pipeline: CheckPipeline, checkRequest: CheckRequest): Decision | Promise<Decision> {
  let input: CheckInput;
  try {
    input = decodeCheckRequest(Buffer.from(toBinary(CheckRequestSchema, checkRequest)), pipeline.headersRead, pipeline.mcpKeys.namespace);
  } catch (err) {
    if (!(err instanceof WireError)) throw err;
    return pipeline.denyWithoutDeciding("internal_error", undecodableCheckRequest(err.message));
  }
  return pipeline.decide(input);
}

/** The admin API's Explain: a full CheckRequest when given (the shorthand is then ignored), else the shorthand. */
export function decideExplainRequest(pipeline: CheckPipeline, request: { checkRequest?: CheckRequest | undefined } & ExplainShorthand): Decision | Promise<Decision> {
  return request.checkRequest !== undefined ? decideCheckRequest(pipeline, request.checkRequest) : pipeline.decide(explainInput(request, pipeline.mcpKeys));
}

/**
 * The CheckInput a shorthand describes. An MCP method becomes the metadata
 * Envoy's MCP filter would send, at `mcpKeys`, so that it is read as serve
 * reads it.
 */
export function explainInput(request: ExplainShorthand, mcpKeys?: McpMetadataKeys): CheckInput {
  const headers: Record<string, string> = {};
  for (const [k, v] of Object.entries(request.headers ?? {})) headers[k.toLowerCase()] = v;
  const given = (value: string | undefined) => (value === undefined || value === "" ? undefined : value);
  const mcpMethod = given(request.mcpMethod);
  return {
    peerCertificate: "",
    peerPrincipal: request.caller ?? "",
    destinationPrincipal: "",
    contextExtensions: request.callee !== undefined && request.callee.length > 0 ? { agent: request.callee } : {},
    headers,
    method: request.method ?? "GET",
    path: request.path ?? "/",
    ...(mcpMethod !== undefined && { mcpMetadata: mcpMetadataFor({ method: mcpMethod, tool: given(request.mcpTool), resource: given(request.mcpResource) }, mcpKeys) }),
  };
}

export interface Explanation {
  readonly decision: "allow" | "deny";
  readonly reason: string;
  readonly message: string;
  readonly policyVersion: string;
  readonly caller: string;
  readonly callee: string;
  readonly onBehalfOf: string;
  readonly chain: readonly string[];
  readonly hops: readonly { from: string; to: string; rule: string; result: string; detail: string }[];
  readonly httpStatus: number;
  readonly grpcStatus: number;
  /** "certificate", "xfcc", "principal", or "" when the request named no caller. */
  readonly callerBinding: string;
  /** The MCP facts the decision saw; "" without MCP metadata. */
  readonly mcpMethod: string;
  readonly mcpTool: string;
  readonly mcpResource: string;
  /** The verified Txn-Token's transaction id, or "". */
  readonly txn: string;
}

export function explainDecision(decision: Decision): Explanation {
  const status = decision.allowed ? { http: 200, grpc: GrpcCode.OK } : REASON_STATUS[decision.reason];
  return {
    decision: decision.allowed ? "allow" : "deny",
    reason: reasonOf(decision),
    message: decision.message,
    policyVersion: decision.policyVersion,
    caller: decision.caller ?? "",
    callee: decision.callee ?? "",
    onBehalfOf: decision.onBehalfOf ?? "",
    chain: decision.chain,
    hops: decision.hops.map(({ from, to, rule, result, detail }) => ({ from, to, rule, result, detail })),
    httpStatus: status.http,
    grpcStatus: status.grpc,
    callerBinding: decision.callerBinding ?? "",
    mcpMethod: decision.mcp?.method ?? "",
    mcpTool: decision.mcp?.tool ?? "",
    mcpResource: decision.mcp?.resource ?? "",
    txn: decision.txn ?? "",
  };
}

/** The hop-by-hop table for people. */
export function formatExplanation(e: Explanation): string {
  const rows = e.hops.map((h, i) => [String(i + 1), h.from, h.to, h.rule || "-", h.result, h.detail]);
  const header = ["#", "from", "to", "rule", "result", "detail"];
  const widths = header.map((h, c) => Math.max(h.length, ...rows.map((r) => r[c]!.length)));
  const line = (cells: readonly string[]) => cells.map((cell, c) => cell.padEnd(widths[c]!)).join("  ").trimEnd();
  const out = [
    `policy version: ${e.policyVersion || "(none)"}`,
    `caller:         ${e.caller || "(unknown)"}${e.callerBinding === "" ? "" : `  (bound by ${e.callerBinding})`}`,
    `on behalf of:   ${e.onBehalfOf || "(none)"}`,
    `chain:          ${e.chain.join(" → ") || "(none)"}`,
    `callee:         ${e.callee || "(unknown)"}`,
  ];
  if (e.mcpMethod !== "") out.push(`mcp:            ${e.mcpMethod}${e.mcpTool === "" ? "" : ` tool ${e.mcpTool}`}${e.mcpResource === "" ? "" : ` resource ${e.mcpResource}`}`);
  if (e.txn !== "") out.push(`transaction:    ${e.txn}`);
  out.push("");
  if (rows.length > 0) out.push(line(header), line(widths.map((w) => "-".repeat(w))), ...rows.map(line), "");
  else out.push("(no hop was evaluated)", "");
  out.push(`decision: ${e.decision.toUpperCase()} (${e.reason}) — HTTP ${e.httpStatus}, gRPC ${e.grpcStatus}`, e.message);
  return out.join("\n") + "\n";
}
