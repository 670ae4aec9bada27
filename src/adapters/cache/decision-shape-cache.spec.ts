import { describe, expect, it } from "vitest";
import { sampleDecision } from "../../../test/support/audit-fixtures.js";
import type { Decision } from "../../core/decision/decision.js";
import { DecisionShapeCache } from "./decision-shape-cache.js";

/** A decision with every shape field set (a person, a binding, two hops). */
const base: Decision = sampleDecision({ callerBinding: "certificate" });

describe("DecisionShapeCache", () => {
  it("finds a decision of the same shape whatever its id, times and request line", () => {
    const cache = new DecisionShapeCache<string>();
    cache.set(base, "template");
    const again = { ...base, decisionId: "01JBZ6Q6M3YV0V9F6X5K8T2R4B", decidedAtMs: 99, method: "GET", path: "/other", chain: [...base.chain], hops: base.hops.map((h) => ({ ...h })) };
    expect(cache.get(again)).toBe("template");
  });

  it.each<[string, Partial<Decision>]>([
    ["the person", { onBehalfOf: "bob@example.com" }],
    ["no person", { onBehalfOf: undefined }],
    ["the callee", { callee: "spiffe://example.org/agent/other" }],
    ["the policy version", { policyVersion: "2026-11-02.1" }],
    ["the caller binding", { callerBinding: "xfcc" }],
    ["the chain", { chain: ["spiffe://example.org/agent/orchestrator", "spiffe://example.org/agent/worker"] }],
    ["a shorter chain", { chain: ["spiffe://example.org/agent/worker"] }],
    ["a hop's rule", { hops: [base.hops[0]!, { ...base.hops[1]!, rule: "hops[2]" }] }],
    ["a hop served from the cache or not", { hops: [{ ...base.hops[0]!, cached: false }, base.hops[1]!] }],
    ["the outcome", { allowed: false, reason: "hop_not_allowed" }],
  ])("misses when %s differs", (_what, change) => {
    const cache = new DecisionShapeCache<string>();
    cache.set(base, "template");
    expect(cache.get({ ...base, ...change } as Decision)).toBeUndefined();
  });

  it("keeps its own copy of the shape: changing the decision's arrays afterwards changes nothing", () => {
    const cache = new DecisionShapeCache<string>();
    const chain = [...base.chain];
    const hops = base.hops.map((h) => ({ ...h }));
    cache.set({ ...base, chain, hops }, "template");
    chain[0] = "spiffe://example.org/agent/intruder";
    (hops[0] as { rule: string }).rule = "hops[9]";
    expect(cache.get(base)).toBe("template");
  });

  it("is bounded: a caller keeps its newest shapes, and callers beyond the limit are not kept", () => {
    const cache = new DecisionShapeCache<number>(2, 3);
    for (let i = 0; i < 5; i++) cache.set({ ...base, onBehalfOf: `p${i}@example.com` }, i);
    expect(cache.get({ ...base, onBehalfOf: "p0@example.com" })).toBeUndefined();
    expect(cache.get({ ...base, onBehalfOf: "p1@example.com" })).toBeUndefined();
    expect([2, 3, 4].map((i) => cache.get({ ...base, onBehalfOf: `p${i}@example.com` }))).toEqual([2, 3, 4]);
    cache.set({ ...base, caller: "spiffe://example.org/agent/a" }, 10);
    cache.set({ ...base, caller: "spiffe://example.org/agent/b" }, 11);
    expect(cache.callers).toBe(2);
    expect(cache.get({ ...base, caller: "spiffe://example.org/agent/b" })).toBeUndefined();
  });

  it("replaces the value of a shape it already holds instead of adding the shape again", () => {
    const cache = new DecisionShapeCache<number>(4, 2);
    cache.set(base, 1);
    cache.set({ ...base, onBehalfOf: "bob@example.com" }, 2);
    cache.set(base, 3);
    cache.set(base, 4);
    expect(cache.get(base)).toBe(4);
    expect(cache.get({ ...base, onBehalfOf: "bob@example.com" })).toBe(2);
  });

  it("keeps nothing for a decision without a caller", () => {
    const cache = new DecisionShapeCache<string>();
    cache.set({ ...base, caller: undefined }, "template");
    expect(cache.callers).toBe(0);
    expect(cache.get({ ...base, caller: undefined })).toBeUndefined();
  });
});
