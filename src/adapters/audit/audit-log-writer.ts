// The one writer of an audit log: it owns the hash chain, appends JSON lines
// off the hot path, signs the running hash in checkpoints (every N records or
// T ms, at rotation and at shutdown), rotates by size and survives a failing
// disk by buffering and retrying. On start it resumes an existing log only
// from the last line its key signed (audit-log-resume.ts). With --workers
// each worker runs one on its own chain, and the primary one on the main log
// that holds their roster (docs/audit-log.md).
//
// The Check path only queues the Decision and its context (two references
// and a size estimate). Everything else happens off it, in three stages:
// a drain on the next turn of the event loop (setImmediate, after the
// responses of that turn are on their way) formats the queued decisions into
// their JSON text, so the buffer holds bounded text and counts exact bytes;
// a flush (flushDelayMs later) chains, hashes and signs them into one chunk;
// and one append at a time writes it.

import type { KeyObject } from "node:crypto";
import { access, mkdir, open, rename, stat, truncate, type FileHandle } from "node:fs/promises";
import { dirname } from "node:path";
import type { Decision } from "../../core/decision/decision.js";
import type { Clock, DecisionContext } from "../../core/ports.js";
import { silentLogger, type Logger } from "../logging/logger.js";
import { systemClock } from "../clock/system-clock.js";
import {
  auditKeyId,
  formatCheckpointLine,
  formatRecoveryLine,
  decisionLinePrefix,
  hashLine,
  type ChainHead,
  type CheckpointReason,
  type RecoveryFields,
} from "./audit-chain.js";
import { rotatedFileName } from "./audit-log-files.js";
import { planResume, type ResumePlan } from "./audit-log-resume.js";
import { AuditRecordEncoder, estimateAuditRecordBytes } from "./audit-record-json.js";
import type { AuditLogStats, AuditOverflowMode, AuditRecordTarget } from "./audit-record-target.js";
import { HopwardenError } from "../../core/errors.js";

export interface AuditLogWriterOptions {
  /** The active file; rotated files sit beside it as `<path>.<first seq>`. */
  readonly path: string;
  /** Ed25519 private key that signs checkpoints. */
  readonly privateKey: KeyObject;
  /** Rotate once the active file reaches this many bytes; 0 never rotates. Default 64 MiB. */
  readonly rotateBytes?: number;
  /** Sign at least every this many decision records. Default 100. */
  readonly checkpointEveryRecords?: number;
  /** Sign at most this many milliseconds after a record was written. Default 1000. */
  readonly checkpointEveryMs?: number;
  /** How long a queued record waits to be batched into one write. Default 20 ms. */
  readonly flushDelayMs?: number;
  /** Records the buffer holds before admit() says no. Default 10 000. */
  readonly bufferRecords?: number;
  /** Bytes (serialized records; estimated until formatted) the buffer holds before admit() says no, whichever bound is reached first. Default 16 MiB. */
  readonly bufferBytes?: number;
  /** What admit() does when the buffer is full: "deny" answers false at once, "block" waits up to blockTimeoutMs. Default "deny". */
  readonly overflow?: AuditOverflowMode;
  /** The bounded wait of overflow "block". Default 250 ms. */
  readonly blockTimeoutMs?: number;
  /** First retry delay after a failed write; doubles up to maxRetryDelayMs. Defaults 100 ms and 5 s. */
  readonly retryDelayMs?: number;
  readonly maxRetryDelayMs?: number;
  /** How long close() keeps retrying a failing disk before it gives up. Default 10 s. */
  readonly closeTimeoutMs?: number;
  readonly logger?: Logger;
  /** Stamps checkpoint times. */
  readonly clock?: Clock;
  /**
   * A worker's chain (`--workers`: "w1", "w2", …), named in every signed line.
   * open() then returns only once the chain's first line of this run (a
   * `start` checkpoint, or the recovery record) is on disk, so the primary
   * can name the chain in the main log knowing it exists. Default "": the main log.
   */
  readonly chain?: string;
}

export class AuditLogConfigError extends HopwardenError {
  readonly code = "invalid_audit_log_config";
  constructor(
    readonly field: string,
    problem: string,
  ) {
    super(`${field}: ${problem}`);
  }
}

interface ResolvedOptions {
  readonly path: string;
  readonly privateKey: KeyObject;
  readonly rotateBytes: number;
  readonly checkpointEveryRecords: number;
  readonly checkpointEveryMs: number;
  readonly flushDelayMs: number;
  readonly bufferRecords: number;
  readonly bufferBytes: number;
  readonly overflow: AuditOverflowMode;
  readonly blockTimeoutMs: number;
  readonly retryDelayMs: number;
  readonly maxRetryDelayMs: number;
  readonly closeTimeoutMs: number;
  readonly logger: Logger;
  readonly clock: Clock;
  readonly chain: string;
}

