// SPEC 7, graceful shutdown under load (issue 10, "Soak and faults"): the
// built CLI serves Checks with the signed audit log on, from one process and
// from --workers 2, while eight connections keep calls in flight; then
// SIGTERM. Half the Checks carry a fresh single-use delegation token, so
// they ask the replay store (a real Redis); Redis is paused (SIGSTOP) just
// before the signal and resumed during the drain, so that those Checks are
// in flight inside the server, not only on the wire, when the signal lands,
// and the drain must wait for them. Every Check the server accepted is answered
// with a CheckResponse (allow or deny, never internal_error from a store torn
// down too early): the only failures allowed are calls the server never
// accepted (a stream refused, or a connection refused because it had
// stopped listening), never a reset, a cancel or a time-out. The audit log
// then verifies, and it holds every decision id a client was told exactly
// once, and none that no client was told (a decision whose answer was lost).

import { randomUUID } from "node:crypto";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { status as GrpcStatus } from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { CheckRequest } from "../src/gen/envoy/service/auth/v3/external_auth_pb.js";
import { nestActors } from "../src/adapters/tokens/delegation-token-format.js";
import { checkRequest } from "./support/check-client.js";
import { killAllServes, requireBuiltCli, runCli, startServe } from "./support/cli-process.js";
import { startCheckLoad, type CallRecord, type FailedCall } from "./support/check-load.js";
import { compareDecisionIds, readAuditDirectory, verifyAuditDirectory } from "./support/audit-directory.js";
import { processTree } from "./support/process-tree.js";
import { createTestPki, spiffe, type TestPki } from "./support/pki.js";
import { writeTestPolicy } from "./support/policies.js";
import { createSigningKey, jwksOf, signToken, type TestSigningKey } from "./support/delegation-tokens.js";
import { startRedis, stopAllRedis, type RedisProcess } from "./support/redis.js";

const CONNECTIONS = 8;
const IN_FLIGHT_PER_CONNECTION = 8;
/** How long the load runs before Redis is paused. */
const LOAD_MS = 1_200;
/** Redis stops answering this long before SIGTERM, and answers again this long after it (within the replay time-out). */
const PAUSED_BEFORE_MS = 150;
const PAUSED_AFTER_MS = 450;

const ISSUER = "https://sts.example.org";
/** Fresh single-use tokens per run: more than the Checks a run makes, so most are first uses. */
const TOKENS = 3_000;

let pki: TestPki;
let key: TestSigningKey;
let redis: RedisProcess;
const dirs: string[] = [];

beforeAll(async () => {
  requireBuiltCli();
  [pki, key, redis] = await Promise.all([createTestPki(), createSigningKey("ES256"), startRedis()]);
}, 60_000);

afterAll(async () => {
  await killAllServes();
  await stopAllRedis();
  for (const dir of dirs) await rm(dir, { recursive: true, force: true });
});

const chain = (...agents: string[]) => agents.map((a) => spiffe(a)).join(",");

/** research → db for alice with a fresh single-use token bound to research's certificate. */
async function withFreshToken(): Promise<CheckRequest> {
  const now = Math.floor(Date.now() / 1000);
  const token = await signToken(key, {
    iss: ISSUER,
    sub: "alice@example.com",
    aud: spiffe("db"),
    iat: now - 5,
    exp: now + 60,
    jti: randomUUID(),
    scope: "db:read",
    cnf: { "x5t#S256": Buffer.from(pki.agents.research.sha256Hex, "hex").toString("base64url") },
    act: nestActors([spiffe("orchestrator"), spiffe("research")]),
  });
  return checkRequest({
    certificate: pki.agents.research.urlEncodedPem,
    callee: "db",
    method: "GET",
    path: "/query",
    headers: {
      "x-agent-subject": spiffe("research"),
      "x-agent-on-behalf-of": "alice@example.com",
      "x-agent-delegation-chain": chain("orchestrator", "research"),
      "x-agent-delegation-token": token,
    },
  });
}

