// Single use across `--workers N` without a shared store: the primary holds
// the one ReplayMemory and every worker asks it over the cluster IPC channel.
// A question is one message and one answer; the worker waits at most the
// replay time-out, and at most `maxPending` questions wait at once, so a busy
// or lost primary is a deny (internal_error), never an accept and never an
// unbounded queue. Replicas on other hosts still need the shared store.

import type { ReplayMemory } from "./replay-memory.js";
import { emptyFailures, ReplayStoreUnavailable, type ReplayStore, type ReplayStoreFailure, type ReplayStoreStats, type ReplayVerdict } from "./replay-store.js";

/** The part of node:cluster's IPC used here: `process` in a worker, a `Worker` in the primary. */
export interface ReplayIpcEndpoint {
  send(message: unknown): boolean;
  on(event: "message", listener: (message: unknown) => void): unknown;
  off(event: "message", listener: (message: unknown) => void): unknown;
  isConnected?(): boolean;
  readonly connected?: boolean;
}

/** Tags messages so they share the channel with the others (reload, audit, metrics). */
export const REPLAY_IPC_TAG = "hopwarden.replay";

interface ReplayQuestion {
  readonly tag: typeof REPLAY_IPC_TAG;
  readonly id: number;
  readonly key: string;
  readonly untilMs: number;
  readonly nowMs: number;
}

interface ReplayAnswer {
  readonly tag: typeof REPLAY_IPC_TAG;
  readonly id: number;
  readonly verdict: ReplayVerdict;
}

const isTagged = (message: unknown): message is Record<string, unknown> =>
  typeof message === "object" && message !== null && (message as { tag?: unknown }).tag === REPLAY_IPC_TAG;

function isQuestion(message: unknown): message is ReplayQuestion {
  return (
    isTagged(message) &&
    typeof message.id === "number" &&
    typeof message.key === "string" &&
    message.key.length <= 64 &&
    Number.isFinite(message.untilMs) &&
    Number.isFinite(message.nowMs)
  );
}

function isAnswer(message: unknown): message is ReplayAnswer {
  return isTagged(message) && typeof message.id === "number" && (message.verdict === "first" || message.verdict === "replayed" || message.verdict === "full");
}

const DEFAULT_MAX_PENDING = 1024;

/** The worker's store: asks the primary. */
export class ClusterReplayStore implements ReplayStore {
  private readonly waiting = new Map<number, { resolve: (verdict: ReplayVerdict) => void; reject: (err: Error) => void; timer: NodeJS.Timeout }>();
  private readonly failures = emptyFailures();
  private fullRefusals = 0;
  private nextId = 0;
  private closed = false;
  private readonly listener = (message: unknown): void => {
    if (!isAnswer(message)) return;
    const waiter = this.waiting.get(message.id);
    if (waiter === undefined) return; // answered after the time-out: the Check was already denied
    this.waiting.delete(message.id);
    clearTimeout(waiter.timer);
    if (message.verdict === "full") this.fullRefusals += 1;
    waiter.resolve(message.verdict);
  };

  constructor(
    private readonly primary: ReplayIpcEndpoint,
    private readonly timeoutMs: number,
    private readonly maxPending = DEFAULT_MAX_PENDING,
  ) {
    primary.on("message", this.listener);
  }

  firstUse(key: string, untilMs: number, nowMs: number): Promise<ReplayVerdict> {
    if (this.closed || this.primary.connected === false) return Promise.reject(this.fail("unavailable", "the primary process's single-use memory cannot be reached"));
    if (this.waiting.size >= this.maxPending) return Promise.reject(this.fail("overloaded", `${this.waiting.size} single-use questions already wait for the primary process`));
    const id = (this.nextId = (this.nextId + 1) % Number.MAX_SAFE_INTEGER);
    return new Promise<ReplayVerdict>((resolve, reject) => {
      // Checked after the next poll phase, so that an answer already delivered during an event-loop stall is read first.
      const timer = setTimeout(
        () =>
          setImmediate(() => {
            if (!this.waiting.delete(id)) return;
            reject(this.fail("timeout", `the primary process's single-use memory did not answer within ${this.timeoutMs} ms`));
          }),
        this.timeoutMs,
      );
      this.waiting.set(id, { resolve, reject, timer });
      try {
        this.primary.send({ tag: REPLAY_IPC_TAG, id, key, untilMs, nowMs } satisfies ReplayQuestion);
      } catch (err) {
        this.waiting.delete(id);
        clearTimeout(timer);
        reject(this.fail("unavailable", `the primary process's single-use memory cannot be reached: ${err instanceof Error ? err.message : String(err)}`));
      }
    });
  }

  stats(): ReplayStoreStats {
    return { kind: "primary", fullRefusals: this.fullRefusals, failures: { ...this.failures } };
  }

  close(): Promise<void> {
    this.closed = true;
    this.primary.off("message", this.listener);
    for (const [id, waiter] of this.waiting) {
      clearTimeout(waiter.timer);
      this.waiting.delete(id);
      waiter.reject(this.fail("unavailable", "the service is stopping"));
    }
    return Promise.resolve();
  }

  private fail(kind: ReplayStoreFailure, message: string): ReplayStoreUnavailable {
    this.failures[kind] += 1;
    return new ReplayStoreUnavailable(kind, message);
  }
}

/** In the primary: answers one worker's questions from the shared memory. Returns a function that stops answering. */
export function answerWorkerReplayQuestions(worker: ReplayIpcEndpoint, memory: ReplayMemory): () => void {
  const listener = (message: unknown): void => {
    if (!isQuestion(message)) return;
    const verdict = memory.firstUse(message.key, message.untilMs, message.nowMs);
    if (worker.isConnected?.() === false) return;
    worker.send({ tag: REPLAY_IPC_TAG, id: message.id, verdict } satisfies ReplayAnswer);
  };
  worker.on("message", listener);
  return () => worker.off("message", listener);
}
