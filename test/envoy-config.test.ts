// The Envoy configs in envoy/ against real Envoy 1.40: every template renders
// and passes `envoy --mode validate`, and a running front proxy fails closed
// and refuses callers without a certificate of our CA. hopwarden itself is not
// started here (the end-to-end suite does that): its port is left unbound.

import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { templatePlaceholders } from "../envoy/render-config.mjs";
import {
  ENVOY_TEMPLATES,
  envoyBinary,
  freePort,
  frontProxyValues,
  mtlsRequest,
  renderEnvoyConfig,
  renderTemplate,
  sidecarXfccValues,
  startEchoUpstream,
  startFrontProxy,
  validateEnvoyConfig,
  type EchoUpstream,
  type RunningProxy,
} from "./support/envoy.js";
import { createTestPki, writePki } from "./support/pki.js";

type PkiPaths = Awaited<ReturnType<typeof writePki>>;

let dir: string;
let pki: PkiPaths;

beforeAll(async () => {
  envoyBinary(); // a missing Envoy fails here with the install hint
  dir = await mkdtemp(join(tmpdir(), "hopwarden-envoy-config-"));
  pki = await writePki(await createTestPki(), join(dir, "pki"));
});

afterAll(async () => {
  if (dir !== undefined) await rm(dir, { recursive: true, force: true });
});

function paths(name: string): { cert: string; key: string } {
  const found = pki[name];
  if (found === undefined) throw new Error(`test PKI has no ${name}`);
  return found;
}

describe("template rendering", () => {
  it("substitutes values and falls back to defaults", () => {
    expect(renderTemplate("a: ${A}\nb: ${B:-two}\nc: ${C:-3}", { A: "one", C: 4 })).toBe("a: one\nb: two\nc: 4");
  });

  it("refuses a placeholder with neither value nor default, naming it", () => {
    expect(() => renderTemplate("port: ${PORT}", {})).toThrow(/\$\{PORT\}/);
  });

  it("refuses a malformed placeholder instead of passing it to Envoy", () => {
    expect(() => renderTemplate("port: ${port}", {})).toThrow(/malformed placeholder/);
  });

  it.each(Object.entries(ENVOY_TEMPLATES))("%s has a default for every placeholder, so docker-compose needs no variables", async (_name, file) => {
    const placeholders = templatePlaceholders(await readFile(file, "utf8"));
    expect(placeholders.size).toBeGreaterThan(5);
    expect([...placeholders].filter(([, fallback]) => fallback === undefined).map(([name]) => name)).toEqual([]);
  });

  it("the loopback helpers give a value for every placeholder of their template", async () => {
    const front = await frontProxyValues({ server: paths("server"), caFile: paths("ca").cert, hopwardenPort: 1, researchPort: 2, dbPort: 3 });
    const sidecar = await sidecarXfccValues({
      server: paths("server"),
      caFile: paths("ca").cert,
      proxySpiffeId: "spiffe://example.org/agent/gateway",
      hopwardenPort: 1,
      agent: "research",
      agentPort: 2,
    });
    for (const [file, values] of [
      [ENVOY_TEMPLATES.frontProxy, front.values],
      [ENVOY_TEMPLATES.sidecarXfcc, sidecar.values],
    ] as const) {
      const names = [...templatePlaceholders(await readFile(file, "utf8")).keys()];
      expect(names.filter((name) => !(name in values))).toEqual([]);
    }
  });
});

