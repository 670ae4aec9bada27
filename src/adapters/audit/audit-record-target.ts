// What the audit sink hands decisions to: the chain writer itself (one
// process, or each worker of a cluster with its own chain). The Check path
// only ever calls `admit` and `enqueue`.

import type { Decision } from "../../core/decision/decision.js";
import type { DecisionContext } from "../../core/ports.js";

export type AuditOverflowMode = "block" | "deny";

export interface AuditLogStats {
  /** Records accepted but not yet on disk. */
  readonly depth: number;
  /** Records lost: the buffer's hard limit was reached, the log was closed, or a record could not be formatted. */
  readonly dropped: number;
  /** admit() calls that had to wait for room (overflow "block"). */
  readonly blocked: number;
  /** admit() calls answered false: the Check must deny with internal_error. */
  readonly refused: number;
  /** Decision records written. */
  readonly written: number;
  /** Checkpoint records written. */
  readonly checkpoints: number;
  /** Failed writes, renames or fsyncs (each is retried). */
  readonly writeErrors: number;
  readonly rotations: number;
}

export interface AuditRecordTarget {
  /**
   * Whether a Check may go ahead: true (synchronously, the fast path) when
   * the buffer has room; otherwise false, or, with overflow "block", a promise
   * that settles when room frees up or the bounded wait ends. A false answer
   * means: deny the Check with internal_error rather than decide without a record.
   */
  admit(): boolean | Promise<boolean>;
  /**
   * Queues the decision's record: the Decision and its context as they are
   * (both immutable), formatted later off the Check path. Never throws, never
   * waits. A record that cannot be kept is counted and logged.
   */
  enqueue(decision: Decision, context: DecisionContext): void;
  /** True while new records fit in the buffer. */
  accepting(): boolean;
  /** False while writes are failing (the buffer still holds the records and retries). */
  healthy(): boolean;
  stats(): AuditLogStats;
  /** Writes everything buffered, then a final checkpoint; resolves when it is on disk. */
  close(): Promise<void>;
}
