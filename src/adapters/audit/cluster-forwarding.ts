// Keeps one audit chain with `--workers N`: workers build records and send
// them to the primary over the cluster IPC channel; only the primary's
// AuditLogWriter writes. The primary tells workers when its buffer is full, so
// a worker's admit() fails closed just like the single-process one.

import { silentLogger, type Logger } from "../logging/logger.js";
import type { AuditLogWriter } from "./audit-log-writer.js";
import { buildAuditRecord, parseAuditRecord, type AuditRecord } from "./audit-record.js";
import type { Decision } from "../../core/decision/decision.js";
import type { DecisionContext } from "../../core/ports.js";
import type { AuditLogStats, AuditOverflowMode, AuditRecordTarget } from "./audit-record-target.js";

/** The part of node:cluster's IPC that forwarding needs: `process` in a worker, a `Worker` in the primary. */
export interface AuditIpcEndpoint {
  send(message: unknown, callback?: (error: Error | null) => void): boolean;
  on(event: "message", listener: (message: unknown) => void): unknown;
  off(event: "message", listener: (message: unknown) => void): unknown;
}

/** Messages carry this tag so they can share the channel with the lead's own (policy reload, shutdown). */
export const AUDIT_IPC_TAG = "hopwarden.audit";

export type AuditIpcMessage =
  | { readonly tag: typeof AUDIT_IPC_TAG; readonly kind: "record"; readonly record: AuditRecord }
  | { readonly tag: typeof AUDIT_IPC_TAG; readonly kind: "accepting"; readonly accepting: boolean };

export function isAuditIpcMessage(message: unknown): message is AuditIpcMessage {
  return typeof message === "object" && message !== null && (message as { tag?: unknown }).tag === AUDIT_IPC_TAG;
}

export interface WorkerAuditForwarderOptions {
  readonly overflow?: AuditOverflowMode;
  readonly blockTimeoutMs?: number;
  readonly logger?: Logger;
}

/** The worker's AuditRecordTarget: forwards records to the primary and mirrors the primary's accepting state. */
export class WorkerAuditForwarder implements AuditRecordTarget {
  private primaryAccepting = true;
  private sendFailing = false;
  private inFlight = 0;
  private idle: (() => void) | undefined;
  private closed = false;
  private waiters: { resolve: (admitted: boolean) => void; timer: NodeJS.Timeout }[] = [];
  private counters = { dropped: 0, blocked: 0, refused: 0, written: 0 };
  private readonly overflow: AuditOverflowMode;
  private readonly blockTimeoutMs: number;
  private readonly log: Logger;
  private readonly listener = (message: unknown): void => {
    if (!isAuditIpcMessage(message) || message.kind !== "accepting") return;
    this.primaryAccepting = message.accepting;
    if (message.accepting) this.releaseWaiters();
  };

  constructor(
    private readonly channel: AuditIpcEndpoint,
    options: WorkerAuditForwarderOptions = {},
  ) {
    this.overflow = options.overflow ?? "deny";
    this.blockTimeoutMs = options.blockTimeoutMs ?? 250;
    this.log = options.logger ?? silentLogger;
    channel.on("message", this.listener);
  }

  admit(): boolean | Promise<boolean> {
    if (this.accepting()) return true;
    if (this.overflow === "deny" || this.closed) {
      this.counters.refused++;
      return false;
    }
    this.counters.blocked++;
    return new Promise<boolean>((resolve) => {
      const waiter = {
        resolve,
        timer: setTimeout(() => {
          this.waiters = this.waiters.filter((w) => w !== waiter);
          this.counters.refused++;
          resolve(false);
        }, this.blockTimeoutMs),
      };
      this.waiters.push(waiter);
    });
  }

  enqueue(decision: Decision, context: DecisionContext): void {
    const record = buildAuditRecord(decision, context);
    if (this.closed) {
      this.lose("audit forwarder is closed", undefined);
      return;
    }
    const message: AuditIpcMessage = { tag: AUDIT_IPC_TAG, kind: "record", record };
    this.inFlight++;
    try {
      this.channel.send(message, (error) => this.sent(error));
    } catch (error) {
      // The channel is already closed (the primary went away): send throws instead of calling back.
      this.sent(error as Error);
    }
  }

  accepting(): boolean {
    return !this.closed && this.primaryAccepting && !this.sendFailing;
  }

  healthy(): boolean {
    return !this.sendFailing;
  }

  /** This worker's view: `written` counts records handed to the primary; depth, checkpoints and write errors live in the primary's writer. */
  stats(): AuditLogStats {
    return { depth: this.inFlight, ...this.counters, checkpoints: 0, writeErrors: 0, rotations: 0 };
  }

  /** Resolves once every record sent so far has left this process; the primary writes and signs them. */
  async close(): Promise<void> {
    this.closed = true;
    this.channel.off("message", this.listener);
    for (const waiter of this.waiters.splice(0)) {
      clearTimeout(waiter.timer);
      waiter.resolve(false);
    }
    if (this.inFlight === 0) return;
    await new Promise<void>((resolve) => {
      this.idle = resolve;
    });
  }

  private sent(error: Error | null): void {
    this.inFlight--;
    if (error) {
      this.lose("could not send the record to the primary", error);
      this.sendFailing = true;
    } else {
      this.counters.written++;
      this.sendFailing = false;
    }
    if (this.inFlight === 0) this.idle?.();
  }

  private lose(why: string, error: Error | undefined): void {
    this.counters.dropped++;
    this.log.error("audit record dropped", { event: "audit_record_dropped", why, error, dropped_total: this.counters.dropped });
  }

  private releaseWaiters(): void {
    for (const waiter of this.waiters.splice(0)) {
      clearTimeout(waiter.timer);
      waiter.resolve(true);
    }
  }
}

/**
 * Primary side, once per worker: appends the worker's records to the one
 * writer and keeps the worker told whether the writer accepts more. Returns
 * a function that detaches (call it on the worker's 'exit').
 */
export function relayWorkerAuditRecords(worker: AuditIpcEndpoint, writer: AuditLogWriter, logger: Logger = silentLogger): () => void {
  const tell = (accepting: boolean): void => {
    const message: AuditIpcMessage = { tag: AUDIT_IPC_TAG, kind: "accepting", accepting };
    try {
      worker.send(message);
    } catch {
      // The worker is gone; its 'exit' handler detaches us.
    }
  };
  const onMessage = (message: unknown): void => {
    if (!isAuditIpcMessage(message) || message.kind !== "record") return;
    try {
      writer.appendRecord(parseAuditRecord(message.record));
    } catch (error) {
      logger.error("audit record from a worker is malformed and was not written", { event: "audit_record_dropped", error });
    }
  };
  worker.on("message", onMessage);
  const stopListening = writer.onAcceptingChange(tell);
  if (!writer.accepting()) tell(false);
  return () => {
    worker.off("message", onMessage);
    stopListening();
  };
}
