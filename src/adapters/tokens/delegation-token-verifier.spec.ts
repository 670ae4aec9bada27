import { createHash } from "node:crypto";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  checkRequest,
  createSigningKey,
  DB,
  FRONT,
  jwksOf,
  NOW_MS,
  NOW_S,
  otherSpellings,
  PEER_X5T,
  PLANNER,
  signParts,
  signToken,
  tokenPolicy,
  validClaims,
  WORKER,
  type TestSigningKey,
} from "../../../test/support/delegation-tokens.js";
import { DELEGATION_TOKEN_TYP, nestActors } from "./delegation-token-format.js";
import { JwksDelegationTokenVerifier } from "./delegation-token-verifier.js";
import { JwksKeySet } from "./jwks-key-set.js";
import { StaticKeySource, type VerificationKeySource } from "./jwks-key-source.js";
import { emptyFailures, ReplayStoreUnavailable, type ReplayStore } from "./replay-store.js";

let es: TestSigningKey;
let ed: TestSigningKey;
let rs: TestSigningKey;
let ps: TestSigningKey;
let stranger: TestSigningKey;

beforeAll(async () => {
  [es, ed, rs, ps, stranger] = await Promise.all([
    createSigningKey("ES256", "es"),
    createSigningKey("EdDSA", "ed"),
    createSigningKey("RS256", "rs"),
    createSigningKey("PS256", "ps"),
    createSigningKey("ES256", "es"),
  ]);
});

/** `value` as a JSON part whose base64url ends in a character with unused bits (a `pad` member sets the length). */
function withUnusedBits(value: Record<string, unknown>): string {
  for (let pad = ""; ; pad += "x") {
    const part = Buffer.from(JSON.stringify({ ...value, pad })).toString("base64url");
    if (part.length % 4 !== 0) return part;
  }
}

/** A verifier whose `jwks.json` is the four trusted keys; counts key lookups. */
function verifier(options: { lookups?: { n: number }; replayCapacity?: number; replay?: ReplayStore } = {}): JwksDelegationTokenVerifier {
  const source = new StaticKeySource(JwksKeySet.fromObject(jwksOf(es, ed, rs, ps)));
  const counting: VerificationKeySource = {
    lookup: (kid, alg, nowMs) => {
      if (options.lookups) options.lookups.n++;
      return source.lookup(kid, alg, nowMs);
    },
  };
  return new JwksDelegationTokenVerifier({
    baseDir: "/nonexistent",
    keySourceFor: () => counting,
    ...(options.replayCapacity !== undefined && { replayCapacity: options.replayCapacity }),
    ...(options.replay !== undefined && { replay: options.replay }),
  });
}

async function reasonOf(token: string, overrides: Parameters<typeof checkRequest>[1] = {}, v = verifier()): Promise<string> {
  const result = await v.verify(checkRequest(token, overrides));
  return result.ok ? "ok" : result.reason;
}

