import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { checkRequest, createSigningKey, jwksOf, NOW_MS, signToken, tokenPolicy, validClaims, type TestSigningKey } from "../../../test/support/delegation-tokens.js";
import { JwksDelegationTokenVerifier } from "./delegation-token-verifier.js";
import { keySourceForJwks } from "./jwks-key-source.js";

let oldKey: TestSigningKey;
let newKey: TestSigningKey;

beforeAll(async () => {
  [oldKey, newKey] = await Promise.all([createSigningKey("ES256", "2026-old"), createSigningKey("EdDSA", "2026-new")]);
});

/** A JWKS endpoint on 127.0.0.1 whose answer the test sets; counts requests. */
class JwksEndpoint {
  body = "";
  status = 200;
  delayMs = 0;
  requests = 0;
  private server: Server | undefined;

  async start(): Promise<string> {
    this.server = createServer((req, res) => {
      this.requests++;
      setTimeout(() => {
        res.writeHead(this.status, { "content-type": "application/jwk-set+json" });
        res.end(this.body);
      }, this.delayMs);
    });
    await new Promise<void>((resolve) => this.server!.listen(0, "127.0.0.1", resolve));
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}/jwks.json`;
  }

  async stop(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    if (server === undefined) return;
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}

const endpoints: JwksEndpoint[] = [];
afterEach(async () => {
  await Promise.all(endpoints.splice(0).map((e) => e.stop()));
});

async function endpoint(): Promise<{ e: JwksEndpoint; url: string }> {
  const e = new JwksEndpoint();
  endpoints.push(e);
  return { e, url: await e.start() };
}

function remoteVerifier(cooldownMs = 1_000): JwksDelegationTokenVerifier {
  return new JwksDelegationTokenVerifier({ baseDir: "/", jwks: { timeoutMs: 500, cooldownMs, maxAgeMs: 60_000 } });
}

async function reasonAt(v: JwksDelegationTokenVerifier, url: string, key: TestSigningKey, nowMs: number, jti = "a"): Promise<string> {
  const token = await signToken(key, validClaims({ jti }));
  const result = await v.verify(checkRequest(token, { nowMs, policy: tokenPolicy({ jwks: url }) }));
  return result.ok ? "ok" : result.reason;
}

describe("a remote JWKS on loopback", () => {
  it("fetches once and serves later tokens from the cached set", async () => {
    const { e, url } = await endpoint();
    e.body = JSON.stringify(jwksOf(oldKey));
    const v = remoteVerifier();
    expect(await reasonAt(v, url, oldKey, NOW_MS, "1")).toBe("ok");
    expect(await reasonAt(v, url, oldKey, NOW_MS + 10, "2")).toBe("ok");
    expect(e.requests).toBe(1);
  });

  it("picks up a rotated-in key on its unknown kid, and keeps the old one while it is published", async () => {
    const { e, url } = await endpoint();
    e.body = JSON.stringify(jwksOf(oldKey));
    const v = remoteVerifier();
    expect(await reasonAt(v, url, oldKey, NOW_MS)).toBe("ok");
    e.body = JSON.stringify(jwksOf(oldKey, newKey));
    expect(await reasonAt(v, url, newKey, NOW_MS + 2_000)).toBe("ok");
    expect(await reasonAt(v, url, oldKey, NOW_MS + 2_001, "b")).toBe("ok");
    expect(e.requests).toBe(2);
  });

  it("reloads for an unknown kid at most once per cooldown", async () => {
    const { e, url } = await endpoint();
    e.body = JSON.stringify(jwksOf(oldKey));
    const v = remoteVerifier(10_000);
    expect(await reasonAt(v, url, oldKey, NOW_MS)).toBe("ok");
    e.body = JSON.stringify(jwksOf(oldKey, newKey));
    // Within the cooldown a new kid is refused without asking the endpoint again.
    expect(await reasonAt(v, url, newKey, NOW_MS + 1_000)).toBe("token_invalid");
    expect(e.requests).toBe(1);
    expect(await reasonAt(v, url, newKey, NOW_MS + 11_000)).toBe("ok");
    expect(e.requests).toBe(2);
  });

  it("keeps verifying with cached keys while the endpoint is down; only unknown kids fail", async () => {
    const { e, url } = await endpoint();
    e.body = JSON.stringify(jwksOf(oldKey));
    const errors: string[] = [];
    const v = new JwksDelegationTokenVerifier({ baseDir: "/", jwks: { timeoutMs: 500, cooldownMs: 1_000, maxAgeMs: 5_000 }, onKeySourceError: (m) => errors.push(m) });
    expect(await reasonAt(v, url, oldKey, NOW_MS)).toBe("ok");
    await e.stop();
    // Past maxAge: a background refresh fails, the cached key still verifies.
    expect(await reasonAt(v, url, oldKey, NOW_MS + 6_000, "b")).toBe("ok");
    expect(await reasonAt(v, url, newKey, NOW_MS + 8_000)).toBe("token_invalid");
    expect(await reasonAt(v, url, oldKey, NOW_MS + 9_000, "c")).toBe("ok");
    expect(errors.length).toBeGreaterThan(0);
  });

  it("refuses every token when the first fetch fails, and does not retry within the cooldown", async () => {
    const { e, url } = await endpoint();
    e.status = 503;
    const v = remoteVerifier(10_000);
    expect(await reasonAt(v, url, oldKey, NOW_MS)).toBe("token_invalid");
    expect(await reasonAt(v, url, oldKey, NOW_MS + 100)).toBe("token_invalid");
    expect(e.requests).toBe(1);
    e.status = 200;
    e.body = JSON.stringify(jwksOf(oldKey));
    expect(await reasonAt(v, url, oldKey, NOW_MS + 10_000)).toBe("ok");
  });

  it("gives up on a slow endpoint after the deadline", async () => {
    const { e, url } = await endpoint();
    e.body = JSON.stringify(jwksOf(oldKey));
    e.delayMs = 2_000;
    const source = keySourceForJwks(url, "/", { timeoutMs: 150 });
    const started = Date.now();
    const result = await source.lookup(oldKey.kid, "ES256", NOW_MS);
    expect(result.ok).toBe(false);
    if (!result.ok) expect(result.problem).toMatch(/timed out/);
    expect(Date.now() - started).toBeLessThan(1_500);
  });

  it("refuses an oversized or non-JSON key set", async () => {
    const { e, url } = await endpoint();
    e.body = JSON.stringify({ keys: [], pad: "x".repeat(300 * 1024) });
    expect((await keySourceForJwks(url, "/").lookup("k", "ES256", NOW_MS)).ok).toBe(false);
    e.body = "<html>";
    expect((await keySourceForJwks(url, "/").lookup("k", "ES256", NOW_MS)).ok).toBe(false);
  });
});

describe("a local JWKS file", () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "hopwarden-jwks-file-"));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("is re-read for a rotated-in kid after the cooldown", async () => {
    await writeFile(join(dir, "keys.json"), JSON.stringify(jwksOf(oldKey)));
    const source = keySourceForJwks("keys.json", dir, { cooldownMs: 1_000 });
    expect((await source.lookup(oldKey.kid, "ES256", NOW_MS)).ok).toBe(true);
    await writeFile(join(dir, "keys.json"), JSON.stringify(jwksOf(oldKey, newKey)));
    expect((await source.lookup(newKey.kid, "EdDSA", NOW_MS + 2_000)).ok).toBe(true);
  });

  it("keeps the last good set when the file turns invalid", async () => {
    await writeFile(join(dir, "keys2.json"), JSON.stringify(jwksOf(oldKey)));
    const source = keySourceForJwks("keys2.json", dir, { cooldownMs: 1_000, maxAgeMs: 1_000 });
    expect((await source.lookup(oldKey.kid, "ES256", NOW_MS)).ok).toBe(true);
    await writeFile(join(dir, "keys2.json"), "{");
    expect((await source.lookup(newKey.kid, "EdDSA", NOW_MS + 2_000)).ok).toBe(false);
    expect((await source.lookup(oldKey.kid, "ES256", NOW_MS + 4_000)).ok).toBe(true);
  });
});