/** A serialized batch. Once built its bytes never change, so a failed write is retried with the very same chain links. */
interface Chunk {
  readonly data: Buffer;
  readonly bytes: number;
  readonly records: number;
  /** The serialized size of its records, as counted in the buffer. */
  readonly recordBytes: number;
  readonly checkpoints: number;
  /** It starts with the signed recovery record. */
  readonly recovery: boolean;
  readonly rotate: boolean;
  readonly final: boolean;
}

interface Waiter {
  readonly resolve: (admitted: boolean) => void;
  readonly timer: NodeJS.Timeout;
}

/**
 * Records and bytes per write: bound the memory of one chunk, the time one
 * chunk holds the event loop while it is chained and hashed (about 1 ms for
 * 256 records), and let blocked Checks go as soon as part of a backlog is written.
 */
const MAX_RECORDS_PER_CHUNK = 256;
const MAX_BYTES_PER_CHUNK = 512 * 1024;

export class AuditLogWriter implements AuditRecordTarget {
  private readonly options: ResolvedOptions;
  private readonly keyId: string;
  private readonly log: Logger;

  /** Decisions queued by the Check path, not yet formatted (parallel arrays: no object per record). */
  private incomingDecisions: Decision[] = [];
  private incomingContexts: DecisionContext[] = [];
  /** Their estimated size. */
  private incomingBytes = 0;
  private drainScheduled = false;
  private readonly drainNow = (): void => {
    this.drainScheduled = false;
    this.formatIncoming();
    if (this.queueRecords.length > 0) this.scheduleFlush(this.options.flushDelayMs);
  };
  /**
   * Formatted records waiting for a chunk, as their JSON's UTF-8 bytes (views
   * into the encoder's slabs): written once, when the buffer learns their
   * exact size, and copied into the chunk after their chain prefix.
   */
  private readonly queueRecords: Buffer[] = [];
  private readonly encoder = new AuditRecordEncoder();
  private queuedBytes = 0;
  private pendingChunk: Chunk | undefined;
  /** The chain as far as it was serialized (equal to the file once pendingChunk is written). */
  private tail: ChainHead;
  private size: number;
  private fileFirstSeq: number;
  private needsNewline: boolean;
  private sinceCheckpoint = 0;
  private unsignedSinceMs: number | undefined;
  private checkpointDue = false;
  /** Roster records (the main log of a --workers run) waiting for the next chunk. */
  private readonly rosterQueue: string[] = [];
  /** A worker chain's start checkpoint, still to be written. */
  private pendingStart = false;
  private lastWriteError: unknown;
  /** The signed recovery record still to be written first, when the log did not end with a shutdown checkpoint. */
  private pendingRecovery: Omit<RecoveryFields, "time" | "keyId"> | undefined;

  /** The active file, kept open between chunks, and its identity (to notice a file swapped behind our back). */
  private file: { readonly handle: FileHandle; readonly ino: number; readonly dev: number } | undefined;
  private flushTimer: NodeJS.Timeout | undefined;
  private checkpointTimer: NodeJS.Timeout | undefined;
  private retryTimer: NodeJS.Timeout | undefined;
  private flushing = false;
  private retryDelayMs: number;
  private failingSince: number | undefined;
  private failures = 0;
  private rotationBlockedUntilMs = 0;

  private closing = false;
  private closed = false;
  private finalWritten = false;
  private closePromise: Promise<void> | undefined;
  private onFinalWritten: (() => void) | undefined;

  private waiters: Waiter[] = [];
  private wasAccepting = true;
  private overflowEpisode: { dropped: number; refused: number } | undefined;

  private counters = { dropped: 0, blocked: 0, refused: 0, written: 0, checkpoints: 0, writeErrors: 0, rotations: 0 };

  private constructor(options: ResolvedOptions, plan: ResumePlan) {
    this.options = options;
    this.log = options.logger;
    this.keyId = auditKeyId(options.privateKey);
    this.tail = plan.head;
    this.size = plan.size;
    this.fileFirstSeq = plan.fileFirstSeq;
    this.needsNewline = plan.endsInFragment;
    this.pendingRecovery = plan.recovery;
    this.retryDelayMs = options.retryDelayMs;
  }

