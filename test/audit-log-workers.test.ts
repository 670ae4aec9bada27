// SPEC 7 with the signed audit log (issue 11): `serve --workers 2
// --audit-log … --audit-key …` (the built CLI) writes one signed chain per
// worker, and the main log keeps their roster, so that `audit verify` checks
// them together: every Check's record in exactly one chain, none missing;
// tampering in one chain, a chain deleted or cut back, or the main log left
// out is exit 1 naming the file and line; a worker that crashed is resumed in
// its own chain by its replacement, after a signed recovery record (SPEC 6),
// and verify exits 2 naming that chain's lines.

import { execFile } from "node:child_process";
import { copyFile, mkdir, mkdtemp, readdir, readFile, rm, truncate, unlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { outcome } from "./support/check-client.js";
import { eventually, killAllServes, requireBuiltCli, runCli, startServe, stopServe, type ServeProcess } from "./support/cli-process.js";
import { OwnConnectionCheckClient, researchCallsDb } from "./support/hop-requests.js";
import { testPolicyYaml } from "./support/policies.js";

const run = promisify(execFile);

let root: string;
let key: string;
let pub: string;
let policy: string;
const clients: OwnConnectionCheckClient[] = [];
const pids: number[] = [];

beforeAll(async () => {
  requireBuiltCli();
  root = await mkdtemp(join(tmpdir(), "hopwarden-audit-workers-"));
  const keygen = await runCli(["audit", "keygen", "--out", join(root, "audit")]);
  expect(keygen.code, keygen.stderr).toBe(0);
  key = join(root, "audit.key");
  pub = join(root, "audit.pub");
  policy = join(root, "policy.yaml");
  await writeFile(policy, testPolicyYaml({ version: "audit-workers-1" }));
});

afterEach(async () => {
  for (const c of clients.splice(0)) c.close();
  await killAllServes();
  for (const pid of pids.splice(0)) {
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      // already gone
    }
  }
});

afterAll(async () => {
  if (root !== undefined) await rm(root, { recursive: true, force: true });
});

let runs = 0;
async function newLogDir(): Promise<string> {
  const dir = join(root, `run-${++runs}`);
  await mkdir(dir);
  return dir;
}

async function serveWorkers(dir: string): Promise<ServeProcess> {
  const serve = await startServe(["--policy", policy, "--listen", "127.0.0.1:0", "--admin-listen", "off", "--workers", "2", "--audit-log", join(dir, "audit.log"), "--audit-key", key]);
  pids.push(...(await workerPids(serve.pid)));
  return serve;
}

async function workerPids(primary: number): Promise<number[]> {
  const out = await run("pgrep", ["-P", String(primary)]).catch(() => ({ stdout: "" }));
  return out.stdout
    .split("\n")
    .filter((l) => l.trim() !== "")
    .map(Number);
}

/** `count` allowed Checks spread over `connections` connections (the primary hands connections to the workers in turn); their decision ids. */
async function checks(serve: ServeProcess, count: number, connections = 4): Promise<string[]> {
  const own = Array.from({ length: connections }, () => new OwnConnectionCheckClient(serve.grpc));
  clients.push(...own);
  const ids = await Promise.all(
    Array.from({ length: count }, async (_, i) => {
      const o = outcome(await own[i % connections]!.check(researchCallsDb()));
      expect(o.code).toBe(0);
      return o.headers["x-authz-decision-id"]!;
    }),
  );
  return ids;
}

async function logFiles(dir: string): Promise<string[]> {
  return (await readdir(dir))
    .filter((n) => n.startsWith("audit"))
    .sort()
    .map((n) => join(dir, n));
}

const verify = async (files: readonly string[]) => runCli(["audit", "verify", "--public-key", pub, ...files]);

async function lines(file: string): Promise<string[]> {
  return (await readFile(file, "utf8")).split("\n").filter((l) => l !== "");
}

type Line = { type: string; seq: number; reason?: string; decision_id?: string; event?: string; worker_chain?: string };
const parsed = async (file: string): Promise<Line[]> => (await lines(file)).map((l) => JSON.parse(l) as Line);