describe("a valid delegation token (SPEC 5)", () => {
  it("verifies with each allowed alg and reports jti, scope, issuer and the token hash", async () => {
    for (const key of [es, ed, rs, ps]) {
      const token = await signToken(key, validClaims({ scope: "db:read db:schema" }));
      const result = await verifier().verify(checkRequest(token));
      expect(result).toMatchObject({ ok: true, jti: "jti-1", scope: ["db:read", "db:schema"], issuer: "https://sts.example.org" });
      if (result.ok) expect(result.tokenSha256).toMatch(/^[A-Za-z0-9_-]{43}$/);
    }
  });

  it("reports the token's hash as SPEC 5's prev encodes it (base64url SHA-256 of the JWS as sent) and its prev claim, from a cached verification too", async () => {
    const prev = Buffer.alloc(32, 7).toString("base64url");
    const token = await signToken(es, validClaims({ prev }));
    const v = verifier();
    for (let i = 0; i < 2; i++) {
      expect(await v.verify(checkRequest(token))).toMatchObject({ ok: true, tokenSha256: createHash("sha256").update(token).digest("base64url"), prev });
    }
    expect(await v.verify(checkRequest(await signToken(es, validClaims({ prev: undefined }))))).toMatchObject({ ok: true, prev: undefined });
  });

  it("names a refused token by its hash too, and gives no prev (the claims of a refused token vouch for nothing)", async () => {
    const forged = await signToken(stranger, validClaims());
    expect(await verifier().verify(checkRequest(forged))).toEqual({ ok: false, reason: "token_invalid", message: expect.any(String) as unknown, tokenSha256: createHash("sha256").update(forged).digest("base64url") });
    expect(await verifier().verify(checkRequest("not a token"))).toMatchObject({ ok: false, tokenSha256: createHash("sha256").update("not a token").digest("base64url") });
  });

  it("accepts a one-element aud array, a first-hop token without prev, and an empty scope", async () => {
    expect(await reasonOf(await signToken(es, validClaims({ aud: [DB] })))).toBe("ok");
    expect(await reasonOf(await signToken(es, validClaims({ prev: undefined })))).toBe("ok");
    expect(await reasonOf(await signToken(es, validClaims({ scope: "" })))).toBe("ok");
  });

  it("accepts any scope when the hop rule names none", async () => {
    expect(await reasonOf(await signToken(es, validClaims({ scope: "anything:at-all" })), { allowedScopes: undefined })).toBe("ok");
  });
});

