import { appendFile, copyFile, rename } from "node:fs/promises";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { auditKeyPair, readLines, sampleDecision, tempDir, type TempDir } from "../../../test/support/audit-fixtures.js";
import { AuditLogConfigError, AuditLogWriter } from "./audit-log-writer.js";
import { verifyAuditLog } from "./audit-log-verifier.js";
import { chainFromFileName, parseRosterRecord, rosterRecordJson, workerChainPath } from "./audit-roster.js";

const { privateKey, publicKey } = auditKeyPair();
const CONTEXT = { latencyMs: 1 };

let dir: TempDir;
let main: string;
beforeEach(async () => {
  dir = await tempDir();
  main = join(dir.path, "audit.log");
});
afterEach(() => dir.remove());

const parse = async (file: string) => (await readLines(file)).map((l) => JSON.parse(l) as Record<string, unknown>);

/** One --workers run in-process: the main log's roster and `workers` worker chains with `records` decisions each. */
async function workersRun(workers: number, records: number): Promise<void> {
  const primary = await AuditLogWriter.open({ path: main, privateKey, flushDelayMs: 1 });
  const run = `run-${Math.random()}`;
  const chains = Array.from({ length: workers }, (_, i) => ({ chain: `w${i + 1}`, file: `audit.w${i + 1}.log` }));
  primary.appendRoster(rosterRecordJson({ event: "start", time: new Date().toISOString(), run, chains }));
  const ends = [];
  for (const c of chains) {
    const writer = await AuditLogWriter.open({ path: workerChainPath(main, c.chain), privateKey, chain: c.chain, flushDelayMs: 1 });
    primary.appendRoster(rosterRecordJson({ event: "opened", time: new Date().toISOString(), run, chain: c.chain, file: c.file, head: writer.head() }));
    for (let i = 0; i < records; i++) writer.enqueue(sampleDecision(), CONTEXT);
    await writer.close();
    ends.push({ ...c, head: writer.head() });
  }
  primary.appendRoster(rosterRecordJson({ event: "stop", time: new Date().toISOString(), run, chains: ends }));
  await primary.close();
}

const allFiles = () => [main, join(dir.path, "audit.w1.log"), join(dir.path, "audit.w2.log")];

describe("worker chain files", () => {
  it("are named after the main log, with or without an extension, and recognised by name", () => {
    expect(workerChainPath("/var/log/hopwarden/audit.log", "w1")).toBe("/var/log/hopwarden/audit.w1.log");
    expect(workerChainPath("/var/log/audit", "w12")).toBe("/var/log/audit.w12");
    expect(chainFromFileName("/x/audit.w3.log")).toBe("w3");
    expect(chainFromFileName("/x/audit.w3.log.000000000146")).toBe("w3");
    expect(chainFromFileName("/x/audit.w3")).toBe("w3");
    expect(chainFromFileName("/x/audit.log.000000000146")).toBe("");
    expect(chainFromFileName("/x/audit.log")).toBe("");
  });
});

describe("AuditLogWriter on a worker's chain", () => {
  it("has its start checkpoint on disk when open() returns, and names its chain in every signed line", async () => {
    const path = workerChainPath(main, "w2");
    const writer = await AuditLogWriter.open({ path, privateKey, chain: "w2", flushDelayMs: 1, checkpointEveryRecords: 2 });
    expect(await parse(path)).toEqual([expect.objectContaining({ type: "checkpoint", seq: 1, reason: "start", worker_chain: "w2" })]);
    expect(writer.head().seq).toBe(1);
    for (let i = 0; i < 3; i++) writer.enqueue(sampleDecision(), CONTEXT);
    await writer.close();
    const lines = await parse(path);
    expect(lines.map((l) => l["type"])).toEqual(["checkpoint", "decision", "decision", "checkpoint", "decision", "checkpoint"]);
    for (const l of lines) if (l["type"] === "checkpoint") expect(l["worker_chain"]).toBe("w2");
    // A decision's `chain` stays the delegation chain.
    for (const l of lines) if (l["type"] === "decision") expect(Array.isArray(l["chain"])).toBe(true);
  });

  it("does not take another chain's signed lines as its own: opened on w1's file as w2, it writes a recovery record", async () => {
    const w1 = workerChainPath(main, "w1");
    const first = await AuditLogWriter.open({ path: w1, privateKey, chain: "w1", flushDelayMs: 1 });
    first.enqueue(sampleDecision(), CONTEXT);
    await first.close();
    const second = await AuditLogWriter.open({ path: w1, privateKey, chain: "w2", flushDelayMs: 1 });
    await second.close();
    const lines = await parse(w1);
    expect(lines[3]).toMatchObject({ type: "recovery", seq: 1, worker_chain: "w2", resumed_after: null });
  });

  it("refuses a chain name that is not w1..w9999", async () => {
    await expect(AuditLogWriter.open({ path: main, privateKey, chain: "../x" })).rejects.toThrow(AuditLogConfigError);
  });
});

