// Transaction Tokens for the suites (SPEC 8, docs/transaction-tokens.md),
// signed by jose as a Transaction Token Service would sign them, and the
// policy section that verifies them against a JWKS file.

import { randomUUID } from "node:crypto";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { SignJWT, type JWTPayload } from "jose";
import { TXN_TOKEN_TYP } from "../../src/adapters/tokens/txn-token-format.js";
import { jwksOf, type TestSigningKey } from "./delegation-tokens.js";

export const TXN_ISSUER = "https://tts.example.org";

/** The claims of a valid Txn-Token for `sub`, now; an undefined override removes the claim. */
export function txnClaims(sub: string, overrides: Record<string, unknown> = {}): JWTPayload {
  const now = Math.floor(Date.now() / 1000);
  const claims: JWTPayload = {
    iss: TXN_ISSUER,
    sub,
    aud: "example.org",
    iat: now - 5,
    exp: now + 300,
    txn: randomUUID(),
    scope: "research",
    req_wl: "spiffe://example.org/agent/orchestrator",
    ...overrides,
  };
  for (const [k, v] of Object.entries(claims)) if (v === undefined) delete claims[k];
  return claims;
}

/** A Txn-Token signed by jose; `header` overrides the protected header (typ txntoken+jwt, the key's alg and kid). */
export function signTxnToken(key: TestSigningKey, claims: JWTPayload, header: Record<string, unknown> = {}): Promise<string> {
  return new SignJWT(claims).setProtectedHeader({ alg: key.alg, kid: key.kid, typ: TXN_TOKEN_TYP, ...header }).sign(key.privateKey);
}

/** Writes `<dir>/txn-jwks.json` for `keys` and returns the policy's txnTokens section naming it. */
export async function txnTokensSection(dir: string, keys: readonly TestSigningKey[], required = false): Promise<string> {
  await writeFile(join(dir, "txn-jwks.json"), JSON.stringify(jwksOf(...keys)));
  return `txnTokens:\n  issuer: ${TXN_ISSUER}\n  jwks: txn-jwks.json\n  required: ${required}\n`;
}
