// The hop-decision cache: lru-cache bounded by count AND by bytes, with
// visible hit/miss counts. Keys begin with the policy revision (see
// CheckPipeline), so entries of a replaced policy are never hit again and age
// out. Keys and outcome details carry caller-chosen text (on-behalf-of, the
// path), so a count alone would let large values make large entries
// (finding 5): each entry is charged for its key and detail, and an entry
// too large to be worth keeping is not kept at all (deciding it again is
// linear and cheap).

import { LRUCache } from "lru-cache";
import type { HopOutcome } from "../../core/policy/evaluate-hop.js";
import type { HopDecisionCache } from "../../core/ports.js";

export const DEFAULT_HOP_CACHE_ENTRIES = 10_000;
export const DEFAULT_HOP_CACHE_BYTES = 16 * 1024 * 1024;
/** Keys longer than this (characters) are decided every time rather than cached. */
const MAX_CACHED_KEY_LENGTH = 4096;
/** What an entry costs besides its strings: the outcome object and lru-cache's slots. */
const ENTRY_OVERHEAD_BYTES = 160;

/** Bytes an entry holds: its strings at two bytes a character (V8's worst case) plus overhead. */
function entryBytes(outcome: HopOutcome, key: string): number {
  return 2 * (key.length + outcome.detail.length + outcome.rule.length) + ENTRY_OVERHEAD_BYTES;
}

/**
 * lru-cache's get() makes a fresh options object for every call it is not
 * handed one (and writes its `status` into whichever it uses): three lookups
 * a Check, so one shared object saves three allocations.
 */
const GET_OPTIONS: LRUCache.GetOptions<string, HopOutcome, unknown> = {};

export class LruHopDecisionCache implements HopDecisionCache {
  private readonly lru: LRUCache<string, HopOutcome>;
  hits = 0;
  misses = 0;

  constructor(maxEntries = DEFAULT_HOP_CACHE_ENTRIES, maxBytes = DEFAULT_HOP_CACHE_BYTES) {
    this.lru = new LRUCache({ max: maxEntries, maxSize: maxBytes, sizeCalculation: entryBytes });
  }

  get(key: string): HopOutcome | undefined {
    const hit = this.lru.get(key, GET_OPTIONS);
    if (hit === undefined) this.misses++;
    else this.hits++;
    return hit;
  }

  set(key: string, outcome: HopOutcome): void {
    if (key.length > MAX_CACHED_KEY_LENGTH) return;
    this.lru.set(key, outcome);
  }

  get size(): number {
    return this.lru.size;
  }

  /** Bytes charged to the entries held now (never above the configured maximum). */
  get bytes(): number {
    return this.lru.calculatedSize;
  }
}
