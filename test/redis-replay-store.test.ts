// The shared single-use store against a real redis-server (SPEC 5): an atomic
// SET NX PX that expires with the token; a store that is down or silent is a
// ReplayStoreUnavailable within the time-out, never a wait and never an
// accept; the client recovers when the server is back; and what waits on a
// silent server is bounded.

import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { RedisReplayStore, REPLAY_KEY_PREFIX } from "../src/adapters/tokens/redis-replay-store.js";
import { parseRedisUrl, type RedisAddress } from "../src/adapters/tokens/redis-url.js";
import { replayKey, ReplayStoreUnavailable } from "../src/adapters/tokens/replay-store.js";
import { eventually } from "./support/cli-process.js";
import { startRedis, stopAllRedis, type RedisProcess } from "./support/redis.js";

let redis: RedisProcess;
const stores: RedisReplayStore[] = [];

function addressOf(url: string): RedisAddress {
  const parsed = parseRedisUrl(url);
  if (!parsed.ok) throw new Error(parsed.problem);
  return parsed.address;
}

async function openStore(options: { timeoutMs?: number; maxPending?: number } = {}): Promise<RedisReplayStore> {
  const store = new RedisReplayStore({ address: addressOf(redis.url), ...options });
  stores.push(store);
  expect(await store.whenReady(5_000)).toBe(true);
  return store;
}

/** The failure a call ends in, and how long it took. */
async function failureOf(call: () => Promise<unknown>): Promise<{ failure: string; ms: number }> {
  const started = performance.now();
  try {
    await call();
  } catch (err) {
    if (err instanceof ReplayStoreUnavailable) return { failure: err.failure, ms: performance.now() - started };
    throw err;
  }
  throw new Error("expected the store to fail");
}

beforeAll(async () => {
  redis = await startRedis();
});

afterEach(async () => {
  redis.resume();
  await Promise.all(stores.splice(0).map((s) => s.close()));
});

afterAll(async () => {
  await stopAllRedis();
});

describe("RedisReplayStore on a real redis-server", () => {
  it("records a first use with SET NX PX under a namespaced, fixed-size key that expires with the token", async () => {
    const store = await openStore();
    const key = replayKey("https://sts.example.org", "x".repeat(5_000));
    const now = Date.now();
    expect(await store.firstUse(key, now + 60_000, now)).toBe("first");
    expect(await store.firstUse(key, now + 60_000, now)).toBe("replayed");
    const pttl = Number((await redis.command("PTTL", REPLAY_KEY_PREFIX + key)).slice(1));
    expect(pttl).toBeGreaterThan(55_000);
    expect(pttl).toBeLessThanOrEqual(60_000);
    expect(REPLAY_KEY_PREFIX + key).toHaveLength("hopwarden:jti:".length + 43);
  });

  it("takes an answer that arrived while this process's event loop was stalled past the time-out as the answer, not as silence", async () => {
    const store = await openStore({ timeoutMs: 50 });
    const now = Date.now();
    const verdict = store.firstUse(replayKey("iss", `stall-${now}`), now + 10_000, now);
    const until = performance.now() + 150;
    while (performance.now() < until); // a GC pause or a busy CPU: Redis answers meanwhile
    expect(await verdict).toBe("first");
  });

  it("lets exactly one of many concurrent first uses win, across two clients", async () => {
    const [a, b] = [await openStore(), await openStore()];
    const key = replayKey("iss", `race-${Date.now()}`);
    const now = Date.now();
    const verdicts = await Promise.all(Array.from({ length: 20 }, (_, i) => (i % 2 === 0 ? a : b).firstUse(key, now + 10_000, now)));
    expect(verdicts.filter((v) => v === "first")).toHaveLength(1);
  });

  it("fails at once while the server is down, and recovers when it is back on the same port", async () => {
    const store = await openStore();
    const port = redis.port;
    await redis.stop();
    const down = await failureOf(() => store.firstUse(replayKey("iss", "down"), Date.now() + 10_000, Date.now()));
    expect(down.failure).toBe("unavailable");
    expect(down.ms).toBeLessThan(50);
    redis = await startRedis({ port });
    expect(await eventually(async () => (await store.firstUse(replayKey("iss", `back-${Math.random()}`), Date.now() + 10_000, Date.now()).catch(() => "failed")) === "first", 5_000)).toBe(true);
    expect(store.stats().failures.unavailable).toBeGreaterThan(0);
  });

  it("answers within its time-out when the server is silent, bounds what waits, and drops the silent connection", async () => {
    const store = await openStore({ timeoutMs: 50, maxPending: 4 });
    redis.pause();
    const now = Date.now();
    const results = await Promise.all(Array.from({ length: 10 }, (_, i) => failureOf(() => store.firstUse(replayKey("iss", `silent-${i}`), now + 10_000, now))));
    expect(results.filter((r) => r.failure === "timeout")).toHaveLength(4);
    expect(results.filter((r) => r.failure === "overloaded")).toHaveLength(6);
    for (const r of results) expect(r.ms).toBeLessThan(150);
    // The socket time-out (1 s) gives up on the silent connection: nothing stays owed.
    expect(await eventually(() => store.pendingCommands === 0, 3_000)).toBe(true);
    redis.resume();
    expect(await eventually(async () => (await store.firstUse(replayKey("iss", `resumed-${Math.random()}`), Date.now() + 10_000, Date.now()).catch(() => "failed")) === "first", 5_000)).toBe(true);
  });
});
