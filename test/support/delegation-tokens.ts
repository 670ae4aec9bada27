// Test helpers for delegation tokens: signing keys of each allowed alg, and a
// signer that puts any header and payload on the wire, so tests can build
// the malformed and forged tokens that real issuers never would.

import { webcrypto } from "node:crypto";
import { exportJWK, generateKeyPair, type CryptoKey, type JWK } from "jose";
import { DELEGATION_TOKEN_TYP, nestActors } from "../../src/adapters/tokens/delegation-token-format.js";
import type { TokenPolicy } from "../../src/core/policy/model.js";
import type { TokenCheckRequest } from "../../src/core/decision/token-check.js";

export interface TestSigningKey {
  readonly alg: "ES256" | "EdDSA" | "RS256" | "PS256";
  readonly kid: string;
  readonly privateKey: CryptoKey;
  readonly publicJwk: JWK;
}

export async function createSigningKey(alg: TestSigningKey["alg"] = "ES256", kid = `${alg.toLowerCase()}-${Math.random().toString(36).slice(2, 8)}`): Promise<TestSigningKey> {
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true, ...(alg === "RS256" || alg === "PS256" ? { modulusLength: 2048 } : {}) });
  const publicJwk = { ...(await exportJWK(publicKey)), kid, alg, use: "sig" };
  return { alg, kid, privateKey, publicJwk };
}

export function jwksOf(...keys: TestSigningKey[]): { keys: JWK[] } {
  return { keys: keys.map((k) => k.publicJwk) };
}

const SIGN_PARAMS = {
  ES256: { name: "ECDSA", hash: "SHA-256" },
  EdDSA: { name: "Ed25519" },
  RS256: { name: "RSASSA-PKCS1-v1_5" },
  PS256: { name: "RSA-PSS", saltLength: 32 },
} as const;

/**
 * Signs `payload` as-is with a header of `{alg, kid, typ}` plus `header`
 * overrides (an undefined value removes a member). The signature is always
 * made with the key's own alg, whatever the header claims, so tests can put
 * `none` or `HS256` on the wire.
 */
export async function signToken(key: TestSigningKey, payload: unknown, header: Record<string, unknown> = {}): Promise<string> {
  const protectedHeader: Record<string, unknown> = { alg: key.alg, kid: key.kid, typ: DELEGATION_TOKEN_TYP, ...header };
  for (const [k, v] of Object.entries(protectedHeader)) if (v === undefined) delete protectedHeader[k];
  const b64 = (text: string) => Buffer.from(text).toString("base64url");
  return signParts(key, b64(JSON.stringify(protectedHeader)), typeof payload === "string" ? b64(payload) : b64(JSON.stringify(payload)));
}

/** Signs the header and payload parts exactly as spelled (even a spelling no encoder makes) with the key's own alg. */
export async function signParts(key: TestSigningKey, headerPart: string, payloadPart: string): Promise<string> {
  const input = `${headerPart}.${payloadPart}`;
  const signature = await webcrypto.subtle.sign(SIGN_PARAMS[key.alg], key.privateKey, Buffer.from(input));
  return `${input}.${Buffer.from(signature).toString("base64url")}`;
}

const BASE64URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/**
 * The other spellings of a canonical base64url part that a lenient decoder
 * reads as the same bytes: its last character with some of its unused bits
 * set (15 for 64 signature bytes, 3 when two bits are unused, none when the
 * part's length is a multiple of 4).
 */
export function otherSpellings(part: string): string[] {
  const unusedBits = [0, 0, 4, 2][part.length % 4]!;
  const last = BASE64URL.indexOf(part.at(-1)!);
  const spellings: string[] = [];
  for (let bits = 1; bits < 1 << unusedBits; bits++) spellings.push(part.slice(0, -1) + BASE64URL[last | bits]!);
  return spellings;
}

/** `token` with its signature part spelled another way that a lenient decoder reads as the same bytes. */
export function respelledSignature(token: string): string {
  const dot = token.lastIndexOf(".");
  const [other] = otherSpellings(token.slice(dot + 1));
  if (other === undefined) throw new Error("the signature's last character has no unused bits to set");
  return token.slice(0, dot + 1) + other;
}

export const NOW_MS = 1_800_000_000_000;
export const NOW_S = NOW_MS / 1000;
export const ISSUER = "https://sts.example.org";
export const PERSON = "alice@example.com";
export const FRONT = "spiffe://example.org/agent/front";
export const PLANNER = "spiffe://example.org/agent/planner";
export const WORKER = "spiffe://example.org/agent/worker";
export const DB = "spiffe://example.org/agent/db";
/** A made-up certificate thumbprint (base64url of 32 bytes). */
export const PEER_X5T = Buffer.alloc(32, 7).toString("base64url");

export function validClaims(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    iss: ISSUER,
    sub: PERSON,
    aud: DB,
    iat: NOW_S - 10,
    exp: NOW_S + 50,
    jti: "jti-1",
    scope: "db:read",
    cnf: { "x5t#S256": PEER_X5T },
    act: nestActors([FRONT, PLANNER, WORKER]),
    prev: Buffer.alloc(32, 1).toString("base64url"),
    ...overrides,
  };
}

export function tokenPolicy(overrides: Partial<TokenPolicy> = {}): TokenPolicy {
  return { issuer: ISSUER, jwks: "jwks.json", required: true, singleUse: false, clockSkewSeconds: 30, ...overrides };
}

export function checkRequest(token: string, overrides: Partial<TokenCheckRequest> = {}): TokenCheckRequest {
  return {
    token,
    policy: tokenPolicy(),
    chain: [FRONT, PLANNER, WORKER],
    caller: WORKER,
    callee: DB,
    onBehalfOf: PERSON,
    peerX5tS256: PEER_X5T,
    allowedScopes: ["db:read", "db:schema"],
    nowMs: NOW_MS,
    ...overrides,
  };
}
