// SPEC 6, "a restart never signs what it did not write" (finding 2 of issue
// 10): a writer that starts on an existing log resumes it only from the last
// line its key signed; whatever follows is named in a signed recovery record
// and never covered by a new signature.

import { appendFile, readdir, readFile, rm, truncate, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { auditKeyPair, captureLogger, readLines, sampleDecision, tempDir, waitFor, type TempDir } from "../../../test/support/audit-fixtures.js";
import { auditKeyId, formatCheckpointLine, formatDecisionLine, hashLine, signedLineValid } from "./audit-chain.js";
import { readLogLines } from "./audit-log-files.js";
import { verifyAuditLog } from "./audit-log-verifier.js";
import { AuditLogConfigError, AuditLogWriter, type AuditLogWriterOptions } from "./audit-log-writer.js";
import { buildAuditRecord } from "./audit-record.js";

const { privateKey, publicKey } = auditKeyPair();
const record = () => buildAuditRecord(sampleDecision(), { latencyMs: 1 });
const CONTEXT = { latencyMs: 1 };

let dir: TempDir;
let file: string;
beforeEach(async () => {
  dir = await tempDir();
  file = join(dir.path, "audit.log");
});
afterEach(() => dir.remove());

function openWriter(options: Partial<AuditLogWriterOptions> = {}): Promise<AuditLogWriter> {
  return AuditLogWriter.open({ path: file, privateKey, flushDelayMs: 1, ...options });
}

/** A clean run: `n` records and the shutdown checkpoint. */
async function cleanRun(n: number, options: Partial<AuditLogWriterOptions> = {}): Promise<void> {
  const writer = await openWriter(options);
  for (let i = 0; i < n; i++) writer.enqueue(sampleDecision(), CONTEXT);
  await writer.close();
}

/** A run that dies without closing: `n` records written, signed every `every` records, never a shutdown checkpoint. */
async function crashedRun(n: number, every: number): Promise<void> {
  const writer = await openWriter({ checkpointEveryRecords: every, checkpointEveryMs: 3_600_000 });
  for (let i = 0; i < n; i++) writer.enqueue(sampleDecision(), CONTEXT);
  await waitFor(() => writer.stats().written === n);
}

type Line = { type: string; seq: number; prev: string; reason?: string; [key: string]: unknown };
const parsedLines = async (path = file): Promise<Line[]> => (await readLines(path)).map((l) => JSON.parse(l) as Line);
const kinds = async (path = file): Promise<string[]> =>
  (await parsedLines(path)).map((l) => (l.type === "decision" ? "d" : l.type === "checkpoint" ? `cp:${l.reason ?? ""}` : `recovery:${l.reason ?? ""}`));

/** Lines an attacker without the key appends: records chained on from the file's last line, and a checkpoint signed by another key under our key id. */
async function appendForgeries(count: number): Promise<void> {
  const lines = await readLines(file);
  let head = { seq: (JSON.parse(lines.at(-1)!) as Line).seq, hash: hashLine(lines.at(-1)!) };
  const forged: string[] = [];
  for (let i = 0; i < count; i++) {
    const line = formatDecisionLine(buildAuditRecord(sampleDecision({ onBehalfOf: "mallory@example.com" }), { latencyMs: 1 }), head);
    forged.push(line);
    head = { seq: head.seq + 1, hash: hashLine(line) };
  }
  const fake = formatCheckpointLine(head, { time: new Date().toISOString(), reason: "shutdown", keyId: auditKeyId(privateKey) }, auditKeyPair().privateKey);
  forged.push(fake);
  await appendFile(file, forged.map((l) => `${l}\n`).join(""));
}

const allFiles = async () => (await readdir(dir.path)).map((n) => join(dir.path, n));

describe("finding 2: a restart never signs what it did not write (SPEC 6)", () => {
  it("after a crash, names the unsigned tail in a signed recovery record chained to the last checkpoint, and never signs the tail", async () => {
    await crashedRun(3, 2);
    expect(await kinds()).toEqual(["d", "d", "cp:interval", "d"]);
    const log = captureLogger();
    const writer = await openWriter({ logger: log.logger });
    writer.enqueue(sampleDecision(), CONTEXT);
    await writer.close();

    expect(await kinds()).toEqual(["d", "d", "cp:interval", "d", "recovery:unverified_lines", "d", "cp:shutdown"]);
    const raw = await readLines(file);
    const recovery = JSON.parse(raw[4]!) as Line;
    expect(recovery).toMatchObject({
      seq: 4,
      prev: hashLine(raw[2]!),
      resumed_after: { seq: 3, file: "audit.log", line: 3 },
      unverified: [{ file: "audit.log", first_line: 4, last_line: 4, bytes: Buffer.byteLength(raw[3]!) + 1, lines_sha256: expect.stringMatching(/^[0-9a-f]{64}$/) as unknown }],
      key_id: auditKeyId(privateKey),
    });
    expect(signedLineValid(raw[4]!, publicKey)).toBe(true);
    // The new segment chains from the checkpoint, not from the tail.
    expect(JSON.parse(raw[5]!)).toMatchObject({ seq: 5, prev: hashLine(raw[4]!) });
    expect(log.events("audit_recovery")[0]).toMatchObject({ level: "error", reason: "unverified_lines" });

    const report = await verifyAuditLog([file], publicKey);
    expect(report).toMatchObject({ ok: true, problem: undefined, recoveries: 1 });
    expect(report.uncovered).toEqual([{ file, firstLine: 4, lastLine: 4, message: expect.stringContaining("not covered by any signature") as unknown }]);
  });

  it("lines appended while it was stopped (chained, with a fake checkpoint) are named and stay uncovered", async () => {
    await cleanRun(2);
    await appendForgeries(3);
    await cleanRun(1);
    expect(await kinds()).toEqual(["d", "d", "cp:shutdown", "d", "d", "d", "cp:shutdown", "recovery:unverified_lines", "d", "cp:shutdown"]);
    const raw = await readLines(file);
    expect(JSON.parse(raw[7]!)).toMatchObject({ seq: 4, prev: hashLine(raw[2]!), unverified: [{ first_line: 4, last_line: 7 }] });
    const report = await verifyAuditLog([file], publicKey);
    expect(report).toMatchObject({ ok: true, uncovered: [{ file, firstLine: 4, lastLine: 7 }] });
  });

  it("a log with no line signed by this key is not resumed: the new segment starts over from genesis and names every line", async () => {
    await cleanRun(2);
    // Replace the history: re-chained from genesis, with the checkpoint re-signed by another key.
    const original = await readLines(file);
    await writeFile(file, "");
    let head = { seq: 0, hash: "0".repeat(64) };
    const forged: string[] = [];
    for (let i = 0; i < original.length - 1; i++) {
      const line = formatDecisionLine(buildAuditRecord(sampleDecision({ onBehalfOf: "mallory@example.com" }), { latencyMs: 1 }), head);
      forged.push(line);
      head = { seq: head.seq + 1, hash: hashLine(line) };
    }
    forged.push(formatCheckpointLine(head, { time: new Date().toISOString(), reason: "shutdown", keyId: auditKeyId(privateKey) }, auditKeyPair().privateKey));
    await writeFile(file, forged.map((l) => `${l}\n`).join(""));
    await cleanRun(1);
    const lines = await parsedLines();
    expect(lines[3]).toMatchObject({ type: "recovery", seq: 1, prev: "0".repeat(64), resumed_after: null, unverified: [{ first_line: 1, last_line: 3 }] });
    const report = await verifyAuditLog([file], publicKey);
    expect(report).toMatchObject({ ok: true, uncovered: [{ file, firstLine: 1, lastLine: 3 }] });
  });

  it("keeps a crash fragment (no newline) as its own line and names it", async () => {
    await cleanRun(1);
    await appendFile(file, '{"type":"decision","seq":3,"pr');
    await cleanRun(1);
    const raw = await readLines(file);
    expect(raw[2]).toBe('{"type":"decision","seq":3,"pr');
    expect(JSON.parse(raw[3]!)).toMatchObject({ type: "recovery", seq: 3, unverified: [{ first_line: 3, last_line: 3, bytes: 31 }] });
    expect((await verifyAuditLog([file], publicKey)).uncovered).toEqual([expect.objectContaining({ file, firstLine: 3, lastLine: 3 })]);
  });

  it("streams a huge crash tail (megabytes without a newline): hashed, never held whole", async () => {
    await cleanRun(1);
    const junk = Buffer.alloc(6 * 1024 * 1024, 0x41);
    await appendFile(file, junk);
    await cleanRun(1);
    const report = await verifyAuditLog([file], publicKey);
    expect(report).toMatchObject({ ok: true, uncovered: [{ file, firstLine: 3, lastLine: 3 }] });
    const recovery = (await readLines(file))[3]!;
    expect(JSON.parse(recovery)).toMatchObject({ type: "recovery", unverified: [{ bytes: junk.length + 1 }] });
    // The line reader keeps no more than its bound of a line it cannot use.
    const lines = [];
    for await (const line of readLogLines([file], 1024)) lines.push(line);
    expect(lines[2]).toMatchObject({ raw: undefined, bytes: junk.length, complete: true });
  });

  it("an end without a shutdown checkpoint (a crash after a checkpoint) is stated in a recovery record: records may be missing", async () => {
    await crashedRun(2, 1);
    expect(await kinds()).toEqual(["d", "cp:interval", "d", "cp:interval"]);
    await cleanRun(1);
    expect(await kinds()).toEqual(["d", "cp:interval", "d", "cp:interval", "recovery:no_shutdown_checkpoint", "d", "cp:shutdown"]);
    const report = await verifyAuditLog([file], publicKey);
    expect(report.ok).toBe(true);
    expect(report.uncovered).toEqual([{ file, firstLine: 5, lastLine: 5, message: expect.stringContaining("records written after it may be missing") as unknown }]);
  });

  it("a log cut back to an earlier checkpoint while stopped is not laundered by the restart", async () => {
    await cleanRun(4, { checkpointEveryRecords: 1 });
    const lines = await readLines(file);
    await writeFile(file, lines.slice(0, 4).map((l) => `${l}\n`).join(""));
    await cleanRun(1);
    const report = await verifyAuditLog([file], publicKey);
    expect(report.ok).toBe(true);
    expect(report.uncovered).toHaveLength(1);
    expect(report.uncovered[0]!.message).toContain("may be missing");
  });

  it("a crash tail that lies in the newest rotated file and the active file is named per file", async () => {
    await cleanRun(3, { rotateBytes: 1500 });
    const rotated = (await allFiles()).filter((f) => f !== file).sort();
    const newest = rotated.at(-1)!;
    // A crash right after a rotation left the active file empty; someone then appended to the rotated file and to the active file.
    await truncate(file, 0);
    const line = (await readLines(newest)).at(-1)!;
    await appendFile(newest, `${formatDecisionLine(record(), { seq: (JSON.parse(line) as Line).seq, hash: hashLine(line) })}\n`);
    await appendFile(file, "junk\nmore junk\n");
    await cleanRun(1, { rotateBytes: 0 });
    const recovery = JSON.parse((await readLines(file))[2]!) as Line;
    expect(recovery["unverified"]).toEqual([
      expect.objectContaining({ file: newest.split("/").at(-1), last_line: (await readLines(newest)).length }),
      expect.objectContaining({ file: "audit.log", first_line: 1, last_line: 2 }),
    ]);
    const report = await verifyAuditLog(await allFiles(), publicKey);
    expect(report.ok).toBe(true);
    expect(report.uncovered.map((g) => g.file)).toEqual([newest, file]);
  });

  it("deleting the newest files while stopped: the restart says records may be missing after the last checkpoint left", async () => {
    await cleanRun(6, { rotateBytes: 1500 });
    const rotated = (await allFiles()).filter((f) => f !== file).sort();
    expect(rotated.length).toBeGreaterThanOrEqual(2);
    await rm(file);
    await rm(rotated.at(-1)!);
    await cleanRun(1, { rotateBytes: 0 });
    expect((await parsedLines())[0]).toMatchObject({ type: "recovery", reason: "no_shutdown_checkpoint" });
    const report = await verifyAuditLog(await allFiles(), publicKey);
    expect(report.ok).toBe(true);
    expect(report.uncovered[0]!.message).toContain("may be missing");
  });

  it("an edit before the last checkpoint: resumes from that checkpoint and logs the break; verify still fails at the edit", async () => {
    await cleanRun(3, { checkpointEveryRecords: 2 });
    const lines = await readLines(file);
    lines[0] = lines[0]!.replace('"decision":"allow"', '"decision":"deny"');
    await writeFile(file, lines.map((l) => `${l}\n`).join(""));
    const log = captureLogger();
    await cleanRun(1, { logger: log.logger });
    expect(log.events("audit_history_broken")[0]).toMatchObject({ file, line: 1 });
    expect(log.events("audit_recovery")).toEqual([]);
    const report = await verifyAuditLog([file], publicKey);
    expect(report.problem).toMatchObject({ file, line: 1, message: expect.stringContaining("record was altered") as unknown });
  });

  it("a second crash after a recovery: both are named, and a later restart resumes cleanly", async () => {
    await crashedRun(3, 2);
    await crashedRun(3, 2);
    await cleanRun(1);
    await cleanRun(1);
    const types = await kinds();
    expect(types.filter((t) => t.startsWith("recovery"))).toHaveLength(2);
    const report = await verifyAuditLog([file], publicKey);
    expect(report.ok).toBe(true);
    expect(report.uncovered).toHaveLength(2);
  });

  it("a log whose first write was cut short rotates, and its next restart needs no recovery", async () => {
    await writeFile(file, '{"type":"decision","se');
    await cleanRun(8, { rotateBytes: 2000 });
    const log = captureLogger();
    await cleanRun(1, { logger: log.logger });
    expect(log.events("audit_recovery")).toHaveLength(0);
    expect(log.events("audit_history_broken")).toHaveLength(0);
    const files = await allFiles();
    expect(files).toContain(`${file}.000000000001`);
    const report = await verifyAuditLog(files, publicKey);
    expect(report).toMatchObject({ ok: true, uncovered: [{ file: `${file}.000000000001`, firstLine: 1, lastLine: 1 }] });
  });

  it("refuses a rotated log whose end holds no line signed by its key, naming the key id it found", async () => {
    await cleanRun(6, { rotateBytes: 1500 });
    const other = auditKeyPair().privateKey;
    const error = await AuditLogWriter.open({ path: file, privateKey: other }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(AuditLogConfigError);
    expect((error as Error).message).toMatch(/no line signed by this key/);
    expect((error as Error).message).toContain(`signed by key id ${auditKeyId(privateKey)}`);
  });

  it("a tail changed after a restart named it is tampering: verify fails at the recovery record", async () => {
    await crashedRun(3, 2);
    await cleanRun(1);
    const lines = await readLines(file);
    lines[3] = lines[3]!.replace('"decision":"allow"', '"decision":"deny"');
    await writeFile(file, lines.map((l) => `${l}\n`).join(""));
    const report = await verifyAuditLog([file], publicKey);
    expect(report.problem).toMatchObject({ file, line: 5, message: expect.stringContaining("lines were added, removed or changed after it was signed") as unknown });
  });

  it("the writer's own end: truncating the active file to nothing after a rotation is an unclean end", async () => {
    await cleanRun(3, { rotateBytes: 1500 });
    await truncate(file, 0);
    await cleanRun(1, { rotateBytes: 0 });
    expect((await parsedLines())[0]).toMatchObject({ type: "recovery", reason: "no_shutdown_checkpoint" });
    expect((await readFile(file, "utf8")).endsWith("\n")).toBe(true);
  });
});