describe("token_invalid: the token is not a trustworthy delegation token", () => {
  it("refuses what is not a compact JWS", async () => {
    for (const bad of ["", "abc", "a.b", "a.b.c.d", "a..c!", "Bearer x.y.z", "😀.😀.😀", `${"a".repeat(20_000)}.b.c`]) {
      expect(await reasonOf(bad)).toBe("token_invalid");
    }
  });

  it("refuses any typ other than agent-delegation+jwt (explicit typing, RFC 8725 3.11)", async () => {
    for (const typ of [undefined, "JWT", "at+jwt", "AGENT-DELEGATION+JWT", "application/agent-delegation+jwt", "agent-delegation+jwt "]) {
      expect(await reasonOf(await signToken(es, validClaims(), { typ }))).toBe("token_invalid");
    }
  });

  it("refuses an alg outside the allowlist, even none and HMAC", async () => {
    for (const alg of ["none", "HS256", "ES384", "RS512", "ES256K", "", undefined]) {
      expect(await reasonOf(await signToken(es, validClaims(), { alg }))).toBe("token_invalid");
    }
  });

  it("refuses a header alg that differs from the key's type (no alg confusion)", async () => {
    expect(await reasonOf(await signToken(es, validClaims(), { alg: "RS256" }))).toBe("token_invalid");
    expect(await reasonOf(await signToken(rs, validClaims(), { alg: "PS256" }))).toBe("token_invalid");
  });

  it("refuses a missing or unknown kid", async () => {
    expect(await reasonOf(await signToken(es, validClaims(), { kid: undefined }))).toBe("token_invalid");
    expect(await reasonOf(await signToken(es, validClaims(), { kid: "nobody" }))).toBe("token_invalid");
  });

  // The token's fields reach the deny body through the message: quoted whole, a 16 KiB token's kid or iss
  // made a message as large (review of this session's diff).
  it("quotes at most 128 characters of an unknown kid, or of a wrong iss, in its message", async () => {
    const byKid = await verifier().verify(checkRequest(await signToken(es, validClaims(), { kid: "k".repeat(6000) })));
    expect(byKid).toMatchObject({ ok: false, reason: "token_invalid" });
    expect(!byKid.ok && byKid.message).toContain("(6000 characters)");
    expect(!byKid.ok && byKid.message.length).toBeLessThan(600);
    const byIss = await verifier().verify(checkRequest(await signToken(es, { ...validClaims(), iss: `https://${"i".repeat(6000)}` })));
    expect(byIss).toMatchObject({ ok: false, reason: "token_invalid" });
    expect(!byIss.ok && byIss.message).toContain("(6008 characters)");
  });

  it("refuses a bad signature: another key under a trusted kid, or a flipped bit", async () => {
    expect(await reasonOf(await signToken(stranger, validClaims()))).toBe("token_invalid");
    const token = await signToken(es, validClaims());
    const [h, p, s] = token.split(".");
    const sig = Buffer.from(s!, "base64url");
    sig[5]! ^= 1;
    expect(await reasonOf(`${h}.${p}.${sig.toString("base64url")}`)).toBe("token_invalid");
  });

  it("refuses a crit header it does not understand", async () => {
    expect(await reasonOf(await signToken(es, validClaims(), { crit: ["x-unknown"], "x-unknown": 1 }))).toBe("token_invalid");
  });

  it("refuses every other spelling of a valid token's signature: its last character with unused bits set (one token, one text to hash)", async () => {
    for (const key of [es, ed, rs, ps]) {
      const token = await signToken(key, validClaims());
      expect(await reasonOf(token)).toBe("ok");
      const dot = token.lastIndexOf(".");
      const spellings = otherSpellings(token.slice(dot + 1));
      expect(spellings).toHaveLength(15);
      for (const signature of spellings) {
        const respelled = token.slice(0, dot + 1) + signature;
        expect(await verifier().verify(checkRequest(respelled))).toEqual({
          ok: false,
          reason: "token_invalid",
          message: expect.stringMatching(/^the delegation token has a signature that is not canonical base64url/) as unknown,
          // The refused text's own hash, so the audit trail tells it from the token the service issued.
          tokenSha256: createHash("sha256").update(respelled).digest("base64url"),
        });
      }
    }
  });

  it("refuses a header or payload spelled with unused bits set, even under a signature made over that spelling", async () => {
    const header = withUnusedBits({ alg: "ES256", kid: es.kid, typ: DELEGATION_TOKEN_TYP });
    const payload = withUnusedBits(validClaims());
    expect(await reasonOf(await signParts(es, header, payload))).toBe("ok");
    const [h, p] = [otherSpellings(header)[0]!, otherSpellings(payload)[0]!];
    expect(await verifier().verify(checkRequest(await signParts(es, h, payload)))).toMatchObject({ reason: "token_invalid", message: expect.stringContaining("protected header that is not canonical base64url") as unknown });
    expect(await verifier().verify(checkRequest(await signParts(es, header, p)))).toMatchObject({ reason: "token_invalid", message: expect.stringContaining("payload that is not canonical base64url") as unknown });
  });

  it("refuses a token from another issuer", async () => {
    expect(await reasonOf(await signToken(es, validClaims({ iss: "https://evil.example.org" })))).toBe("token_invalid");
  });

  it("refuses iat or nbf in the future beyond clockSkew, and tolerates them within it", async () => {
    expect(await reasonOf(await signToken(es, validClaims({ iat: NOW_S + 31 })))).toBe("token_invalid");
    expect(await reasonOf(await signToken(es, validClaims({ nbf: NOW_S + 31 })))).toBe("token_invalid");
    expect(await reasonOf(await signToken(es, validClaims({ iat: NOW_S + 29, nbf: NOW_S + 29 })))).toBe("ok");
  });

  it("refuses a token bound (cnf) to another certificate, or presented without one", async () => {
    const token = await signToken(es, validClaims());
    expect(await reasonOf(token, { peerX5tS256: Buffer.alloc(32, 8).toString("base64url") })).toBe("token_invalid");
    expect(await reasonOf(token, { peerX5tS256: undefined })).toBe("token_invalid");
  });

  it("refuses malformed claims", async () => {
    const cases: Record<string, unknown>[] = [
      { iss: 5 },
      { sub: "" },
      { aud: [DB, WORKER] },
      { aud: [] },
      { iat: "now" },
      { exp: undefined },
      { nbf: "soon" },
      { jti: undefined },
      { scope: ["db:read"] },
      { scope: "db:read  db:schema" },
      { scope: " db:read" },
      { cnf: undefined },
      { cnf: { "x5t#S256": "short" } },
      { act: undefined },
      { act: { sub: WORKER, act: "planner" } },
      { act: { act: { sub: FRONT } } },
      { prev: "not-a-hash" },
    ];
    for (const override of cases) {
      expect(await reasonOf(await signToken(es, validClaims(override))), JSON.stringify(override)).toBe("token_invalid");
    }
    expect(await reasonOf(await signToken(es, "not json"))).toBe("token_invalid");
    expect(await reasonOf(await signToken(es, [1, 2]))).toBe("token_invalid");
  });
});

