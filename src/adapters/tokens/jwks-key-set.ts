// One snapshot of a JSON Web Key Set (RFC 7517): the public keys by `kid`,
// imported lazily and once. A key is offered for an `alg` only when its type
// fits that alg and its own `alg`/`use`/`key_ops`, if present, allow it, so a
// key published for one purpose can never verify a token of another.

import { importJWK, type CryptoKey, type JWK } from "jose";
import { isAllowedAlg, type DelegationTokenAlg } from "./delegation-token-format.js";
import { quotedValue } from "../../core/input/untrusted-bounds.js";

export type KeyLookup = { readonly ok: true; readonly keys: readonly CryptoKey[] } | { readonly ok: false; readonly problem: string };

/** Bigger than any honest JWKS; a hostile or broken endpoint cannot make us parse megabytes. */
export const MAX_JWKS_BYTES = 256 * 1024;

function fitsAlg(jwk: JWK, alg: DelegationTokenAlg): boolean {
  if (jwk.alg !== undefined && jwk.alg !== alg) return false;
  if (jwk.use !== undefined && jwk.use !== "sig") return false;
  if (jwk.key_ops !== undefined && !(Array.isArray(jwk.key_ops) && jwk.key_ops.includes("verify"))) return false;
  // Private members in a published set are a leak; refuse to treat it as a verification key.
  if (jwk.d !== undefined) return false;
  switch (alg) {
    case "ES256":
      return jwk.kty === "EC" && jwk.crv === "P-256";
    case "EdDSA":
      return jwk.kty === "OKP" && jwk.crv === "Ed25519";
    case "RS256":
    case "PS256":
      return jwk.kty === "RSA";
  }
}

export class JwksKeySet {
  private readonly byKid = new Map<string, JWK[]>();
  private readonly imported = new Map<string, Promise<CryptoKey | undefined>>();

  private constructor(jwks: readonly JWK[]) {
    for (const jwk of jwks) {
      if (typeof jwk.kid !== "string" || jwk.kid.length === 0) continue;
      const list = this.byKid.get(jwk.kid) ?? [];
      list.push(jwk);
      this.byKid.set(jwk.kid, list);
    }
  }

  /** Parses JWKS JSON text; throws an Error naming the problem when it is not a key set. */
  static parse(text: string): JwksKeySet {
    let doc: unknown;
    try {
      doc = JSON.parse(text);
    } catch {
      throw new Error("is not JSON");
    }
    return JwksKeySet.fromObject(doc);
  }

  static fromObject(doc: unknown): JwksKeySet {
    if (typeof doc !== "object" || doc === null || !Array.isArray((doc as { keys?: unknown }).keys)) {
      throw new Error('is not a JWK Set (an object with a "keys" array)');
    }
    const keys = ((doc as { keys: unknown[] }).keys).filter((k): k is JWK => typeof k === "object" && k !== null && !Array.isArray(k));
    return new JwksKeySet(keys);
  }

  get kids(): readonly string[] {
    return [...this.byKid.keys()];
  }

  has(kid: string): boolean {
    return this.byKid.has(kid);
  }

  /** The keys under `kid` usable with `alg` (usually one; several only when a set repeats a kid). */
  async lookup(kid: string, alg: string): Promise<KeyLookup> {
    const candidates = this.byKid.get(kid);
    if (candidates === undefined) return { ok: false, problem: `kid ${quotedValue(kid)} is not in the key set` };
    if (!isAllowedAlg(alg)) return { ok: false, problem: `alg ${quotedValue(alg)} is not allowed` };
    const keys: CryptoKey[] = [];
    for (let i = 0; i < candidates.length; i++) {
      const jwk = candidates[i]!;
      if (!fitsAlg(jwk, alg)) continue;
      const cacheKey = `${kid}\u0000${alg}\u0000${i}`;
      let pending = this.imported.get(cacheKey);
      if (pending === undefined) {
        pending = importJWK({ ...jwk, ext: true }, alg).then(
          (k) => (k instanceof Uint8Array ? undefined : k),
          () => undefined,
        );
        this.imported.set(cacheKey, pending);
      }
      const key = await pending;
      if (key !== undefined) keys.push(key);
    }
    if (keys.length === 0) return { ok: false, problem: `no key under kid ${quotedValue(kid)} is usable with alg ${alg}` };
    return { ok: true, keys };
  }
}
