// Remembers the `jti` of accepted tokens until they expire, for policies with
// `tokens.singleUse: true`. Memory is per process: with several workers or
// replicas a token can be accepted once per process (documented limitation).

import { LRUCache } from "lru-cache";

export class ReplayGuard {
  private readonly seen: LRUCache<string, number>;

  constructor(maxEntries = 100_000) {
    this.seen = new LRUCache<string, number>({ max: maxEntries });
  }

  /**
   * Records the first use of this issuer's `jti` and says whether it was the
   * first. One synchronous step, so two concurrent requests cannot both win.
   * `untilMs` is the token's exp plus skew: after that it is refused as expired anyway.
   */
  firstUse(issuer: string, jti: string, untilMs: number, nowMs: number): boolean {
    const key = `${issuer}\u0000${jti}`;
    const until = this.seen.get(key);
    if (until !== undefined && nowMs < until) return false;
    const ttl = untilMs - nowMs;
    if (ttl > 0) this.seen.set(key, untilMs, { ttl: Math.ceil(ttl) });
    return true;
  }
}
