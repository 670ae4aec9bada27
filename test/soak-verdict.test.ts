// The soak's pass rules (test/soak/verdict.ts) against made-up series: a
// flat service passes; a leak of memory or descriptors, or a cache over its
// bound, fails and says where. The soak itself (npm run soak) is not part of
// the default test run.

import { describe, expect, it } from "vitest";
import { cacheRules, fdRule, rssRule, type SoakBounds, type SoakSample } from "./soak/verdict.js";

const MiB = 1024 * 1024;
const RUN_SECONDS = 600;

const BOUNDS: SoakBounds = { hopEntries: 4000, hopBytes: MiB, certificateEntries: 8, certificateBytes: 65536, auditDepth: 20_000, spanQueueBytes: 16 * MiB };

/** One sample every 5 s over the run; `at(i, t)` overrides fields. */
function series(at: (t: number) => Partial<SoakSample> = () => ({})): SoakSample[] {
  const samples: SoakSample[] = [];
  for (let t = 5; t <= RUN_SECONDS; t += 5) {
    samples.push({
      atSeconds: t,
      processes: 1,
      rssBytes: 150 * MiB + ((t / 5) % 3) * MiB,
      fds: 30 + ((t / 5) % 2),
      hopEntries: Math.min(4000, t * 100),
      hopBytes: Math.min(0.95 * MiB, t * 20_000),
      certificateEntries: 8,
      certificateBytes: 30_000,
      auditDepth: 12,
      spanQueueBytes: 40_000,
      decisions: t * 600,
      ...at(t),
    });
  }
  return samples;
}

describe("the soak's RSS rule", () => {
  it("passes a flat RSS that climbed only during warm-up", () => {
    expect(rssRule(series((t) => (t < 100 ? { rssBytes: (80 + t / 2) * MiB } : {})), RUN_SECONDS).pass).toBe(true);
  });

  it("fails a leak that grows RSS by 20% over the run, naming the first sample outside", () => {
    const result = rssRule(series((t) => ({ rssBytes: 150 * MiB * (1 + (0.2 * t) / RUN_SECONDS) })), RUN_SECONDS);
    expect(result.pass).toBe(false);
    expect(result.detail).toMatch(/samples outside, first at \d+ s/);
  });

  it("fails a run too short to show a trend", () => {
    expect(rssRule(series().slice(0, 6), RUN_SECONDS).pass).toBe(false);
  });
});

describe("the soak's descriptor rule", () => {
  it("passes descriptors that wobble by a connection", () => {
    expect(fdRule(series(), RUN_SECONDS).pass).toBe(true);
  });

  it("fails one descriptor leaked a minute", () => {
    const result = fdRule(series((t) => ({ fds: 30 + Math.floor(t / 60) })), RUN_SECONDS);
    expect(result.pass).toBe(false);
    expect(result.detail).toMatch(/drift [3-9]/);
  });
});

describe("the soak's cache rules", () => {
  it("passes caches that fill up to their bounds and stay there", () => {
    expect(cacheRules(series(), BOUNDS, RUN_SECONDS).filter((r) => !r.pass)).toEqual([]);
  });

  it("fails a hop cache one entry over its bound", () => {
    const failing = cacheRules(series((t) => (t === 300 ? { hopEntries: 4001 } : {})), BOUNDS, RUN_SECONDS).filter((r) => !r.pass);
    expect(failing.map((r) => r.rule)).toEqual(["hop cache entries ≤ bound"]);
    expect(failing[0]!.detail).toBe("4001 at 300 s, over its bound 4000");
  });

  it("fails a run whose churn never filled the hop cache", () => {
    const failing = cacheRules(series(() => ({ hopEntries: 100, hopBytes: 10_000 })), BOUNDS, RUN_SECONDS).filter((r) => !r.pass);
    expect(failing.map((r) => r.rule)).toEqual(["hop cache reached its bound (the churn tested it)"]);
  });
});
