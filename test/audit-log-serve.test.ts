// The signed audit log through the running service, black box (the built
// CLI: `hopwarden serve --audit-log --audit-key`, then `hopwarden audit
// verify`), for the two findings of issue 10 about it:
// - finding 2: someone who can write the log files but has no key replaces or
//   extends the history while hopwarden is stopped; the restart must not sign
//   it, and verify must say which lines no signature covers (exit 2);
// - finding 9: a request with huge headers must not make a huge record.

import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { appendFile, mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { formatDecisionLine, hashLine } from "../src/adapters/audit/audit-chain.js";
import type { AuditRecord } from "../src/adapters/audit/audit-record.js";
import { CheckClient, outcome } from "./support/check-client.js";
import { killAllServes, requireBuiltCli, runCli, startServe, stopServe, type ServeProcess } from "./support/cli-process.js";
import { OwnConnectionCheckClient, researchCallsDb } from "./support/hop-requests.js";
import { testPolicyYaml } from "./support/policies.js";

let dir: string;
let log: string;
let key: string;
let pub: string;
let policy: string;
const clients: { close(): void }[] = [];

beforeAll(async () => {
  requireBuiltCli();
  const root = await mkdtemp(join(tmpdir(), "hopwarden-audit-serve-"));
  dir = root;
  const keygen = await runCli(["audit", "keygen", "--out", join(root, "audit")]);
  expect(keygen.code, keygen.stderr).toBe(0);
  key = join(root, "audit.key");
  pub = join(root, "audit.pub");
  policy = join(root, "policy.yaml");
  await writeFile(policy, testPolicyYaml({ version: "audit-serve-1" }));
});

let run = 0;
beforeEach(() => {
  log = join(dir, `run-${++run}`, "audit.log");
});

afterEach(async () => {
  for (const c of clients.splice(0)) c.close();
  await killAllServes();
});

afterAll(async () => {
  if (dir !== undefined) await rm(dir, { recursive: true, force: true });
});

async function serve(extra: readonly string[] = []): Promise<ServeProcess> {
  return startServe(["--policy", policy, "--listen", "127.0.0.1:0", "--admin-listen", "off", "--audit-log", log, "--audit-key", key, ...extra]);
}

/** Runs the service, makes `checks` allowed Checks (over 4 connections, so that --workers spreads them), stops it cleanly; returns their decision ids. */
async function serveAndStop(checks: number, extra: readonly string[] = []): Promise<{ ids: string[]; stderr: string }> {
  const service = await serve(extra);
  const connections = [0, 1, 2, 3].map(() => new OwnConnectionCheckClient(service.grpc));
  clients.push(...connections);
  const ids: string[] = [];
  for (let i = 0; i < checks; i++) {
    const o = outcome(await connections[i % connections.length]!.check(researchCallsDb()));
    expect(o.code).toBe(0);
    ids.push(o.headers["x-authz-decision-id"]!);
  }
  expect((await stopServe(service)).code).toBe(0);
  return { ids, stderr: service.stderr() };
}

/** Verifies every file of the run's log: the main log, and with --workers the worker chains. */
const verify = async (...extra: string[]) => {
  const files = (await readdir(dirname(log))).filter((n) => n.startsWith("audit")).map((n) => join(dirname(log), n));
  return runCli(["audit", "verify", "--public-key", pub, ...extra, ...files]);
};
const lines = async (file = log): Promise<string[]> => (await readFile(file, "utf8")).split("\n").filter((l) => l !== "");

/** A decision line of any chain of the run (worker 1 may have decided none). */
async function firstDecisionLine(): Promise<string> {
  for (const name of (await readdir(dirname(log))).filter((n) => n.startsWith("audit"))) {
    const line = (await lines(join(dirname(log), name))).find((l) => l.includes('"type":"decision"'));
    if (line !== undefined) return line;
  }
  throw new Error("no decision line in the run's log");
}

/** What someone without the key can write: decision records for mallory, shaped like `genuineLine`'s, chained from `head`. */
function forgedRecords(head: { seq: number; hash: string }, count: number, genuineLine: string): string[] {
  const { type: _type, seq: _seq, prev: _prev, ...template } = JSON.parse(genuineLine) as AuditRecord & { type: string; seq: number; prev: string };
  const out: string[] = [];
  for (let i = 0; i < count; i++) {
    const line = formatDecisionLine({ ...template, decision_id: `01JFORGED${String(i).padStart(17, "0")}`, on_behalf_of: "mallory@example.com" }, head);
    out.push(line);
    head = { seq: head.seq + 1, hash: hashLine(line) };
  }
  return out;
}

describe("finding 2: audit log laundering across a restart (SPEC 6: a restart never signs what it did not write)", () => {
  it("history replaced while stopped: the restart does not sign it, and verify exits 2 naming the forged lines", async () => {
    const first = await serveAndStop(3);
    expect((await verify()).code).toBe(0);

    // Without the key: rewrite the history as mallory's, re-chained from genesis so every hash link holds.
    const genuine = await lines();
    const forged = forgedRecords({ seq: 0, hash: "0".repeat(64) }, 3, genuine[0]!);
    await writeFile(log, forged.map((l) => `${l}\n`).join(""));

    const second = await serveAndStop(2);
    const result = await verify();
    // Before the fix the restart chained on from the forged last line, its checkpoint signed the forgery, and verify said intact (exit 0).
    expect(result.code, result.stdout + result.stderr).toBe(2);
    expect(second.stderr).toContain('"event":"audit_recovery"');
    expect(result.stderr).toContain(`${log}:1-3: not covered by any signature`);
    expect(result.stdout).toContain("audit log intact in what is signed, not fully covered");

    const after = await lines();
    expect(after.slice(0, 3)).toEqual(forged);
    const recovery = JSON.parse(after[3]!) as Record<string, unknown>;
    expect(recovery).toMatchObject({ type: "recovery", seq: 1, prev: "0".repeat(64), resumed_after: null, unverified: [{ file: "audit.log", first_line: 1, last_line: 3 }] });
    // The genuine decisions of the first run are gone from the file; none of the new run's lines chain to the forgery.
    const records = after.map((l) => JSON.parse(l) as { type: string; decision_id?: string; prev: string });
    for (const id of first.ids) expect(records.some((r) => r.decision_id === id)).toBe(false);
    for (const id of second.ids) expect(records.some((r) => r.decision_id === id)).toBe(true);
    expect(records.slice(4).every((r) => !forged.map((f) => hashLine(f)).includes(r.prev))).toBe(true);
  });

  it.each([
    ["one process", [], () => log],
    ["--workers 2 (each worker's chain: worker 1's)", ["--workers", "2"], () => join(dirname(log), "audit.w1.log")],
  ])("records appended while stopped: the restart names them in a signed recovery record, verify exits 2 (%s)", async (_name, extra, chainFile) => {
    const file = chainFile();
    await serveAndStop(4, extra);
    const genuine = await lines(file);
    const last = genuine.at(-1)!;
    const head = { seq: (JSON.parse(last) as { seq: number }).seq, hash: hashLine(last) };
    const template = genuine.find((l) => l.includes('"type":"decision"')) ?? (await firstDecisionLine());
    await appendFile(file, forgedRecords(head, 2, template).map((l) => `${l}\n`).join(""));
    const first = genuine.length + 1;

    await serveAndStop(1, extra);
    const result = await verify();
    expect(result.code, result.stdout + result.stderr).toBe(2);
    expect(result.stderr).toContain(`${file}:${first}-${first + 1}: not covered by any signature`);
    // Tampering in what is signed is still exit 1: edit a line the first run signed.
    const all = await lines(file);
    const edited = all.findIndex((l) => l.includes('"type":"decision"'));
    expect(edited).toBeGreaterThanOrEqual(0);
    all[edited] = all[edited]!.replace('"decision":"allow"', '"decision":"deny"');
    await writeFile(file, all.map((l) => `${l}\n`).join(""));
    const tampered = await verify();
    expect(tampered.code).toBe(1);
    expect(tampered.stderr).toContain(`${file}:${edited + 1}: record was altered`);
  });
});

describe("a log file that is not a regular file (a FIFO: opening one waited for a writer, forever)", () => {
  it("a FIFO among the rotated files: serve refuses to start and audit verify exits 3 (input error), each naming it, at once", async () => {
    await serveAndStop(1);
    const fifo = `${log}.000000000001`;
    execFileSync("mkfifo", [fifo]);
    const refusal = `${fifo}: is a FIFO (named pipe), not a regular file`;

    const started = await runCli(["serve", "--policy", policy, "--listen", "127.0.0.1:0", "--admin-listen", "off", "--audit-log", log, "--audit-key", key], { timeoutMs: 10_000 });
    // Before the fix the resume's open never returned: no exit, killed by runCli's timeout (code null).
    expect(started.code, started.stderr).toBe(1);
    expect(started.stderr).toContain(`hopwarden serve: cannot start: ${refusal}`);

    const verified = await verify();
    expect(verified.code, verified.stderr).toBe(3);
    expect(verified.stderr).toContain(`hopwarden audit: ${refusal}`);
  });
});

describe("finding 9: records bound attacker-supplied strings (SPEC 6)", () => {
  it("a Check with two 60 KiB headers no longer makes a ~120 KiB record", async () => {
    const onBehalfOf = `${"m".repeat(60 * 1024)}@example.com`;
    const path = `/query/${"p".repeat(60 * 1024)}`;
    const service = await serve();
    const client = new CheckClient(service.grpc);
    clients.push(client);
    const request = researchCallsDb({ "x-agent-on-behalf-of": onBehalfOf });
    request.attributes!.request!.http!.path = path;
    const o = outcome(await client.check(request));
    expect((await stopServe(service)).code).toBe(0);
    const id = o.code === 0 ? o.headers["x-authz-decision-id"] : (o.body?.["decision_id"] as string);

    const line = (await lines()).find((l) => l.includes(id!))!;
    expect(Buffer.byteLength(line)).toBeLessThan(6 * 1024);
    const record = JSON.parse(line) as AuditRecord;
    const sha256 = (text: string) => createHash("sha256").update(text).digest("hex");
    expect(record.on_behalf_of).toBe(`${onBehalfOf.slice(0, 1024)}…[truncated: ${onBehalfOf.length} bytes, sha256=${sha256(onBehalfOf)}]`);
    expect(record.path).toBe(`${path.slice(0, 1024)}…[truncated: ${path.length} bytes, sha256=${sha256(path)}]`);
    expect((await verify()).code).toBe(0);
  });
});
