// Single use across the fleet (SPEC 5), black-box against the built CLI and a
// real redis-server: two `serve` processes and a `--workers 2` service share
// one Redis, so a single-use token accepted by any of them is token_replayed
// at all the others. A Redis that is stopped denies single-use Checks
// (internal_error) while other Checks are unaffected, and Checks recover when
// it is back; a Redis that does not answer hits hopwarden's own time-out
// (50 ms), far inside Envoy's 0.5 s. Without a shared store, --workers share
// the primary's memory, and that memory never forgets an unexpired jti
// (finding 3).

import { randomUUID } from "node:crypto";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { nestActors } from "../src/adapters/tokens/delegation-token-format.js";
import { checkRequest, outcome } from "./support/check-client.js";
import { eventually, killAllServes, requireBuiltCli, startServe, stopServe, type ServeProcess } from "./support/cli-process.js";
import { createSigningKey, jwksOf, signToken, type TestSigningKey } from "./support/delegation-tokens.js";
import { OwnConnectionCheckClient } from "./support/hop-requests.js";
import { createTestPki, spiffe, writePki, type TestPki } from "./support/pki.js";
import { testPolicyYaml } from "./support/policies.js";
import { startRedis, stopAllRedis, type RedisProcess } from "./support/redis.js";

const ISSUER = "https://sts.example.org";
const PERSON = "alice@example.com";

let dir: string;
let pki: TestPki;
let key: TestSigningKey;
let redis: RedisProcess;
/** Three services on one Redis: the store named by the flag, by --config, and by HOPWARDEN_REPLAY_STORE for --workers 2. */
let first: ServeProcess;
let second: ServeProcess;
let workers: ServeProcess;
const clients: OwnConnectionCheckClient[] = [];

/** A fresh TCP connection: with --workers, the primary hands connections to the workers in turn. */
function clientOf(serve: ServeProcess): OwnConnectionCheckClient {
  const client = new OwnConnectionCheckClient(serve.grpc);
  clients.push(client);
  return client;
}

/** A single-use token for research → db on behalf of alice, bound to research's certificate. */
function singleUseToken(): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  return signToken(key, {
    iss: ISSUER,
    sub: PERSON,
    aud: spiffe("db"),
    iat: now - 5,
    exp: now + 60,
    jti: randomUUID(),
    scope: "db:read",
    cnf: { "x5t#S256": Buffer.from(pki.agents.research.sha256Hex, "hex").toString("base64url") },
    act: nestActors([spiffe("orchestrator"), spiffe("research")]),
  });
}

/** research → db with the token, or without one (tokens are optional in this policy, so that Check needs no store). */
function researchCallsDb(token: string | undefined) {
  return checkRequest({
    certificate: pki.agents.research.urlEncodedPem,
    callee: "db",
    method: "GET",
    path: "/query",
    headers: {
      "x-agent-subject": spiffe("research"),
      "x-agent-on-behalf-of": PERSON,
      "x-agent-delegation-chain": `${spiffe("orchestrator")},${spiffe("research")}`,
      ...(token !== undefined && { "x-agent-delegation-token": token }),
    },
  });
}

/** "allow" or the deny reason, and how long the Check took. */
async function decide(serve: ServeProcess, token: string | undefined): Promise<{ decision: string; ms: number }> {
  const client = clientOf(serve);
  const started = performance.now();
  const o = outcome(await client.check(researchCallsDb(token)));
  return { decision: o.code === 0 ? "allow" : (o.reason ?? `status ${o.code}`), ms: performance.now() - started };
}

const decisionOf = async (serve: ServeProcess, token: string | undefined) => (await decide(serve, token)).decision;

async function metricsOf(serve: ServeProcess): Promise<string> {
  return (await fetch(`http://${serve.admin}/metrics`)).text();
}

async function writePolicy(name: string): Promise<string> {
  const file = join(dir, name);
  await writeFile(file, testPolicyYaml({ tokens: { issuer: ISSUER, jwks: "jwks.json", required: false, singleUse: true, clockSkew: "30s" } }));
  return file;
}

const COMMON = ["--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"];