  /**
   * Opens the log at `options.path`, or resumes it from the last line signed
   * by this key; when it did not end with this key's shutdown checkpoint, the
   * first line written is a signed recovery record (SPEC 6).
   */
  static async open(options: AuditLogWriterOptions): Promise<AuditLogWriter> {
    const resolved = resolveOptions(options);
    const plan = await readChainEnd(resolved.path, resolved.privateKey, resolved.chain);
    const writer = new AuditLogWriter(resolved, plan);
    const log = resolved.logger;
    for (const problem of plan.historyProblems) {
      log.error("audit log does not verify before the point it resumes from (audit verify will report it)", {
        event: "audit_history_broken",
        file: problem.file,
        line: problem.line,
        problem: problem.message,
      });
    }
    if (plan.recovery !== undefined) {
      const r = plan.recovery;
      const fields = { event: "audit_recovery", path: resolved.path, reason: r.reason, resumed_after: r.resumedAfter, unverified: r.unverified, problem: r.problem };
      if (r.unverified.length > 0) log.error("audit log resumed after lines it cannot verify; a signed recovery record names them and no new signature covers them", fields);
      else log.warn("audit log did not end with a shutdown checkpoint (a crash, or records removed); a signed recovery record says so", fields);
    }
    if (resolved.chain !== "") {
      // A worker's chain: its first line of the run, on disk before open() returns.
      if (plan.recovery === undefined) writer.pendingStart = true;
      await writer.writeFirstLine();
    } else if (plan.recovery !== undefined) {
      // Written now, not with the first decision.
      writer.scheduleFlush(0);
    }
    log.info("audit log open", {
      path: resolved.path,
      ...(resolved.chain !== "" && { chain: resolved.chain }),
      next_seq: plan.head.seq + 1,
      key_id: writer.keyId,
      resumed: plan.head.seq > 0,
    });
    return writer;
  }

  /** Writes what is queued (the start checkpoint or recovery record) once, without retrying: a start-up error if the disk refuses. */
  private async writeFirstLine(): Promise<void> {
    await this.flush();
    if (this.pendingChunk === undefined) return;
    clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
    this.closed = true;
    await this.closeFile();
    const code = (this.lastWriteError as NodeJS.ErrnoException | undefined)?.code ?? (this.lastWriteError as Error | undefined)?.message ?? "unknown error";
    throw new AuditLogConfigError("path", `${this.options.path}: cannot write the chain's first line (${code})`);
  }

  /**
   * Appends a roster record to the main log (`--workers`: which worker
   * chains a run has, when each one opened, where each one ended), chained
   * and signed like any record. Off the Check path: the primary calls it.
   */
  appendRoster(record: object): void {
    if (this.closed || this.finalWritten) {
      this.log.error("audit roster record dropped: the log is closed", { event: "audit_record_dropped", path: this.options.path });
      return;
    }
    this.rosterQueue.push(JSON.stringify(record));
    this.scheduleFlush(0);
  }

  // --- the hot path -------------------------------------------------------

  admit(): boolean | Promise<boolean> {
    if (this.accepting()) return true;
    this.noteOverflow();
    if (this.options.overflow === "deny" || this.closing) {
      this.counters.refused++;
      this.overflowEpisode!.refused++;
      return false;
    }
    this.counters.blocked++;
    return new Promise<boolean>((resolve) => {
      const waiter: Waiter = {
        resolve,
        timer: setTimeout(() => {
          this.waiters = this.waiters.filter((w) => w !== waiter);
          this.counters.refused++;
          if (this.overflowEpisode) this.overflowEpisode.refused++;
          resolve(false);
        }, this.options.blockTimeoutMs),
      };
      this.waiters.push(waiter);
    });
  }

  /** The Check path: keeps the decision and its context for the drain; no formatting, no closure, no timer per call. */
  enqueue(decision: Decision, context: DecisionContext): void {
    if (this.closed || this.finalWritten) {
      this.drop("audit log is closed");
      return;
    }
    const bytes = estimateAuditRecordBytes(decision, context);
    // Admitted Checks may overshoot the bounds by their concurrency; the
    // hard limit leaves them room so an admitted decision is not lost.
    if (this.depth() >= this.options.bufferRecords * 2 || this.depthBytes() + bytes > this.options.bufferBytes * 2) {
      this.noteOverflow();
      this.drop("audit buffer hard limit reached");
      return;
    }
    this.incomingDecisions.push(decision);
    this.incomingContexts.push(context);
    this.incomingBytes += bytes;
    this.notifyAccepting();
    if (!this.drainScheduled) {
      this.drainScheduled = true;
      setImmediate(this.drainNow);
    }
  }

