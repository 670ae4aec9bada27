// Where verification keys come from: the policy's `tokens.jwks`, a file beside
// the policy file or an https:// URL (http:// only on loopback). The set is
// cached; an unknown kid triggers a reload (at most once per cooldown, so a
// flood of made-up kids cannot hammer the endpoint), an old set is refreshed
// in the background, and every fetch has a deadline. When the endpoint is
// down the last good set keeps verifying: only kids it lacks fail.

import { readFile, stat } from "node:fs/promises";
import { isAbsolute, resolve } from "node:path";
import { JwksKeySet, MAX_JWKS_BYTES, type KeyLookup } from "./jwks-key-set.js";
import { quotedValue } from "../../core/input/untrusted-bounds.js";

export interface VerificationKeySource {
  /** Finds the keys for a token's `kid` and `alg`. Never rejects. `nowMs` drives the refresh schedule. */
  lookup(kid: string, alg: string, nowMs: number): Promise<KeyLookup>;
}

export interface JwksRefreshOptions {
  /** Told of every key set load, for metrics. */
  readonly onRefresh?: (result: "ok" | "failed") => void;
  /** Deadline for one fetch or file read, body included. Default 3 s. */
  readonly timeoutMs?: number;
  /** Least time between two loads triggered by unknown kids or failures. Default 30 s. */
  readonly cooldownMs?: number;
  /** A set older than this is reloaded in the background while it keeps serving. Default 5 min. */
  readonly maxAgeMs?: number;
}

const DEFAULTS = { timeoutMs: 3_000, cooldownMs: 30_000, maxAgeMs: 300_000 } as const;
const LOOPBACK_HOSTS = new Set(["127.0.0.1", "localhost", "[::1]"]);

/** A key set re-read through `load` on the schedule above. */
export class RefreshingKeySource implements VerificationKeySource {
  private snapshot: JwksKeySet | undefined;
  private loadedAtMs = 0;
  private lastAttemptMs = Number.NEGATIVE_INFINITY;
  private lastError = "not loaded yet";
  private inFlight: Promise<void> | undefined;
  private readonly cooldownMs: number;
  private readonly maxAgeMs: number;

  constructor(
    /** How people should read where the keys come from, e.g. the URL. */
    readonly description: string,
    private readonly load: () => Promise<string>,
    options: JwksRefreshOptions = {},
    private readonly onError: (message: string) => void = () => undefined,
  ) {
    this.cooldownMs = options.cooldownMs ?? DEFAULTS.cooldownMs;
    this.onRefresh = options.onRefresh;
    this.maxAgeMs = options.maxAgeMs ?? DEFAULTS.maxAgeMs;
  }

  private readonly onRefresh: JwksRefreshOptions["onRefresh"];

  async lookup(kid: string, alg: string, nowMs: number): Promise<KeyLookup> {
    const known = this.snapshot?.has(kid) === true;
    if (!known) {
      if (this.inFlight !== undefined) await this.inFlight;
      else if (nowMs - this.lastAttemptMs >= this.cooldownMs) await this.refresh(nowMs);
    } else if (nowMs - this.loadedAtMs >= this.maxAgeMs && nowMs - this.lastAttemptMs >= this.cooldownMs && this.inFlight === undefined) {
      void this.refresh(nowMs);
    }
    const set = this.snapshot;
    if (set === undefined) return { ok: false, problem: `the key set ${this.description} could not be loaded (${this.lastError})` };
    if (!set.has(kid)) {
      return { ok: false, problem: `kid ${quotedValue(kid)} is not in the key set ${this.description}` };
    }
    return set.lookup(kid, alg);
  }

