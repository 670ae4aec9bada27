// One wiring: a single-process serve and a --workers worker get their
// service options from one mapping, so every --config setting that shapes a
// Check reaches both, and they differ only where the role says so.

import { describe, expect, it } from "vitest";
import { parseServiceConfig } from "../../adapters/config/service-config.js";
import { silentLogger } from "../../adapters/logging/logger.js";
import { ReplayMemory } from "../../adapters/tokens/replay-memory.js";
import { checkReadingOptions, serviceOptions } from "./service-options.js";
import type { ServeSettings } from "./settings.js";

const CONFIG = `
headers: { subject: x-caller, onBehalfOf: x-person, chain: x-chain, token: x-proof, txnToken: x-txn }
identity: { trustForwardedClientCert: true }
mcp: { namespace: my.mcp, methodKey: m, toolKey: t, resourceKey: r }
cache: { hopDecisions: 3, hopDecisionBytes: 65536, certificates: 2, certificateBytes: 70000 }
`;

function settings(configText: string): ServeSettings {
  return {
    policyFile: "/etc/hopwarden/policy.yaml",
    listen: "127.0.0.1:9191",
    adminListen: "127.0.0.1:9192",
    workers: 2,
    auditLog: undefined,
    auditKey: undefined,
    tls: { cert: "/tls/tls.crt", key: "/tls/tls.key" },
    logLevel: "info",
    replay: { store: undefined, timeoutMs: 50, capacity: 10 },
    config: parseServiceConfig(configText, "config.yaml"),
  };
}

const parts = { logger: silentLogger, replayStore: new ReplayMemory(), audit: undefined };

describe("serve's service options (one mapping for one process and for workers)", () => {
  it("gives a worker every setting a single process gets, the cache bounds included", () => {
    const s = settings(CONFIG);
    const single = serviceOptions(s, { role: "single", ...parts });
    const worker = serviceOptions(s, { role: "worker", ...parts });
    expect(worker).toMatchObject({ hopCacheSize: 3, hopCacheBytes: 65536, certificateCacheSize: 2, certificateCacheBytes: 70000 });
    expect(worker).toMatchObject({ trustForwardedClientCert: true, tls: s.tls, listen: s.listen, policyFile: s.policyFile, replayStore: parts.replayStore });
    expect(worker.headerNames).toMatchObject({ subject: "x-caller", txnToken: "x-txn" });
    expect(worker.mcpKeys).toEqual({ namespace: "my.mcp", methodKey: "m", toolKey: "t", resourceKey: "r" });
    // The primary serves the admin API and watches the policy for the workers; nothing else differs.
    const { adminListen, watchPolicy, ...rest } = single;
    expect({ adminListen, watchPolicy }).toEqual({ adminListen: "127.0.0.1:9192", watchPolicy: true });
    expect(worker).toEqual({ ...rest, adminListen: undefined, watchPolicy: false });
  });

  it("leaves an absent cache bound to the cache's default", () => {
    const options = serviceOptions(settings("listen: 127.0.0.1:1\n"), { role: "worker", ...parts });
    for (const key of ["hopCacheSize", "hopCacheBytes", "certificateCacheSize", "certificateCacheBytes"]) expect(options).not.toHaveProperty(key);
  });

  it("hands the audit sink to the Check path: every decision recorded, admission and counters from the same sink", async () => {
    const audit = { admit: () => false, stats: () => ({ marker: 1 }) } as unknown as NonNullable<Parameters<typeof serviceOptions>[1]["audit"]>;
    const options = serviceOptions(settings(CONFIG), { role: "worker", ...parts, audit });
    expect(options.sinks).toEqual([audit]);
    expect(await options.admit?.()).toBe(false);
    expect(options.auditStats?.()).toEqual({ marker: 1 });
  });

  it("reads Checks for the primary's Explain as the workers read them", () => {
    const s = settings(CONFIG);
    const worker = serviceOptions(s, { role: "worker", ...parts });
    expect(checkReadingOptions(s)).toEqual({ headerNames: worker.headerNames, mcpKeys: worker.mcpKeys, trustForwardedClientCert: worker.trustForwardedClientCert });
  });
});
