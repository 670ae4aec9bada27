// `npm run fuzz`: the fuzz at scale. A million generated CheckRequests
// through the core pipeline and a hundred thousand through the real gRPC
// server (well-formed, protobuf-mutated and random bytes, over several
// connections), each checked against the contract's answer and an
// independent reference decider. Seeded (printed; FUZZ_SEED or --seed to
// repeat), bounded in time, progress every few seconds, counts at the end.
// Exits 1 on any violation, printing the seed and fast-check path that
// replay it (FUZZ_CORE_PATH / FUZZ_GRPC_PATH).
//
//   npm run fuzz
//   npm run fuzz -- --seed 42 --core-runs 200000 --grpc-runs 20000
//   npm run fuzz -- --core-only --time-limit 60
//   FUZZ_SEED=42 FUZZ_CORE_PATH=1234:5 npm run fuzz -- --core-only   # replay one counterexample
//   (a failing run saves its certificates and tokens and prints FUZZ_FIXTURE=<file>
//   to add, so that byte-level mutations replay on the same bytes)
//
// Flags (environment twins in parentheses): --seed (FUZZ_SEED),
// --core-runs (FUZZ_CORE_RUNS, default 1000000), --grpc-runs
// (FUZZ_GRPC_RUNS, default 100000), --time-limit seconds for each part
// (FUZZ_TIME_LIMIT, default 900), --connections (default 4), --batch
// (Checks in flight, default 32), --deadline-ms (default 5000), --strict
// (disagreements with the reference fail too), --core-only, --grpc-only.

import { mkdir } from "node:fs/promises";
import { dirname, join } from "node:path";
import { parseArgs } from "node:util";
import { cpus } from "node:os";
import { createFuzzFixture } from "./fixture.js";
import { runCoreFuzz } from "./core-fuzz.js";
import { runGrpcFuzz } from "./grpc-fuzz.js";
import { fmt } from "./fuzz-stats.js";

const { values } = parseArgs({
  options: {
    seed: { type: "string" },
    "core-runs": { type: "string" },
    "grpc-runs": { type: "string" },
    "time-limit": { type: "string" },
    connections: { type: "string" },
    batch: { type: "string" },
    "deadline-ms": { type: "string" },
    strict: { type: "boolean" },
    "core-only": { type: "boolean" },
    "grpc-only": { type: "boolean" },
  },
});

function num(flag: string | undefined, env: string | undefined, fallback: number): number {
  const raw = flag ?? env;
  if (raw === undefined || raw === "") return fallback;
  const n = Number(raw.replace(/_/g, ""));
  if (!Number.isFinite(n) || n < 0) {
    process.stderr.write(`fuzz: ${JSON.stringify(raw)} is not a number\n`);
    process.exit(2);
  }
  return n;
}

const log = (line: string): void => void process.stdout.write(`${line}\n`);
const seed = num(values.seed, process.env.FUZZ_SEED, Date.now() % 2_147_483_647);
const timeLimitMs = num(values["time-limit"], process.env.FUZZ_TIME_LIMIT, 900) * 1000;
const strict = values.strict === true;
const coreRuns = num(values["core-runs"], process.env.FUZZ_CORE_RUNS, 1_000_000);
const grpcRuns = num(values["grpc-runs"], process.env.FUZZ_GRPC_RUNS, 100_000);

log(`[fuzz] seed ${seed} (repeat with FUZZ_SEED=${seed}); node ${process.version}, ${cpus().length} cores; time limit ${timeLimitMs / 1000} s per part`);
const fixture = await createFuzzFixture();
log(`[fuzz] fixture: ${fixture.certNames.length} certificates, ${fixture.tokenNames.length} delegation tokens, policy ${fixture.policyFile}`);

let ok = true;
const summary: string[] = [];
try {
  if (values["grpc-only"] !== true) {
    log(`[fuzz core] ${fmt(coreRuns)} cases through CheckPipeline.decide (real policy loader, certificate parser, hop cache, token verifier)`);
    const core = await runCoreFuzz(fixture, { seed, runs: coreRuns, timeLimitMs, path: process.env.FUZZ_CORE_PATH, strict, log });
    summary.push(...core.stats.summary());
    if (core.interrupted) summary.push(`  time limit reached: ${fmt(core.stats.runs)} of ${fmt(coreRuns)} cases ran`);
    if (!core.ok) {
      ok = false;
      summary.push(...(core.failure ?? []));
    }
  }
  if (values["core-only"] !== true) {
    const connections = num(values.connections, undefined, 4);
    const batch = num(values.batch, undefined, 32);
    log(`[fuzz grpc] ${fmt(grpcRuns)} Checks through the gRPC server in-process, ${connections} connections, ${batch} in flight`);
    const grpc = await runGrpcFuzz(fixture, { seed, runs: grpcRuns, timeLimitMs, path: process.env.FUZZ_GRPC_PATH, strict, log, connections, batch, deadlineMs: num(values["deadline-ms"], undefined, 5000) });
    summary.push(...grpc.stats.summary("round trip"), ...grpc.endChecks);
    if (grpc.interrupted) summary.push(`  time limit reached: ${fmt(grpc.stats.runs)} of ${fmt(grpcRuns)} Checks ran`);
    if (!grpc.ok) {
      ok = false;
      summary.push(...(grpc.failure ?? []));
    }
  }
  if (!ok && process.env.FUZZ_FIXTURE === undefined) {
    // Byte-level mutations land on certificate and token bytes: replay them on the same ones.
    const file = join(process.cwd(), ".tmp", `fuzz-fixture-${seed}.json`);
    await mkdir(dirname(file), { recursive: true });
    await fixture.save(file);
    summary.push(`[fuzz] this run's certificates and tokens are saved: prefix the command above with FUZZ_FIXTURE=${file} to replay on the same bytes`);
  }
} finally {
  await fixture.close();
}
log("");
for (const line of summary) log(line);
log(ok ? `[fuzz] PASS (seed ${seed}): no allow the contract denies, no crash, no gRPC error` : `[fuzz] FAIL (seed ${seed})`);
process.exit(ok ? 0 : 1);
