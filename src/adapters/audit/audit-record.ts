// The audit record of one decision (SPEC 6): a plain JSON object built purely
// from a Decision and its context. It carries no sequence number or hash: the
// one writer that keeps the chain adds those, so a worker process can build a
// record and hand it to the primary over IPC (see cluster-forwarding.ts).
// Every string that came from the request is bounded (SPEC 6, finding 9 of
// issue 10), so a large request cannot make a large record.

import { ALLOW_REASON, type Decision, type HopRecord } from "../../core/decision/decision.js";
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
}

export function buildAuditRecord(decision: Decision, context: DecisionContext): AuditRecord {
  return {
    decision_id: decision.decisionId,
    time: new Date(decision.decidedAtMs).toISOString(),
    decision: decision.allowed ? "allow" : "deny",
    reason: decision.allowed ? ALLOW_REASON : (decision.reason ?? "internal_error"),
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

export class AuditRecordError extends Error {
  readonly code = "invalid_audit_record";
  constructor(
    readonly field: string,
    problem: string,
  ) {
    super(`${field}: ${problem}`);
    this.name = "AuditRecordError";
  }
}

/**
 * Checks a record that arrived from another process and returns a copy holding
 * only the known fields, so a malformed message can neither crash the writer
 * nor smuggle `seq`, `prev` or `type` into the chain.
 */
export function parseAuditRecord(value: unknown): AuditRecord {
  if (!isObject(value)) throw new AuditRecordError("record", "must be an object");
  const decision = value["decision"];
  if (decision !== "allow" && decision !== "deny") throw new AuditRecordError("decision", 'must be "allow" or "deny"');
  const chain = value["chain"];
  if (!Array.isArray(chain) || !chain.every((entry) => typeof entry === "string")) {
    throw new AuditRecordError("chain", "must be an array of strings");
  }
  const hops = value["hops"];
  if (!Array.isArray(hops)) throw new AuditRecordError("hops", "must be an array");
  return {
    decision_id: nonEmptyString(value, "decision_id"),
    time: nonEmptyString(value, "time"),
    decision,
    reason: nonEmptyString(value, "reason"),
    message: string(value, "message"),
    policy_version: string(value, "policy_version"),
    caller: nullableString(value, "caller"),
    callee: nullableString(value, "callee"),
    on_behalf_of: nullableString(value, "on_behalf_of"),
    chain: [...chain],
    chain_depth: nonNegativeNumber(value, "chain_depth"),
    hops: hops.map((hop: unknown, i) => parseHop(hop, `hops[${i}]`)),
    tls_client_hash_sha256: nullableString(value, "tls_client_hash_sha256"),
    method: string(value, "method"),
    path: string(value, "path"),
    trace_id: nullableString(value, "trace_id"),
    span_id: nullableString(value, "span_id"),
    latency_ms: nonNegativeNumber(value, "latency_ms"),
    token_id: nullableString(value, "token_id"),
  };
}

function parseHop(value: unknown, field: string): AuditHop {
  if (!isObject(value)) throw new AuditRecordError(field, "must be an object");
  const result = value["result"];
  if (result !== "allow" && result !== "deny") throw new AuditRecordError(`${field}.result`, 'must be "allow" or "deny"');
  return {
    from: string(value, "from", field),
    to: string(value, "to", field),
    rule: string(value, "rule", field),
    result,
  };
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function string(obj: Record<string, unknown>, key: string, parent?: string): string {
  const value = obj[key];
  if (typeof value !== "string") throw new AuditRecordError(parent === undefined ? key : `${parent}.${key}`, "must be a string");
  return value;
}

function nonEmptyString(obj: Record<string, unknown>, key: string): string {
  const value = string(obj, key);
  if (value === "") throw new AuditRecordError(key, "must not be empty");
  return value;
}

function nullableString(obj: Record<string, unknown>, key: string): string | null {
  const value = obj[key];
  if (value === null) return null;
  if (typeof value !== "string") throw new AuditRecordError(key, "must be a string or null");
  return value;
}

function nonNegativeNumber(obj: Record<string, unknown>, key: string): number {
  const value = obj[key];
  if (typeof value !== "number" || !Number.isFinite(value) || value < 0) {
    throw new AuditRecordError(key, "must be a non-negative number");
  }
  return value;
}
