// Tokens whose signature and claim shapes have been verified, keyed by the
// SHA-256 of the token string, kept until the token's `exp` (plus skew). A
// token reused on many calls then costs one hash instead of a signature
// check; the checks against each request still run every time.

import { LRUCache } from "lru-cache";

/** Any verified claims with an expiry (seconds since the epoch): delegation tokens, Transaction Tokens. */
export interface ExpiringClaims {
  readonly exp: number;
}

export interface VerifiedToken<C extends ExpiringClaims> {
  readonly claims: C;
  /** The policy's `jwks` and `issuer` the token was verified against: a reload that changes them must not reuse it. */
  readonly jwks: string;
  readonly issuer: string;
}

export class VerifiedTokenCache<C extends ExpiringClaims> {
  private readonly cache: LRUCache<string, VerifiedToken<C>>;

  constructor(maxEntries = 10_000) {
    // ttlAutopurge stays off: entries are checked on read against the caller's clock as well.
    this.cache = new LRUCache<string, VerifiedToken<C>>({ max: maxEntries });
  }

  get(tokenSha256: string, nowMs: number, clockSkewSeconds: number): VerifiedToken<C> | undefined {
    const hit = this.cache.get(tokenSha256);
    if (hit === undefined) return undefined;
    if (nowMs >= (hit.claims.exp + clockSkewSeconds) * 1000) {
      this.cache.delete(tokenSha256);
      return undefined;
    }
    return hit;
  }

  set(tokenSha256: string, entry: VerifiedToken<C>, nowMs: number, clockSkewSeconds: number): void {
    const ttlMs = (entry.claims.exp + clockSkewSeconds) * 1000 - nowMs;
    if (ttlMs <= 0) return;
    // The LRU's own TTL uses the real clock; the read above uses the request's clock. Both bound the entry.
    this.cache.set(tokenSha256, entry, { ttl: Math.ceil(ttlMs) });
  }

  get size(): number {
    return this.cache.size;
  }
}
