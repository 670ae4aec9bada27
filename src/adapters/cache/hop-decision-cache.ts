// The hop-decision cache: lru-cache with a bounded size and visible hit/miss
// counts. Keys begin with the policy revision (see CheckPipeline), so entries
// of a replaced policy are never hit again and age out.

import { LRUCache } from "lru-cache";
import type { HopOutcome } from "../../core/policy/evaluate-hop.js";
import type { HopDecisionCache } from "../../core/ports.js";

export class LruHopDecisionCache implements HopDecisionCache {
  private readonly lru: LRUCache<string, HopOutcome>;
  hits = 0;
  misses = 0;

  constructor(maxEntries = 10_000) {
    this.lru = new LRUCache({ max: maxEntries });
  }

  get(key: string): HopOutcome | undefined {
    const hit = this.lru.get(key);
    if (hit === undefined) this.misses++;
    else this.hits++;
    return hit;
  }

  set(key: string, outcome: HopOutcome): void {
    this.lru.set(key, outcome);
  }

  get size(): number {
    return this.lru.size;
  }
}
