// The shared single-use store (SPEC 5): one Redis-compatible server (Redis,
// Valkey) that every worker and replica asks. A first use is one atomic
// `SET hopwarden:jti:<key> 1 NX PX <ms until exp+skew>`: "OK" is the first
// use, nil a replay, and the key expires with the token.
//
// Fail closed, and fast: a store that is not connected, or does not answer
// within the time-out (default 50 ms, well inside Envoy's ext_authz
// time-out), is a ReplayStoreUnavailable, which the verifier turns into
// internal_error. Nothing waits for a connection: commands are never queued
// while disconnected, never retried, never resent after a reconnect.
// Commands already written wait for their reply or for the socket time-out,
// which drops a connection that has gone silent (a stopped or partitioned
// server) and lets the client reconnect; and at most `maxPending` of them
// can be waiting, so an unresponsive server bounds memory too.

import { Redis } from "ioredis";
import type { Logger } from "../logging/logger.js";
import type { RedisAddress } from "./redis-url.js";
import { DEFAULT_REPLAY_TIMEOUT_MS, emptyFailures, ReplayStoreUnavailable, type ReplayStore, type ReplayStoreStats, type ReplayVerdict } from "./replay-store.js";

export const REPLAY_KEY_PREFIX = "hopwarden:jti:";

export interface RedisReplayStoreOptions {
  readonly address: RedisAddress;
  /** How long a Check waits for the store's answer. Default 50 ms. */
  readonly timeoutMs?: number;
  /** Commands written and not yet answered, at most; beyond, a Check is refused at once. Default 1024. */
  readonly maxPending?: number;
  readonly logger?: Logger;
}

const DEFAULT_MAX_PENDING = 1024;
/** A connection attempt (TCP, TLS, AUTH, SELECT, ready check) that takes longer is dropped and retried. */
const CONNECT_TIMEOUT_MS = 1000;
/** The longest pause between reconnection attempts while the store is down: recovery comes within about this. */
const MAX_RECONNECT_DELAY_MS = 1000;

export class RedisReplayStore implements ReplayStore {
  private readonly client: Redis;
  private readonly timeoutMs: number;
  private readonly maxPending: number;
  private readonly display: string;
  private readonly failures = emptyFailures();
  private pending = 0;
  private closed = false;
  /** Whether the loss of the connection has been logged since it was last ready (one line per outage, not per retry). */
  private outageLogged = false;

  constructor(options: RedisReplayStoreOptions) {
    const { address, logger } = options;
    this.timeoutMs = options.timeoutMs ?? DEFAULT_REPLAY_TIMEOUT_MS;
    this.maxPending = options.maxPending ?? DEFAULT_MAX_PENDING;
    this.display = address.display;
    this.client = new Redis({
      host: address.host,
      port: address.port,
      db: address.db,
      ...(address.username !== undefined && { username: address.username }),
      ...(address.password !== undefined && { password: address.password }),
      // TLS with the system's CAs (and NODE_EXTRA_CA_CERTS), checking the host name.
      ...(address.tls && { tls: { servername: address.host } }),
      // RESP2 and no CLIENT SETINFO: the handshake every Redis-compatible server understands.
      protocol: 2,
      disableClientInfo: true,
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      autoResendUnfulfilledCommands: false,
      connectTimeout: CONNECT_TIMEOUT_MS,
      // close() ends the socket and waits this long for it to close (ioredis waits 2 s by default, holding the exit).
      disconnectTimeout: 200,
      // A connection with replies owed that stays silent this long is dropped (its commands fail) and re-made.
      socketTimeout: Math.max(1000, 20 * this.timeoutMs),
      keepAlive: 10_000,
      retryStrategy: (times: number) => Math.min(50 * 2 ** Math.min(times, 5), MAX_RECONNECT_DELAY_MS) + Math.floor(Math.random() * 50),
      // After a fail-over the old primary may answer READONLY: reconnect to whatever the address names now.
      reconnectOnError: (err: Error) => err.message.startsWith("READONLY"),
    });
    this.client.on("ready", () => {
      if (this.outageLogged) logger?.info("replay store reachable again", { store: this.display });
      this.outageLogged = false;
    });
    this.client.on("error", (err: Error) => {
      if (this.outageLogged || this.closed) return;
      this.outageLogged = true;
      logger?.warn("replay store unreachable: single-use tokens are denied (internal_error) until it answers", { store: this.display, error: err.message });
    });
  }

  /** Waits, at most `ms`, for the first connection; true when ready. Never throws: a store that is down is a deny per Check, not a start-up error. */
  whenReady(ms: number): Promise<boolean> {
    if (this.client.status === "ready") return Promise.resolve(true);
    return new Promise((resolve) => {
      const done = (ready: boolean) => {
        clearTimeout(timer);
        this.client.off("ready", onReady);
        resolve(ready);
      };
      const onReady = () => done(true);
      const timer = setTimeout(() => done(false), ms);
      this.client.on("ready", onReady);
    });
  }

  firstUse(key: string, untilMs: number, nowMs: number): Promise<ReplayVerdict> {
    if (this.closed) return Promise.reject(this.fail("unavailable", `the replay store ${this.display} is closed`));
    if (this.client.status !== "ready") return Promise.reject(this.fail("unavailable", `the replay store ${this.display} is not connected (${this.client.status})`));
    if (this.pending >= this.maxPending) {
      return Promise.reject(this.fail("overloaded", `the replay store ${this.display} already owes ${this.pending} answers`));
    }
    // The token is refused as expired before it gets here; nothing to keep.
    if (untilMs <= nowMs) return Promise.resolve("first");
    const ttlMs = Math.ceil(untilMs - nowMs);
    this.pending += 1;
    const reply = this.client.set(REPLAY_KEY_PREFIX + key, "1", "PX", ttlMs, "NX");
    const release = () => void (this.pending -= 1);
    reply.then(release, release);
    return new Promise<ReplayVerdict>((resolve, reject) => {
      let settled = false;
      // The time-out is checked after the event loop's next poll phase: when the loop itself was stalled
      // (GC, a busy CPU), an answer already in the socket is read first instead of being taken for silence.
      const timer = setTimeout(
        () =>
          setImmediate(() => {
            if (settled) return;
            settled = true;
            reject(this.fail("timeout", `the replay store ${this.display} did not answer within ${this.timeoutMs} ms`));
          }),
        this.timeoutMs,
      );
      reply.then(
        (answer) => {
          if (settled) return;
          settled = true;
          clearTimeout(timer);
          resolve(answer === "OK" ? "first" : "replayed");
        },
        (err: unknown) => {
          if (settled) return;
          settled = true;
          clearTimeout(timer);
          const message = err instanceof Error ? err.message : String(err);
          // An error reply (e.g. OOM) came from the server; anything else means the connection failed.
          const kind = err instanceof Error && err.name === "ReplyError" ? "error" : "unavailable";
          reject(this.fail(kind, `the replay store ${this.display} failed: ${message}`));
        },
      );
    });
  }

  /** Commands written and not yet answered (or failed with their connection). */
  get pendingCommands(): number {
    return this.pending;
  }

  stats(): ReplayStoreStats {
    return { kind: "redis", fullRefusals: 0, failures: { ...this.failures } };
  }

  close(): Promise<void> {
    if (this.closed) return Promise.resolve();
    this.closed = true;
    this.client.disconnect(false);
    return Promise.resolve();
  }

  private fail(kind: keyof typeof this.failures, message: string): ReplayStoreUnavailable {
    this.failures[kind] += 1;
    return new ReplayStoreUnavailable(kind, message);
  }
}
