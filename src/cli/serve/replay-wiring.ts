// Which single-use store `serve` uses (SPEC 5), per process role:
//   - with --replay-store (or replay.store): every process, single or
//     worker, connects to the shared Redis-compatible store;
//   - otherwise one process keeps its own ReplayMemory, and with --workers
//     the primary keeps it and the workers ask the primary over IPC, so a
//     token is accepted once per host. Replicas need the shared store.

import type { Worker } from "node:cluster";
import type { Logger } from "../../adapters/logging/logger.js";
import { answerWorkerReplayQuestions, ClusterReplayStore } from "../../adapters/tokens/cluster-replay-store.js";
import { ReplayMemory } from "../../adapters/tokens/replay-memory.js";
import type { ReplayStore } from "../../adapters/tokens/replay-store.js";
import type { ReplaySettings } from "./settings.js";

/** How long start-up waits for the shared store's first connection; a store still down is then a deny per Check, not a start-up error. */
const FIRST_CONNECTION_WAIT_MS = 2_000;

/** The store of a process that serves Check: `single` (no --workers) or a `worker`. */
export async function openReplayStore(replay: ReplaySettings, role: "single" | "worker", logger: Logger): Promise<ReplayStore> {
  if (replay.store !== undefined) {
    // Loaded only when configured: a service without a shared store never loads the Redis client.
    const { RedisReplayStore } = await import("../../adapters/tokens/redis-replay-store.js");
    const store = new RedisReplayStore({ address: replay.store, timeoutMs: replay.timeoutMs, logger });
    const ready = await store.whenReady(FIRST_CONNECTION_WAIT_MS);
    if (role === "single" || !ready) {
      logger.info(ready ? "single-use tokens: shared store connected" : "single-use tokens: shared store not reachable yet; single-use tokens are denied until it is", {
        store: replay.store.display,
        timeout_ms: replay.timeoutMs,
      });
    }
    return store;
  }
  if (role === "worker") {
    const primary = {
      send: (message: unknown) => process.send?.(message) ?? false,
      on: (event: "message", listener: (message: unknown) => void) => process.on(event, listener),
      off: (event: "message", listener: (message: unknown) => void) => process.off(event, listener),
      get connected() {
        return process.connected;
      },
    };
    return new ClusterReplayStore(primary, replay.timeoutMs);
  }
  return new ReplayMemory(replay.capacity);
}

/** In the --workers primary: the one memory that every worker asks, or undefined when a shared store is configured. */
export function primaryReplayMemory(replay: ReplaySettings): ReplayMemory | undefined {
  return replay.store === undefined ? new ReplayMemory(replay.capacity) : undefined;
}

/** In the --workers primary: answer this worker's single-use questions from `memory`. */
export function serveReplayQuestions(worker: Worker, memory: ReplayMemory | undefined): void {
  if (memory === undefined) return;
  const stop = answerWorkerReplayQuestions(worker, memory);
  worker.once("exit", stop);
}

/** The primary's memory in Prometheus text, merged into /metrics beside the workers' numbers. */
export function replayMemoryMetrics(memory: ReplayMemory): string {
  return `# HELP hopwarden_replay_memory_entries jti entries held by the replay memory (the primary's, shared by the workers)
# TYPE hopwarden_replay_memory_entries gauge
hopwarden_replay_memory_entries ${memory.size}
`;
}
