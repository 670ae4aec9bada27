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

  it("is bounded: a caller keeps its newest shapes, and the table its newest callers", () => {
    const cache = new DecisionShapeCache<number>(2, 3);
    for (let i = 0; i < 5; i++) cache.set({ ...base, onBehalfOf: `p${i}@example.com` }, i);
    expect(cache.get({ ...base, onBehalfOf: "p0@example.com" })).toBeUndefined();
    expect(cache.get({ ...base, onBehalfOf: "p1@example.com" })).toBeUndefined();
    expect([2, 3, 4].map((i) => cache.get({ ...base, onBehalfOf: `p${i}@example.com` }))).toEqual([2, 3, 4]);
    const a = { ...base, caller: "spiffe://example.org/agent/a" };
    const b = { ...base, caller: "spiffe://example.org/agent/b" };
    cache.set(a, 10);
    cache.set(b, 11);
    expect(cache.callers).toBe(2);
    // base's caller was served (the gets above) and a was not: a made way for b.
    expect(cache.get(a)).toBeUndefined();
    expect(cache.get(b)).toBe(11);
    expect(cache.get({ ...base, onBehalfOf: "p4@example.com" })).toBe(4);
  });

  it("lets callers that stopped calling go, so a churning fleet never leaves the table full of the departed", () => {
    const cache = new DecisionShapeCache<number>(4, 1);
    const agent = (i: number): Decision => ({ ...base, caller: `spiffe://example.org/pod/${i}` });
    // 100 short-lived identities, one call each (a miss, then its shape kept), while one busy caller keeps calling.
    const busy = agent(-1);
    cache.set(busy, -1);
    for (let i = 0; i < 100; i++) {
      expect(cache.get(busy)).toBe(-1);
      expect(cache.get(agent(i))).toBeUndefined();
      cache.set(agent(i), i);
    }
    expect(cache.callers).toBe(4);
    expect(cache.get(busy)).toBe(-1);
    expect(cache.get(agent(99))).toBe(99);
    expect(cache.get(agent(0))).toBeUndefined();
  });

  it("still makes room when every caller was served since the last sweep", () => {
    const cache = new DecisionShapeCache<number>(3, 1);
    const agent = (i: number): Decision => ({ ...base, caller: `spiffe://example.org/pod/${i}` });
    for (let i = 0; i < 3; i++) cache.set(agent(i), i);
    for (let i = 0; i < 3; i++) expect(cache.get(agent(i))).toBe(i);
    cache.set(agent(3), 3);
    expect(cache.callers).toBe(3);
    expect(cache.get(agent(3))).toBe(3);
    expect([0, 1, 2].filter((i) => cache.get(agent(i)) === undefined)).toEqual([0]);
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