describe("token_expired: past exp plus clockSkew", () => {
  it("refuses a token at exp + clockSkew and accepts it just before", async () => {
    const token = await signToken(es, validClaims({ exp: NOW_S - 30 }));
    expect(await reasonOf(token)).toBe("token_expired");
    expect(await reasonOf(token, { nowMs: NOW_MS - 1 })).toBe("ok");
  });

  it("decides expiry only after the signature: an expired forgery is token_invalid", async () => {
    expect(await reasonOf(await signToken(stranger, validClaims({ exp: NOW_S - 3600 })))).toBe("token_invalid");
  });

  it("decides expiry after cnf: an expired token of another agent is token_invalid", async () => {
    const token = await signToken(es, validClaims({ exp: NOW_S - 3600 }));
    expect(await reasonOf(token, { peerX5tS256: Buffer.alloc(32, 9).toString("base64url") })).toBe("token_invalid");
  });

  it("decides expiry before the chain: an expired token for another chain is token_expired", async () => {
    const token = await signToken(es, validClaims({ exp: NOW_S - 3600, aud: FRONT }));
    expect(await reasonOf(token)).toBe("token_expired");
  });
});

describe("token_chain_mismatch: act, aud and sub must be this request's", () => {
  it("refuses an act chain that differs from the header chain", async () => {
    const chains = [[PLANNER, WORKER], [FRONT, WORKER], [PLANNER, FRONT, WORKER], [FRONT, PLANNER, WORKER, WORKER], [WORKER]];
    for (const chain of chains) {
      expect(await reasonOf(await signToken(es, validClaims({ act: nestActors(chain) })))).toBe("token_chain_mismatch");
    }
  });

  it("refuses a chain listed outermost first (act nesting is innermost first)", async () => {
    expect(await reasonOf(await signToken(es, validClaims({ act: nestActors([WORKER, PLANNER, FRONT]) })))).toBe("token_chain_mismatch");
  });

  it("refuses a token for another callee", async () => {
    expect(await reasonOf(await signToken(es, validClaims({ aud: PLANNER })))).toBe("token_chain_mismatch");
  });

  it("refuses a token for another person, or a request without on-behalf-of", async () => {
    const token = await signToken(es, validClaims());
    expect(await reasonOf(token, { onBehalfOf: "mallory@example.com" })).toBe("token_chain_mismatch");
    expect(await reasonOf(token, { onBehalfOf: undefined })).toBe("token_chain_mismatch");
  });
});

describe("token_scope_exceeded: scope within the last hop rule's scopes", () => {
  it("refuses a scope the rule does not name", async () => {
    expect(await reasonOf(await signToken(es, validClaims({ scope: "db:read db:write" })))).toBe("token_scope_exceeded");
    expect(await reasonOf(await signToken(es, validClaims({ scope: "db:read" })), { allowedScopes: [] })).toBe("token_scope_exceeded");
  });

  it("comes after the chain check", async () => {
    expect(await reasonOf(await signToken(es, validClaims({ scope: "db:write", aud: PLANNER })))).toBe("token_chain_mismatch");
  });
});

