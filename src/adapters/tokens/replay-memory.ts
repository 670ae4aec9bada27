// The process's own single-use memory (SPEC 5): a key is kept until its
// token's exp plus clockSkew and never evicted before. When every slot holds
// an unexpired key, a new token is refused ("full") rather than an old one
// forgotten: forgetting would let that old token be accepted again.
//
// Expired keys are reclaimed from a min-heap ordered by expiry, a few per
// call, so no call scans the whole memory. Keys are fixed-size digests
// (replayKey), so `capacity` bounds the bytes as well as the count.

import { emptyFailures, type ReplayStore, type ReplayStoreStats, type ReplayVerdict } from "./replay-store.js";

/**
 * Default number of unexpired keys held, about 115 bytes each (115 MB when
 * full). One process deciding 8k Checks a second, all with single-use
 * tokens living 60 s plus 30 s of skew, holds 720k.
 */
export const DEFAULT_REPLAY_CAPACITY = 1_000_000;

/** Expired keys reclaimed per call: more than the one a call can add, so reclaiming keeps up. */
const RECLAIM_PER_CALL = 32;

export class ReplayMemory implements ReplayStore {
  /** key → expiry (epoch ms) of its latest recording. */
  private readonly expiries = new Map<string, number>();
  /** Min-heap on expiry, as two parallel arrays. A key recorded again after expiring has an older, stale node here until it is popped. */
  private readonly heapExpiry: number[] = [];
  private readonly heapKey: string[] = [];
  private fullRefusals = 0;

  constructor(readonly capacity = DEFAULT_REPLAY_CAPACITY) {
    if (!Number.isInteger(capacity) || capacity < 1) throw new RangeError(`replay capacity must be a whole number ≥ 1, not ${capacity}`);
  }

  /** Synchronous, so two concurrent Checks in this process cannot both get "first". */
  firstUse(key: string, untilMs: number, nowMs: number): ReplayVerdict {
    this.reclaim(nowMs, RECLAIM_PER_CALL);
    const seenUntil = this.expiries.get(key);
    if (seenUntil !== undefined && seenUntil > nowMs) return "replayed";
    // A token past its exp plus skew is refused as expired before it gets here; nothing to keep.
    if (untilMs <= nowMs) return "first";
    // The heap has a node for every live key (and a few stale ones): bounding it bounds both.
    if (this.heapExpiry.length >= this.capacity && this.reclaim(nowMs, Number.POSITIVE_INFINITY, 1) === 0) {
      this.fullRefusals += 1;
      return "full";
    }
    this.expiries.set(key, untilMs);
    this.push(untilMs, key);
    return "first";
  }

  /** Unexpired-or-not-yet-reclaimed keys held. */
  get size(): number {
    return this.expiries.size;
  }

  stats(): ReplayStoreStats {
    return { kind: "memory", entries: this.expiries.size, fullRefusals: this.fullRefusals, failures: emptyFailures() };
  }

  close(): Promise<void> {
    return Promise.resolve();
  }

  /**
   * Pops heap nodes whose expiry has passed, at most `maxPops`, stopping once
   * `wantFreed` nodes are gone. Returns the number popped.
   */
  private reclaim(nowMs: number, maxPops: number, wantFreed = Number.POSITIVE_INFINITY): number {
    let popped = 0;
    while (popped < maxPops && popped < wantFreed && this.heapExpiry.length > 0 && this.heapExpiry[0]! <= nowMs) {
      const expiry = this.heapExpiry[0]!;
      const key = this.heapKey[0]!;
      this.popMin();
      popped += 1;
      // A stale node (the key was recorded again later) must not delete the newer recording.
      if (this.expiries.get(key) === expiry) this.expiries.delete(key);
    }
    return popped;
  }

  private push(expiry: number, key: string): void {
    const e = this.heapExpiry;
    const k = this.heapKey;
    let i = e.length;
    e.push(expiry);
    k.push(key);
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (e[parent]! <= expiry) break;
      e[i] = e[parent]!;
      k[i] = k[parent]!;
      i = parent;
    }
    e[i] = expiry;
    k[i] = key;
  }

  private popMin(): void {
    const e = this.heapExpiry;
    const k = this.heapKey;
    const lastExpiry = e.pop()!;
    const lastKey = k.pop()!;
    const n = e.length;
    if (n === 0) return;
    let i = 0;
    for (;;) {
      const left = 2 * i + 1;
      if (left >= n) break;
      const right = left + 1;
      const child = right < n && e[right]! < e[left]! ? right : left;
      if (e[child]! >= lastExpiry) break;
      e[i] = e[child]!;
      k[i] = k[child]!;
      i = child;
    }
    e[i] = lastExpiry;
    k[i] = lastKey;
  }
}
