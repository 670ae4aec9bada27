import { execFileSync } from "node:child_process";
import { constants } from "node:fs";
import { mkdir, open, readdir, rename, rm } from "node:fs/promises";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { auditKeyPair, captureLogger, readLines, sampleDecision, tempDir, waitFor, type TempDir } from "../../../test/support/audit-fixtures.js";
import { AuditLogConfigError, AuditLogWriter, type AuditLogWriterOptions } from "./audit-log-writer.js";
import { verifyAuditLog } from "./audit-log-verifier.js";

const { privateKey, publicKey } = auditKeyPair();
const CONTEXT = { latencyMs: 1 };

let dir: TempDir;
let file: string;
beforeEach(async () => {
  dir = await tempDir();
  file = join(dir.path, "audit.log");
});
afterEach(() => dir.remove());

function openWriter(options: Partial<AuditLogWriterOptions> = {}): Promise<AuditLogWriter> {
  return AuditLogWriter.open({ path: file, privateKey, flushDelayMs: 1, retryDelayMs: 10, maxRetryDelayMs: 20, ...options });
}

/** The file's lines as "d" (decision) or "cp:<reason>" (checkpoint). */
async function types(path = file): Promise<string[]> {
  return (await readLines(path)).map((line) => {
    const parsed = JSON.parse(line) as { type: string; reason?: string };
    return parsed.type === "checkpoint" ? `cp:${parsed.reason ?? ""}` : "d";
  });
}

describe("AuditLogWriter: chain and checkpoints", () => {
  it("writes one line per record and signs at least every N records and at shutdown", async () => {
    const writer = await openWriter({ checkpointEveryRecords: 3 });
    for (let i = 0; i < 7; i++) writer.enqueue(sampleDecision(), CONTEXT);
    await writer.close();
    expect(await types()).toEqual(["d", "d", "d", "cp:interval", "d", "d", "d", "cp:interval", "d", "cp:shutdown"]);
    expect(writer.stats()).toMatchObject({ written: 7, checkpoints: 3, depth: 0, dropped: 0 });
    expect((await verifyAuditLog([file], publicKey)).ok).toBe(true);
  });

  it("signs within T ms of a record even when fewer than N arrive", async () => {
    const writer = await openWriter({ checkpointEveryRecords: 1000, checkpointEveryMs: 20 });
    writer.enqueue(sampleDecision(), CONTEXT);
    await waitFor(async () => (await types().catch((): string[] => [])).includes("cp:interval"));
    expect(await types()).toEqual(["d", "cp:interval"]);
    await writer.close();
  });

  it("never resolves close() before the records and the shutdown checkpoint are on disk", async () => {
    const writer = await openWriter({ flushDelayMs: 10_000 });
    for (let i = 0; i < 5; i++) writer.enqueue(sampleDecision(), CONTEXT);
    expect(writer.stats().depth).toBe(5);
    await writer.close();
    expect(await types()).toEqual(["d", "d", "d", "d", "d", "cp:shutdown"]);
    expect(writer.stats().depth).toBe(0);
  });

  it("counts and logs a record that arrives after close", async () => {
    const log = captureLogger();
    const writer = await openWriter({ logger: log.logger });
    await writer.close();
    writer.enqueue(sampleDecision(), CONTEXT);
    expect(writer.stats().dropped).toBe(1);
    expect(log.events("audit_record_dropped")).toHaveLength(1);
  });
});

describe("AuditLogWriter: the Check path only queues (issue 11)", () => {
  it("keeps the decision as it is until the next turn of the event loop, then formats it off the Check path", async () => {
    const writer = await openWriter({ flushDelayMs: 10_000 });
    const decision = sampleDecision();
    writer.enqueue(decision, CONTEXT);
    // Queued and counted (with its estimated size), not yet formatted or written.
    expect(writer.stats().depth).toBe(1);
    await new Promise((resolve) => setImmediate(resolve));
    expect(writer.stats()).toMatchObject({ depth: 1, written: 0 });
    await writer.close();
    const lines = await readLines(file);
    expect(JSON.parse(lines[0]!)).toMatchObject({ type: "decision", seq: 1, decision_id: decision.decisionId });
  });

  it("counts and logs a decision whose record cannot be formatted, and writes the others", async () => {
    const log = captureLogger();
    const writer = await openWriter({ logger: log.logger });
    writer.enqueue(sampleDecision(), CONTEXT);
    writer.enqueue(sampleDecision({ decidedAtMs: Number.NaN }), CONTEXT);
    writer.enqueue(sampleDecision(), CONTEXT);
    await writer.close();
    expect(writer.stats()).toMatchObject({ written: 2, dropped: 1 });
    expect(log.events("audit_record_dropped")).toHaveLength(1);
    expect(await types()).toEqual(["d", "d", "cp:shutdown"]);
  });

  it("batches records that arrive during a write into the next append instead of one append each", async () => {
    const writer = await openWriter({ flushDelayMs: 20, checkpointEveryRecords: 1000 });
    const sizes: number[] = [];
    let last = 0;
    for (let i = 0; i < 40; i++) {
      writer.enqueue(sampleDecision(), CONTEXT);
      await new Promise((resolve) => setTimeout(resolve, 1));
      const written = writer.stats().written;
      if (written !== last) sizes.push(written - last);
      last = written;
    }
    await writer.close();
    // About one append per 20 ms of records, never one per record.
    expect(sizes.length).toBeLessThan(20);
    expect(Math.max(...sizes)).toBeGreaterThan(1);
  });

  it("notices a file moved away behind its back, logs it once, and goes on in a new file at the path", async () => {
    const log = captureLogger();
    const writer = await openWriter({ logger: log.logger });
    writer.enqueue(sampleDecision(), CONTEXT);
    await waitFor(() => writer.stats().written === 1);
    await rename(file, `${file}.moved`);
    writer.enqueue(sampleDecision(), CONTEXT);
    await waitFor(() => writer.stats().written === 2);
    await writer.close();
    expect(log.events("audit_file_changed")).toEqual([expect.objectContaining({ change: "deleted", path: file })]);
    expect(await types(`${file}.moved`)).toEqual(["d"]);
    expect(await types()).toEqual(["d", "cp:shutdown"]);
  });
});

