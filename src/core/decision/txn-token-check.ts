// The Transaction Token step of check 9 (SPEC 8), as the pipeline sees it:
// the request to the verifier (an adapter: jose, JWKS), its result, and the
// one rule that compares the token with the request, `sub` against the
// on-behalf-of. Pure.
//
// Order, after the delegation token: a missing token when the policy requires
// one is token_missing (the pipeline decides, it knows whether the header was
// sent); the verifier then answers token_invalid or token_expired; on
// success, checkTxnTokenSubject may answer token_chain_mismatch.

import type { TxnTokenPolicy } from "../policy/model.js";
import { quoted } from "../input/untrusted-bounds.js";

export interface TxnTokenCheckRequest {
  /** The header's value, exactly one Txn-Token (draft-ietf-oauth-transaction-tokens 12.1). */
  readonly token: string;
  readonly policy: TxnTokenPolicy;
  /** The policy's trust domains: the token's `aud` must be exactly one of them. */
  readonly trustDomains: ReadonlySet<string>;
  readonly nowMs: number;
}

export type TxnTokenCheckResult =
  | {
      readonly ok: true;
      /** The transaction id, for `authz.txn` and the audit record's `txn`. */
      readonly txn: string;
      /** The principal of the transaction (the person, compared with on-behalf-of). */
      readonly sub: string;
      readonly issuer: string;
      /** The trust domain the token is for. */
      readonly audience: string;
      /** base64url SHA-256 of the token string. */
      readonly tokenSha256: string;
    }
  | { readonly ok: false; readonly reason: "token_invalid" | "token_expired"; readonly message: string };

/** The port the pipeline calls; never rejects. */
export interface TxnTokenVerifier {
  verify(request: TxnTokenCheckRequest): Promise<TxnTokenCheckResult>;
}

/** Whether a Txn-Token must be present: `txnTokens.required`. */
export function txnTokenRequired(policy: TxnTokenPolicy | undefined): boolean {
  return policy?.required === true;
}

/**
 * The Txn-Token's principal must be the person this chain acts for: a token
 * of one transaction cannot carry a request made on behalf of someone else.
 * Exact comparison, as everywhere (SPEC 3). No on-behalf-of (a policy with
 * `requireOnBehalfOf: false`) matches no `sub`.
 */
export function checkTxnTokenSubject(sub: string, onBehalfOf: string | undefined): { readonly reason: "token_chain_mismatch"; readonly message: string } | undefined {
  if (onBehalfOf !== undefined && sub === onBehalfOf) return undefined;
  return {
    reason: "token_chain_mismatch",
    message: `the Txn-Token's sub ${quoted(sub)} is not the on-behalf-of ${onBehalfOf === undefined ? "(none)" : quoted(onBehalfOf)}`,
  };
}
