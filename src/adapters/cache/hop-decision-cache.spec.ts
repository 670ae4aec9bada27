// The hop-decision cache (SPEC 3): bounded lru-cache with visible hit and miss
// counts. That a reload never serves a stale outcome is shown through the
// pipeline (src/core/decision/check-pipeline.spec.ts, "the hop cache").

import { describe, expect, it } from "vitest";
import type { HopOutcome } from "../../core/policy/evaluate-hop.js";
import { LruHopDecisionCache } from "./hop-decision-cache.js";

const ALLOW: HopOutcome = { allowed: true, rule: "hops[0]", ruleIndex: 0, detail: "admitted by hops[0]" };

describe("the hop-decision cache", () => {
  it("returns what was stored under exactly the same key", () => {
    const cache = new LruHopDecisionCache();
    cache.set("v1#aa\u0000a\u0000b", ALLOW);
    expect(cache.get("v1#aa\u0000a\u0000b")).toBe(ALLOW);
    expect(cache.get("v1#bb\u0000a\u0000b")).toBeUndefined();
    expect({ hits: cache.hits, misses: cache.misses }).toEqual({ hits: 1, misses: 1 });
  });

  it("stays within its bound, evicting the least recently used", () => {
    const cache = new LruHopDecisionCache(2);
    cache.set("a", ALLOW);
    cache.set("b", ALLOW);
    cache.get("a");
    cache.set("c", ALLOW);
    expect(cache.size).toBe(2);
    expect(cache.get("b")).toBeUndefined();
    expect(cache.get("a")).toBe(ALLOW);
  });
});
