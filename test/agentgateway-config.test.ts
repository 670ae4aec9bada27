// examples/agentgateway/config.yaml, checked without agentgateway (it is not
// installable here): every key it uses is one agentgateway documents, and
// every route asks hopwarden the way SPEC 8 needs (gRPC, fail closed, the
// callee in context_extensions, the headers hopwarden reads).
//
// The documented key paths below were read from agentgateway/agentgateway:
// schema/config.md (listener, TLS and route fields, commit 005d0299) and
// crates/agentgateway/src/http/ext_authz.rs (the ExtAuthz policy's fields:
// host, protocol.grpc.{context,metadata}, failureMode, includeRequestHeaders,
// includeRequestBody; commit 0d5b69df), plus the docs page
// https://agentgateway.dev/docs/configuration/security/external-authz.

import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { parse as parseYaml } from "yaml";
import { DEFAULT_SERVICE_CONFIG } from "../src/adapters/config/service-config.js";
import { loadPolicyText } from "../src/adapters/config/policy-file.js";

const repoRoot = join(import.meta.dirname, "..");
const CONFIG = join(repoRoot, "examples", "agentgateway", "config.yaml");

const L = "binds[].listeners[]";
const R = `${L}.routes[]`;
const X = `${R}.policies.extAuthz`;
const DOCUMENTED = new Set([
  "binds",
  "binds[].port",
  "binds[].listeners",
  `${L}.name`,
  `${L}.protocol`,
  `${L}.tls`,
  `${L}.tls.cert`,
  `${L}.tls.key`,
  `${L}.tls.root`,
  `${L}.routes`,
  `${R}.name`,
  `${R}.hostnames`,
  `${R}.policies`,
  `${R}.backends`,
  `${R}.backends[].host`,
  X,
  `${X}.host`,
  `${X}.protocol`,
  `${X}.protocol.grpc`,
  `${X}.protocol.grpc.context`,
  `${X}.protocol.grpc.metadata`,
  `${X}.failureMode`,
  `${X}.includeRequestHeaders`,
]);
/** Maps whose keys are the user's (context_extensions keys, metadata namespaces), not schema fields. */
const FREE_FORM = new Set([`${X}.protocol.grpc.context`, `${X}.protocol.grpc.metadata`]);

function keyPaths(node: unknown, path: string, out: string[]): string[] {
  if (Array.isArray(node)) {
    for (const item of node) keyPaths(item, `${path}[]`, out);
  } else if (typeof node === "object" && node !== null) {
    for (const [key, value] of Object.entries(node)) {
      const child = path === "" ? key : `${path}.${key}`;
      out.push(child);
      if (!FREE_FORM.has(child)) keyPaths(value, child, out);
    }
  }
  return out;
}

interface Route {
  name: string;
  hostnames: string[];
  policies: { extAuthz: { host: string; protocol: { grpc: { context: Record<string, string> } }; failureMode: string; includeRequestHeaders: string[] } };
  backends: { host: string }[];
}

async function config(): Promise<{ binds: { port: number; listeners: { protocol: string; tls: Record<string, string>; routes: Route[] }[] }[] }> {
  return parseYaml(await readFile(CONFIG, "utf8"), { strict: true, uniqueKeys: true }) as Awaited<ReturnType<typeof config>>;
}

describe("examples/agentgateway/config.yaml", () => {
  it("uses only keys agentgateway documents", async () => {
    const used = [...new Set(keyPaths(await config(), "", []).map((p) => p.replace(/\[\]$/, "")))];
    expect(used.filter((p) => !DOCUMENTED.has(p))).toEqual([]);
    expect(used).toContain(`${X}.protocol.grpc.context`);
  });

  it("terminates mTLS: agents must present a certificate of the trust domain's CA", async () => {
    for (const bind of (await config()).binds) {
      for (const listener of bind.listeners) {
        expect(listener.protocol).toBe("HTTPS");
        for (const field of ["cert", "key", "root"]) expect(listener.tls[field], `tls.${field}`).toMatch(/^\/etc\/agentgateway\/certs\//);
      }
    }
  });

  it("asks hopwarden over gRPC on every route, fails closed, and names the callee as an alias of the example policy", async () => {
    const policy = loadPolicyText(await readFile(join(repoRoot, "examples", "policy.yaml"), "utf8"), "policy.yaml");
    if (!policy.ok) throw new Error(policy.errors.join("\n"));
    const routes = (await config()).binds.flatMap((b) => b.listeners.flatMap((l) => l.routes));
    expect(routes.map((r) => r.name)).toEqual(["research", "db"]);
    for (const route of routes) {
      const authz = route.policies.extAuthz;
      expect(authz.host).toBe("hopwarden:9191");
      expect(authz.failureMode).toBe("deny");
      expect(Object.keys(authz.protocol)).toEqual(["grpc"]);
      expect(authz.protocol.grpc.context).toEqual({ agent: route.name });
      expect(policy.policy.agents.has(authz.protocol.grpc.context.agent!)).toBe(true);
    }
  });

  it("forwards exactly the headers hopwarden reads", async () => {
    const routes = (await config()).binds.flatMap((b) => b.listeners.flatMap((l) => l.routes));
    const read = Object.values(DEFAULT_SERVICE_CONFIG.headers).sort();
    for (const route of routes) expect([...route.policies.extAuthz.includeRequestHeaders].sort()).toEqual(read);
  });
});
