// The --config file (SPEC 7): header names (SPEC 1 `headers.*`), whether to
// trust x-forwarded-client-cert, and the flags' values. Unknown keys are errors.

import { describe, expect, it } from "vitest";
import { DEFAULT_HEADER_NAMES } from "../../core/decision/check-input.js";
import { DEFAULT_SERVICE_CONFIG, parseServiceConfig, ServiceConfigError } from "./service-config.js";

function errorsOf(text: string): readonly string[] {
  try {
    parseServiceConfig(text, "config.yaml");
  } catch (err) {
    if (err instanceof ServiceConfigError) return err.errors;
    throw err;
  }
  throw new Error("expected the config to be refused");
}

describe("the service config is read as YAML 1.2 only", () => {
  // %YAML 1.1 read `trustForwardedClientCert: y` as true (review finding).
  it("refuses a %YAML 1.1 directive and an unknown tag, each with its line", () => {
    expect(errorsOf("%YAML 1.1\n---\ntrustForwardedClientCert: y\n")).toEqual([expect.stringMatching(/^config\.yaml:1:1: \(yaml\): a %YAML 1\.1 directive/)]);
    expect(errorsOf("logLevel: !foo info\n")).toEqual([expect.stringMatching(/^config\.yaml:1:\d+: \(yaml\): /)]);
  });

  it("names a duplicate key's line without the parser's trailing position text", () => {
    const [error] = errorsOf("logLevel: info\nlogLevel: warn\n");
    expect(error).toMatch(/^config\.yaml:2:1: \(yaml\): /);
    expect(error).not.toMatch(/at line \d+, column \d+/);
  });
});

describe("the service config", () => {
  it("defaults to the SPEC 1 header names, txn-token (SPEC 8), Envoy 1.40's MCP metadata keys, and does not trust x-forwarded-client-cert", () => {
    expect(parseServiceConfig("", "config.yaml")).toEqual(DEFAULT_SERVICE_CONFIG);
    expect(DEFAULT_SERVICE_CONFIG).toEqual({
      headers: { subject: "x-agent-subject", onBehalfOf: "x-agent-on-behalf-of", chain: "x-agent-delegation-chain", token: "x-agent-delegation-token", txnToken: "txn-token" },
      trustForwardedClientCert: false,
      mcp: { namespace: "envoy.filters.http.mcp", methodKey: "method", toolKey: "params.name", resourceKey: "params.uri" },
    });
  });

  it("renames headers, lower-casing them so they match case-insensitively", () => {
    const config = parseServiceConfig("headers:\n  subject: X-Caller\n  chain: x-chain\n", "config.yaml");
    expect(config.headers).toEqual({ ...DEFAULT_HEADER_NAMES, subject: "x-caller", chain: "x-chain" });
  });

  it("renames the Txn-Token header", () => {
    expect(parseServiceConfig("headers:\n  txnToken: Txn-Token-2\n", "config.yaml").headers.txnToken).toBe("txn-token-2");
  });

  it("refuses two headers under one name, since one would shadow the other", () => {
    expect(errorsOf("headers:\n  token: X-T\n  txnToken: x-t\n")).toEqual([
      'config.yaml:3:13: headers.txnToken: "x-t" is also headers.token; each header must have its own name',
    ]);
  });

  it("trusts x-forwarded-client-cert only when told to", () => {
    expect(parseServiceConfig("identity:\n  trustForwardedClientCert: true\n", "config.yaml").trustForwardedClientCert).toBe(true);
    expect(parseServiceConfig("identity: {}\n", "config.yaml").trustForwardedClientCert).toBe(false);
  });

  it("reads the flags' values", () => {
    const config = parseServiceConfig('policy: p.yaml\nlisten: "127.0.0.1:9191"\nworkers: auto\nlogLevel: debug\ncache:\n  hopDecisions: 100\n', "config.yaml");
    expect(config).toMatchObject({ policy: "p.yaml", listen: "127.0.0.1:9191", workers: "auto", logLevel: "debug", hopCacheSize: 100 });
  });

  it("reads the Check port's TLS files (SPEC 7: tlsCert, tlsKey, tlsClientCa)", () => {
    const config = parseServiceConfig("tlsCert: /tls/tls.crt\ntlsKey: /tls/tls.key\ntlsClientCa: /tls/envoy-ca.crt\n", "config.yaml");
    expect(config).toMatchObject({ tlsCert: "/tls/tls.crt", tlsKey: "/tls/tls.key", tlsClientCa: "/tls/envoy-ca.crt" });
  });

  it.each([
    ["a misspelt TLS key", "tlsClientCA: /tls/ca.crt\n", /^config\.yaml:1:1: tlsClientCA: unknown key "tlsClientCA"/],
    ["an empty TLS file name", 'tlsCert: ""\n', /^config\.yaml:1:10: tlsCert: /],
    ["an unknown top-level key", "listn: x\n", /^config\.yaml:1:1: listn: unknown key "listn"/],
    ["a misspelt header key", "headers:\n  subjet: x\n", /^config\.yaml:2:3: headers\.subjet: unknown key "subjet"/],
    ["a misspelt identity key", "identity:\n  trustForwardedClientCerts: true\n", /^config\.yaml:2:3: identity\.trustForwardedClientCerts: unknown key/],
    ["a header name that is not a token", "headers:\n  subject: x agent\n", /^config\.yaml:2:12: headers\.subject: /],
    ["a non-boolean trust flag", "identity:\n  trustForwardedClientCert: yes\n", /^config\.yaml:2:29: identity\.trustForwardedClientCert: must be true or false/],
    ["workers out of range", "workers: 0\n", /^config\.yaml:1:10: workers: /],
    ["an unknown log level", "logLevel: loud\n", /^config\.yaml:1:11: logLevel: /],
    ["a list as the whole file", "- a\n", /^config\.yaml:1:1: \(file\): must be a map/],
    ["a misspelt mcp key", "mcp:\n  toolkey: params.tool\n", /^config\.yaml:2:3: mcp\.toolkey: unknown key "toolkey" \(known keys: namespace, methodKey, toolKey, resourceKey\)/],
    ["an mcp key path with an empty segment", "mcp:\n  toolKey: params..name\n", /^config\.yaml:2:12: mcp\.toolKey: "params\.\.name" is not a dotted key path/],
    ["an mcp namespace that is not a string", "mcp:\n  namespace: 7\n", /^config\.yaml:2:14: mcp\.namespace: must be a string/],
  ])("refuses %s, naming line, column and field", (_what, text, expected) => {
    expect(errorsOf(text)).toEqual([expect.stringMatching(expected)]);
  });

  it("lists every error, one per line", () => {
    const errors = errorsOf("listn: x\nheaders:\n  subjet: x\nworkers: many\n");
    expect(errors).toHaveLength(3);
    for (const e of errors) expect(e).toMatch(/^config\.yaml:\d+:\d+: \S+: \S/);
  });
});