describe("token_replayed: a jti accepted once under tokens.singleUse", () => {
  it("accepts the first use and refuses the second", async () => {
    const v = verifier();
    const token = await signToken(es, validClaims());
    const policy = tokenPolicy({ singleUse: true });
    expect(await reasonOf(token, { policy }, v)).toBe("ok");
    expect(await reasonOf(token, { policy }, v)).toBe("token_replayed");
  });

  it("does not burn the jti on a request that was refused for another reason", async () => {
    const v = verifier();
    const token = await signToken(es, validClaims());
    const policy = tokenPolicy({ singleUse: true });
    expect(await reasonOf(token, { policy, allowedScopes: [] }, v)).toBe("token_scope_exceeded");
    expect(await reasonOf(token, { policy }, v)).toBe("ok");
  });

  it("lets a token be reused when singleUse is off", async () => {
    const v = verifier();
    const token = await signToken(es, validClaims());
    expect(await reasonOf(token, {}, v)).toBe("ok");
    expect(await reasonOf(token, {}, v)).toBe("ok");
  });

  it("finding 3: never forgets an unexpired jti, however many other tokens come after it; a full memory refuses", async () => {
    const v = verifier({ replayCapacity: 3 });
    const policy = tokenPolicy({ singleUse: true });
    const a = await signToken(es, validClaims({ jti: "a" }));
    expect(await reasonOf(a, { policy }, v)).toBe("ok");
    const others = await Promise.all(Array.from({ length: 6 }, (_, i) => signToken(es, validClaims({ jti: `other-${i}` }))));
    const outcomes = [];
    for (const token of others) outcomes.push(await reasonOf(token, { policy }, v));
    // Two more fit beside a; the rest are refused, not accepted at the price of forgetting a.
    expect(outcomes).toEqual(["ok", "ok", "token_replayed", "token_replayed", "token_replayed", "token_replayed"]);
    expect(await reasonOf(a, { policy }, v)).toBe("token_replayed");
    // Once a's exp plus skew has passed its slot is free again (a itself is now expired).
    const later = NOW_MS + (50 + 30) * 1000;
    const fresh = await signToken(es, validClaims({ jti: "fresh", iat: later / 1000 - 5, exp: later / 1000 + 60 }));
    expect(await reasonOf(a, { policy, nowMs: later }, v)).toBe("token_expired");
    expect(await reasonOf(fresh, { policy, nowMs: later }, v)).toBe("ok");
  });

  it("denies with internal_error, not an accept, when the single-use store cannot answer", async () => {
    const down: ReplayStore = {
      firstUse: () => Promise.reject(new ReplayStoreUnavailable("timeout", "the replay store did not answer within 50 ms")),
      close: () => Promise.resolve(),
      stats: () => ({ kind: "test", fullRefusals: 0, failures: emptyFailures() }),
    };
    const v = verifier({ replay: down });
    const result = await v.verify(checkRequest(await signToken(es, validClaims()), { policy: tokenPolicy({ singleUse: true }) }));
    expect(result).toMatchObject({ ok: false, reason: "internal_error", tokenSha256: expect.stringMatching(/^[A-Za-z0-9_-]{43}$/) as unknown });
    expect(!result.ok && result.message).toMatch(/within 50 ms/);
    // Without singleUse the store is never asked.
    expect(await reasonOf(await signToken(es, validClaims()), {}, v)).toBe("ok");
  });

  it("asks the store last: a token refused for another reason never reaches it", async () => {
    const asked: string[] = [];
    const recording: ReplayStore = {
      firstUse: (key) => {
        asked.push(key);
        return "first";
      },
      close: () => Promise.resolve(),
      stats: () => ({ kind: "test", fullRefusals: 0, failures: emptyFailures() }),
    };
    const v = verifier({ replay: recording });
    const policy = tokenPolicy({ singleUse: true });
    expect(await reasonOf(await signToken(es, validClaims({ scope: "db:write" })), { policy }, v)).toBe("token_scope_exceeded");
    expect(asked).toEqual([]);
    expect(await reasonOf(await signToken(es, validClaims({ jti: "x".repeat(10_000) })), { policy }, v)).toBe("ok");
    // Keys are a fixed-size digest, however long the jti.
    expect(asked).toHaveLength(1);
    expect(asked[0]).toMatch(/^[A-Za-z0-9_-]{43}$/);
  });
});