/** Header-only allows and denies of several kinds for many people (the hop cache both hits and misses), each followed by a token Check. */
async function variedRequests(): Promise<CheckRequest[]> {
  const headerOnly: CheckRequest[] = [];
  for (let i = 0; i < 200; i++) {
    const person = `user${i}@example.com`;
    const as = (caller: string, callee: string, agents: string[], method: string, path: string, extra: Record<string, string> = {}) =>
      checkRequest({
        principal: spiffe(caller),
        callee,
        method,
        path,
        headers: { "x-agent-subject": spiffe(caller), "x-agent-on-behalf-of": person, "x-agent-delegation-chain": chain(...agents), ...extra },
      });
    headerOnly.push(
      as("research", "db", ["orchestrator", "research"], "GET", `/query?q=${i}`),
      as("research", "db", ["orchestrator", "research"], "POST", `/schema/t${i % 37}`),
      as("research", "db", ["orchestrator", "research"], "DELETE", "/query"),
      as("worker", "research", ["orchestrator", "planner", "worker"], "GET", `/v1/summarize?n=${i}`),
      as("orchestrator", "db", ["orchestrator"], "GET", "/query"),
      as("research", "db", ["orchestrator", "research"], "GET", "/query", { "x-agent-on-behalf-of": `mallory${i}@evil.example` }),
    );
  }
  const requests: CheckRequest[] = [];
  for (let i = 0; i < TOKENS; i++) requests.push(headerOnly[i % headerOnly.length]!, await withFreshToken());
  return requests;
}

/** variedRequests() alternates: header-only at even indexes, a token at odd ones. */
const isTokenRequest = (index: number) => index % 2 === 1;

/** A failure the server never accepted: the stream was refused, or no connection could be made. */
function isRefusal(outcome: FailedCall): boolean {
  return outcome.code === (GrpcStatus.UNAVAILABLE as number) && /Stream refused by server|ECONNREFUSED|No connection established/.test(outcome.details);
}

function describeFailures(calls: readonly CallRecord[], killedAt: number): string {
  const counts = new Map<string, number>();
  for (const c of calls) {
    if (c.outcome.kind !== "failed") continue;
    const key = `${c.startedAt < killedAt ? "before" : "after"} SIGTERM: code ${c.outcome.code}: ${c.outcome.details}`;
    counts.set(key, (counts.get(key) ?? 0) + 1);
  }
  return [...counts].map(([k, n]) => `${n} × ${k}`).join("\n");
}

