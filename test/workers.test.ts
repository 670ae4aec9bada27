// SPEC 7, scale-out: `serve --workers 2` (the built CLI) serves one port from
// two processes that decide exactly as one process does; SIGHUP to the
// primary reaches every worker; SIGTERM stops every process with exit 0; and
// the audit log stays verifiable as a whole: each worker writes its own
// signed chain, the main log names them, and together they hold exactly one
// record per Check, which `audit verify` accepts.

import { execFile } from "node:child_process";
import { mkdir, mkdtemp, readdir, readFile, rename, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startHopwarden, type Hopwarden } from "../src/main.js";
import { silentLogger } from "../src/adapters/logging/logger.js";
import type { CheckRequest } from "../src/gen/envoy/service/auth/v3/external_auth_pb.js";
import { CheckClient, checkRequest, outcome } from "./support/check-client.js";
import { createCertificateAuthority, spiffe } from "./support/pki.js";
import { testPolicyYaml } from "./support/policies.js";
import { eventually, killAllServes, requireBuiltCli, runCli, startServe, stopServe, type ServeProcess } from "./support/cli-process.js";
import { OwnConnectionCheckClient, PERSON, policyWithoutResearchToDb, researchCallsDb, type Checker } from "./support/hop-requests.js";

const run = promisify(execFile);

let dir: string;
let serve: ServeProcess;
let reference: Hopwarden | undefined;
let workerPids: number[] = [];
const clients: { close(): void }[] = [];
/** Every decision id a Check to the workers returned: the audit log must hold exactly these. */
const decisionIds: string[] = [];

/** A client on a new TCP connection: the primary hands connections to the workers in turn. */
function freshClient(address: string): OwnConnectionCheckClient {
  const c = new OwnConnectionCheckClient(address);
  clients.push(c);
  return c;
}

/** Checks through `client`, remembering the decision id; returns "allow" or the deny reason. */
async function decide(client: Checker, request: CheckRequest): Promise<string> {
  const o = outcome(await client.check(request));
  const id = o.code === 0 ? o.headers["x-authz-decision-id"] : (o.body?.["decision_id"] as string | undefined);
  if (id !== undefined) decisionIds.push(id);
  return o.code === 0 ? "allow" : (o.reason ?? `status ${o.code}`);
}

const chain = (...agents: string[]) => agents.map((a) => spiffe(a)).join(",");
const as = (caller: string, callee: string, headers: Record<string, string>, method = "GET", path = "/query") =>
  checkRequest({ principal: spiffe(caller), callee, method, path, headers: { "x-agent-subject": spiffe(caller), "x-agent-on-behalf-of": PERSON, ...headers } });

/** Ten requests with different outcomes under the test policy. */
const VARIED: readonly CheckRequest[] = [
  researchCallsDb(),
  as("research", "db", { "x-agent-delegation-chain": chain("orchestrator", "research") }, "DELETE"),
  researchCallsDb({ "x-agent-subject": spiffe("orchestrator") }),
  as("orchestrator", "research", {}),
  as("orchestrator", "db", {}, "GET", "/health"),
  as("research", "db", { "x-agent-delegation-chain": chain("research", "orchestrator", "research") }),
  as("research", "billing", { "x-agent-delegation-chain": chain("orchestrator", "research") }),
  researchCallsDb({ "x-agent-on-behalf-of": "mallory@evil.example" }),
  as("research", "db", { "x-agent-delegation-chain": `${spiffe("orchestrator")},,${spiffe("research")}` }),
  as("worker", "research", { "x-agent-delegation-chain": chain("orchestrator", "planner", "worker") }),
];

