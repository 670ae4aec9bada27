// The audit record of one decision (SPEC 6): a plain JSON object built purely
// from a Decision and its context. It carries no sequence number or hash: the
// writer that keeps the chain adds those. Every string that came from the
// request is bounded (SPEC 6, finding 9 of issue 10), so a large request
// cannot make a large record. The writer does not build this object: it
// writes the same JSON text straight from the Decision (audit-record-json.ts);
// this is the reference that text is tested against, and a tool for tests.

import { reasonOf, type CallerBinding, type Decision, type HopRecord } from "../../core/decision/decision.js";
import type { DecisionContext } from "../../core/ports.js";
import { boundText, boundTextList } from "../text/bounded-text.js";

/**
 * The chain is kept up to 64 entries (the longest chain a policy may allow)
 * and 4 KiB; the hops up to 65 (that chain and the callee) and 8 KiB. Past
 * either bound the list ends in one marker (docs/audit-log.md).
 */
export const AUDIT_CHAIN_BOUNDS = { maxItems: 64, maxBytes: 4 * 1024 } as const;
export const AUDIT_HOPS_BOUNDS = { maxItems: 65, maxBytes: 8 * 1024 } as const;

export interface AuditHop {
  readonly from: string;
  readonly to: string;
  /** The admitting rule ("hops[N]"), "" when none. */
  readonly rule: string;
  readonly result: "allow" | "deny";
}

/** Field names are the log's format (docs/audit-log.md); absent values are null, never missing keys. */
export interface AuditRecord {
  readonly decision_id: string;
  /** ISO 8601 UTC time of the decision. */
  readonly time: string;
  readonly decision: "allow" | "deny";
  /** A denial reason, or "allowed". */
  readonly reason: string;
  readonly message: string;
  readonly policy_version: string;
  readonly caller: string | null;
  readonly callee: string | null;
  readonly on_behalf_of: string | null;
  readonly chain: readonly string[];
  readonly chain_depth: number;
  readonly hops: readonly AuditHop[];
  /** Upper-case hex SHA-256 of the peer certificate's DER. */
  readonly tls_client_hash_sha256: string | null;
  readonly method: string;
  readonly path: string;
  readonly trace_id: string | null;
  readonly span_id: string | null;
  readonly latency_ms: number;
  readonly token_id: string | null;
  /** base64url SHA-256 of the delegation token as sent, passed or refused (SPEC 5's `prev` encoding). */
  readonly token_sha256: string | null;
  /** The passed token's `prev`: the previous hop's token_sha256, so records chain hop to hop. */
  readonly token_prev: string | null;
  /** SPEC 8: certificate, xfcc or principal; null when the request named no caller. */
  readonly caller_binding: CallerBinding | null;
  /** SPEC 8: the MCP method, tool (tools/call) and resource URI (resources/read) Envoy's MCP filter read. */
  readonly mcp_method: string | null;
  readonly mcp_tool: string | null;
  readonly mcp_resource: string | null;
  /** SPEC 8: the verified Txn-Token's transaction id. */
  readonly txn: string | null;
}

export function buildAuditRecord(decision: Decision, context: DecisionContext): AuditRecord {
  return {
    decision_id: decision.decisionId,
    time: new Date(decision.decidedAtMs).toISOString(),
    decision: decision.allowed ? "allow" : "deny",
    reason: reasonOf(decision),
    // Messages quote the input ("… on behalf of \"<header>\"").
    message: boundText(decision.message),
    policy_version: decision.policyVersion,
    caller: boundNullable(decision.caller),
    callee: boundNullable(decision.callee),
    on_behalf_of: boundNullable(decision.onBehalfOf),
    chain: boundTextList(decision.chain, AUDIT_CHAIN_BOUNDS),
    // The full length, even when the list was cut.
    chain_depth: decision.chain.length,
    hops: boundHops(decision.hops),
    tls_client_hash_sha256: decision.peerCertificateSha256 ?? null,
    method: boundText(decision.method),
    path: boundText(decision.path),
    trace_id: boundNullable(context.traceId),
    span_id: boundNullable(context.spanId),
    // Microseconds are enough; more digits only lengthen every line.
    latency_ms: Math.round(context.latencyMs * 1000) / 1000,
    token_id: boundNullable(decision.tokenId),
    // Computed by this service, like the certificate hash: fixed length, nothing to bound.
    token_sha256: decision.tokenSha256 ?? null,
    // A signed claim, but the issuer chose it: bounded like the jti.
    token_prev: boundNullable(decision.tokenPrev),
    caller_binding: decision.callerBinding ?? null,
    // From the request body, through Envoy's MCP filter: bounded like every request string.
    mcp_method: boundNullable(decision.mcp?.method),
    mcp_tool: boundNullable(decision.mcp?.tool),
    mcp_resource: boundNullable(decision.mcp?.resource),
    txn: boundNullable(decision.txn),
  };
}

function boundNullable(value: string | undefined): string | null {
  return value === undefined ? null : boundText(value);
}

/**
 * Hops past the bound are replaced by one marker hop; the last hop (the one
 * that decided) is always kept. Every hop before the last was an allow: the
 * walk stops at the first deny, so the marker's result is "allow".
 */
export function boundHops(hops: readonly HopRecord[]): AuditHop[] {
  const bounded = hops.map((hop) => ({ from: boundText(hop.from), to: boundText(hop.to), rule: boundText(hop.rule), result: hop.result }));
  const size = (hop: AuditHop) => Buffer.byteLength(hop.from) + Buffer.byteLength(hop.to) + Buffer.byteLength(hop.rule);
  const total = bounded.reduce((sum, hop) => sum + size(hop), 0);
  if (bounded.length <= AUDIT_HOPS_BOUNDS.maxItems && total <= AUDIT_HOPS_BOUNDS.maxBytes) return bounded;
  const last = bounded.at(-1)!;
  const kept: AuditHop[] = [];
  let used = size(last);
  for (const hop of bounded.slice(0, -1)) {
    if (kept.length + 2 >= AUDIT_HOPS_BOUNDS.maxItems || used + size(hop) > AUDIT_HOPS_BOUNDS.maxBytes) break;
    kept.push(hop);
    used += size(hop);
  }
  const omitted = bounded.length - 1 - kept.length;
  return [...kept, { from: `…[truncated: ${omitted} hops of ${hops.length}]`, to: "", rule: "", result: "allow" }, last];
}
