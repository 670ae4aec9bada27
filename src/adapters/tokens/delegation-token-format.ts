// The delegation token's format (SPEC 5): header rules, the claims and their
// shapes, the RFC 8693 `act` nesting, and the hash that `prev` chains tokens
// by. Pure: no keys, no clock, no I/O, so the verifier in Check and the token
// service read one definition.

import { createHash } from "node:crypto";

export const DELEGATION_TOKEN_TYP = "agent-delegation+jwt";

/** Asymmetric algorithms only: never `none`, never HMAC (a shared secret would let every verifier mint tokens). */
export const DELEGATION_TOKEN_ALGS = ["ES256", "EdDSA", "RS256", "PS256"] as const;
export type DelegationTokenAlg = (typeof DELEGATION_TOKEN_ALGS)[number];

export function isAllowedAlg(alg: unknown): alg is DelegationTokenAlg {
  return typeof alg === "string" && (DELEGATION_TOKEN_ALGS as readonly string[]).includes(alg);
}

/** RFC 8693 4.1: the actor and, nested inside, the actors before it. */
export interface ActorClaim {
  readonly sub: string;
  readonly act?: ActorClaim;
}

export interface DelegationClaims {
  readonly iss: string;
  /** The person (on-behalf-of). */
  readonly sub: string;
  /** The callee's SPIFFE ID. */
  readonly aud: string;
  /** Seconds since the epoch. */
  readonly iat: number;
  readonly nbf: number | undefined;
  readonly exp: number;
  readonly jti: string;
  /** Scope tokens, in the order the token lists them. */
  readonly scope: readonly string[];
  /** base64url SHA-256 of the presenting agent's certificate DER (RFC 8705 cnf x5t#S256). */
  readonly x5tS256: string;
  /** Agents, first (the one the person called) first, presenting agent last. */
  readonly chain: readonly string[];
  /** base64url SHA-256 of the previous hop's token, absent on the first hop. */
  readonly prev: string | undefined;
}

export type ClaimsResult = { readonly ok: true; readonly claims: DelegationClaims } | { readonly ok: false; readonly problem: string };

/** A SHA-256 digest in unpadded base64url is exactly 43 characters. */
const SHA256_B64URL = /^[A-Za-z0-9_-]{43}$/;
/** RFC 6749 3.3 scope-token: %x21 / %x23-5B / %x5D-7E. */
const SCOPE_TOKEN = /^[\x21\x23-\x5b\x5d-\x7e]+$/;
/** Deeper nesting than this is not a chain any policy admits; refuse before recursing further. */
export const MAX_ACT_DEPTH = 64;

/**
 * base64url SHA-256 of a token's compact JWS, as sent: the next hop's `prev`,
 * and what the audit record, the span and the token service's log name a
 * token by. One definition, so the issuer's `prev` and Check's record of the
 * previous token are the same string.
 */
export function delegationTokenSha256(token: string): string {
  return createHash("sha256").update(token).digest("base64url");
}

export function isSha256Base64url(value: unknown): value is string {
  return typeof value === "string" && SHA256_B64URL.test(value);
}

/** Splits an RFC 6749 scope string; undefined when it is not one (double spaces, leading space, bad characters). */
export function parseScope(value: string): string[] | undefined {
  if (value === "") return [];
  const tokens = value.split(" ");
  for (const t of tokens) if (!SCOPE_TOKEN.test(t)) return undefined;
  return tokens;
}

/** Builds `act` with the current actor outermost, from a chain listed first agent first. */
export function nestActors(chain: readonly string[]): ActorClaim | undefined {
  let act: ActorClaim | undefined;
  for (const sub of chain) act = act === undefined ? { sub } : { sub, act };
  return act;
}

/** Flattens `act` into the chain, innermost (first agent) first. */
export function actorChain(act: unknown): { ok: true; chain: string[] } | { ok: false; problem: string } {
  const outermostFirst: string[] = [];
  let node: unknown = act;
  while (node !== undefined) {
    if (outermostFirst.length >= MAX_ACT_DEPTH) return { ok: false, problem: `act is nested more than ${MAX_ACT_DEPTH} deep` };
    if (!isPlainObject(node)) return { ok: false, problem: `act at depth ${outermostFirst.length + 1} is not an object` };
    const sub = node["sub"];
    if (typeof sub !== "string" || sub.length === 0) return { ok: false, problem: `act at depth ${outermostFirst.length + 1} has no sub string` };
    outermostFirst.push(sub);
    node = node["act"];
  }
  if (outermostFirst.length === 0) return { ok: false, problem: "act is missing" };
  return { ok: true, chain: outermostFirst.reverse() };
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function isNumericDate(value: unknown): value is number {
  return typeof value === "number" && Number.isFinite(value) && value >= 0;
}

/**
 * Checks the claims' shapes (not their values against a request or a clock).
 * `aud` may be a string or a one-element array: RFC 7519 allows both, and a
 * token for two audiences is refused since it would be usable at either.
 */
export function parseDelegationClaims(payload: unknown): ClaimsResult {
  const fail = (problem: string): ClaimsResult => ({ ok: false, problem });
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
  if (aud === undefined || aud.length === 0) return fail("aud must be one audience (a string or a one-element array)");
  const { iat, exp, nbf } = payload;
  if (!isNumericDate(iat)) return fail("iat is missing or not a NumericDate");
  if (!isNumericDate(exp)) return fail("exp is missing or not a NumericDate");
  if (nbf !== undefined && !isNumericDate(nbf)) return fail("nbf is not a NumericDate");
  const jti = str("jti");
  if (jti === undefined) return fail("jti is missing or not a non-empty string");
  const rawScope = payload["scope"];
  if (typeof rawScope !== "string") return fail("scope is missing or not a string");
  const scope = parseScope(rawScope);
  if (scope === undefined) return fail("scope is not a space-separated list of scope tokens");
  const cnf = payload["cnf"];
  if (!isPlainObject(cnf) || !isSha256Base64url(cnf["x5t#S256"])) return fail('cnf["x5t#S256"] is missing or not a base64url SHA-256');
  const chain = actorChain(payload["act"]);
  if (!chain.ok) return fail(chain.problem);
  const prev = payload["prev"];
  if (prev !== undefined && !isSha256Base64url(prev)) return fail("prev is not a base64url SHA-256");
  return {
    ok: true,
    claims: { iss, sub, aud, iat, exp, nbf, jti, scope, x5tS256: cnf["x5t#S256"], chain: chain.chain, prev },
  };
}