describe("serve --workers 2 --audit-log: one signed chain per worker, verified together (SPEC 7)", () => {
  it("holds the record of every Check in exactly one chain, and verify exits 0", async () => {
    const dir = await newLogDir();
    const serve = await serveWorkers(dir);
    const ids = [...(await checks(serve, 300, 8)), ...(await checks(serve, 30, 1))];
    expect((await stopServe(serve, 15_000)).code).toBe(0);

    const files = await logFiles(dir);
    expect(files.map((f) => f.slice(dir.length + 1))).toEqual(["audit.log", "audit.w1.log", "audit.w2.log"]);
    const result = await verify(files);
    expect(result.code, result.stdout + result.stderr).toBe(0);
    const perChain = await Promise.all(files.slice(1).map(async (f) => (await parsed(f)).filter((r) => r.type === "decision").map((r) => r.decision_id!)));
    for (const chain of perChain) expect(chain.length).toBeGreaterThan(0);
    const all = perChain.flat();
    expect(new Set(all).size).toBe(all.length); // no record in two chains
    expect(all.sort()).toEqual([...ids].sort()); // none missing
  });

  it("a worker killed mid-run: its replacement resumes the same chain after a signed recovery record, and verify exits 2 naming that chain's lines", async () => {
    const dir = await newLogDir();
    const serve = await serveWorkers(dir);
    const before = await checks(serve, 40, 4);
    // On disk (the batching delay is 20 ms) but not yet signed (a checkpoint comes every 100 records or 1 s).
    await new Promise((resolve) => setTimeout(resolve, 150));
    const [victim] = await workerPids(serve.pid);
    process.kill(victim!, "SIGKILL");
    const resumed = await eventually(() => serve.stderr().includes('"event":"audit_recovery"'), 10_000);
    expect(resumed, serve.stderr()).toBe(true);
    await eventually(async () => (await workerPids(serve.pid)).length === 2, 10_000);
    pids.push(...(await workerPids(serve.pid)));
    const after = await checks(serve, 20, 4);
    expect((await stopServe(serve, 15_000)).code).toBe(0);

    const files = await logFiles(dir);
    const withRecovery: string[] = [];
    for (const f of files) if ((await parsed(f)).some((r) => r.type === "recovery")) withRecovery.push(f);
    expect(withRecovery).toHaveLength(1);
    const chainFile = withRecovery[0]!;
    expect(chainFile).toMatch(/audit\.w[12]\.log$/);
    const recovery = (await parsed(chainFile)).find((r) => r.type === "recovery")!;
    expect(recovery).toMatchObject({ reason: "unverified_lines", worker_chain: chainFile.endsWith("w1.log") ? "w1" : "w2" });

    const result = await verify(files);
    expect(result.code, result.stdout + result.stderr).toBe(2);
    expect(result.stderr).toMatch(new RegExp(`${chainFile.replace(/[.]/g, "\\.")}:\\d+(-\\d+)?: not covered by any signature: the writer could not verify these lines when it restarted`));
    // Every Check answered after the restart is recorded, in one chain only.
    const recorded = (await Promise.all(files.map(async (f) => (await parsed(f)).filter((r) => r.type === "decision").map((r) => r.decision_id!)))).flat();
    expect(new Set(recorded).size).toBe(recorded.length);
    for (const id of after) expect(recorded).toContain(id);
    // What the killed worker had written before the kill is there too, named by the recovery record as not covered.
    expect(before.filter((id) => recorded.includes(id)).length).toBeGreaterThan(0);
  });

  it("a worker chain whose file cannot be opened stops the start with a clear error", async () => {
    const dir = await newLogDir();
    await mkdir(join(dir, "audit.w2.log"));
    const result = await runCli(["serve", "--policy", policy, "--listen", "127.0.0.1:0", "--admin-listen", "off", "--workers", "2", "--audit-log", join(dir, "audit.log"), "--audit-key", key], {
      timeoutMs: 20_000,
    });
    expect(result.code).toBe(1);
    expect(result.stderr).toContain(`${join(dir, "audit.w2.log")}: is not a regular file`);
  });
});

