// SPEC 8, Transaction Tokens (draft-ietf-oauth-transaction-tokens, pinned in
// docs/transaction-tokens.md): verified with the delegation tokens' key
// sources and alg allowlist, their own typ, iss, exp (+ clockSkew) and aud =
// one of the policy's trust domains. Every failure reason, with tokens that
// jose signs; the malformed ones (alg none, HMAC, crit) come from the raw
// signer, since jose refuses to make them.

import { SignJWT, type JWTPayload } from "jose";
import { beforeAll, describe, expect, it } from "vitest";
import { createSigningKey, jwksOf, NOW_MS, NOW_S, otherSpellings, signToken, type TestSigningKey } from "../../../test/support/delegation-tokens.js";
import type { TxnTokenCheckRequest } from "../../core/decision/txn-token-check.js";
import type { TxnTokenPolicy } from "../../core/policy/model.js";
import { JwksDelegationTokenVerifier } from "./delegation-token-verifier.js";
import { JwksKeySet } from "./jwks-key-set.js";
import { StaticKeySource, type VerificationKeySource } from "./jwks-key-source.js";
import { KeySourceRegistry } from "./key-source-registry.js";
import { MAX_TOKEN_LENGTH } from "./signed-token-reader.js";
import { TXN_TOKEN_TYP } from "./txn-token-format.js";
import { JwksTxnTokenVerifier } from "./txn-token-verifier.js";

const TTS = "https://tts.example.org";
const POLICY: TxnTokenPolicy = { issuer: TTS, jwks: "tts-jwks.json", required: true, clockSkewSeconds: 30 };
const TRUST_DOMAINS = new Set(["example.org", "partner.example"]);

let es: TestSigningKey;
let ed: TestSigningKey;
let rs: TestSigningKey;
let ps: TestSigningKey;
let stranger: TestSigningKey;

beforeAll(async () => {
  [es, ed, rs, ps, stranger] = await Promise.all([
    createSigningKey("ES256", "tts-es"),
    createSigningKey("EdDSA", "tts-ed"),
    createSigningKey("RS256", "tts-rs"),
    createSigningKey("PS256", "tts-ps"),
    createSigningKey("ES256", "tts-es"),
  ]);
});

function claims(overrides: Record<string, unknown> = {}): JWTPayload {
  const base: JWTPayload = {
    iss: TTS,
    sub: "alice@example.com",
    aud: "example.org",
    iat: NOW_S - 5,
    exp: NOW_S + 60,
    txn: "97053963-771d-49cc-a4e3-20aad399c312",
    scope: "trade.stocks",
    req_wl: "spiffe://example.org/agent/front",
    tctx: { action: "BUY" },
    rctx: { req_ip: "192.0.2.1" },
    ...overrides,
  };
  for (const [k, v] of Object.entries(base)) if (v === undefined) delete base[k];
  return base;
}

/** A Txn-Token signed by jose, typ txntoken+jwt unless `header` says otherwise. */
async function jose(key: TestSigningKey, payload: JWTPayload = claims(), header: Record<string, unknown> = {}): Promise<string> {
  return new SignJWT(payload).setProtectedHeader({ alg: key.alg, kid: key.kid, typ: TXN_TOKEN_TYP, ...header }).sign(key.privateKey);
}

function verifier(lookups?: { n: number }): JwksTxnTokenVerifier {
  const source = new StaticKeySource(JwksKeySet.fromObject(jwksOf(es, ed, rs, ps)));
  const counting: VerificationKeySource = {
    lookup: (kid, alg, nowMs) => {
      if (lookups) lookups.n++;
      return source.lookup(kid, alg, nowMs);
    },
  };
  return new JwksTxnTokenVerifier({ keySourceFor: () => counting });
}

function request(token: string, overrides: Partial<TxnTokenCheckRequest> = {}): TxnTokenCheckRequest {
  return { token, policy: POLICY, trustDomains: TRUST_DOMAINS, nowMs: NOW_MS, ...overrides };
}

async function reasonOf(token: string, overrides: Partial<TxnTokenCheckRequest> = {}, v = verifier()): Promise<string> {
  const result = await v.verify(request(token, overrides));
  return result.ok ? "ok" : result.reason;
}