describe("AuditLogWriter: rotation by size", () => {
  it("closes each file with a rotation checkpoint and names it by its first seq", async () => {
    const writer = await openWriter({ rotateBytes: 2000, checkpointEveryRecords: 1000 });
    for (let i = 0; i < 12; i++) writer.enqueue(sampleDecision(), CONTEXT);
    await writer.close();
    const rotated = (await readdir(dir.path)).filter((n) => n !== "audit.log").sort();
    expect(rotated.length).toBeGreaterThanOrEqual(2);
    expect(rotated[0]).toBe("audit.log.000000000001");
    for (const name of rotated) expect((await types(join(dir.path, name))).at(-1)).toBe("cp:rotation");
    expect(writer.stats().rotations).toBe(rotated.length);
    const report = await verifyAuditLog([file, ...rotated.map((n) => join(dir.path, n))], publicKey);
    expect(report).toMatchObject({ ok: true, records: 12 });
  });
});

describe("AuditLogWriter: opening (resuming an existing log: audit-log-resume.spec.ts)", () => {
  it("continues the chain of a log that ended with its shutdown checkpoint, with no recovery record", async () => {
    const first = await openWriter();
    first.enqueue(sampleDecision(), CONTEXT);
    await first.close();
    const second = await openWriter();
    second.enqueue(sampleDecision(), CONTEXT);
    await second.close();
    expect(await types()).toEqual(["d", "cp:shutdown", "d", "cp:shutdown"]);
    expect(await verifyAuditLog([file], publicKey)).toMatchObject({ ok: true, uncovered: [], lastSeq: 4 });
  });

  it("ends a clean stop with its shutdown checkpoint even when that fills the file to the rotation size", async () => {
    const writer = await openWriter({ rotateBytes: 1 });
    writer.enqueue(sampleDecision(), CONTEXT);
    await writer.close();
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(await types()).toEqual(["cp:shutdown"]);
    expect(writer.stats().rotations).toBe(1);
  });

  it("refuses to start on a path that is a directory, naming it", async () => {
    await mkdir(file);
    await expect(openWriter()).rejects.toThrow(AuditLogConfigError);
    await expect(openWriter()).rejects.toThrow(`${file}: is not a regular file`);
  });

  it("refuses to start, naming it, when a rotated file of the log is a FIFO (resuming read it, and waited for a writer forever)", async () => {
    const fifo = `${file}.000000000001`;
    execFileSync("mkfifo", [fifo]);
    let timer: NodeJS.Timeout | undefined;
    const blocked = new Promise((_resolve, reject) => (timer = setTimeout(() => reject(new Error("still opening after 2 s: blocked on the FIFO")), 2_000)));
    try {
      await expect(Promise.race([openWriter(), blocked])).rejects.toThrow(`${fifo}: is a FIFO (named pipe), not a regular file`);
    } finally {
      clearTimeout(timer);
      // Lets go of an open stuck on the FIFO (the bug): O_RDWR opens it at once, as its writer.
      await (await open(fifo, constants.O_RDWR | constants.O_NONBLOCK)).close();
    }
  });

  it("names the option that is out of range", async () => {
    await expect(openWriter({ checkpointEveryRecords: 0 })).rejects.toThrow("checkpointEveryRecords: must be an integer ≥ 1");
  });
});

