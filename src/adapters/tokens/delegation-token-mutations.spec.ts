// Property tests: no mutation of a valid token verifies. Tampering with its
// bytes breaks the signature; re-signing it with the trusted key after
// changing a header member, a claim or the act nesting breaks a claim rule.

import fc from "fast-check";
import { beforeAll, describe, expect, it } from "vitest";
import {
  checkRequest,
  createSigningKey,
  DB,
  FRONT,
  jwksOf,
  PERSON,
  PLANNER,
  signToken,
  validClaims,
  WORKER,
  type TestSigningKey,
} from "../../../test/support/delegation-tokens.js";
import { nestActors } from "./delegation-token-format.js";
import { JwksDelegationTokenVerifier } from "./delegation-token-verifier.js";
import { JwksKeySet } from "./jwks-key-set.js";
import { StaticKeySource } from "./jwks-key-source.js";

let key: TestSigningKey;
let valid: string;
let verifier: JwksDelegationTokenVerifier;
const RUNS = 150;
const B64URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

beforeAll(async () => {
  key = await createSigningKey("ES256", "k1");
  verifier = new JwksDelegationTokenVerifier({ baseDir: "/", keySourceFor: () => new StaticKeySource(JwksKeySet.fromObject(jwksOf(key))) });
  valid = await signToken(key, validClaims());
  expect(await verifier.verify(checkRequest(valid))).toMatchObject({ ok: true });
});

const verifies = async (token: string): Promise<boolean> => (await verifier.verify(checkRequest(token))).ok;

describe("tampering with a signed token's bytes", () => {
  it("never verifies after a character of the header, payload or signature changes", async () => {
    await fc.assert(
      fc.asyncProperty(fc.nat(2), fc.nat(), fc.constantFrom(...B64URL), async (segment, at, char) => {
        const parts = valid.split(".");
        const text = parts[segment]!;
        const i = at % text.length;
        fc.pre(text[i] !== char);
        // Even an edit of a last character's unused bits, which decodes to the same bytes: a token has one spelling.
        parts[segment] = text.slice(0, i) + char + text.slice(i + 1);
        expect(await verifies(parts.join("."))).toBe(false);
      }),
      { numRuns: RUNS },
    );
  });

  it("never verifies with characters inserted, removed or segments swapped", async () => {
    await fc.assert(
      fc.asyncProperty(fc.nat(), fc.string({ minLength: 1, maxLength: 3 }), fc.boolean(), async (at, insert, remove) => {
        const i = at % valid.length;
        const mutated = remove ? valid.slice(0, i) + valid.slice(i + insert.length) : valid.slice(0, i) + insert + valid.slice(i);
        fc.pre(mutated !== valid);
        expect(await verifies(mutated)).toBe(false);
      }),
      { numRuns: RUNS },
    );
    const [h, p, s] = valid.split(".");
    expect(await verifies(`${p}.${h}.${s}`)).toBe(false);
    expect(await verifies(`${h}.${p}.`)).toBe(false);
  });
});

describe("re-signed tokens with a changed header", () => {
  it("never verifies with any typ other than agent-delegation+jwt", async () => {
    await fc.assert(
      fc.asyncProperty(fc.oneof(fc.string(), fc.constantFrom("JWT", "at+jwt", "Agent-Delegation+JWT", "agent-delegation+jwt\u0000")), async (typ) => {
        fc.pre(typ !== "agent-delegation+jwt");
        expect(await verifies(await signToken(key, validClaims(), { typ }))).toBe(false);
      }),
      { numRuns: 60 },
    );
  });

  it("never verifies with any alg other than the key's", async () => {
    await fc.assert(
      fc.asyncProperty(fc.oneof(fc.string(), fc.constantFrom("none", "HS256", "RS256", "PS256", "EdDSA", "es256")), async (alg) => {
        fc.pre(alg !== "ES256");
        expect(await verifies(await signToken(key, validClaims(), { alg }))).toBe(false);
      }),
      { numRuns: 60 },
    );
  });
});

const agents = [FRONT, PLANNER, WORKER, DB, "spiffe://example.org/agent/other"];

describe("re-signed tokens with a changed act nesting", () => {
  it("never verifies when the act chain is not exactly the header chain", async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(fc.constantFrom(...agents), { minLength: 1, maxLength: 5 }), async (chain) => {
        fc.pre(chain.join() !== [FRONT, PLANNER, WORKER].join());
        expect(await verifies(await signToken(key, validClaims({ act: nestActors(chain) })))).toBe(false);
      }),
      { numRuns: 60 },
    );
  });

  it("never verifies when act holds a foreign shape at some depth", async () => {
    await fc.assert(
      fc.asyncProperty(fc.nat(2), fc.jsonValue(), async (depth, junk) => {
        const act = nestActors([FRONT, PLANNER, WORKER]) as unknown as Record<string, unknown>;
        let node = act;
        for (let d = 0; d < depth; d++) node = node["act"] as Record<string, unknown>;
        node["act"] = junk;
        expect(await verifies(await signToken(key, validClaims({ act })))).toBe(false);
      }),
      { numRuns: 60 },
    );
  });
});

describe("re-signed tokens with a changed claim", () => {
  const claimMutation = fc.oneof(
    fc.record({ iss: fc.string() }),
    fc.record({ sub: fc.string().filter((s) => s !== PERSON) }),
    fc.record({ aud: fc.constantFrom(FRONT, PLANNER, WORKER, `${DB}/x`, "") }),
    fc.record({ scope: fc.constantFrom("db:write", "db:read db:write", "admin", "db:read ") }),
    fc.record({ exp: fc.integer({ min: 0, max: 1_799_999_970 }) }),
    fc.record({ iat: fc.integer({ min: 1_800_000_031, max: 2_000_000_000 }) }),
    fc.record({ cnf: fc.jsonValue() }),
    fc.record({ jti: fc.constantFrom("", 5, null) }),
  );

  it("never verifies when iss, sub, aud, scope, exp, iat, cnf or jti is off", async () => {
    await fc.assert(
      fc.asyncProperty(claimMutation, async (mutation) => {
        fc.pre(!("iss" in mutation && mutation.iss === "https://sts.example.org"));
        expect(await verifies(await signToken(key, validClaims(mutation)))).toBe(false);
      }),
      { numRuns: RUNS },
    );
  });
});