describe("a valid Txn-Token", () => {
  it("verifies with each allowed alg and reports txn, sub, issuer, audience and the token hash", async () => {
    for (const key of [es, ed, rs, ps]) {
      const result = await verifier().verify(request(await jose(key)));
      expect(result).toMatchObject({ ok: true, txn: "97053963-771d-49cc-a4e3-20aad399c312", sub: "alice@example.com", issuer: TTS, audience: "example.org" });
      if (result.ok) expect(result.tokenSha256).toMatch(/^[A-Za-z0-9_-]{43}$/);
    }
  });

  it("accepts any of the policy's trust domains, a one-element aud array, an array req_wl, and no scope, req_wl, tctx or rctx", async () => {
    expect(await reasonOf(await jose(es, claims({ aud: "partner.example" })))).toBe("ok");
    expect(await reasonOf(await jose(es, claims({ aud: ["example.org"] })))).toBe("ok");
    expect(await reasonOf(await jose(es, claims({ req_wl: ["spiffe://example.org/agent/front", "spiffe://example.org/agent/planner"] })))).toBe("ok");
    expect(await reasonOf(await jose(es, claims({ scope: undefined, req_wl: undefined, tctx: undefined, rctx: undefined })))).toBe("ok");
  });

  it("is still accepted within clockSkew after exp, and with iat within clockSkew ahead", async () => {
    expect(await reasonOf(await jose(es, claims({ exp: NOW_S - 29 })))).toBe("ok");
    expect(await reasonOf(await jose(es, claims({ iat: NOW_S + 29 })))).toBe("ok");
  });
});

describe("token_invalid: not a trustworthy Txn-Token", () => {
  it.each([
    ["a typ of a delegation token", { typ: "agent-delegation+jwt" }],
    ["an access token's typ", { typ: "at+jwt" }],
    ["typ JWT", { typ: "JWT" }],
    ["no typ", { typ: undefined }],
    ["typ in another case", { typ: "TxnToken+JWT" }],
  ])("refuses %s (explicit typing, RFC 8725 3.11)", async (_what, header) => {
    expect(await reasonOf(await jose(es, claims(), header))).toBe("token_invalid");
  });

  it("refuses alg none, HMAC, and an alg the key does not fit", async () => {
    for (const alg of ["none", "HS256", "ES384", "RS512"]) {
      expect(await reasonOf(await signToken(es, claims(), { typ: TXN_TOKEN_TYP, alg }))).toBe("token_invalid");
    }
    expect(await reasonOf(await signToken(es, claims(), { typ: TXN_TOKEN_TYP, alg: "EdDSA", kid: "tts-ed" }))).toBe("token_invalid");
  });

  it("refuses an unknown kid, no kid, and a forgery under a trusted kid", async () => {
    expect(await reasonOf(await jose(es, claims(), { kid: "nobody" }))).toBe("token_invalid");
    expect(await reasonOf(await signToken(es, claims(), { typ: TXN_TOKEN_TYP, kid: undefined }))).toBe("token_invalid");
    expect(await reasonOf(await jose(stranger))).toBe("token_invalid");
  });

  it("refuses every other spelling of a valid token's signature (unused bits of its last character set)", async () => {
    const token = await jose(es);
    expect(await reasonOf(token)).toBe("ok");
    const dot = token.lastIndexOf(".");
    for (const signature of otherSpellings(token.slice(dot + 1))) {
      const result = await verifier().verify(request(token.slice(0, dot + 1) + signature));
      expect(result).toMatchObject({ ok: false, reason: "token_invalid", message: expect.stringContaining("signature that is not canonical base64url") as unknown });
    }
  });

  it("refuses an expired forgery as invalid, not expired: the signature is judged first", async () => {
    expect(await reasonOf(await jose(stranger, claims({ exp: NOW_S - 3600 })))).toBe("token_invalid");
  });

  it("refuses another issuer, iat or nbf beyond clockSkew in the future", async () => {
    expect(await reasonOf(await jose(es, claims({ iss: "https://evil.example" })))).toBe("token_invalid");
    expect(await reasonOf(await jose(es, claims({ iat: NOW_S + 31 })))).toBe("token_invalid");
    expect(await reasonOf(await jose(es, claims({ nbf: NOW_S + 31 })))).toBe("token_invalid");
  });

  it.each([
    ["a trust domain the policy does not list", "other.example"],
    ["the trust domain as a SPIFFE ID (one spelling only)", "spiffe://example.org"],
    ["the trust domain in upper case", "Example.org"],
    ["two trust domains", ["example.org", "partner.example"]],
    ["an empty array", []],
  ])("refuses an aud of %s (section 9.2: not accepted outside its trust domain)", async (_what, aud) => {
    expect(await reasonOf(await jose(es, claims({ aud })))).toBe("token_invalid");
  });

  it.each([
    ["no txn", { txn: undefined }],
    ["an empty txn", { txn: "" }],
    ["a txn with a space", { txn: "a b" }],
    ["an overlong txn", { txn: "t".repeat(257) }],
    ["a numeric txn", { txn: 42 }],
    ["no sub", { sub: undefined }],
    ["no iat", { iat: undefined }],
    ["no exp", { exp: undefined }],
    ["a string exp", { exp: String(NOW_S + 60) }],
    ["no iss (optional in the draft, required by the policy)", { iss: undefined }],
    ["a scope with a double space", { scope: "a  b" }],
    ["a req_wl that is a number", { req_wl: 7 }],
    ["a tctx that is a string", { tctx: "BUY" }],
  ])("refuses claims with %s", async (_what, overrides) => {
    expect(await reasonOf(await jose(es, claims(overrides)))).toBe("token_invalid");
  });

  it("refuses what is not a compact JWS, a payload that is not JSON, a crit header, and an oversized token", async () => {
    expect(await reasonOf("not-a-token")).toBe("token_invalid");
    expect(await reasonOf("a.b.c.d.e")).toBe("token_invalid");
    expect(await reasonOf(await signToken(es, "not json", { typ: TXN_TOKEN_TYP }))).toBe("token_invalid");
    expect(await reasonOf(await signToken(es, claims(), { typ: TXN_TOKEN_TYP, crit: ["exp"] }))).toBe("token_invalid");
    expect(await reasonOf(await jose(es, claims({ pad: "x".repeat(MAX_TOKEN_LENGTH) })))).toBe("token_invalid");
  });

  it("refuses a key set that cannot be read, without throwing", async () => {
    const broken = new JwksTxnTokenVerifier({ keySourceFor: () => ({ lookup: () => Promise.reject(new Error("disk on fire")) }) });
    const result = await broken.verify(request(await jose(es)));
    expect(result).toMatchObject({ ok: false, reason: "token_invalid" });
    if (!result.ok) expect(result.message).toContain("disk on fire");
  });
});

