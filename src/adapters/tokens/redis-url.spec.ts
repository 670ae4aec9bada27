import { describe, expect, it } from "vitest";
import { parseRedisUrl } from "./redis-url.js";

describe("the replay store URL (--replay-store, replay.store)", () => {
  it("reads host, port, database, TLS and credentials, and masks the password for display", () => {
    expect(parseRedisUrl("redis://redis.hopwarden.svc:6379/0")).toEqual({
      ok: true,
      address: { tls: false, host: "redis.hopwarden.svc", port: 6379, db: 0, username: undefined, password: undefined, display: "redis://redis.hopwarden.svc:6379/0" },
    });
    expect(parseRedisUrl("rediss://hopwarden:p%40ss@cache.example.org/3")).toEqual({
      ok: true,
      address: { tls: true, host: "cache.example.org", port: 6379, db: 3, username: "hopwarden", password: "p@ss", display: "rediss://hopwarden:***@cache.example.org:6379/3" },
    });
    expect(parseRedisUrl("redis://:secret@[::1]:7000")).toMatchObject({ ok: true, address: { host: "::1", port: 7000, db: 0, username: undefined, password: "secret", display: "redis://:***@[::1]:7000/0" } });
  });

  it.each([
    ["redis.hopwarden.svc:6379", /not a URL|scheme/],
    ["http://redis:6379", /scheme "http"/],
    ["redis://redis:6379/db1", /database number/],
    ["redis://redis:6379/0?timeout=5", /no query string/],
    ["redis:///0", /no host/],
  ])("refuses %s, saying why", (value, problem) => {
    const result = parseRedisUrl(value);
    expect(result.ok).toBe(false);
    if (!result.ok) expect(result.problem).toMatch(problem);
  });
});
