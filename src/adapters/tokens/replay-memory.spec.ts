import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { ReplayMemory } from "./replay-memory.js";
import { replayKey } from "./replay-store.js";

describe("ReplayMemory: a jti is kept until its exp plus skew, never evicted earlier (SPEC 5)", () => {
  it("refuses a second use until the expiry, and forgets it after", () => {
    const m = new ReplayMemory(10);
    expect(m.firstUse("a", 2_000, 1_000)).toBe("first");
    expect(m.firstUse("a", 2_000, 1_999)).toBe("replayed");
    expect(m.firstUse("a", 3_000, 2_000)).toBe("first");
    expect(m.firstUse("a", 3_000, 2_500)).toBe("replayed");
  });

  it("finding 3: more tokens than the capacity are refused, and the first one stays remembered", () => {
    const m = new ReplayMemory(3);
    expect(m.firstUse("a", 10_000, 0)).toBe("first");
    expect(m.firstUse("b", 10_000, 0)).toBe("first");
    expect(m.firstUse("c", 10_000, 0)).toBe("first");
    for (let i = 0; i < 1000; i++) expect(m.firstUse(`other-${i}`, 10_000, 1)).toBe("full");
    expect(m.firstUse("a", 10_000, 2)).toBe("replayed");
    expect(m.stats()).toMatchObject({ kind: "memory", entries: 3, fullRefusals: 1000 });
  });

  it("makes room as soon as the earliest entry expires", () => {
    const m = new ReplayMemory(2);
    expect(m.firstUse("long", 9_000, 0)).toBe("first");
    expect(m.firstUse("short", 1_000, 0)).toBe("first");
    expect(m.firstUse("x", 9_000, 999)).toBe("full");
    expect(m.firstUse("x", 9_000, 1_000)).toBe("first");
    expect(m.firstUse("long", 9_000, 1_000)).toBe("replayed");
  });

  it("does not record a token that is already past its expiry", () => {
    const m = new ReplayMemory(1);
    expect(m.firstUse("late", 1_000, 1_000)).toBe("first");
    expect(m.size).toBe(0);
    expect(m.firstUse("next", 2_000, 1_000)).toBe("first");
  });

  it("keeps a key recorded again after expiring, though its first recording's heap node expires first", () => {
    const m = new ReplayMemory(10);
    expect(m.firstUse("k", 100, 0)).toBe("first");
    // Recorded again at 100 (its old node not yet popped would be popped now): the newer recording must survive.
    expect(m.firstUse("k", 5_000, 100)).toBe("first");
    expect(m.firstUse("other", 5_000, 200)).toBe("first");
    expect(m.firstUse("k", 5_000, 300)).toBe("replayed");
  });

  it("reclaims expired entries a few per call, without scanning the whole memory", () => {
    const capacity = 200_000;
    const m = new ReplayMemory(capacity);
    for (let i = 0; i < capacity; i++) m.firstUse(replayKey("iss", `t${i}`), 1_000 + (i % 997), 0);
    expect(m.firstUse("one-more", 5_000, 10)).toBe("full");
    // All expired now: each call reclaims a bounded batch, and a new key always finds room.
    const started = performance.now();
    for (let i = 0; i < 1_000; i++) expect(m.firstUse(`late-${i}`, 50_000, 10_000)).toBe("first");
    expect(performance.now() - started).toBeLessThan(500);
    expect(m.size).toBeLessThan(capacity);
  });

  it("agrees with a plain reference model on any sequence of uses (property)", () => {
    const op = fc.record({ key: fc.constantFrom("a", "b", "c", "d", "e", "f"), ttl: fc.integer({ min: -5, max: 50 }), advance: fc.integer({ min: 0, max: 20 }) });
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 4 }), fc.array(op, { maxLength: 200 }), (capacity, ops) => {
        const m = new ReplayMemory(capacity);
        const reference = new Map<string, number>();
        let now = 0;
        for (const { key, ttl, advance } of ops) {
          now += advance;
          for (const [k, until] of reference) if (until <= now) reference.delete(k);
          let expected: string;
          const seen = reference.get(key);
          if (seen !== undefined) expected = "replayed";
          else if (now + ttl <= now) expected = "first";
          else if (reference.size >= capacity) expected = "full";
          else {
            expected = "first";
            reference.set(key, now + ttl);
          }
          expect(m.firstUse(key, now + ttl, now)).toBe(expected);
        }
      }),
      { seed: 20_261_101, numRuns: 500 },
    );
  });
});

describe("replayKey", () => {
  it("is a fixed-size digest of issuer and jti, with no ambiguity between the two", () => {
    expect(replayKey("https://sts.example.org", "x".repeat(10_000))).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(replayKey("a", "bc")).not.toBe(replayKey("ab", "c"));
    expect(replayKey("iss", "jti")).toBe(replayKey("iss", "jti"));
  });
});
