// The token service reads subject tokens with the same reader as Check: a
// person token or a delegation token has one spelling, so the `prev` the
// next token carries (the subject token's hash) names exactly one token.

import { beforeAll, describe, expect, it } from "vitest";
import { createSigningKey, DB, ISSUER, jwksOf, NOW_MS, NOW_S, PERSON, respelledSignature, signToken, validClaims, type TestSigningKey } from "../../../test/support/delegation-tokens.js";
import { JwksKeySet } from "../tokens/jwks-key-set.js";
import { StaticKeySource } from "../tokens/jwks-key-source.js";
import { verifySubjectToken, type SubjectVerification } from "./subject-token.js";

const IDP = "https://idp.example.com";

let own: TestSigningKey;
let idp: TestSigningKey;
let verification: SubjectVerification;

beforeAll(async () => {
  [own, idp] = await Promise.all([createSigningKey("ES256", "sts-1"), createSigningKey("ES256", "idp-1")]);
  verification = {
    issuer: ISSUER,
    ownKeys: new StaticKeySource(JwksKeySet.fromObject(jwksOf(own))),
    person: { issuer: IDP, audience: "hopwarden-sts", keys: new StaticKeySource(JwksKeySet.fromObject(jwksOf(idp))) },
    clockSkewSeconds: 30,
  };
});

const personToken = () => signToken(idp, { iss: IDP, sub: PERSON, aud: "hopwarden-sts", iat: NOW_S - 5, exp: NOW_S + 300, scope: "db:read" }, { typ: "at+jwt" });

describe("subject tokens have one spelling", () => {
  it("accepts a person token, and refuses it with its signature spelled another way", async () => {
    const token = await personToken();
    expect(await verifySubjectToken(token, DB, verification, NOW_MS)).toMatchObject({ ok: true, grant: { kind: "person", person: PERSON } });
    expect(await verifySubjectToken(respelledSignature(token), DB, verification, NOW_MS)).toEqual({
      ok: false,
      problem: expect.stringMatching(/^the person token has a signature that is not canonical base64url/) as unknown,
    });
  });

  it("accepts a delegation token for the presenting agent, and refuses it with its signature spelled another way", async () => {
    const token = await signToken(own, validClaims());
    expect(await verifySubjectToken(token, DB, verification, NOW_MS)).toMatchObject({ ok: true, grant: { kind: "delegation", person: PERSON } });
    expect(await verifySubjectToken(respelledSignature(token), DB, verification, NOW_MS)).toEqual({
      ok: false,
      problem: expect.stringMatching(/^the subject token has a signature that is not canonical base64url/) as unknown,
    });
  });
});