  accepting(): boolean {
    return !this.closing && this.depth() < this.options.bufferRecords && this.depthBytes() < this.options.bufferBytes;
  }

  healthy(): boolean {
    return this.failingSince === undefined;
  }

  stats(): AuditLogStats {
    return { depth: this.depth(), ...this.counters };
  }

  /** The chain head on disk or about to be: the last seq and its line hash. */
  head(): ChainHead {
    return this.tail;
  }

  close(): Promise<void> {
    this.closePromise ??= this.closeOnce();
    return this.closePromise;
  }

  // --- flushing -------------------------------------------------------------

  private depth(): number {
    return this.incomingDecisions.length + this.queueRecords.length + (this.pendingChunk?.records ?? 0);
  }

  private depthBytes(): number {
    return this.incomingBytes + this.queuedBytes + (this.pendingChunk?.recordBytes ?? 0);
  }

  /** Formats the queued decisions into their records' JSON text; the buffer then counts their exact size. */
  private formatIncoming(): void {
    const decisions = this.incomingDecisions;
    const contexts = this.incomingContexts;
    if (decisions.length === 0) return;
    this.incomingDecisions = [];
    this.incomingContexts = [];
    this.incomingBytes = 0;
    for (let i = 0; i < decisions.length; i++) {
      const decision = decisions[i]!;
      let record: Buffer;
      try {
        record = this.encoder.encode(decision, contexts[i]!);
      } catch (error) {
        this.counters.dropped++;
        this.log.error("audit record could not be built", { event: "audit_record_dropped", decision_id: decision.decisionId, error });
        continue;
      }
      this.queueRecords.push(record);
      this.queuedBytes += record.length;
    }
    // The estimate may have been above the exact size (room again) or below it.
    this.notifyAccepting();
  }

  private scheduleFlush(delayMs: number): void {
    if (this.closed || this.flushTimer !== undefined || this.retryTimer !== undefined || this.flushing) return;
    this.flushTimer = setTimeout(() => {
      this.flushTimer = undefined;
      void this.flush();
    }, delayMs);
    this.flushTimer.unref();
  }

  private async flush(): Promise<void> {
    if (this.flushing) return;
    this.flushing = true;
    try {
      for (;;) {
        const chunk = this.pendingChunk ?? this.buildChunk();
        if (chunk === undefined) break;
        this.pendingChunk = chunk;
        if (!(await this.writeChunk(chunk))) {
          this.scheduleRetry();
          return;
        }
        this.pendingChunk = undefined;
        this.counters.written += chunk.records;
        this.counters.checkpoints += chunk.checkpoints;
        this.releaseWaiters();
        this.notifyAccepting();
        if (chunk.rotate) await this.rotate();
        if (chunk.final) {
          this.finalWritten = true;
          this.onFinalWritten?.();
        }
        // Records that arrived during the write wait for the next batch, unless waiting would not batch more.
        if (!this.writeAgainAtOnce()) break;
      }
    } finally {
      this.flushing = false;
    }
    if (this.checkpointDue || this.writeAgainAtOnce()) this.scheduleFlush(0);
    else if (this.queueRecords.length > 0 || this.incomingDecisions.length > 0) this.scheduleFlush(this.options.flushDelayMs);
  }

  /**
   * A write takes long enough for a few records to arrive meanwhile; writing
   * them at once would mean one append (and its system calls) per record or
   * two. So the next batch waits flushDelayMs like any other, except when
   * shutting down, when Checks wait for room, or when a full chunk is ready.
   */
  private writeAgainAtOnce(): boolean {
    if (this.finalWritten) return false;
    return this.closing || this.waiters.length > 0 || !this.accepting() || this.queueRecords.length + this.incomingDecisions.length >= MAX_RECORDS_PER_CHUNK;
  }

