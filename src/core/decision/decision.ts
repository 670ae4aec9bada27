// The result of one Check: allow or deny with a stable reason, and everything
// the audit trail records about it.

import type { McpFacts } from "../mcp/mcp-metadata.js";
import type { DenialReason } from "../reasons.js";

/**
 * How the caller's identity was established (SPEC 8): the peer certificate
 * Envoy sent, a trusted x-forwarded-client-cert, or source.principal alone.
 */
export type CallerBinding = "certificate" | "xfcc" | "principal";
export const CALLER_BINDINGS: readonly CallerBinding[] = ["certificate", "xfcc", "principal"];

export interface HopRecord {
  readonly from: string;
  readonly to: string;
  /** The admitting rule ("hops[N]"), "" when none. */
  readonly rule: string;
  readonly result: "allow" | "deny";
  readonly cached: boolean;
  readonly detail: string;
}

/** What every decision records, allow or deny. */
interface DecisionRecord {
  /** For people; never parsed. */
  readonly message: string;
  readonly decisionId: string;
  /** "" when no policy was in force. */
  readonly policyVersion: string;
  readonly decidedAtMs: number;
  readonly caller: string | undefined;
  readonly callee: string | undefined;
  readonly onBehalfOf: string | undefined;
  /** The delegation chain, first agent first, caller last (as far as it was read). */
  readonly chain: readonly string[];
  readonly hops: readonly HopRecord[];
  /** Upper-case hex SHA-256 of the peer certificate's DER, when one was presented. */
  readonly peerCertificateSha256: string | undefined;
  readonly method: string;
  readonly path: string;
  /** The verified delegation token's jti, when one was checked and passed. */
  readonly tokenId: string | undefined;
  /**
   * base64url SHA-256 of the delegation token as sent (SPEC 5's `prev`
   * encoding), when the verifier examined one: passed or refused, so an
   * auditor can match a refusal to the token the issuer logged.
   */
  readonly tokenSha256: string | undefined;
  /** The passed token's `prev` (the previous hop's tokenSha256); undefined on the first hop or without a passed token. */
  readonly tokenPrev: string | undefined;
  /** Where the caller's identity was read from; undefined when the request carried none. */
  readonly callerBinding: CallerBinding | undefined;
  /** The MCP method and tool (or resource) Envoy's MCP filter read from the body; undefined without usable MCP metadata. */
  readonly mcp: McpFacts | undefined;
  /** The transaction id of the verified Txn-Token (SPEC 8), when one was sent and verified. */
  readonly txn: string | undefined;
}

export interface AllowedDecision extends DecisionRecord {
  readonly allowed: true;
  readonly reason?: undefined;
}

export interface DeniedDecision extends DecisionRecord {
  readonly allowed: false;
  /** Why: a denial is never without its reason. */
  readonly reason: DenialReason;
}

/** Allowed, or denied with a reason: narrowing on `allowed` gives the reason its type. */
export type Decision = AllowedDecision | DeniedDecision;

/** The value of `authz.reason` and the audit record's reason for an allow. */
export const ALLOW_REASON = "allowed";

/** `authz.reason`, the audit record's reason, explain's reason: the denial reason, or "allowed". */
export function reasonOf(decision: Decision): DenialReason | typeof ALLOW_REASON {
  return decision.allowed ? ALLOW_REASON : decision.reason;
}