async function sigtermUnderLoad(workers: number): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), "hopwarden-sigterm-load-"));
  dirs.push(dir);
  const { file } = await writeTestPolicy({ extra: `tokens:\n  issuer: ${ISSUER}\n  jwks: jwks.json\n  required: false\n  singleUse: true\n  clockSkew: 30s\n` }, dir);
  await writeFile(join(dir, "jwks.json"), JSON.stringify(jwksOf(key)));
  // A time-out longer than the pause: the Checks waiting on Redis are answered as decided, not failed closed.
  const config = join(dir, "config.yaml");
  await writeFile(config, `replay:\n  store: ${redis.url}\n  timeout: 5s\n`);
  const keygen = await runCli(["audit", "keygen", "--out", join(dir, "audit-key")]);
  expect(keygen.code, keygen.stderr).toBe(0);
  const auditDir = join(dir, "audit");
  await mkdir(auditDir);
  const serve = await startServe([
    "--policy", file,
    "--listen", "127.0.0.1:0",
    "--admin-listen", "off",
    "--workers", String(workers),
    "--audit-log", join(auditDir, "audit.log"),
    "--audit-key", join(dir, "audit-key.key"),
    "--config", config,
  ]);
  const processes = await processTree(serve.pid);
  expect(processes.length).toBe(workers === 1 ? 1 : workers + 1);

  const load = startCheckLoad({ address: serve.grpc, connections: CONNECTIONS, inFlightPerConnection: IN_FLIGHT_PER_CONNECTION, requests: await variedRequests(), stopConnectionOnFailure: true });
  let exit: { code: number | null; signal: NodeJS.Signals | null };
  let pausedAt: number;
  let killedAt: number;
  try {
    await sleep(LOAD_MS);
    redis.pause();
    pausedAt = performance.now();
    await sleep(PAUSED_BEFORE_MS);
    killedAt = performance.now();
    serve.child.kill("SIGTERM");
    const forced = setTimeout(() => serve.child.kill("SIGKILL"), 20_000);
    await sleep(PAUSED_AFTER_MS);
    redis.resume();
    exit = await serve.exited;
    clearTimeout(forced);
    // Every connection now fails fast (nothing listens): the loops end.
    await load.stop();
  } finally {
    redis.resume();
    load.close();
  }

  const calls = load.calls;
  const answered = calls.flatMap((c) => (c.outcome.kind === "answered" ? [c.outcome] : []));
  const inFlightAtSigterm = calls.filter((c) => c.startedAt < killedAt && c.endedAt > killedAt);
  // Token Checks made while Redis was paused and before the signal: in flight inside the server when it
  // arrived, waiting on the store, so the drain had to wait for them.
  const heldInServer = calls.filter((c) => isTokenRequest(c.request) && c.startedAt >= pausedAt && c.startedAt < killedAt);
  const decisions = new Map<string, number>();
  for (const a of answered) decisions.set(a.decision, (decisions.get(a.decision) ?? 0) + 1);
  const failures = calls.flatMap((c) => (c.outcome.kind === "failed" ? [{ call: c, outcome: c.outcome }] : []));
  const failedBeforeSigterm = failures.filter((f) => f.call.startedAt < killedAt);
  process.stderr.write(
    `[sigterm --workers ${workers}] ${calls.length} calls, ${answered.length} answered; at SIGTERM ${inFlightAtSigterm.length} in flight, ${heldInServer.length} of them held in the server by the paused store; ` +
      `${failures.length} failed (${failedBeforeSigterm.length} of them made before SIGTERM); decisions: ${[...decisions].map(([d, n]) => `${d} ${n}`).join(", ")}\n`,
  );

  expect(exit, serve.stderr()).toEqual({ code: 0, signal: null });
  for (const pid of processes) expect(() => process.kill(pid, 0), `process ${pid} still running`).toThrow();
  // Never a reset, a cancel or a time-out: a failure is a call the server did not accept ...
  expect(failures.filter((f) => !isRefusal(f.outcome)), describeFailures(calls, killedAt)).toEqual([]);
  // ... and it had not stopped accepting before the signal: a call made before it is answered.
  expect(failedBeforeSigterm.length, describeFailures(calls, killedAt)).toBe(0);
  expect(inFlightAtSigterm.filter((c) => c.outcome.kind !== "answered")).toEqual([]);
  // The load was real: Checks were held inside the server when the signal went, and each got its decision:
  // a first use, allowed, not internal_error from a store or log torn down before the drain ended.
  expect(heldInServer.length).toBeGreaterThanOrEqual(CONNECTIONS);
  expect(heldInServer.filter((c) => c.outcome.kind !== "answered" || c.outcome.decision !== "allow").map((c) => c.outcome)).toEqual([]);
  expect([...decisions.keys()].filter((d) => d === "internal_error" || d === "policy_unavailable"), JSON.stringify([...decisions])).toEqual([]);

  const verify = await verifyAuditDirectory(auditDir, join(dir, "audit-key.pub"));
  expect(verify.code, `audit verify ${verify.files.join(" ")}\n${verify.stdout}${verify.stderr}`).toBe(0);
  const audit = await readAuditDirectory(auditDir);
  const compared = compareDecisionIds(
    answered.map((a) => a.decisionId),
    audit.decisionIds,
  );
  expect(compared, "every decision id a client was told is in the log exactly once, and the log holds no other").toEqual({ missing: [], duplicated: [], unanswered: [] });
  expect(audit.decisionIds.length).toBe(answered.length);
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe("SIGTERM under load", () => {
  it("answers every Check in flight, refuses only what it never accepted, and leaves a verified log of exactly the decisions it answered (one process)", async () => {
    await sigtermUnderLoad(1);
  }, 60_000);

  it("does the same with --workers 2", async () => {
    await sigtermUnderLoad(2);
  }, 60_000);
});