  private buildChunk(): Chunk | undefined {
    // Nothing follows the shutdown checkpoint: a log that ends otherwise looks like a crash.
    if (this.finalWritten) return undefined;
    this.formatIncoming();
    const take = Math.min(this.queueRecords.length, MAX_RECORDS_PER_CHUNK);
    let capacity = 4096;
    for (let i = 0; i < take; i++) capacity += this.queueRecords[i]!.length + 128;
    const out = new ChunkBytes(Math.min(capacity, MAX_BYTES_PER_CHUNK + 64 * 1024));
    if (this.needsNewline) {
      // Keep the crash fragment as a line of its own; verify reports it, and our records stay intact after it.
      out.newline();
    }
    let records = 0;
    let recordBytes = 0;
    let checkpoints = 0;
    let rotate = false;
    let final = false;
    let recovery = false;
    const pushSigned = (line: string): void => {
      this.tail = { seq: this.tail.seq + 1, hash: out.line("", line, 0, Buffer.byteLength(line)) };
    };
    const checkpoint = (reason: CheckpointReason): void => {
      pushSigned(
        formatCheckpointLine(
          this.tail,
          { time: new Date(this.options.clock.nowMs()).toISOString(), reason, keyId: this.keyId, chain: this.options.chain },
          this.options.privateKey,
        ),
      );
      checkpoints++;
      this.sinceCheckpoint = 0;
      this.unsignedSinceMs = undefined;
      this.checkpointDue = false;
      clearTimeout(this.checkpointTimer);
      this.checkpointTimer = undefined;
    };

    if (this.pendingRecovery !== undefined) {
      // First, before anything else is chained: what this writer could not verify, signed.
      pushSigned(
        formatRecoveryLine(this.tail, { ...this.pendingRecovery, time: new Date(this.options.clock.nowMs()).toISOString(), keyId: this.keyId, chain: this.options.chain }, this.options.privateKey),
      );
      this.pendingRecovery = undefined;
      recovery = true;
    } else if (this.pendingStart) {
      checkpoint("start");
    }
    this.pendingStart = false;

    for (const json of this.rosterQueue.splice(0)) {
      const prefix = decisionLinePrefix(this.tail, json.length, "roster");
      pushSigned(prefix + json.slice(1));
      this.sinceCheckpoint++;
      this.startCheckpointClock();
    }

    let used = 0;
    while (used < take && (used === 0 || out.length < MAX_BYTES_PER_CHUNK)) {
      const record = this.queueRecords[used]!;
      const jsonBytes = record.length;
      // The prefix is ASCII and takes the place of the record's opening brace; the line is copied into the chunk and hashed there.
      this.tail = { seq: this.tail.seq + 1, hash: out.lineFromBytes(decisionLinePrefix(this.tail, jsonBytes), record, 1) };
      used++;
      records++;
      recordBytes += jsonBytes;
      this.sinceCheckpoint++;
      this.startCheckpointClock();
      if (this.sinceCheckpoint >= this.options.checkpointEveryRecords) checkpoint("interval");
      if (this.rotationDue(out.length)) {
        checkpoint("rotation");
        rotate = true;
        break;
      }
    }
    this.queueRecords.splice(0, used);
    this.queuedBytes -= recordBytes;

    const overdue = this.unsignedSinceMs !== undefined && this.options.clock.nowMs() - this.unsignedSinceMs >= this.options.checkpointEveryMs;
    // A file about to be renamed ends with its rotation checkpoint; anything else goes into the next file.
    if (!rotate) {
      if (this.closing && this.queueRecords.length === 0 && !this.finalWritten) {
        checkpoint("shutdown");
        final = true;
      } else if (this.sinceCheckpoint > 0 && (this.checkpointDue || overdue)) {
        checkpoint("interval");
      } else if (this.rotationDue(out.length) && records === 0 && this.sinceCheckpoint === 0) {
        // A rename that failed earlier: sign again and retry it.
        checkpoint("rotation");
        rotate = true;
      }
    }
    this.checkpointDue = false;
    if (out.lines === 0) return undefined;
    this.needsNewline = false;
    const data = out.bytes();
    return { data, bytes: data.length, records, recordBytes, checkpoints, recovery, rotate, final };
  }

  private rotationDue(pendingBytes: number): boolean {
    return (
      this.options.rotateBytes > 0 &&
      this.size + pendingBytes >= this.options.rotateBytes &&
      this.options.clock.nowMs() >= this.rotationBlockedUntilMs
    );
  }

  private startCheckpointClock(): void {
    if (this.unsignedSinceMs !== undefined) return;
    this.unsignedSinceMs = this.options.clock.nowMs();
    this.checkpointTimer = setTimeout(() => {
      this.checkpointTimer = undefined;
      this.checkpointDue = true;
      this.scheduleFlush(0);
    }, this.options.checkpointEveryMs);
    this.checkpointTimer.unref();
  }

