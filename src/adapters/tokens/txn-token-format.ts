// The Transaction Token format, pinned from draft-ietf-oauth-transaction-tokens
// (docs/transaction-tokens.md cites the version): header `typ` txntoken+jwt,
// claims iss, iat, aud (the trust domain), exp, txn, sub, scope, tctx, rctx,
// req_wl. Pure: no keys, no clock, so Check's verifier and the token service
// read one definition.

import { parseScope } from "./delegation-token-format.js";

/** Section 9.1: the `typ` header parameter MUST be present with this value. */
export const TXN_TOKEN_TYP = "txntoken+jwt";
/** Section 11.1 / 16.1: the token type URN of a Txn-Token in token exchange. */
export const TXN_TOKEN_TYPE_URN = "urn:ietf:params:oauth:token-type:txn_token";
/** Section 12.1: the HTTP header that carries one Txn-Token (header names are case-insensitive). */
export const TXN_TOKEN_HEADER = "txn-token";

/** A transaction id goes into spans, audit records and Jaeger queries: keep it a plain, bounded string. */
export const MAX_TXN_LENGTH = 256;
const TXN = /^[\x21-\x7e]+$/;

export interface TxnTokenClaims {
  /** OPTIONAL in the draft; hopwarden requires it (the policy's txnTokens.issuer). */
  readonly iss: string;
  readonly sub: string;
  /** The one audience: a trust domain name. */
  readonly aud: string;
  readonly iat: number;
  readonly nbf: number | undefined;
  readonly exp: number;
  readonly txn: string;
  /** Scope tokens, when the token carries `scope` (REQUIRED by the draft, not used by Check). */
  readonly scope: readonly string[] | undefined;
  /** The requesting workloads (`req_wl`, a string or an array), when present. */
  readonly requestingWorkloads: readonly string[] | undefined;
}

export type TxnClaimsResult = { readonly ok: true; readonly claims: TxnTokenClaims } | { readonly ok: false; readonly problem: string };

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function isNumericDate(value: unknown): value is number {
  return typeof value === "number" && Number.isFinite(value) && value >= 0;
}

/**
 * Checks the claims' shapes, not their values against a request or a clock.
 * `aud` may be a string or a one-element array (RFC 7519 allows both); a
 * token for several trust domains is refused, since the draft binds a
 * Txn-Token to one (section 9.2).
 */
export function parseTxnTokenClaims(payload: unknown): TxnClaimsResult {
  const fail = (problem: string): TxnClaimsResult => ({ ok: false, problem });
  if (!isPlainObject(payload)) return fail("the payload is not a JSON object");
  const str = (name: string): string | undefined => {
    const v = payload[name];
    return typeof v === "string" && v.length > 0 ? v : undefined;
  };
  const iss = str("iss");
  if (iss === undefined) return fail("iss is missing or not a non-empty string");
  const sub = str("sub");
  if (sub === undefined) return fail("sub is missing or not a non-empty string");
  const rawAud = payload["aud"];
  const aud = typeof rawAud === "string" ? rawAud : Array.isArray(rawAud) && rawAud.length === 1 && typeof rawAud[0] === "string" ? rawAud[0] : undefined;
  if (aud === undefined || aud.length === 0) return fail("aud must be one trust domain (a string or a one-element array)");
  const { iat, exp, nbf } = payload;
  if (!isNumericDate(iat)) return fail("iat is missing or not a NumericDate");
  if (!isNumericDate(exp)) return fail("exp is missing or not a NumericDate");
  if (nbf !== undefined && !isNumericDate(nbf)) return fail("nbf is not a NumericDate");
  const txn = str("txn");
  if (txn === undefined) return fail("txn is missing or not a non-empty string");
  if (txn.length > MAX_TXN_LENGTH || !TXN.test(txn)) return fail(`txn must be printable ASCII without spaces, at most ${MAX_TXN_LENGTH} characters`);
  let scope: string[] | undefined;
  if (payload["scope"] !== undefined) {
    scope = typeof payload["scope"] === "string" ? parseScope(payload["scope"]) : undefined;
    if (scope === undefined) return fail("scope is not a space-separated list of scope tokens");
  }
  let requestingWorkloads: string[] | undefined;
  const reqWl = payload["req_wl"];
  if (reqWl !== undefined) {
    const list = typeof reqWl === "string" ? [reqWl] : Array.isArray(reqWl) ? reqWl : undefined;
    if (list === undefined || list.length === 0 || !list.every((w): w is string => typeof w === "string" && w.length > 0)) {
      return fail("req_wl is not a string or a non-empty array of strings");
    }
    requestingWorkloads = list;
  }
  for (const name of ["tctx", "rctx"]) {
    if (payload[name] !== undefined && !isPlainObject(payload[name])) return fail(`${name} is not a JSON object`);
  }
  return { ok: true, claims: { iss, sub, aud, iat, nbf, exp, txn, scope, requestingWorkloads } };
}
