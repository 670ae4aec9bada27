import { describe, expect, it } from "vitest";
import { readStsConfigText, resolveStsConfig } from "./sts-config.js";

const complete = { issuer: "https://sts.test", policy: "p.yaml", signingKeys: "k", tlsCert: "c", tlsKey: "k", clientCa: "ca" };

describe("token service configuration", () => {
  it("reports unknown keys with file, line, column and field", () => {
    const read = readStsConfigText("issuer: https://sts.test\ntls:\n  cert: a\n  clientCA: b\n", "/etc/sts.yaml");
    expect(read).toEqual({ ok: false, errors: ['/etc/sts.yaml:4:3: tls.clientCA: unknown key "clientCA" (known keys: cert, key, clientCa)'] });
  });

  it("resolves file paths against the file's directory", () => {
    const read = readStsConfigText("policy: policy.yaml\npersonTokens: { issuer: i, jwks: idp.json }\n", "/etc/hw/sts.yaml");
    expect(read).toMatchObject({ ok: true, input: { policy: "/etc/hw/policy.yaml", personJwks: "/etc/hw/idp.json" } });
  });

  it("lets flags override the file and applies defaults", () => {
    const result = resolveStsConfig({ ...complete, tokenTtl: "30s" }, { tokenTtl: "2m", listen: "127.0.0.1:0" });
    expect(result).toMatchObject({ ok: true, config: { host: "127.0.0.1", port: 0, tokenTtlSeconds: 120, clockSkewSeconds: 30, personTokens: undefined } });
  });

  it("names every missing or bad field with its flag", () => {
    const result = resolveStsConfig({}, { tokenTtl: "1d", listen: "nowhere", personIssuer: "x" });
    expect(result.ok).toBe(false);
    if (!result.ok) {
      expect(result.errors).toEqual(
        expect.arrayContaining([
          'listen (--listen): "nowhere" is not host:port',
          "issuer (--issuer): is required",
          expect.stringMatching(/^tokenTtl \(--token-ttl\)/),
          expect.stringMatching(/^personTokens/),
          "tls.clientCa (--client-ca): is required",
        ]),
      );
    }
  });
});

describe("Transaction Tokens (txnTokens:)", () => {
  it("is off unless the file has a txnTokens section or a txn flag is given", () => {
    expect(resolveStsConfig(complete, {})).toMatchObject({ ok: true, config: { txnTokens: undefined } });
    expect(resolveStsConfig(complete, { txnTokenTtl: "2m" })).toMatchObject({ ok: true, config: { txnTokens: { ttlSeconds: 120, audience: undefined } } });
    expect(resolveStsConfig(complete, { txnAudience: "example.org" })).toMatchObject({ ok: true, config: { txnTokens: { ttlSeconds: 300, audience: "example.org" } } });
  });

  it("reads the section from the file, an empty section meaning the defaults", () => {
    const full = readStsConfigText("txnTokens:\n  tokenTtl: 10m\n  audience: example.org\n", "/etc/sts.yaml");
    expect(full).toEqual({ ok: true, input: { txnTokens: "true", txnTokenTtl: "10m", txnAudience: "example.org" } });
    if (full.ok) expect(resolveStsConfig(full.input, complete)).toMatchObject({ ok: true, config: { txnTokens: { ttlSeconds: 600, audience: "example.org" } } });
    const empty = readStsConfigText("txnTokens:\n", "/etc/sts.yaml");
    expect(empty).toMatchObject({ ok: true, input: { txnTokens: "true" } });
    if (empty.ok) expect(resolveStsConfig(empty.input, complete)).toMatchObject({ ok: true, config: { txnTokens: { ttlSeconds: 300, audience: undefined } } });
  });

  it("refuses an unknown key, a lifetime over an hour and an audience that is not a trust domain name", () => {
    expect(readStsConfigText("txnTokens:\n  ttl: 5m\n", "/etc/sts.yaml")).toEqual({
      ok: false,
      errors: ['/etc/sts.yaml:2:3: txnTokens.ttl: unknown key "ttl" (known keys: tokenTtl, audience)'],
    });
    const result = resolveStsConfig(complete, { txnTokenTtl: "2h", txnAudience: "spiffe://example.org" });
    expect(result.ok).toBe(false);
    if (!result.ok) {
      expect(result.errors).toEqual([
        expect.stringMatching(/^txnTokens\.audience \(--txn-audience\): "spiffe:\/\/example\.org" is not a trust domain name/),
        expect.stringMatching(/^txnTokens\.tokenTtl \(--txn-token-ttl\): must be a duration/),
      ]);
    }
  });
});