  /**
   * Appends a chunk; a chunk with a checkpoint is fsynced, so what is signed
   * is durable. The file stays open between chunks; before each append one
   * stat of the path checks that it is still our file, of the size we left it
   * (two system calls per chunk instead of open, write, stat and close).
   */
  private async writeChunk(chunk: Chunk): Promise<boolean> {
    let sizeBefore = this.size;
    try {
      const handle = await this.openFile();
      sizeBefore = this.size;
      await handle.appendFile(chunk.data);
      if (chunk.checkpoints > 0 || chunk.recovery) await handle.sync();
      this.size = sizeBefore + chunk.bytes;
    } catch (error) {
      this.noteWriteError("append", error);
      await this.closeFile();
      await this.discardPartialWrite(sizeBefore);
      return false;
    }
    if (this.failingSince !== undefined) {
      this.log.info("audit log writes recovered", { path: this.options.path, failed_attempts: this.failures, failing_ms: this.options.clock.nowMs() - this.failingSince });
    }
    this.failingSince = undefined;
    this.failures = 0;
    this.retryDelayMs = this.options.retryDelayMs;
    return true;
  }

  /**
   * The open file, checked against the path: a file deleted, replaced or
   * resized behind the writer's back is logged once (audit_file_changed), and
   * the writer goes on at the path, in a new file if need be (verify reports
   * the gap).
   */
  private async openFile(): Promise<FileHandle> {
    const path = this.options.path;
    const onDisk = await stat(path).catch((error: NodeJS.ErrnoException) => {
      if (error.code === "ENOENT") return undefined;
      throw error;
    });
    const ours = this.file !== undefined && onDisk !== undefined && onDisk.ino === this.file.ino && onDisk.dev === this.file.dev;
    let change: string | undefined;
    if (this.file !== undefined && !ours) {
      change = onDisk === undefined ? "deleted" : "replaced";
      await this.closeFile();
    } else if (onDisk !== undefined && onDisk.size !== this.size) {
      change = onDisk.size < this.size ? "truncated" : "appended to";
    } else if (onDisk === undefined && this.size > 0) {
      change = "deleted";
    }
    if (change !== undefined) {
      this.log.error("audit log file changed outside hopwarden", {
        event: "audit_file_changed",
        path,
        change,
        expected_bytes: this.size,
        actual_bytes: onDisk?.isFile() === true ? onDisk.size : 0,
      });
      this.size = change === "deleted" ? 0 : onDisk?.isFile() === true ? onDisk.size : 0;
    }
    if (this.file === undefined) {
      const handle = await open(path, "a");
      try {
        const info = await handle.stat();
        this.file = { handle, ino: info.ino, dev: info.dev };
        this.size = info.size;
      } catch (error) {
        await handle.close();
        throw error;
      }
    }
    return this.file.handle;
  }

  private async closeFile(): Promise<void> {
    const file = this.file;
    this.file = undefined;
    await file?.handle.close().catch(() => undefined);
  }

  /** A write cut short (a full disk) may leave part of the chunk; remove it so the retry does not leave a broken line. */
  private async discardPartialWrite(sizeBefore: number): Promise<void> {
    try {
      const info = await stat(this.options.path);
      if (info.isFile() && info.size > sizeBefore) await truncate(this.options.path, sizeBefore);
    } catch {
      // Nothing to discard (the file or its directory is gone); the retry reports what is wrong.
    }
  }