describe("audit verify across the worker chains and the roster", () => {
  it("verifies the main log and every worker chain, each on its own, whatever order the files come in", async () => {
    await workersRun(2, 3);
    await workersRun(2, 2);
    const report = await verifyAuditLog([...allFiles()].reverse(), publicKey);
    expect(report).toMatchObject({ ok: true, problems: [], uncovered: [], records: 10 });
    expect(report.chains.map((c) => [c.chain, c.records])).toEqual([
      ["", 0],
      ["w1", 5],
      ["w2", 5],
    ]);
  });

  it("finds a worker chain's files by what their signed lines say, even renamed", async () => {
    await workersRun(2, 3);
    await rename(join(dir.path, "audit.w2.log"), join(dir.path, "archived-second.log"));
    const report = await verifyAuditLog([main, join(dir.path, "audit.w1.log"), join(dir.path, "archived-second.log")], publicKey);
    expect(report.ok).toBe(true);
    expect(report.chains.map((c) => c.chain)).toEqual(["", "w1", "w2"]);
  });

  it("a chain's lines pasted into another chain: that chain fails at the pasted line", async () => {
    await workersRun(2, 3);
    const w1 = await readLines(join(dir.path, "audit.w1.log"));
    await appendFile(join(dir.path, "audit.w2.log"), `${w1[1]}\n`);
    const report = await verifyAuditLog(allFiles(), publicKey);
    expect(report.ok).toBe(false);
    expect(report.problems[0]).toMatchObject({ file: join(dir.path, "audit.w2.log"), line: 6 });
  });

  it("a worker chain the roster does not name: exit 1 (a stray chain is not part of this log)", async () => {
    await workersRun(1, 2);
    const stray = join(dir.path, "audit.w2.log");
    const other = await AuditLogWriter.open({ path: stray, privateKey, chain: "w2", flushDelayMs: 1 });
    other.enqueue(sampleDecision(), CONTEXT);
    await other.close();
    const report = await verifyAuditLog(allFiles(), publicKey);
    expect(report.problems).toEqual([expect.objectContaining({ file: stray, line: 1, message: expect.stringContaining("no roster record of the main log names it") as unknown })]);
  });

  it("a worker chain replaced by an older copy of itself: the roster's stop record catches it", async () => {
    await workersRun(2, 2);
    await copyFile(join(dir.path, "audit.w1.log"), join(dir.path, "w1-after-first-run"));
    await workersRun(2, 2);
    await copyFile(join(dir.path, "w1-after-first-run"), join(dir.path, "audit.w1.log"));
    const report = await verifyAuditLog(allFiles(), publicKey);
    expect(report.ok).toBe(false);
    expect(report.problems).toHaveLength(1);
    expect(report.problems[0]!.message).toMatch(/^roster: worker chain w1 \(audit\.w1\.log\) stood at seq 5, .* when its worker opened it in run .*, but that chain holds no such line: it was cut back or rewritten$/);
  });
});

describe("roster records", () => {
  it("round-trip, and a malformed one says what is wrong", () => {
    const head = { seq: 3, hash: "a".repeat(64) };
    const stop = rosterRecordJson({ event: "stop", time: "t", run: "r", chains: [{ chain: "w1", file: "audit.w1.log", head }, { chain: "w2", file: "audit.w2.log", head: null }] });
    expect(parseRosterRecord(JSON.parse(JSON.stringify(stop)) as Record<string, unknown>)).toEqual({
      event: "stop",
      time: "t",
      run: "r",
      chains: [
        { chain: "w1", file: "audit.w1.log", head },
        { chain: "w2", file: "audit.w2.log", head: null },
      ],
    });
    expect(parseRosterRecord({ event: "opened", run: "r", worker_chain: "w1", file: "f", head: { seq: 0, hash: "x" } })).toBe("roster: head: seq must be a positive integer");
    expect(parseRosterRecord({ event: "start", run: "r", worker_chains: [{ worker_chain: "main", file: "f" }] })).toBe('roster: worker_chains[0]: worker_chain must be "w1" to "w9999"');
    expect(parseRosterRecord({ event: "reset", run: "r" })).toBe('roster: event must be "start", "opened" or "stop"');
  });
});