describe("AuditLogWriter: a full buffer is never silent", () => {
  it("overflow deny: admit() says no at the bound, counts it, and logs one line per episode", async () => {
    const log = captureLogger();
    const writer = await openWriter({ bufferRecords: 3, overflow: "deny", flushDelayMs: 10_000, logger: log.logger });
    for (let i = 0; i < 3; i++) {
      expect(writer.admit()).toBe(true);
      writer.enqueue(sampleDecision(), CONTEXT);
    }
    expect(writer.accepting()).toBe(false);
    expect(writer.admit()).toBe(false);
    expect(writer.admit()).toBe(false);
    expect(writer.stats()).toMatchObject({ depth: 3, refused: 2, dropped: 0 });
    expect(log.events("audit_buffer_full")).toHaveLength(1);
    await writer.close();
    expect(writer.stats()).toMatchObject({ depth: 0, written: 3 });
  });

  it("finding 9: bounds the buffer in bytes as well as records: large records fill it long before the record bound", async () => {
    const log = captureLogger();
    const writer = await openWriter({ bufferRecords: 10_000, bufferBytes: 4096, overflow: "deny", flushDelayMs: 10_000, logger: log.logger });
    const large = () => sampleDecision({ path: `/${"p".repeat(1000)}`, onBehalfOf: `${"o".repeat(1000)}@example.com` });
    let admitted = 0;
    while (writer.admit() === true) {
      writer.enqueue(large(), CONTEXT);
      admitted++;
      expect(admitted).toBeLessThan(10);
    }
    expect(admitted).toBeGreaterThanOrEqual(1);
    expect(writer.stats()).toMatchObject({ depth: admitted, refused: 1 });
    expect(log.events("audit_buffer_full")[0]).toMatchObject({ buffer_bytes: 4096, buffer_records: 10_000 });
    // Past twice the byte bound, a record of an admitted Check is dropped and counted.
    for (let i = 0; i < 10; i++) writer.enqueue(large(), CONTEXT);
    expect(writer.stats().dropped).toBeGreaterThan(0);
    await writer.close();
    expect(writer.stats().written).toBe(writer.stats().depth + admitted + 10 - writer.stats().dropped);
  });

  it("keeps decisions already admitted up to twice the bound, then drops and counts the rest", async () => {
    const log = captureLogger();
    const writer = await openWriter({ bufferRecords: 2, flushDelayMs: 10_000, logger: log.logger });
    for (let i = 0; i < 6; i++) writer.enqueue(sampleDecision(), CONTEXT);
    expect(writer.stats()).toMatchObject({ depth: 4, dropped: 2 });
    expect(log.events("audit_buffer_full")).toHaveLength(1);
    expect(log.events("audit_record_dropped")).toHaveLength(0);
    await writer.close();
    expect(log.events("audit_buffer_recovered")).toEqual([]);
  });

  it("overflow block: admit() waits for room and goes ahead once the backlog is written", async () => {
    const writer = await openWriter({ bufferRecords: 2, overflow: "block", blockTimeoutMs: 2000, flushDelayMs: 30 });
    writer.enqueue(sampleDecision(), CONTEXT);
    writer.enqueue(sampleDecision(), CONTEXT);
    const admitted = writer.admit();
    expect(admitted).toBeInstanceOf(Promise);
    expect(await admitted).toBe(true);
    expect(writer.stats()).toMatchObject({ blocked: 1, refused: 0 });
    await writer.close();
  });

  it("overflow block: the wait is bounded, then the Check is refused", async () => {
    const writer = await openWriter({ bufferRecords: 1, overflow: "block", blockTimeoutMs: 20, flushDelayMs: 10_000 });
    writer.enqueue(sampleDecision(), CONTEXT);
    expect(await writer.admit()).toBe(false);
    expect(writer.stats()).toMatchObject({ blocked: 1, refused: 1 });
    await writer.close();
  });
});

describe("AuditLogWriter: a failing disk", () => {
  it("counts and logs failed writes, keeps the records and retries until the disk is back", async () => {
    const log = captureLogger();
    const sub = join(dir.path, "sub");
    file = join(sub, "audit.log");
    const writer = await openWriter({ logger: log.logger });
    writer.enqueue(sampleDecision(), CONTEXT);
    await waitFor(() => writer.stats().written === 1);
    await rm(sub, { recursive: true });
    writer.enqueue(sampleDecision(), CONTEXT);
    await waitFor(() => writer.stats().writeErrors >= 2);
    expect(writer.healthy()).toBe(false);
    expect(writer.stats().depth).toBe(1);
    expect(log.events("audit_write_error")[0]).toMatchObject({ level: "error", operation: "append", code: "ENOENT", path: file });
    await mkdir(sub);
    await waitFor(() => writer.stats().written === 2);
    expect(writer.healthy()).toBe(true);
    await writer.close();
    expect(log.events("audit_file_changed")).toHaveLength(1);
    // The records before the loss are gone with the directory; verify says so.
    expect((await verifyAuditLog([file], publicKey)).problem?.message).toMatch(/^seq: the log starts at seq 2/);
  });

  it("counts a write to a path that became a directory, and fills the buffer until the Check is refused", async () => {
    const writer = await openWriter({ bufferRecords: 2, closeTimeoutMs: 50 });
    writer.enqueue(sampleDecision(), CONTEXT);
    await waitFor(() => writer.stats().written === 1);
    await rm(file);
    await mkdir(file);
    writer.enqueue(sampleDecision(), CONTEXT);
    writer.enqueue(sampleDecision(), CONTEXT);
    await waitFor(() => writer.stats().writeErrors >= 1);
    expect(writer.admit()).toBe(false);
    await expect(writer.close()).rejects.toThrow(/close gave up after 50 ms with 2 record\(s\) unwritten/);
    expect(writer.stats().dropped).toBe(2);
  });
});