  private scheduleRetry(): void {
    const delay = this.retryDelayMs;
    this.retryDelayMs = Math.min(this.retryDelayMs * 2, this.options.maxRetryDelayMs);
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      void this.flush();
    }, delay);
    this.retryTimer.unref();
  }

  private async rotate(): Promise<void> {
    const from = this.options.path;
    const to = rotatedFileName(from, this.fileFirstSeq);
    await this.closeFile();
    try {
      if (await exists(to)) throw Object.assign(new Error(`${to} already exists`), { code: "EEXIST" });
      await rename(from, to);
      await syncDirectory(dirname(from));
    } catch (error) {
      this.noteWriteError("rotate", error);
      this.rotationBlockedUntilMs = this.options.clock.nowMs() + this.options.maxRetryDelayMs;
      return;
    }
    this.counters.rotations++;
    this.log.info("audit log rotated", { event: "audit_rotated", file: to, last_seq: this.tail.seq, last_hash: this.tail.hash });
    this.size = 0;
    this.fileFirstSeq = this.tail.seq + 1;
  }

  private noteWriteError(operation: string, error: unknown): void {
    this.lastWriteError = error;
    this.counters.writeErrors++;
    this.failures++;
    this.failingSince ??= this.options.clock.nowMs();
    this.log.error("audit log write failed; retrying", {
      event: "audit_write_error",
      operation,
      path: this.options.path,
      code: (error as NodeJS.ErrnoException).code,
      error,
      attempt: this.failures,
      retry_in_ms: this.retryDelayMs,
      depth: this.depth(),
    });
  }

  // --- overflow -------------------------------------------------------------

  private drop(why: string): void {
    this.counters.dropped++;
    if (this.overflowEpisode) {
      this.overflowEpisode.dropped++;
      return;
    }
    // Outside an overflow episode (after close) every loss is its own line: it should never happen.
    this.log.error("audit record dropped", { event: "audit_record_dropped", why, path: this.options.path, dropped_total: this.counters.dropped });
  }

  /** One error line per overflow episode, however many Checks it touches; its end is logged with the totals. */
  private noteOverflow(): void {
    if (this.overflowEpisode) return;
    this.overflowEpisode = { dropped: 0, refused: 0 };
    this.log.error("audit buffer full", {
      event: "audit_buffer_full",
      path: this.options.path,
      depth: this.depth(),
      depth_bytes: this.depthBytes(),
      buffer_records: this.options.bufferRecords,
      buffer_bytes: this.options.bufferBytes,
      overflow: this.options.overflow,
      healthy: this.healthy(),
    });
  }

  private notifyAccepting(): void {
    const now = this.accepting();
    if (now === this.wasAccepting) return;
    this.wasAccepting = now;
    if (now && this.overflowEpisode) {
      this.log.warn("audit buffer has room again", {
        event: "audit_buffer_recovered",
        path: this.options.path,
        refused: this.overflowEpisode.refused,
        dropped: this.overflowEpisode.dropped,
      });
      this.overflowEpisode = undefined;
    }
  }

  private releaseWaiters(): void {
    while (this.waiters.length > 0 && this.accepting()) {
      const waiter = this.waiters.shift()!;
      clearTimeout(waiter.timer);
      waiter.resolve(true);
    }
  }

  // --- shutdown -------------------------------------------------------------

  private async closeOnce(): Promise<void> {
    this.closing = true;
    this.notifyAccepting();
    for (const waiter of this.waiters.splice(0)) {
      clearTimeout(waiter.timer);
      waiter.resolve(false);
    }
    clearTimeout(this.flushTimer);
    this.flushTimer = undefined;
    const done = new Promise<void>((resolve) => {
      this.onFinalWritten = resolve;
    });
    let deadline: NodeJS.Timeout | undefined;
    const timedOut = new Promise<"timeout">((resolve) => {
      deadline = setTimeout(() => resolve("timeout"), this.options.closeTimeoutMs);
    });
    // A pending retry keeps its back-off; otherwise write now.
    if (this.retryTimer === undefined) void this.flush();
    const outcome = await Promise.race([done, timedOut]);
    clearTimeout(deadline);
    clearTimeout(this.checkpointTimer);
    clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
    this.closed = true;
    await this.closeFile();
    if (outcome === "timeout") {
      const lost = this.depth();
      this.counters.dropped += lost;
      throw new Error(
        `audit log ${this.options.path}: close gave up after ${this.options.closeTimeoutMs} ms with ${lost} record(s) unwritten and no shutdown checkpoint (see the audit_write_error log lines)`,
      );
    }
    this.log.info("audit log closed", { event: "audit_closed", path: this.options.path, last_seq: this.tail.seq, last_hash: this.tail.hash, ...this.counters });
  }
}

function resolveOptions(options: AuditLogWriterOptions): ResolvedOptions {
  const integer = (field: keyof AuditLogWriterOptions, value: number | undefined, fallback: number, min: number): number => {
    const v = value ?? fallback;
    if (!Number.isInteger(v) || v < min) throw new AuditLogConfigError(field, `must be an integer ≥ ${min}, got ${String(v)}`);
    return v;
  };
  if (options.path === "") throw new AuditLogConfigError("path", "must not be empty");
  if (options.chain !== undefined && options.chain !== "" && !/^w[1-9]\d{0,3}$/.test(options.chain)) {
    throw new AuditLogConfigError("chain", `must be "w1" to "w9999", got ${JSON.stringify(options.chain)}`);
  }
  if (options.privateKey.type !== "private" || options.privateKey.asymmetricKeyType !== "ed25519") {
    throw new AuditLogConfigError("privateKey", "must be an Ed25519 private key");
  }
  const overflow = options.overflow ?? "deny";
  if (overflow !== "deny" && overflow !== "block") throw new AuditLogConfigError("overflow", `must be "block" or "deny", got ${String(overflow)}`);
  return {
    path: options.path,
    privateKey: options.privateKey,
    rotateBytes: integer("rotateBytes", options.rotateBytes, 64 * 1024 * 1024, 0),
    checkpointEveryRecords: integer("checkpointEveryRecords", options.checkpointEveryRecords, 100, 1),
    checkpointEveryMs: integer("checkpointEveryMs", options.checkpointEveryMs, 1000, 1),
    // 20 ms, not less: below that, at a few thousand Checks a second, the fixed cost of each append dominates (docs/audit-log.md).
    flushDelayMs: integer("flushDelayMs", options.flushDelayMs, 20, 0),
    bufferRecords: integer("bufferRecords", options.bufferRecords, 10_000, 1),
    bufferBytes: integer("bufferBytes", options.bufferBytes, 16 * 1024 * 1024, 1),
    overflow,
    blockTimeoutMs: integer("blockTimeoutMs", options.blockTimeoutMs, 250, 0),
    retryDelayMs: integer("retryDelayMs", options.retryDelayMs, 100, 1),
    maxRetryDelayMs: integer("maxRetryDelayMs", options.maxRetryDelayMs, 5000, 1),
    closeTimeoutMs: integer("closeTimeoutMs", options.closeTimeoutMs, 10_000, 0),
    logger: options.logger ?? silentLogger,
    clock: options.clock ?? systemClock,
    chain: options.chain ?? "",
  };
}

