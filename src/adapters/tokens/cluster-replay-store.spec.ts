import { EventEmitter } from "node:events";
import { describe, expect, it } from "vitest";
import { answerWorkerReplayQuestions, ClusterReplayStore, type ReplayIpcEndpoint } from "./cluster-replay-store.js";
import { ReplayMemory } from "./replay-memory.js";
import { ReplayStoreUnavailable } from "./replay-store.js";

/** Two ends of an IPC channel, delivering asynchronously like node:cluster. */
function channel(): { worker: ReplayIpcEndpoint & { connected: boolean }; primary: ReplayIpcEndpoint; deliver: { toPrimary: boolean } } {
  const workerSide = new EventEmitter();
  const primarySide = new EventEmitter();
  const deliver = { toPrimary: true };
  const worker = {
    connected: true,
    send: (message: unknown) => {
      if (deliver.toPrimary) setImmediate(() => primarySide.emit("message", structuredClone(message)));
      return true;
    },
    on: (event: "message", listener: (message: unknown) => void) => workerSide.on(event, listener),
    off: (event: "message", listener: (message: unknown) => void) => workerSide.off(event, listener),
  };
  const primary = {
    send: (message: unknown) => {
      setImmediate(() => workerSide.emit("message", structuredClone(message)));
      return true;
    },
    on: (event: "message", listener: (message: unknown) => void) => primarySide.on(event, listener),
    off: (event: "message", listener: (message: unknown) => void) => primarySide.off(event, listener),
    isConnected: () => true,
  };
  return { worker, primary, deliver };
}

async function failureOf(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
  } catch (err) {
    if (err instanceof ReplayStoreUnavailable) return err.failure;
    throw err;
  }
  return "no failure";
}

describe("--workers without a shared store: workers ask the primary's memory", () => {
  it("gives one answer per key across workers: the first asker wins", async () => {
    const memory = new ReplayMemory(10);
    const a = channel();
    const b = channel();
    answerWorkerReplayQuestions(a.primary, memory);
    answerWorkerReplayQuestions(b.primary, memory);
    const storeA = new ClusterReplayStore(a.worker, 1_000);
    const storeB = new ClusterReplayStore(b.worker, 1_000);
    expect(await storeA.firstUse("k", 10_000, 0)).toBe("first");
    expect(await storeB.firstUse("k", 10_000, 1)).toBe("replayed");
    expect(await storeA.firstUse("k", 10_000, 2)).toBe("replayed");
  });

  it("passes the primary's full verdict on, and counts it", async () => {
    const memory = new ReplayMemory(1);
    const c = channel();
    answerWorkerReplayQuestions(c.primary, memory);
    const store = new ClusterReplayStore(c.worker, 1_000);
    expect(await store.firstUse("a", 10_000, 0)).toBe("first");
    expect(await store.firstUse("b", 10_000, 0)).toBe("full");
    expect(store.stats()).toMatchObject({ kind: "primary", fullRefusals: 1 });
  });

  it("fails with timeout when the primary does not answer, and bounds the questions waiting", async () => {
    const c = channel();
    c.deliver.toPrimary = false;
    const store = new ClusterReplayStore(c.worker, 50, 2);
    const waiting = [failureOf(store.firstUse("a", 10_000, 0)), failureOf(store.firstUse("b", 10_000, 0))];
    expect(await failureOf(store.firstUse("c", 10_000, 0))).toBe("overloaded");
    const started = performance.now();
    expect(await Promise.all(waiting)).toEqual(["timeout", "timeout"]);
    expect(performance.now() - started).toBeLessThan(1_000);
    expect(store.stats().failures).toMatchObject({ timeout: 2, overloaded: 1 });
  });

  it("fails at once when the channel to the primary is closed, and rejects what waits when closed", async () => {
    const c = channel();
    c.deliver.toPrimary = false;
    const store = new ClusterReplayStore(c.worker, 10_000);
    const waiting = failureOf(store.firstUse("a", 10_000, 0));
    await store.close();
    expect(await waiting).toBe("unavailable");
    const d = channel();
    d.worker.connected = false;
    expect(await failureOf(new ClusterReplayStore(d.worker, 10_000).firstUse("a", 10_000, 0))).toBe("unavailable");
  });

  it("ignores malformed questions and answers", async () => {
    const memory = new ReplayMemory(10);
    const c = channel();
    answerWorkerReplayQuestions(c.primary, memory);
    c.worker.send({ tag: "hopwarden.replay", id: 1, key: "x".repeat(65), untilMs: 10, nowMs: 0 });
    c.worker.send({ tag: "hopwarden.replay", id: 2, key: "k", untilMs: "soon", nowMs: 0 });
    await new Promise((r) => setImmediate(r));
    expect(memory.size).toBe(0);
  });
});
