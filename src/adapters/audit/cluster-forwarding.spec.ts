import { EventEmitter } from "node:events";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { auditKeyPair, captureLogger, sampleDecision, tempDir, waitFor, type TempDir } from "../../../test/support/audit-fixtures.js";
import { AuditLogSink } from "./audit-log-sink.js";
import { verifyAuditLog } from "./audit-log-verifier.js";
import { AuditLogWriter } from "./audit-log-writer.js";
import { AUDIT_IPC_TAG, relayWorkerAuditRecords, WorkerAuditForwarder, type AuditIpcEndpoint } from "./cluster-forwarding.js";

/** Two ends of an IPC channel; messages are cloned through JSON as node:cluster does. */
class FakeEnd extends EventEmitter implements AuditIpcEndpoint {
  peer!: FakeEnd;
  broken = false;
  send(message: unknown, callback?: (error: Error | null) => void): boolean {
    if (this.broken) throw new Error("channel closed");
    const copy: unknown = JSON.parse(JSON.stringify(message));
    setImmediate(() => {
      this.peer.emit("message", copy);
      callback?.(null);
    });
    return true;
  }
}

function channel(): { worker: FakeEnd; primary: FakeEnd } {
  const worker = new FakeEnd();
  const primary = new FakeEnd();
  worker.peer = primary;
  primary.peer = worker;
  return { worker, primary };
}

const { privateKey, publicKey } = auditKeyPair();
let dir: TempDir;
beforeEach(async () => {
  dir = await tempDir();
});
afterEach(() => dir.remove());

describe("--workers N: one writer keeps one chain (SPEC 7)", () => {
  it("writes the records of several workers into one verified chain", async () => {
    const file = join(dir.path, "audit.log");
    const writer = await AuditLogWriter.open({ path: file, privateKey, flushDelayMs: 1 });
    const workers = [channel(), channel()];
    const detach = workers.map((c) => relayWorkerAuditRecords(c.primary, writer));
    const sinks = workers.map((c) => new AuditLogSink(new WorkerAuditForwarder(c.worker)));
    for (let i = 0; i < 5; i++) for (const sink of sinks) sink.record(sampleDecision(), { latencyMs: 1 });
    await Promise.all(sinks.map((s) => s.close()));
    await waitFor(() => writer.stats().written === 10);
    for (const d of detach) d();
    await writer.close();
    expect(await verifyAuditLog([file], publicKey)).toMatchObject({ ok: true, records: 10 });
    expect(sinks[0]!.stats()).toMatchObject({ written: 5, dropped: 0 });
  });

  it("tells workers when the primary's buffer is full, so they refuse Checks too", async () => {
    const writer = await AuditLogWriter.open({ path: join(dir.path, "audit.log"), privateKey, bufferRecords: 1, flushDelayMs: 10_000 });
    const { worker, primary } = channel();
    relayWorkerAuditRecords(primary, writer);
    const forwarder = new WorkerAuditForwarder(worker, { overflow: "deny" });
    expect(forwarder.admit()).toBe(true);
    forwarder.enqueue(sampleDecision(), { latencyMs: 1 });
    await waitFor(() => !forwarder.accepting());
    expect(forwarder.admit()).toBe(false);
    expect(forwarder.stats().refused).toBe(1);
    await writer.close();
    expect(writer.stats().written).toBe(1);
    await forwarder.close();
  });

  it("overflow block in a worker: waits for the primary to have room", async () => {
    const { worker } = channel();
    const forwarder = new WorkerAuditForwarder(worker, { overflow: "block", blockTimeoutMs: 1000 });
    worker.emit("message", { tag: AUDIT_IPC_TAG, kind: "accepting", accepting: false });
    const admitted = forwarder.admit();
    worker.emit("message", { tag: AUDIT_IPC_TAG, kind: "accepting", accepting: true });
    expect(await admitted).toBe(true);
    expect(forwarder.stats().blocked).toBe(1);
    await forwarder.close();
  });

  it("counts and logs records a worker cannot send, and a malformed record the primary refuses", async () => {
    const log = captureLogger();
    const { worker, primary } = channel();
    const forwarder = new WorkerAuditForwarder(worker, { logger: log.logger });
    worker.broken = true;
    forwarder.enqueue(sampleDecision(), { latencyMs: 1 });
    expect(forwarder.stats().dropped).toBe(1);
    expect(forwarder.healthy()).toBe(false);
    expect(log.events("audit_record_dropped")).toHaveLength(1);

    const writer = await AuditLogWriter.open({ path: join(dir.path, "audit.log"), privateKey, flushDelayMs: 1 });
    relayWorkerAuditRecords(primary, writer, log.logger);
    primary.emit("message", { tag: AUDIT_IPC_TAG, kind: "record", record: { decision: "allow" } });
    expect(log.events("audit_record_dropped")).toHaveLength(2);
    expect(writer.stats().depth).toBe(0);
    await writer.close();
    await forwarder.close();
  });
});