/** Checks the path, then reads where the chain on disk may be continued; refuses a log it cannot continue. */
async function readChainEnd(path: string, privateKey: KeyObject, chain: string): Promise<ResumePlan> {
  await mkdir(dirname(path), { recursive: true }).catch((error: NodeJS.ErrnoException) => {
    throw new AuditLogConfigError("path", `${dirname(path)}: cannot create the directory (${error.code ?? error.message})`);
  });
  const info = await stat(path).catch((error: NodeJS.ErrnoException) => {
    if (error.code === "ENOENT") return undefined;
    throw new AuditLogConfigError("path", `${path}: cannot stat (${error.code ?? error.message})`);
  });
  if (info !== undefined && !info.isFile()) throw new AuditLogConfigError("path", `${path}: is not a regular file`);
  const plan = await planResume(path, privateKey, chain);
  if (plan.refusal !== undefined) throw new AuditLogConfigError("path", plan.refusal);
  return plan;
}

async function exists(path: string): Promise<boolean> {
  try {
    await access(path);
    return true;
  } catch {
    return false;
  }
}

/** Makes a rename durable; some file systems cannot fsync a directory, which is not worth failing a rotation over. */
async function syncDirectory(dir: string): Promise<void> {
  try {
    const handle = await open(dir, "r");
    try {
      await handle.sync();
    } finally {
      await handle.close();
    }
  } catch {
    // best effort
  }
}

/**
 * The bytes of one chunk, each line encoded once: written into the buffer,
 * hashed from there (its `prev` link for the next line), and appended as is.
 */
class ChunkBytes {
  private buf: Buffer;
  length = 0;
  lines = 0;

  constructor(capacity: number) {
    this.buf = Buffer.allocUnsafe(capacity);
  }

  /** Appends `head` (ASCII) and `body` from index `from` (`bodyBytes` in UTF-8), then a newline; returns the line's hash. */
  line(head: string, body: string, from: number, bodyBytes: number): string {
    this.ensure(head.length + bodyBytes + 1);
    const start = this.length;
    let end = start + this.buf.write(head, start, "latin1");
    end += this.buf.write(from === 0 ? body : body.slice(from), end, "utf8");
    const hash = hashLine(this.buf.subarray(start, end));
    this.buf[end] = 0x0a;
    this.length = end + 1;
    this.lines++;
    return hash;
  }

  /** Appends `head` (ASCII) and `body` from byte `from`, then a newline; returns the line's hash. */
  lineFromBytes(head: string, body: Buffer, from: number): string {
    this.ensure(head.length + body.length - from + 1);
    const start = this.length;
    let end = start + this.buf.write(head, start, "latin1");
    end += body.copy(this.buf, end, from);
    const hash = hashLine(this.buf.subarray(start, end));
    this.buf[end] = 0x0a;
    this.length = end + 1;
    this.lines++;
    return hash;
  }

  /** A newline of its own: ends a crash fragment the file ended with. */
  newline(): void {
    this.ensure(1);
    this.buf[this.length++] = 0x0a;
  }

  bytes(): Buffer {
    return this.buf.subarray(0, this.length);
  }

  private ensure(more: number): void {
    if (this.length + more <= this.buf.length) return;
    const grown = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.length + more));
    this.buf.copy(grown, 0, 0, this.length);
    this.buf = grown;
  }
}