describe("the verified-token cache", () => {
  it("verifies a reused token's signature once and still checks each request", async () => {
    const lookups = { n: 0 };
    const v = verifier({ lookups });
    const token = await signToken(es, validClaims());
    expect(await reasonOf(token, {}, v)).toBe("ok");
    expect(await reasonOf(token, {}, v)).toBe("ok");
    expect(lookups.n).toBe(1);
    expect(await reasonOf(token, { peerX5tS256: Buffer.alloc(32, 3).toString("base64url") }, v)).toBe("token_invalid");
    expect(await reasonOf(token, { callee: PLANNER }, v)).toBe("token_chain_mismatch");
    expect(lookups.n).toBe(1);
    // Past exp the entry is gone; the token is verified afresh and found expired.
    expect(await reasonOf(token, { nowMs: NOW_MS + 200_000 }, v)).toBe("token_expired");
  });

  it("does not reuse a verification after the policy names another jwks or issuer", async () => {
    const lookups = { n: 0 };
    const v = verifier({ lookups });
    const token = await signToken(es, validClaims());
    expect(await reasonOf(token, {}, v)).toBe("ok");
    expect(await reasonOf(token, { policy: tokenPolicy({ jwks: "other.json" }) }, v)).toBe("ok");
    expect(lookups.n).toBe(2);
    expect(await reasonOf(token, { policy: tokenPolicy({ issuer: "https://other.example.org" }) }, v)).toBe("token_invalid");
  });
});

describe("a local JWKS file beside the policy file", () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "hopwarden-jwks-"));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("resolves tokens.jwks against baseDir and verifies with it", async () => {
    await writeFile(join(dir, "jwks.json"), JSON.stringify(jwksOf(es)));
    const v = new JwksDelegationTokenVerifier({ baseDir: dir });
    expect(await reasonOf(await signToken(es, validClaims()), {}, v)).toBe("ok");
    expect(await reasonOf(await signToken(ed, validClaims()), {}, v)).toBe("token_invalid");
  });

  it("refuses every token when the file is missing, without throwing", async () => {
    const v = new JwksDelegationTokenVerifier({ baseDir: join(dir, "nowhere") });
    const result = await v.verify(checkRequest(await signToken(es, validClaims())));
    expect(result).toMatchObject({ ok: false, reason: "token_invalid" });
  });

  it("refuses a JWKS URL that is plain http off loopback", async () => {
    const v = new JwksDelegationTokenVerifier({ baseDir: dir });
    const token = await signToken(es, validClaims());
    expect(await reasonOf(token, { policy: tokenPolicy({ jwks: "http://keys.example.org/jwks.json" }) }, v)).toBe("token_invalid");
  });

  it("never trusts a key set entry that carries a private key, is for encryption, or names another alg", async () => {
    const leaky = { ...es.publicJwk, d: "AAAA" };
    for (const jwk of [leaky, { ...es.publicJwk, use: "enc" }, { ...es.publicJwk, alg: "ES384" }, { ...es.publicJwk, key_ops: ["encrypt"] }]) {
      await writeFile(join(dir, "odd.json"), JSON.stringify({ keys: [jwk] }));
      const v = new JwksDelegationTokenVerifier({ baseDir: dir });
      expect(await reasonOf(await signToken(es, validClaims()), { policy: tokenPolicy({ jwks: "odd.json" }) }, v), JSON.stringify(jwk)).toBe("token_invalid");
    }
  });
});

describe("the same kid on two keys", () => {
  it("verifies with whichever key fits", async () => {
    const v = new JwksDelegationTokenVerifier({
      baseDir: "/",
      keySourceFor: () => new StaticKeySource(JwksKeySet.fromObject({ keys: [stranger.publicJwk, es.publicJwk] })),
    });
    expect(await reasonOf(await signToken(es, validClaims()), {}, v)).toBe("ok");
    expect(await reasonOf(await signToken(stranger, validClaims({ jti: "2" })), {}, v)).toBe("ok");
  });
});

it("the peer thumbprint fixture is a real base64url SHA-256 length", () => {
  expect(PEER_X5T).toHaveLength(43);
});

describe("JWS extensions (RFC 7515 crit, RFC 7797 b64)", () => {
  it("refuses a token with a crit or b64 header as token_invalid, even when its signature is good", async () => {
    for (const header of [{ crit: ["exp"] }, { b64: false, crit: ["b64"] }, { b64: true }]) {
      const token = await signToken(es, validClaims(), header);
      const result = await verifier().verify(checkRequest(token));
      expect(result).toMatchObject({ ok: false, reason: "token_invalid" });
    }
  });
});
