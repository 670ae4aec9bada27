// What a token exchange starts from (RFC 8693 subject_token), read into one
// shape: the person, the chain so far, the scope bound so far, and the hash
// that the next token's `prev` carries. Two kinds:
//
// - first hop: a person's token from the configured identity provider (any
//   signed JWT of an allowed alg whose `iss` is the IdP; its `sub` is the
//   person; its `scope` string or `scp` list, when present, bounds the scope);
// - later hops: the presenting agent's current delegation token, which must
//   be one this service issued and whose `aud` is the presenting agent.

import { decodeProtectedHeader } from "jose";
import { DELEGATION_TOKEN_TYP, delegationTokenSha256, parseDelegationClaims, parseScope } from "../tokens/delegation-token-format.js";
import type { VerificationKeySource } from "../tokens/jwks-key-source.js";
import { readSignedToken } from "../tokens/signed-token-reader.js";
import { TXN_TOKEN_TYP } from "../tokens/txn-token-format.js";
import { quotedValue } from "../../core/input/untrusted-bounds.js";

export interface SubjectGrant {
  readonly kind: "person" | "delegation";
  readonly person: string;
  /** Agents so far, first first; empty for a person token. */
  readonly chain: readonly string[];
  /** Scope bound so far; undefined when the person token carries none. */
  readonly scope: readonly string[] | undefined;
  /** base64url SHA-256 of the subject token when it was a delegation token. */
  readonly prev: string | undefined;
}

export type SubjectResult = { readonly ok: true; readonly grant: SubjectGrant } | { readonly ok: false; readonly problem: string };

export interface SubjectVerification {
  /** This service's issuer and its own keys, for delegation tokens. */
  readonly issuer: string;
  readonly ownKeys: VerificationKeySource;
  readonly person: { readonly issuer: string; readonly audience: string | undefined; readonly keys: VerificationKeySource } | undefined;
  readonly clockSkewSeconds: number;
}

function headerTyp(token: string): unknown {
  try {
    return decodeProtectedHeader(token).typ;
  } catch {
    return undefined;
  }
}

function timeProblem(payload: Record<string, unknown>, nowS: number, skew: number): string | undefined {
  const { iat, nbf, exp } = payload;
  if (typeof exp !== "number" || !Number.isFinite(exp)) return "has no numeric exp";
  if (nowS >= exp + skew) return "has expired";
  if (typeof iat === "number" && iat > nowS + skew) return "has an iat in the future";
  if (nbf !== undefined && (typeof nbf !== "number" || nbf > nowS + skew)) return "is not valid yet (nbf)";
  return undefined;
}

export async function verifySubjectToken(token: string, presenter: string, v: SubjectVerification, nowMs: number): Promise<SubjectResult> {
  const nowS = nowMs / 1000;
  if (headerTyp(token) === DELEGATION_TOKEN_TYP) {
    const read = await readSignedToken(token, v.ownKeys, nowMs, { typ: DELEGATION_TOKEN_TYP });
    if (!read.ok) return { ok: false, problem: `the subject token ${read.problem}` };
    const parsed = parseDelegationClaims(read.payload);
    if (!parsed.ok) return { ok: false, problem: `the subject token's claims are malformed: ${parsed.problem}` };
    const c = parsed.claims;
    if (c.iss !== v.issuer) return { ok: false, problem: `the subject token was issued by ${quotedValue(c.iss)}, not by this service` };
    const when = timeProblem(read.payload as Record<string, unknown>, nowS, v.clockSkewSeconds);
    if (when !== undefined) return { ok: false, problem: `the subject token ${when}` };
    // The token was made for the agent it was sent to; only that agent may carry the chain on.
    if (c.aud !== presenter) return { ok: false, problem: `the subject token was issued for ${c.aud}, not for the presenting agent ${presenter}` };
    const prev = delegationTokenSha256(token);
    return { ok: true, grant: { kind: "delegation", person: c.sub, chain: c.chain, scope: c.scope, prev } };
  }
  const person = v.person;
  if (person === undefined) return { ok: false, problem: "the subject token is not a delegation token, and no person token issuer is configured (personTokens)" };
  // A Txn-Token is never a subject token here: it names a transaction, not a grant (draft 13.12, 13.14).
  const read = await readSignedToken(token, person.keys, nowMs, { typ: undefined, refusedTyps: [DELEGATION_TOKEN_TYP, TXN_TOKEN_TYP] });
  if (!read.ok) return { ok: false, problem: `the person token ${read.problem}` };
  const payload = read.payload;
  if (typeof payload !== "object" || payload === null || Array.isArray(payload)) return { ok: false, problem: "the person token's payload is not a JSON object" };
  const p = payload as Record<string, unknown>;
  if (p["iss"] !== person.issuer) return { ok: false, problem: `the person token was issued by ${quotedValue(p["iss"] ?? null)}, not by ${person.issuer}` };
  const when = timeProblem(p, nowS, v.clockSkewSeconds);
  if (when !== undefined) return { ok: false, problem: `the person token ${when}` };
  if (person.audience !== undefined) {
    const aud = p["aud"];
    const auds = typeof aud === "string" ? [aud] : Array.isArray(aud) ? aud : [];
    if (!auds.includes(person.audience)) return { ok: false, problem: `the person token is not for audience ${JSON.stringify(person.audience)}` };
  }
  const sub = p["sub"];
  if (typeof sub !== "string" || sub.length === 0) return { ok: false, problem: "the person token has no sub" };
  let scope: string[] | undefined;
  if (typeof p["scope"] === "string") {
    scope = parseScope(p["scope"]);
    if (scope === undefined) return { ok: false, problem: "the person token's scope is not a space-separated list of scope tokens" };
  } else if (Array.isArray(p["scp"])) {
    const scp = p["scp"] as unknown[];
    if (!scp.every((s): s is string => typeof s === "string" && parseScope(s)?.length === 1)) return { ok: false, problem: "the person token's scp is not a list of scope tokens" };
    scope = scp;
  }
  return { ok: true, grant: { kind: "person", person: sub, chain: [], scope, prev: undefined } };
}
