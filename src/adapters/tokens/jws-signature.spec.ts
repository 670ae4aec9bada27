import { constants, generateKeyPairSync, sign, type KeyObject } from "node:crypto";
import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { jwsSignatureValid, keyFitsAlg } from "./jws-signature.js";
import type { DelegationTokenAlg } from "./delegation-token-format.js";

const input = Buffer.from("eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9", "ascii");

const ec = generateKeyPairSync("ec", { namedCurve: "P-256" });
const ec384 = generateKeyPairSync("ec", { namedCurve: "P-384" });
const ed = generateKeyPairSync("ed25519");
const rsa = generateKeyPairSync("rsa", { modulusLength: 2048 });
const rsaSmall = generateKeyPairSync("rsa", { modulusLength: 1024 });

function signWith(alg: DelegationTokenAlg, privateKey: KeyObject): Buffer {
  switch (alg) {
    case "ES256":
      return sign("sha256", input, { key: privateKey, dsaEncoding: "ieee-p1363" });
    case "EdDSA":
      return sign(null, input, privateKey);
    case "RS256":
      return sign("sha256", input, { key: privateKey, padding: constants.RSA_PKCS1_PADDING });
    case "PS256":
      return sign("sha256", input, { key: privateKey, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 32 });
  }
}

const pairs: [DelegationTokenAlg, { publicKey: KeyObject; privateKey: KeyObject }][] = [
  ["ES256", ec],
  ["EdDSA", ed],
  ["RS256", rsa],
  ["PS256", rsa],
];

describe("JWS signature check (RFC 7515, SPEC 5 alg allowlist)", () => {
  for (const [alg, pair] of pairs) {
    it(`accepts a valid ${alg} signature and refuses it over other bytes`, () => {
      const signature = signWith(alg, pair.privateKey);
      expect(jwsSignatureValid(alg, input, signature, pair.publicKey)).toBe(true);
      expect(jwsSignatureValid(alg, Buffer.concat([input, Buffer.from("x")]), signature, pair.publicKey)).toBe(false);
    });
  }

  it("refuses a key of the wrong kind for the alg", () => {
    expect(keyFitsAlg("ES256", ec384.publicKey)).toBe(false);
    expect(keyFitsAlg("ES256", ed.publicKey)).toBe(false);
    expect(keyFitsAlg("EdDSA", ec.publicKey)).toBe(false);
    expect(keyFitsAlg("RS256", rsaSmall.publicKey)).toBe(false);
    expect(keyFitsAlg("RS256", ec.publicKey)).toBe(false);
    expect(keyFitsAlg("ES256", ec.privateKey)).toBe(false);
    // An RS256 signature made with a 1024-bit key never verifies.
    expect(jwsSignatureValid("RS256", input, signWith("RS256", rsaSmall.privateKey), rsaSmall.publicKey)).toBe(false);
  });

  it("refuses an ES256 signature in DER form (JWS carries R || S)", () => {
    const der = sign("sha256", input, ec.privateKey);
    expect(jwsSignatureValid("ES256", input, der, ec.publicKey)).toBe(false);
  });

  it("refuses a PS256 signature checked as RS256 and the reverse", () => {
    expect(jwsSignatureValid("RS256", input, signWith("PS256", rsa.privateKey), rsa.publicKey)).toBe(false);
    expect(jwsSignatureValid("PS256", input, signWith("RS256", rsa.privateKey), rsa.publicKey)).toBe(false);
  });

  it("never accepts random bytes as a signature, and never throws", () => {
    fc.assert(
      fc.property(fc.constantFrom(...pairs), fc.uint8Array({ maxLength: 300 }), ([alg, pair], bytes) => {
        expect(jwsSignatureValid(alg, input, Buffer.from(bytes), pair.publicKey)).toBe(false);
      }),
      { numRuns: 300 },
    );
  });
});