beforeAll(async () => {
  requireBuiltCli();
  dir = await mkdtemp(join(tmpdir(), "hopwarden-single-use-"));
  [pki, key, redis] = await Promise.all([createTestPki(), createSigningKey("ES256"), startRedis()]);
  await writeFile(join(dir, "jwks.json"), JSON.stringify(jwksOf(key)));
  const policy = await writePolicy("policy.yaml");
  await writeFile(join(dir, "second.yaml"), `replay:\n  store: ${redis.url}\n  timeout: 50ms\n`);
  [first, second, workers] = await Promise.all([
    startServe(["--policy", policy, ...COMMON, "--replay-store", redis.url]),
    startServe(["--policy", policy, ...COMMON, "--config", join(dir, "second.yaml")]),
    startServe(["--policy", policy, ...COMMON, "--workers", "2"], { env: { HOPWARDEN_REPLAY_STORE: redis.url } }),
  ]);
}, 60_000);

afterAll(async () => {
  for (const c of clients) c.close();
  redis?.resume();
  await Promise.all([first, second, workers].filter((s) => s !== undefined).map((s) => stopServe(s)));
  await killAllServes();
  await stopAllRedis();
  if (dir !== undefined) await rm(dir, { recursive: true, force: true });
});

describe("a single-use token is accepted once across processes, workers and replicas sharing one Redis", () => {
  it("is denied token_replayed by a second serve process and by the --workers service once the first accepted it", async () => {
    const token = await singleUseToken();
    expect(await decisionOf(first, token)).toBe("allow");
    expect(await decisionOf(second, token)).toBe("token_replayed");
    expect(await decisionOf(workers, token)).toBe("token_replayed");
    expect(await decisionOf(first, token)).toBe("token_replayed");
  });

  it("is denied by every other worker and by the other processes once one worker accepted it", async () => {
    const token = await singleUseToken();
    expect(await decisionOf(workers, token)).toBe("allow");
    // Four new connections: the primary hands them to both workers in turn.
    for (let i = 0; i < 4; i++) expect(await decisionOf(workers, token)).toBe("token_replayed");
    expect(await decisionOf(first, token)).toBe("token_replayed");
    expect(await decisionOf(second, token)).toBe("token_replayed");
  });

  it("keeps the record in Redis under a namespaced key that expires with the token", async () => {
    const keys = await redis.command("KEYS", "hopwarden:jti:*");
    expect(keys).toMatch(/^\*[1-9]/);
    expect(keys).toMatch(/hopwarden:jti:[A-Za-z0-9_-]{43}\r\n/);
    const one = /hopwarden:jti:[A-Za-z0-9_-]{43}/.exec(keys)![0];
    const pttl = Number((await redis.command("PTTL", one)).slice(1));
    // exp is 60 s away and clockSkew 30 s: the key lives at most 90 s.
    expect(pttl).toBeGreaterThan(60_000);
    expect(pttl).toBeLessThanOrEqual(90_000);
  });
});

describe("a shared store that stops, or stops answering", () => {
  it("a slow Redis hits hopwarden's own time-out (~50 ms), far inside Envoy's 0.5 s: internal_error; Checks without a token are unaffected", async () => {
    redis.pause();
    try {
      for (const serve of [first, workers]) {
        const slow = await decide(serve, await singleUseToken());
        expect(slow.decision).toBe("internal_error");
        expect(slow.ms).toBeGreaterThanOrEqual(45);
        expect(slow.ms).toBeLessThan(300);
        const plain = await decide(serve, undefined);
        expect(plain.decision).toBe("allow");
        expect(plain.ms).toBeLessThan(100);
      }
    } finally {
      redis.resume();
    }
    expect(await metricsOf(first)).toMatch(/hopwarden_replay_store_failures_total\{[^}]*failure="timeout"[^}]*\} [1-9]/);
    expect(await eventually(async () => (await decisionOf(first, await singleUseToken())) === "allow", 5_000)).toBe(true);
  });

  it("Redis stopped mid-run: single-use Checks are denied (internal_error) at once, others unaffected; all recover when it is back on the same port", async () => {
    const port = redis.port;
    await redis.stop();
    for (const serve of [first, second, workers]) {
      const down = await decide(serve, await singleUseToken());
      expect(down.decision).toBe("internal_error");
      expect(down.ms).toBeLessThan(300);
      expect(await decisionOf(serve, undefined)).toBe("allow");
    }
    expect(await metricsOf(second)).toMatch(/hopwarden_replay_store_failures_total\{[^}]*failure="unavailable"[^}]*\} [1-9]/);

    redis = await startRedis({ port });
    for (const serve of [first, second, workers]) {
      // Every worker of the --workers service too: each new connection goes to the next one.
      expect(await eventually(async () => (await decisionOf(serve, await singleUseToken())) === "allow", 8_000, 100)).toBe(true);
    }
    for (let i = 0; i < 4; i++) expect(await decisionOf(workers, await singleUseToken())).toBe("allow");
    const token = await singleUseToken();
    expect(await decisionOf(second, token)).toBe("allow");
    expect(await decisionOf(workers, token)).toBe("token_replayed");
  }, 30_000);
});