/** Decision log lines (--log-level debug) on the service's stderr. */
function logLines(): Record<string, unknown>[] {
  return serve
    .stderr()
    .split("\n")
    .filter((l) => l.startsWith("{"))
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

async function childPids(pid: number): Promise<number[]> {
  const out = await run("pgrep", ["-P", String(pid)]).catch((err: { code?: number; stdout?: string }) => {
    if (err.code === 1) return { stdout: "" }; // pgrep: no process matched
    throw err as Error;
  });
  return out.stdout
    .split("\n")
    .filter((l) => l.trim() !== "")
    .map(Number);
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

beforeAll(async () => {
  requireBuiltCli();
  dir = await mkdtemp(join(tmpdir(), "hopwarden-workers-"));
  // The policy behind a directory symlink, so that only SIGHUP (not the watcher) sees the swap below.
  await mkdir(join(dir, "gen1"));
  await mkdir(join(dir, "gen2"));
  await writeFile(join(dir, "gen1", "policy.yaml"), testPolicyYaml({ version: "w-1" }));
  await writeFile(join(dir, "gen2", "policy.yaml"), policyWithoutResearchToDb({ version: "w-2" }));
  await symlink("gen1", join(dir, "live"));
  const keygen = await runCli(["audit", "keygen", "--out", join(dir, "key")]);
  expect(keygen.code, keygen.stderr).toBe(0);
  serve = await startServe([
    "--policy",
    join(dir, "live", "policy.yaml"),
    "--listen",
    "127.0.0.1:0",
    "--admin-listen",
    "127.0.0.1:0",
    "--workers",
    "2",
    "--audit-log",
    join(dir, "audit.log"),
    "--audit-key",
    join(dir, "key.key"),
    "--log-level",
    "debug",
  ]);
  workerPids = await childPids(serve.pid);
  reference = await startHopwarden({ policyFile: join(dir, "gen1", "policy.yaml"), listen: "127.0.0.1:0", logger: silentLogger, tracing: false, watchPolicy: false });
}, 60_000);

afterAll(async () => {
  for (const c of clients) c.close();
  await reference?.shutdown(1000);
  await killAllServes();
  for (const pid of workerPids) if (isAlive(pid)) process.kill(pid, "SIGKILL");
  if (dir !== undefined) await rm(dir, { recursive: true, force: true });
});

describe("serve --workers 2", () => {
  it("prints the ready line once both workers serve", () => {
    expect(serve.readyLine).toMatch(/^hopwarden ready grpc=127\.0\.0\.1:\d+ admin=127\.0\.0\.1:\d+/);
    expect(serve.stdout()).toContain("workers=2");
    expect(workerPids).toHaveLength(2);
  });

  it("answers 20 Checks on several connections with the decisions one process makes", async () => {
    const connections = [0, 1, 2, 3].map(() => freshClient(serve.grpc));
    const one = new CheckClient(reference!.grpcAddress);
    clients.push(one);
    const requests = Array.from({ length: 20 }, (_, i) => VARIED[i % VARIED.length]!);
    const fromWorkers = await Promise.all(requests.map((r, i) => decide(connections[i % connections.length]!, r)));
    const fromOne: string[] = [];
    for (const r of requests) {
      const o = outcome(await one.check(r));
      fromOne.push(o.code === 0 ? "allow" : o.reason!);
    }
    expect(fromWorkers).toEqual(fromOne);
    expect(new Set(fromOne).size).toBeGreaterThan(5); // the requests really differ
    // Both workers decided some of them (each decision line names its worker).
    const workers = new Set(logLines().filter((l) => l["msg"] === "decision").map((l) => l["worker"]));
    expect(workers.size).toBe(2);
  });

  it("reports on the primary's /metrics the decisions of every worker, merged", async () => {
    // The 20 Checks above went to both workers; the merged counters hold all of them.
    const text = await (await fetch(`http://${serve.admin}/metrics`)).text();
    const total = [...text.matchAll(/^hopwarden_decisions_total\{[^}]*\} (\d+)$/gm)].reduce((sum, m) => sum + Number(m[1]), 0);
    expect(total).toBe(20);
    expect(text.match(/^# TYPE hopwarden_decisions_total counter$/gm)).toHaveLength(1);
  });

  it("reloads every worker on SIGHUP to the primary", async () => {
    expect(await decide(freshClient(serve.grpc), researchCallsDb())).toBe("allow");
    await symlink("gen2", join(dir, "live.tmp"));
    await rename(join(dir, "live.tmp"), join(dir, "live"));
    process.kill(serve.pid, "SIGHUP");

    const reloadedWorkers = () => new Set(logLines().filter((l) => l["msg"] === "policy loaded" && l["version"] === "w-2" && l["worker"] !== undefined).map((l) => l["worker"]));
    const both = await eventually(() => reloadedWorkers().size === 2, 5_000);
    expect(both, `workers that reloaded: ${[...reloadedWorkers()].join(", ")}\n${serve.stderr()}`).toBe(true);
    const primary = logLines().find((l) => l["msg"] === "policy loaded" && l["worker"] === undefined);
    expect(primary).toMatchObject({ trigger: "SIGHUP", version: "w-2" });

    const after = await Promise.all(Array.from({ length: 20 }, () => decide(freshClient(serve.grpc), researchCallsDb())));
    expect(after).toEqual(Array.from({ length: 20 }, () => "hop_not_allowed"));
    const answeredBy = new Set(logLines().filter((l) => l["msg"] === "decision" && l["policy_version"] === "w-2").map((l) => l["worker"]));
    expect(answeredBy.size).toBe(2);
  });

  it("stops every process on SIGTERM with exit 0, leaving intact audit chains that hold each Check's record exactly once", async () => {
    for (const c of clients.splice(0)) c.close();
    expect(await stopServe(serve, 15_000)).toEqual({ code: 0, signal: null });
    for (const pid of workerPids) expect(isAlive(pid), `worker ${pid} still running`).toBe(false);

    const files = (await readdir(dir)).filter((n) => n.startsWith("audit")).sort();
    expect(files).toEqual(["audit.log", "audit.w1.log", "audit.w2.log"]);
    const verify = await runCli(["audit", "verify", "--public-key", join(dir, "key.pub"), ...files.map((f) => join(dir, f))]);
    expect(verify.code, verify.stdout + verify.stderr).toBe(0);
    expect(verify.stdout).toContain("3 chain(s) (the main log and 2 worker chain(s))");
    const read = async (name: string) =>
      (await readFile(join(dir, name), "utf8"))
        .split("\n")
        .filter((l) => l !== "")
        .map((l) => JSON.parse(l) as { type: string; seq: number; reason?: string; decision_id?: string; event?: string; worker_chain?: string });
    const decisions: string[] = [];
    for (const name of ["audit.w1.log", "audit.w2.log"]) {
      const records = await read(name);
      expect(records.map((r) => r.seq)).toEqual(records.map((_, i) => i + 1)); // each chain: seq 1..n with no gap
      expect(records[0]).toMatchObject({ type: "checkpoint", reason: "start", worker_chain: name.slice(6, 8) });
      expect(records.at(-1)).toMatchObject({ type: "checkpoint", reason: "shutdown", worker_chain: name.slice(6, 8) });
      decisions.push(...records.filter((r) => r.type === "decision").map((r) => r.decision_id!));
      expect(records.some((r) => r.type === "decision")).toBe(true); // both workers decided some
    }
    // Every Check's record, in exactly one chain.
    expect(decisions.sort()).toEqual([...decisionIds].sort());
    const main = await read("audit.log");
    expect(main.filter((r) => r.type === "decision")).toEqual([]);
    expect(main.filter((r) => r.type === "roster").map((r) => r.event)).toEqual(["start", "opened", "opened", "stop"]);
    expect(main.at(-1)).toMatchObject({ type: "checkpoint", reason: "shutdown" });
  });
});

describe("serve --workers 2 that cannot start", () => {
  it("exits 1 with one clear line when the workers cannot listen, leaving no process behind", async () => {
    const { createServer } = await import("node:net");
    const blocker = createServer();
    await new Promise<void>((resolve) => blocker.listen(0, "127.0.0.1", resolve));
    const port = (blocker.address() as { port: number }).port;
    try {
      const dir = await mkdtemp(join(tmpdir(), "hopwarden-workers-busy-"));
      const policy = join(dir, "policy.yaml");
      await writeFile(policy, testPolicyYaml());
      const result = await runCli(["serve", "--policy", policy, "--listen", `127.0.0.1:${port}`, "--admin-listen", "off", "--workers", "2"], { timeoutMs: 20_000 });
      expect(result.code).toBe(1);
      expect(result.stderr).toMatch(/cannot start: worker \d+ exited during start-up/);
      expect(result.stderr).not.toMatch(/\n\s+at /);
      await rm(dir, { recursive: true, force: true });
    } finally {
      blocker.close();
    }
  });
});

describe("serve --workers 2 --config with cache bounds", () => {
  /** A series' value on the primary's /metrics, where each is the sum over the workers. */
  const gauge = (text: string, name: string): number => {
    const found = new RegExp(`^${name}(?:\\{[^}]*\\})? (\\d+)$`, "m").exec(text);
    if (found === null) throw new Error(`${name} is not on /metrics:\n${text}`);
    return Number(found[1]);
  };

  it("gives every worker the cache: sizes of --config, so no worker holds more entries than configured", async () => {
    const dir = await mkdtemp(join(tmpdir(), "hopwarden-workers-cache-"));
    const policy = join(dir, "policy.yaml");
    const config = join(dir, "config.yaml");
    await writeFile(policy, testPolicyYaml());
    await writeFile(config, "cache:\n  hopDecisions: 3\n  certificates: 2\n");
    const cached = await startServe(["--policy", policy, "--config", config, "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0", "--workers", "2"]);
    try {
      // Eight callers with their own certificates, each on its own path: eight certificates and nine hop decisions to cache.
      const ca = await createCertificateAuthority();
      const requests = await Promise.all(
        Array.from({ length: 8 }, async (_, i) => {
          const cert = await ca.issue({ name: `research-${i}`, uris: [spiffe("research")] });
          return checkRequest({
            certificate: cert.urlEncodedPem,
            callee: "db",
            path: `/schema/t${i}`,
            headers: { "x-agent-subject": spiffe("research"), "x-agent-on-behalf-of": PERSON, "x-agent-delegation-chain": chain("orchestrator", "research") },
          });
        }),
      );
      const answers = await Promise.all(requests.map((r) => freshClient(cached.grpc).check(r)));
      expect(answers.map((a) => outcome(a).code)).toEqual(requests.map(() => 0));

      const text = await (await fetch(`http://${cached.admin}/metrics`)).text();
      // Merged, the gauges add up over the two workers: at most twice the per-worker bound, where the defaults would hold all 8 and 9.
      expect(gauge(text, "hopwarden_certificate_cache_entries")).toBeGreaterThan(0);
      expect(gauge(text, "hopwarden_certificate_cache_entries")).toBeLessThanOrEqual(2 * 2);
      expect(gauge(text, "hopwarden_hop_cache_entries")).toBeGreaterThan(0);
      expect(gauge(text, "hopwarden_hop_cache_entries")).toBeLessThanOrEqual(2 * 3);
      expect(gauge(text, "hopwarden_certificate_cache_misses_total")).toBeGreaterThanOrEqual(8);
    } finally {
      expect(await stopServe(cached, 15_000)).toEqual({ code: 0, signal: null });
      await rm(dir, { recursive: true, force: true });
    }
  }, 60_000);
});
