// The shape of check 9 (SPEC 5) as the pipeline sees it. The verification
// itself (jose, JWKS) lives in an adapter behind DelegationTokenVerifier.

import type { DenialReason } from "../reasons.js";
import type { TokenPolicy } from "../policy/model.js";

export interface TokenCheckRequest {
  readonly token: string;
  readonly policy: TokenPolicy;
  /** The chain as headers state it, first agent first, caller last. */
  readonly chain: readonly string[];
  readonly caller: string;
  readonly callee: string;
  readonly onBehalfOf: string | undefined;
  /** base64url SHA-256 of the peer certificate's DER, when a certificate was presented. */
  readonly peerX5tS256: string | undefined;
  /** The last hop rule's scopes; undefined when the rule names none (then any scope is within it). */
  readonly allowedScopes: readonly string[] | undefined;
  readonly nowMs: number;
}

/**
 * `tokenSha256` is the base64url SHA-256 of the token as sent (the encoding of
 * SPEC 5's `prev`): the audit trail names a token by it, so that each hop's
 * `prev` can be matched to the previous hop's record. A refusal carries it
 * too when the verifier computed it, since an auditor can then tell which
 * issued token was refused; `prev` comes only from a token that passed.
 */
export type TokenCheckResult =
  | {
      readonly ok: true;
      readonly jti: string;
      readonly scope: readonly string[];
      readonly issuer: string;
      readonly tokenSha256: string;
      /** The token's `prev` claim; undefined on the first hop. */
      readonly prev: string | undefined;
    }
  // internal_error: the token could not be judged (its single-use store did not answer), which is a deny too.
  | { readonly ok: false; readonly reason: Extract<DenialReason, `token_${string}` | "internal_error">; readonly message: string; readonly tokenSha256?: string };
