// Explain (dry-run) shared by the admin API and `hopwarden explain`: decides
// either a full CheckRequest, exactly as serve would, or a shorthand (caller,
// callee, headers, method, path), and lays the decision out as a hop-by-hop
// table.

import { toBinary } from "@bufbuild/protobuf";
import { CheckRequestSchema, type CheckRequest } from "../../gen/envoy/service/auth/v3/external_auth_pb.js";
import type { CheckInput } from "../../core/decision/check-input.js";
import type { CheckPipeline } from "../../core/decision/check-pipeline.js";
import { reasonOf, type Decision } from "../../core/decision/decision.js";
import { REASON_STATUS, GrpcCode } from "../../core/reasons.js";
import { decodeCheckRequest, undecodableCheckRequest } from "../envoy/check-request-decoder.js";
import { WireError } from "../protobuf/wire.js";

export interface ExplainShorthand {
  readonly caller?: string;
  readonly callee?: string;
  readonly headers?: Readonly<Record<string, string>>;
  readonly method?: string;
  readonly path?: string;
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
  return request.checkRequest !== undefined ? decideCheckRequest(pipeline, request.checkRequest) : pipeline.decide(explainInput(request));
}

/** The CheckInput a shorthand describes. */
export function explainInput(request: ExplainShorthand): CheckInput {
  const headers: Record<string, string> = {};
  for (const [k, v] of Object.entries(request.headers ?? {})) headers[k.toLowerCase()] = v;
  return {
    peerCertificate: "",
    peerPrincipal: request.caller ?? "",
    destinationPrincipal: "",
    contextExtensions: request.callee !== undefined && request.callee.length > 0 ? { agent: request.callee } : {},
    headers,
    method: request.method ?? "GET",
    path: request.path ?? "/",
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
    `caller:         ${e.caller || "(unknown)"}`,
    `on behalf of:   ${e.onBehalfOf || "(none)"}`,
    `chain:          ${e.chain.join(" → ") || "(none)"}`,
    `callee:         ${e.callee || "(unknown)"}`,
    "",
  ];
  if (rows.length > 0) out.push(line(header), line(widths.map((w) => "-".repeat(w))), ...rows.map(line), "");
  else out.push("(no hop was evaluated)", "");
  out.push(`decision: ${e.decision.toUpperCase()} (${e.reason}) — HTTP ${e.httpStatus}, gRPC ${e.grpcStatus}`, e.message);
  return out.join("\n") + "\n";
}
