// The claim rules of SPEC 5 against one request, in the binding order:
// iss, iat/nbf, cnf (token_invalid) → exp (token_expired) → act chain, aud,
// sub (token_chain_mismatch) → scope (token_scope_exceeded). Pure: the clock
// is the request's `nowMs`, so the same token judged twice at one instant
// gets one answer. Replay (stateful) is the verifier's last step.

import type { TokenCheckRequest } from "../../core/decision/token-check.js";
import type { DelegationClaims } from "./delegation-token-format.js";
import { quotedValue } from "../../core/input/untrusted-bounds.js";

export type ClaimRuleFailure = {
  readonly reason: "token_invalid" | "token_expired" | "token_chain_mismatch" | "token_scope_exceeded";
  readonly message: string;
};

function sameChain(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((v, i) => v === b[i]);
}

export function checkDelegationClaims(claims: DelegationClaims, request: TokenCheckRequest): ClaimRuleFailure | undefined {
  const skew = request.policy.clockSkewSeconds;
  const now = request.nowMs / 1000;
  if (claims.iss !== request.policy.issuer) {
    return { reason: "token_invalid", message: `the token's iss ${quotedValue(claims.iss)} is not the policy's issuer ${JSON.stringify(request.policy.issuer)}` };
  }
  if (claims.iat > now + skew) return { reason: "token_invalid", message: "the token's iat is in the future (beyond tokens.clockSkew)" };
  if (claims.nbf !== undefined && claims.nbf > now + skew) {
    return { reason: "token_invalid", message: "the token's nbf is in the future (beyond tokens.clockSkew): it is not valid yet" };
  }
  if (request.peerX5tS256 === undefined) {
    return { reason: "token_invalid", message: "the token is bound to a certificate (cnf), but the request carries no peer certificate to match it against" };
  }
  if (claims.x5tS256 !== request.peerX5tS256) {
    return { reason: "token_invalid", message: "the token is bound (cnf x5t#S256) to another certificate than the caller's: it was issued to another agent" };
  }
  // RFC 7519 4.1.4: the token must not be accepted on or after exp.
  if (now >= claims.exp + skew) return { reason: "token_expired", message: `the token expired at ${new Date(claims.exp * 1000).toISOString()}` };
  if (!sameChain(claims.chain, request.chain)) {
    return {
      reason: "token_chain_mismatch",
      message: `the token's act chain [${claims.chain.join(", ")}] is not the header chain [${request.chain.join(", ")}]`,
    };
  }
  if (claims.aud !== request.callee) {
    return { reason: "token_chain_mismatch", message: `the token's aud ${claims.aud} is not the callee ${request.callee}` };
  }
  if (claims.sub !== request.onBehalfOf) {
    return {
      reason: "token_chain_mismatch",
      message: `the token's sub ${quotedValue(claims.sub)} is not the on-behalf-of ${quotedValue(request.onBehalfOf ?? null)}`,
    };
  }
  const allowed = request.allowedScopes;
  if (allowed !== undefined) {
    const outside = claims.scope.filter((s) => !allowed.includes(s));
    if (outside.length > 0) {
      return { reason: "token_scope_exceeded", message: `the token's scope holds ${outside.join(" ")}, which the hop rule's scopes do not allow` };
    }
  }
  return undefined;
}