describe("token_expired", () => {
  it("refuses a token on or after exp + clockSkew", async () => {
    expect(await reasonOf(await jose(es, claims({ exp: NOW_S - 30 })))).toBe("token_expired");
    expect(await reasonOf(await jose(es, claims({ exp: NOW_S - 3600 })))).toBe("token_expired");
    expect(await reasonOf(await jose(es), { nowMs: NOW_MS + 91_000 })).toBe("token_expired");
  });
});

describe("the verified-token cache", () => {
  it("verifies a reused token once, yet still judges exp against each request's clock", async () => {
    const lookups = { n: 0 };
    const v = verifier(lookups);
    const token = await jose(es);
    expect(await reasonOf(token, {}, v)).toBe("ok");
    expect(await reasonOf(token, {}, v)).toBe("ok");
    expect(lookups.n).toBe(1);
    expect(await reasonOf(token, { nowMs: NOW_MS + 120_000 }, v)).toBe("token_expired");
  });

  it("re-verifies after the policy's issuer changes, and then refuses", async () => {
    const v = verifier();
    const token = await jose(es);
    expect(await reasonOf(token, {}, v)).toBe("ok");
    expect(await reasonOf(token, { policy: { ...POLICY, issuer: "https://other-tts.example" } }, v)).toBe("token_invalid");
  });

  it("judges aud against each request's trust domains, even for a cached token", async () => {
    const v = verifier();
    const token = await jose(es);
    expect(await reasonOf(token, {}, v)).toBe("ok");
    expect(await reasonOf(token, { trustDomains: new Set(["partner.example"]) }, v)).toBe("token_invalid");
  });
});

describe("one key source per JWKS, shared with delegation tokens", () => {
  it("gives both verifiers the same key source for the same jwks value", async () => {
    let made = 0;
    const registry = new KeySourceRegistry({
      baseDir: "/nonexistent",
      keySourceFor: () => {
        made++;
        return new StaticKeySource(JwksKeySet.fromObject(jwksOf(es)));
      },
    });
    const txn = new JwksTxnTokenVerifier({ keySources: registry });
    const delegation = new JwksDelegationTokenVerifier({ baseDir: "/nonexistent", keySources: registry });
    expect(await reasonOf(await jose(es), {}, txn)).toBe("ok");
    expect(delegation.keySource(POLICY.jwks)).toBe(registry.get(POLICY.jwks));
    expect(made).toBe(1);
  });
});