describe("envoy --mode validate", () => {
  it("accepts front-proxy.yaml rendered for loopback", async () => {
    const { values } = await frontProxyValues({ server: paths("server"), caFile: paths("ca").cert, hopwardenPort: 9191, researchPort: 8081, dbPort: 8082 });
    const result = await validateEnvoyConfig(await renderEnvoyConfig(ENVOY_TEMPLATES.frontProxy, values, dir));
    expect(result.output).not.toMatch(/critical|error initializing/);
    expect(result.ok, result.output).toBe(true);
  });

  it("accepts sidecar-xfcc.yaml rendered for loopback", async () => {
    const { values } = await sidecarXfccValues({
      server: paths("server"),
      caFile: paths("ca").cert,
      proxySpiffeId: "spiffe://example.org/agent/gateway",
      hopwardenPort: 9191,
      agent: "research",
      agentPort: 8081,
    });
    const result = await validateEnvoyConfig(await renderEnvoyConfig(ENVOY_TEMPLATES.sidecarXfcc, values, dir));
    expect(result.ok, result.output).toBe(true);
  });

  it("rejects a config whose ext_authz filter has an unknown field (validation is real)", async () => {
    const { values } = await frontProxyValues({ server: paths("server"), caFile: paths("ca").cert, hopwardenPort: 9191, researchPort: 8081, dbPort: 8082 });
    const broken = renderTemplate(await readFile(ENVOY_TEMPLATES.frontProxy, "utf8"), values).replace(
      "failure_mode_allow: false",
      "failure_mode_allow: false\n                      failure_mode_allowed: true",
    );
    const file = join(dir, "broken.yaml");
    await writeFile(file, broken);
    const result = await validateEnvoyConfig(file);
    expect(result.ok).toBe(false);
    expect(result.output).toMatch(/failure_mode_allowed/);
  });
});

describe("front proxy fails closed and admits only our CA's agents", () => {
  let proxy: RunningProxy | undefined;
  let upstream: EchoUpstream;

  beforeAll(async () => {
    upstream = await startEchoUpstream();
    // Nothing listens on hopwarden's port: every Check fails.
    const hopwardenPort = await freePort();
    proxy = await startFrontProxy({
      server: paths("server"),
      caFile: paths("ca").cert,
      hopwardenPort,
      researchPort: upstream.port,
      dbPort: upstream.port,
      dir,
    });
  });

  afterAll(async () => {
    await proxy?.stop();
    await upstream?.close();
  });

  const call = (agent: string | undefined, overrides: Partial<Parameters<typeof mtlsRequest>[0]> = {}) =>
    mtlsRequest({
      port: proxy!.port,
      authority: "research",
      path: "/query",
      ca: paths("ca").cert,
      ...(agent === undefined ? {} : { cert: paths(agent).cert, key: paths(agent).key }),
      headers: { "x-agent-subject": "spiffe://example.org/agent/orchestrator", "x-agent-on-behalf-of": "alice@example.com" },
      ...overrides,
    });

  it("answers 503 and forwards nothing when hopwarden is unreachable", async () => {
    const response = await call("orchestrator");
    expect(response.status).toBe(503);
    expect(upstream.requests).toHaveLength(0);
    const stats = await proxy!.envoy.admin("stats?filter=ext_authz");
    expect(stats).toMatch(/ext_authz\.error: [1-9]/);
  });

  it("refuses the TLS handshake without a client certificate", async () => {
    await expect(call(undefined)).rejects.toThrow(/certificate|handshake|socket hang up|ECONNRESET|alert/i);
    expect(upstream.requests).toHaveLength(0);
  });

  it("refuses a certificate from a foreign CA", async () => {
    await expect(call("foreign-ca-agent")).rejects.toThrow(/certificate|unknown ca|alert|ECONNRESET|socket hang up/i);
    expect(upstream.requests).toHaveLength(0);
  });

  it("refuses a certificate of our CA outside the SPIFFE trust domain", async () => {
    await expect(call("foreign-domain")).rejects.toThrow(/certificate|alert|ECONNRESET|socket hang up/i);
    expect(upstream.requests).toHaveLength(0);
  });

  it("answers an unknown Host itself, without forwarding", async () => {
    const response = await call("orchestrator", { authority: "nobody" });
    expect(response.status).toBe(404);
    expect(upstream.requests).toHaveLength(0);
  });

  it("refuses an encoded slash in the path before authorization", async () => {
    const response = await call("orchestrator", { path: "/schema%2F..%2Fadmin" });
    expect(response.status).toBe(400);
    expect(upstream.requests).toHaveLength(0);
  });
});
