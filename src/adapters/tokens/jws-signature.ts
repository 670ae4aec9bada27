// Checks a JWS signature (RFC 7515) with node:crypto. jose imports and vets
// the keys (JWKS, alg allowlist); the per-token signature check itself runs
// here because node:crypto's one-shot verify is synchronous and costs about
// half of WebCrypto's asynchronous one, and a fresh token per call is on
// Check's hot path. The key must fit the algorithm exactly, as jose requires.

import { constants, KeyObject, verify, type webcrypto } from "node:crypto";
import type { DelegationTokenAlg } from "./delegation-token-format.js";

const keyObjects = new WeakMap<object, KeyObject>();

/** The node:crypto view of an imported key, made once per key. */
export function keyObjectOf(key: webcrypto.CryptoKey | KeyObject): KeyObject {
  if (key instanceof KeyObject) return key;
  let object = keyObjects.get(key);
  if (object === undefined) {
    object = KeyObject.from(key);
    keyObjects.set(key, object);
  }
  return object;
}

const MIN_RSA_BITS = 2048;

/** Whether `key` is a public key of the kind `alg` names (P-256 for ES256, Ed25519 for EdDSA, RSA ≥ 2048 bits). */
export function keyFitsAlg(alg: DelegationTokenAlg, key: KeyObject): boolean {
  if (key.type !== "public") return false;
  const details = key.asymmetricKeyDetails;
  switch (alg) {
    case "ES256":
      return key.asymmetricKeyType === "ec" && details?.namedCurve === "prime256v1";
    case "EdDSA":
      return key.asymmetricKeyType === "ed25519";
    case "RS256":
      return key.asymmetricKeyType === "rsa" && (details?.modulusLength ?? 0) >= MIN_RSA_BITS;
    case "PS256":
      return (key.asymmetricKeyType === "rsa" || key.asymmetricKeyType === "rsa-pss") && (details?.modulusLength ?? 0) >= MIN_RSA_BITS;
  }
}

/** Verifies `signature` over `signingInput` (the ASCII of "header.payload") with `alg`. Never throws. */
export function jwsSignatureValid(alg: DelegationTokenAlg, signingInput: Buffer, signature: Buffer, key: KeyObject): boolean {
  if (!keyFitsAlg(alg, key)) return false;
  try {
    switch (alg) {
      case "ES256":
        // JWS carries R || S (64 bytes), not DER.
        return signature.length === 64 && verify("sha256", signingInput, { key, dsaEncoding: "ieee-p1363" }, signature);
      case "EdDSA":
        return verify(null, signingInput, key, signature);
      case "RS256":
        return verify("sha256", signingInput, { key, padding: constants.RSA_PKCS1_PADDING }, signature);
      case "PS256":
        return verify("sha256", signingInput, { key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 32 }, signature);
    }
  } catch {
    return false;
  }
}
