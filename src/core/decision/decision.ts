// The result of one Check: allow or deny with a stable reason, and everything
// the audit trail records about it.

import type { DenialReason } from "../reasons.js";

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
