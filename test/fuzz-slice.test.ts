// A short, seeded slice of `npm run fuzz` (test/fuzz/) in the default test
// run: generated CheckRequests through the core pipeline and through the real
// gRPC server, judged by the contract's answer (mutations of allowed calls
// that SPEC says must deny, with SPEC 2's reason) and by an independent
// reference decider. The full run (a million core cases, a hundred thousand
// gRPC calls) is `npm run fuzz`.

import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { CheckInput } from "../src/core/decision/check-input.js";
import { createFuzzFixture, type FuzzFixture } from "./fuzz/fixture.js";
import { createCorePipeline, runCoreFuzz } from "./fuzz/core-fuzz.js";
import { runGrpcFuzz } from "./fuzz/grpc-fuzz.js";
import { DENIAL_REASONS } from "../src/core/reasons.js";

const SEED = 20261201;
const quiet = (): void => undefined;

let fixture: FuzzFixture;

beforeAll(async () => {
  // A fresh fixture, whatever FUZZ_FIXTURE says.
  fixture = await createFuzzFixture("");
});

afterAll(async () => {
  await fixture.close();
});

describe("fuzz slice: zero allows for anything the contract denies", () => {
  it("20,000 generated CheckRequests through CheckPipeline.decide", async () => {
    const outcome = await runCoreFuzz(fixture, { seed: SEED, runs: 20_000, timeLimitMs: 120_000, log: quiet, progressEveryMs: 1e9 });
    expect(outcome.failure ?? []).toEqual([]);
    expect(outcome.ok).toBe(true);
    expect(outcome.stats.runs).toBe(20_000);
    // Not vacuous: the contract's allowed calls are allowed, and most denial reasons are reached.
    expect(outcome.stats.byKind.get("allowed")?.allows).toBe(outcome.stats.byKind.get("allowed")?.runs);
    expect(outcome.stats.allows).toBeGreaterThan(2_000);
    const reached = DENIAL_REASONS.filter((r) => (outcome.stats.deniesByReason.get(r) ?? 0) > 0);
    expect(reached.length).toBeGreaterThanOrEqual(19);
  }, 120_000);

  it("2,000 Checks through the gRPC server: well-formed, protobuf-mutated and random bytes, over 4 connections", async () => {
    const outcome = await runGrpcFuzz(fixture, { seed: SEED, runs: 2_000, timeLimitMs: 120_000, log: quiet, progressEveryMs: 1e9, connections: 4, batch: 32, deadlineMs: 10_000 });
    expect(outcome.failure ?? []).toEqual([]);
    expect(outcome.ok).toBe(true);
    expect(outcome.stats.runs).toBeGreaterThanOrEqual(2_000);
    expect(outcome.stats.byKind.get("mutated bytes")?.runs).toBeGreaterThan(300);
    expect(outcome.stats.byKind.get("random bytes")?.runs).toBeGreaterThan(50);
    expect(outcome.endChecks.join("\n")).toMatch(/known-good request allowed, health SERVING/);
    expect(outcome.endChecks.join("\n")).toMatch(/audit log: verifies/);
  }, 120_000);

  it("fails, with a seed and path to replay, when the pipeline allows what the contract denies", async () => {
    // A pipeline that waves through on-behalf-of values naming two principals (finding 7 undone).
    const real = await createCorePipeline(fixture);
    const broken = {
      decide(input: CheckInput) {
        const obo = input.headers["x-agent-on-behalf-of"];
        if (obo?.includes(",")) return real.decide({ ...input, headers: { ...input.headers, "x-agent-on-behalf-of": obo.slice(obo.lastIndexOf(",") + 1) } });
        return real.decide(input);
      },
    };
    const outcome = await runCoreFuzz(fixture, { seed: SEED, runs: 20_000, timeLimitMs: 120_000, log: quiet, progressEveryMs: 1e9 }, broken);
    expect(outcome.ok).toBe(false);
    const report = (outcome.failure ?? []).join("\n");
    expect(report).toMatch(/FUZZ_SEED=20261201 FUZZ_CORE_PATH=\S+/);
    expect(report).toMatch(/UNSAFE ALLOW|wrong reason/);
  }, 120_000);

  it("a saved fixture loads back with the same certificate and token bytes", async () => {
    const file = `${fixture.dir}/saved-fixture.json`;
    await fixture.save(file);
    const again = await createFuzzFixture(file);
    try {
      expect(again.renderer.certificate({ cert: "front:valid", encoding: "url" })).toBe(fixture.renderer.certificate({ cert: "front:valid", encoding: "url" }));
      expect(again.renderer.token({ token: "S5:alice:valid" })).toBe(fixture.renderer.token({ token: "S5:alice:valid" }));
      expect(again.nowMs).toBe(fixture.nowMs);
    } finally {
      await again.close();
    }
  });
});