describe("without a shared store", () => {
  it("--workers share the primary's memory, and finding 3: a full memory refuses new tokens and never forgets an accepted one", async () => {
    const policy = await writePolicy("local.yaml");
    await writeFile(join(dir, "small.yaml"), "replay:\n  capacity: 3\n");
    const local = await startServe(["--policy", policy, ...COMMON, "--workers", "2", "--config", join(dir, "small.yaml")]);
    try {
      const a = await singleUseToken();
      expect(await decisionOf(local, a)).toBe("allow");
      // Four new connections, so both workers see it.
      for (let i = 0; i < 4; i++) expect(await decisionOf(local, a)).toBe("token_replayed");
      const others = [];
      for (let i = 0; i < 6; i++) others.push(await decisionOf(local, await singleUseToken()));
      // Two more fit beside a; then the memory is full of unexpired entries and refuses rather than forgets.
      expect(others).toEqual(["allow", "allow", "token_replayed", "token_replayed", "token_replayed", "token_replayed"]);
      for (let i = 0; i < 2; i++) expect(await decisionOf(local, a)).toBe("token_replayed");
      expect(await decisionOf(local, undefined)).toBe("allow");
      expect(await metricsOf(local)).toMatch(/hopwarden_replay_full_refusals_total(\{[^}]*\})? 4/);
      expect(await metricsOf(local)).toMatch(/\nhopwarden_replay_memory_entries 3\n/);
    } finally {
      await stopServe(local);
    }
  }, 30_000);

  it("finding 3, one process: accepting more tokens than the capacity never makes an accepted one acceptable again", async () => {
    const policy = await writePolicy("single.yaml");
    const local = await startServe(["--policy", policy, ...COMMON, "--config", join(dir, "small.yaml")]);
    try {
      const a = await singleUseToken();
      expect(await decisionOf(local, a)).toBe("allow");
      for (let i = 0; i < 5; i++) await decisionOf(local, await singleUseToken());
      expect(await decisionOf(local, a)).toBe("token_replayed");
      expect(await metricsOf(local)).toMatch(/hopwarden_replay_memory_entries(\{[^}]*\})? 3/);
    } finally {
      await stopServe(local);
    }
  }, 30_000);
});

describe("rediss:// with a password in the URL", () => {
  it("uses TLS (CAs from NODE_EXTRA_CA_CERTS) and AUTH; a wrong password is a deny, never an accept", async () => {
    const files = await writePki(pki, join(dir, "pki"));
    const secure = await startRedis({ tls: { cert: files["server"]!.cert, key: files["server"]!.key }, password: "s3cret" });
    const policy = await writePolicy("tls.yaml");
    const env = { NODE_EXTRA_CA_CERTS: files.ca.cert };
    const good = await startServe(["--policy", policy, ...COMMON, "--replay-store", `rediss://:s3cret@localhost:${secure.tlsPort}/1`], { env });
    const bad = await startServe(["--policy", policy, ...COMMON, "--replay-store", `rediss://:wrong@localhost:${secure.tlsPort}/1`], { env });
    try {
      const token = await singleUseToken();
      expect(await decisionOf(good, token)).toBe("allow");
      expect(await decisionOf(good, token)).toBe("token_replayed");
      expect(await decisionOf(bad, await singleUseToken())).toBe("internal_error");
      expect(await decisionOf(bad, undefined)).toBe("allow");
      // The password never reaches a log line.
      expect(bad.stderr()).toContain("rediss://:***@localhost");
      expect(bad.stderr() + good.stderr()).not.toMatch(/s3cret|:wrong@/);
      // Neither a live store connection nor one still retrying holds the process at SIGTERM.
      const exits = await Promise.all([stopServe(good, 5_000), stopServe(bad, 5_000)]);
      expect(exits).toEqual([
        { code: 0, signal: null },
        { code: 0, signal: null },
      ]);
    } finally {
      await Promise.all([stopServe(good), stopServe(bad)]);
      await secure.stop();
    }
  }, 30_000);
});