  /** Loads now (deduplicated with a load already running); keeps the old set on failure. */
  refresh(nowMs: number): Promise<void> {
    if (this.inFlight !== undefined) return this.inFlight;
    this.lastAttemptMs = nowMs;
    const run = (async () => {
      try {
        const text = await this.load();
        this.snapshot = JwksKeySet.parse(text);
        this.loadedAtMs = nowMs;
        this.onRefresh?.("ok");
      } catch (err) {
        this.onRefresh?.("failed");
        this.lastError = err instanceof Error ? err.message : String(err);
        this.onError(`key set ${this.description} ${this.lastError}`);
      }
    })().finally(() => {
      this.inFlight = undefined;
    });
    this.inFlight = run;
    return run;
  }
}

/** A fixed, in-memory key set (the token service verifying its own tokens, tests). */
export class StaticKeySource implements VerificationKeySource {
  constructor(private readonly set: JwksKeySet) {}

  lookup(kid: string, alg: string, _nowMs?: number): Promise<KeyLookup> {
    return this.set.lookup(kid, alg);
  }
}

export function isAllowedJwksUrl(url: URL): boolean {
  return url.protocol === "https:" || (url.protocol === "http:" && LOOPBACK_HOSTS.has(url.hostname));
}

/**
 * The key source for a policy's `tokens.jwks` value. `baseDir` is the policy
 * file's directory: a relative path means "beside the policy file", wherever
 * the process was started.
 */
export function keySourceForJwks(
  jwks: string,
  baseDir: string,
  options: JwksRefreshOptions = {},
  onError?: (message: string) => void,
): VerificationKeySource {
  const timeoutMs = options.timeoutMs ?? DEFAULTS.timeoutMs;
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(jwks)) {
    const url = URL.canParse(jwks) ? new URL(jwks) : undefined;
    if (url === undefined || !isAllowedJwksUrl(url)) {
      const problem = `jwks ${JSON.stringify(jwks)} must be an https:// URL, or http:// on loopback`;
      return { lookup: () => Promise.resolve({ ok: false, problem }) };
    }
    return new RefreshingKeySource(url.href, () => fetchJwks(url, timeoutMs), options, onError);
  }
  const file = isAbsolute(jwks) ? jwks : resolve(baseDir, jwks);
  return new RefreshingKeySource(file, () => readJwksFile(file), options, onError);
}

async function readJwksFile(file: string): Promise<string> {
  const info = await stat(file).catch((err: NodeJS.ErrnoException) => {
    throw new Error(`cannot be read (${err.code ?? err.message})`);
  });
  if (info.size > MAX_JWKS_BYTES) throw new Error(`is ${info.size} bytes, more than ${MAX_JWKS_BYTES}`);
  return readFile(file, "utf8");
}

export async function fetchJwks(url: URL, timeoutMs: number): Promise<string> {
  let response: Response;
  try {
    // A redirect could lead off loopback or off https; a key set has no reason to move.
    response = await fetch(url, {
      signal: AbortSignal.timeout(timeoutMs),
      redirect: "error",
      headers: { accept: "application/jwk-set+json, application/json" },
    });
  } catch (err) {
    const cause = err instanceof Error ? (err.name === "TimeoutError" ? `timed out after ${timeoutMs} ms` : err.message) : String(err);
    throw new Error(`could not be fetched: ${cause}`);
  }
  if (response.status !== 200) {
    await response.body?.cancel().catch(() => undefined);
    throw new Error(`answered HTTP ${response.status}`);
  }
  return readCapped(response, MAX_JWKS_BYTES);
}

async function readCapped(response: Response, maxBytes: number): Promise<string> {
  const body = response.body;
  if (body === null) return "";
  const reader = (body as ReadableStream<Uint8Array>).getReader();
  const chunks: Uint8Array[] = [];
  let total = 0;
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      total += value.byteLength;
      if (total > maxBytes) {
        await reader.cancel().catch(() => undefined);
        throw new Error(`sent more than ${maxBytes} bytes`);
      }
      chunks.push(value);
    }
  } catch (err) {
    if (err instanceof Error && err.message.startsWith("sent more")) throw err;
    throw new Error(`body could not be read: ${err instanceof Error ? err.message : String(err)}`);
  }
  return Buffer.concat(chunks).toString("utf8");
}
