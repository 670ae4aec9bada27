// The memory behind `tokens.singleUse` (SPEC 5): where a token's first use is
// recorded until its exp plus clockSkew. Three stores answer this port: the
// process's own memory, the --workers primary's memory over IPC, and a shared
// Redis-compatible store. A store that cannot answer throws
// ReplayStoreUnavailable, which is a deny (internal_error), never an accept.

import { createHash } from "node:crypto";
import { HopwardenError } from "../../core/errors.js";

/** How long a Check waits for a store that is not this process's memory (SPEC 5). */
export const DEFAULT_REPLAY_TIMEOUT_MS = 50;

/**
 * "first": recorded now, the token may pass; "replayed": seen before;
 * "full": the memory holds only unexpired entries and cannot take this one,
 * so the token is refused rather than another one forgotten.
 */
export type ReplayVerdict = "first" | "replayed" | "full";

export interface ReplayStore {
  /**
   * Records the first use of `key` until `untilMs` (the token's exp plus
   * skew, epoch ms) and says whether it was the first. Atomic: of two
   * concurrent calls with one key, one gets "first".
   */
  firstUse(key: string, untilMs: number, nowMs: number): ReplayVerdict | Promise<ReplayVerdict>;
  /** Releases connections and timers; later calls throw ReplayStoreUnavailable. */
  close(): Promise<void>;
  /** What the metrics report. */
  stats(): ReplayStoreStats;
}

/**
 * timeout: no answer within the time-out; unavailable: not connected;
 * overloaded: too many questions already waiting for an answer; error: the
 * store answered with an error (e.g. Redis out of memory, a read-only replica).
 */
export type ReplayStoreFailure = "timeout" | "unavailable" | "overloaded" | "error";

export interface ReplayStoreStats {
  /** "memory", "primary" or "redis". */
  readonly kind: string;
  /** Unexpired entries held, when the store is this process's memory. */
  readonly entries?: number;
  /** Tokens refused because the memory was full. */
  readonly fullRefusals: number;
  /** Checks the store could not answer, by cause. */
  readonly failures: Readonly<Record<ReplayStoreFailure, number>>;
}

export class ReplayStoreUnavailable extends HopwardenError {
  readonly code = "replay_store_unavailable";
  constructor(
    readonly failure: ReplayStoreFailure,
    message: string,
  ) {
    super(message);
  }
}

/**
 * The key a token's use is recorded under: base64url SHA-256 of its issuer and
 * jti (JSON-encoded, so no pair of strings can meet another's encoding). A
 * fixed 43 characters however long the jti: no claim can make a large key.
 */
export function replayKey(issuer: string, jti: string): string {
  return createHash("sha256").update(JSON.stringify([issuer, jti])).digest("base64url");
}

export function emptyFailures(): Record<ReplayStoreFailure, number> {
  return { timeout: 0, unavailable: 0, overloaded: 0, error: 0 };
}
