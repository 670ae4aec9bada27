// The core fuzz: generated CheckRequests through CheckPipeline.decide with
// the real policy loader (PolicyStore reading the fuzz policy file), the real
// certificate parser with its cache, a real hop cache and the real
// delegation-token verifier (JWKS file beside the policy), each decision
// compared with the contract's answer and the reference decider's.

import fc from "fast-check";
import { CheckPipeline } from "../../src/core/decision/check-pipeline.js";
import { PolicyStore } from "../../src/adapters/config/policy-store.js";
import { CachingCertificateParser } from "../../src/adapters/x509/certificate-parser.js";
import { LruHopDecisionCache } from "../../src/adapters/cache/hop-decision-cache.js";
import { UlidGenerator } from "../../src/adapters/ids/ulid.js";
import { tokenVerifiersFor } from "../../src/adapters/tokens/token-verifiers.js";
import { silentLogger } from "../../src/adapters/logging/logger.js";
import type { CheckInput } from "../../src/core/decision/check-input.js";
import type { Decision } from "../../src/core/decision/decision.js";
import { fuzzCaseArb, type FuzzCase } from "./cases.js";
import type { FuzzFixture } from "./fixture.js";
import { judge, observeDecision, type ObservedDecision } from "./judge.js";
import { referenceDecide, type ReferenceDecision, type ReferenceWorld } from "./reference-decider.js";
import { renderView, toCheckInput, type EnvoyView } from "./request-model.js";
import { FuzzStats } from "./fuzz-stats.js";
import { describeValue } from "./describe.js";
import { referenceWorld } from "./world.js";

export interface FuzzRunOptions {
  readonly seed: number;
  /** Stop after this many cases… */
  readonly runs: number;
  /** …or after this long, whichever comes first. */
  readonly timeLimitMs: number;
  /** Replay one counterexample (fast-check's path) instead of running. */
  readonly path?: string | undefined;
  /** Disagreements with the reference fail the run too. */
  readonly strict?: boolean;
  readonly log: (line: string) => void;
  readonly progressEveryMs?: number;
}

/** What the core fuzz drives: CheckPipeline, or a stand-in (the slice test plants a broken one to see the oracle catch it). */
export interface Decider {
  decide(input: CheckInput): Decision | Promise<Decision>;
}

export interface FuzzOutcome {
  readonly stats: FuzzStats;
  readonly ok: boolean;
  /** The counterexample, printed, when not ok. */
  readonly failure: string[] | undefined;
  readonly interrupted: boolean;
}

export async function createCorePipeline(fixture: FuzzFixture): Promise<CheckPipeline> {
  const policies = new PolicyStore(fixture.policyFile, silentLogger);
  const warnings = await policies.loadInitial();
  if (warnings.length > 0) throw new Error(`the fuzz policy has warnings:\n${warnings.join("\n")}`);
  return new CheckPipeline({
    policies,
    certificates: new CachingCertificateParser(),
    clock: { nowMs: () => fixture.nowMs },
    ids: new UlidGenerator(),
    // Small, so that the fuzz also runs through evictions.
    hopCache: new LruHopDecisionCache(2000),
    ...tokenVerifiersFor(fixture.policyFile, undefined),
  });
}

/** One case through the pipeline and the reference: the verdict and what was seen. */
export async function decideCase(pipeline: Decider, world: ReferenceWorld, fixture: FuzzFixture, c: FuzzCase): Promise<{ view: EnvoyView; got: ObservedDecision; ref: ReferenceDecision; ms: number }> {
  const view = renderView(c.call, fixture.renderer);
  const input = toCheckInput(view);
  const started = performance.now();
  const result = pipeline.decide(input);
  const decision = result instanceof Promise ? await result : result;
  const ms = performance.now() - started;
  const ref = referenceDecide(view, world);
  return { view, got: observeDecision(decision), ref, ms };
}

export async function runCoreFuzz(fixture: FuzzFixture, options: FuzzRunOptions, decider?: Decider): Promise<FuzzOutcome> {
  const pipeline = decider ?? (await createCorePipeline(fixture));
  const world = referenceWorld(fixture);
  const stats = new FuzzStats("core", options.log, options.progressEveryMs);
  let failing = false;
  let lastFailure: string[] | undefined;

  const property = fc.asyncProperty(fuzzCaseArb, async (c) => {
    const { view, got, ref, ms } = await decideCase(pipeline, world, fixture, c);
    const verdict = judge(c, got, ref);
    if (!failing) {
      stats.record(c.kind, got.allowed, got.reason, ms, () => `${c.kind} — ${c.label}, ${inputSize(view)} bytes of input`);
      if (verdict.disagreement !== undefined) stats.disagree(`${c.kind}: ${verdict.disagreement}`, c.label);
      stats.tick();
    }
    const problem = verdict.violation ?? (options.strict === true ? verdict.disagreement : undefined);
    if (problem !== undefined) {
      failing = true;
      lastFailure = describeFailure(problem, c, view, got, ref);
      throw new Error(problem);
    }
  });

  const result = await fc.check(property, {
    seed: options.seed,
    numRuns: options.path === undefined ? options.runs : 1,
    ...(options.path !== undefined && { path: options.path }),
    plugins: [fc.interruptAfterTimeLimit(options.timeLimitMs)],
  });
  if (!result.failed) return { stats, ok: true, failure: undefined, interrupted: result.interrupted };
  const c = (result.counterexample as [FuzzCase] | null)?.[0];
  const lines = [
    `[fuzz core] VIOLATION after ${stats.runs} runs — reproduce with: FUZZ_SEED=${result.seed} FUZZ_CORE_PATH=${result.counterexamplePath ?? ""} npm run fuzz -- --core-only`,
  ];
  // The last failure seen is the shrunk counterexample's (fast-check replays it last).
  if (c !== undefined) {
    const again = await decideCase(pipeline, world, fixture, c);
    lines.push(...describeFailure(judge(c, again.got, again.ref).violation ?? lastFailure?.[0] ?? "(flaky: passes on replay)", c, again.view, again.got, again.ref));
  } else if (lastFailure !== undefined) lines.push(...lastFailure);
  return { stats, ok: false, failure: lines, interrupted: result.interrupted };
}

function inputSize(view: EnvoyView): number {
  let n = view.certificate.length + view.principal.length + view.path.length + view.method.length;
  for (const [k, v] of view.headers) n += k.length + v.length;
  return n;
}

export function describeFailure(problem: string, c: FuzzCase, view: EnvoyView, got: ObservedDecision, ref: ReferenceDecision): string[] {
  return [
    `  problem:   ${problem}`,
    `  case:      ${c.kind} — ${c.label}`,
    `  expected:  ${JSON.stringify(c.expect)}`,
    `  pipeline:  ${got.allowed ? "allow" : `deny ${got.reason ?? ""}`} — ${describeValue(got.message ?? "")}`,
    `  reference: ${ref.allowed ? "allow" : `deny ${ref.reason} (${ref.why})`}`,
    `  call:      ${describeValue(c.call)}`,
    `  as sent:   ${describeValue({ ...view, certificate: view.certificate.length > 0 ? `(${view.certificate.length} chars)` : "" })}`,
  ];
}