describe("audit verify across the worker chains of two runs: what it detects", () => {
  let clean: string;

  beforeAll(async () => {
    clean = await newLogDir();
    for (let i = 0; i < 2; i++) {
      const serve = await serveWorkers(clean);
      await checks(serve, 24, 4);
      expect((await stopServe(serve, 15_000)).code).toBe(0);
      for (const c of clients.splice(0)) c.close();
    }
    const result = await verify(await logFiles(clean));
    expect(result.code, result.stdout + result.stderr).toBe(0);
  }, 60_000);

  /** A copy of the clean log to damage. */
  async function copy(): Promise<string> {
    const dir = await newLogDir();
    for (const f of await logFiles(clean)) await copyFile(f, join(dir, f.slice(clean.length + 1)));
    return dir;
  }

  it("a record edited in one chain: exit 1, naming that file and line", async () => {
    const dir = await copy();
    const file = join(dir, "audit.w2.log");
    const all = await lines(file);
    const at = all.findIndex((l) => l.includes('"type":"decision"'));
    all[at] = all[at]!.replace('"decision":"allow"', '"decision":"deny"');
    await writeFile(file, all.map((l) => `${l}\n`).join(""));
    const result = await verify(await logFiles(dir));
    expect(result.code).toBe(1);
    expect(result.stderr).toContain(`${file}:${at + 1}: record was altered`);
  });

  it("a whole worker chain deleted: exit 1, the roster in the main log names it", async () => {
    const dir = await copy();
    await unlink(join(dir, "audit.w1.log"));
    const result = await verify(await logFiles(dir));
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(new RegExp(`${join(dir, "audit.log").replace(/[.]/g, "\\.")}:\\d+: roster: worker chain w1 \\(audit\\.w1\\.log\\) stood at seq \\d+.*no file of that chain was given`));
  });

  it("the main log left out (or deleted): exit 1, each worker chain says its roster is missing", async () => {
    const dir = await copy();
    const result = await verify((await logFiles(dir)).filter((f) => !f.endsWith("audit.log")));
    expect(result.code).toBe(1);
    expect(result.stderr).toContain(`${join(dir, "audit.w1.log")}:1: worker chain w1: the main log, whose roster names the worker chains, was not given`);
  });

  it("a chain cut back to the end of the first run (a shutdown checkpoint, so the chain alone looks whole): exit 1 through the roster", async () => {
    const dir = await copy();
    const file = join(dir, "audit.w2.log");
    const all = await lines(file);
    const firstEnd = all.findIndex((l) => l.includes('"reason":"shutdown"'));
    expect(firstEnd).toBeLessThan(all.length - 1);
    await truncate(file, Buffer.byteLength(all.slice(0, firstEnd + 1).map((l) => `${l}\n`).join("")));
    // The chain alone is whole: it ends with a shutdown checkpoint (only its roster is missing).
    const alone = await verify([file]);
    expect(alone.stderr.split("\n").filter((l) => l.startsWith(file))).toEqual([`${file}:1: worker chain w2: the main log, whose roster names the worker chains, was not given: pass its files too (the --audit-log file and its rotated files), or it was deleted`]);
    const result = await verify(await logFiles(dir));
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/roster: worker chain w2 \(audit\.w2\.log\) stood at seq \d+, line hash [0-9a-f]{16}…, when (its worker opened it in run|run) .* but that chain holds no such line: it was cut back or rewritten/);
  });

  it("a chain's file passed off as another chain's: exit 1 (its signed lines name their chain)", async () => {
    const dir = await copy();
    await copyFile(join(dir, "audit.w1.log"), join(dir, "audit.w2.log"));
    const result = await verify(await logFiles(dir));
    expect(result.code).toBe(1);
    // Both files now hold chain w1 (they are sorted into it by what their signed lines say), so one of them cannot fit the chain, and w2 is missing.
    expect(result.stderr).toContain(`${join(dir, "audit.w1.log")}:`);
    expect(result.stderr).toMatch(/\(or the files are not one log\)|duplicates/);
    expect(result.stderr).toMatch(/roster: worker chain w2 \(audit\.w2\.log\) .* no file of that chain was given/);
  });
});