describe("the mcp section (SPEC 8)", () => {
  it("names where the MCP filter's metadata is, keeping Envoy 1.40's defaults for what it does not name", () => {
    const config = parseServiceConfig("mcp:\n  namespace: com.example.mcp\n  toolKey: params.tool\n", "config.yaml");
    expect(config.mcp).toEqual({ namespace: "com.example.mcp", methodKey: "method", toolKey: "params.tool", resourceKey: "params.uri" });
  });
});

describe("the audit section", () => {
  it("reads rotation, checkpoint cadence, buffer bound and overflow behaviour", () => {
    const config = parseServiceConfig(
      "audit:\n  rotateBytes: 1048576\n  checkpointEvery: { records: 50, interval: 500ms }\n  bufferRecords: 2000\n  bufferBytes: 8388608\n  overflow: block\n  blockTimeout: 100ms\n",
      "hopwarden.yaml",
    );
    expect(config.audit).toEqual({ rotateBytes: 1048576, checkpointEveryRecords: 50, checkpointEveryMs: 500, bufferRecords: 2000, bufferBytes: 8388608, overflow: "block", blockTimeoutMs: 100 });
  });

  it("refuses a byte bound too small for one record", () => {
    expect(() => parseServiceConfig("audit:\n  bufferBytes: 1000\n", "hopwarden.yaml")).toThrowError(/^hopwarden\.yaml:2:16: audit\.bufferBytes: /m);
  });

  it("names the field and the problem of a bad overflow mode, duration or unknown key", () => {
    expect(() => parseServiceConfig("audit:\n  overflow: drop\n  blockTimeout: soon\n  rotate: 1\n", "hopwarden.yaml")).toThrowError(
      new ServiceConfigError([
        'hopwarden.yaml:4:3: audit.rotate: unknown key "rotate" (known keys: rotateBytes, checkpointEvery, bufferRecords, bufferBytes, overflow, blockTimeout)',
        'hopwarden.yaml:2:13: audit.overflow: "drop" is not "deny" (refuse new Checks) or "block" (wait, bounded)',
        'hopwarden.yaml:3:17: audit.blockTimeout: must be a duration such as "30s" or "250ms", more than 0 and at most 60s, not "soon"',
      ]),
    );
  });
});

describe("the replay section (SPEC 5: where single-use tokens are remembered)", () => {
  it("reads the shared store's URL, its time-out and the in-process memory's capacity", () => {
    const config = parseServiceConfig("replay:\n  store: redis://redis.hopwarden.svc:6379/0\n  timeout: 80ms\n  capacity: 5000\n", "hopwarden.yaml");
    expect(config.replay).toEqual({ store: "redis://redis.hopwarden.svc:6379/0", timeoutMs: 80, capacity: 5000 });
    expect(parseServiceConfig("replay:\n  store: rediss://user:secret@redis:6380/2\n", "hopwarden.yaml").replay).toEqual({ store: "rediss://user:secret@redis:6380/2" });
  });

  it("names the field and the problem of a bad URL, time-out, capacity or unknown key", () => {
    expect(() => parseServiceConfig("replay:\n  store: memcached://cache:11211\n  timeout: 0s\n  capacity: 0\n  ttl: 1s\n", "hopwarden.yaml")).toThrowError(
      new ServiceConfigError([
        'hopwarden.yaml:5:3: replay.ttl: unknown key "ttl" (known keys: store, timeout, capacity)',
        'hopwarden.yaml:2:10: replay.store: has the scheme "memcached"; only redis:// and rediss:// (TLS) are supported',
        'hopwarden.yaml:3:12: replay.timeout: must be a duration such as "30s" or "250ms", more than 0 and at most 10s, not "0s"',
        "hopwarden.yaml:4:13: replay.capacity: must be between 1 and 100000000, not 0",
      ]),
    );
    expect(errorsOf("replay:\n  store: redis://cache:6379/zero\n")).toEqual([
      'config.yaml:2:10: replay.store: has the path "/zero"; the path is a database number, e.g. /0',
    ]);
  });
});
