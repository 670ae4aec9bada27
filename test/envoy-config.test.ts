// The Envoy configs in envoy/ against real Envoy 1.40: every template renders
// and passes `envoy --mode validate`, and a running front proxy fails closed
// and refuses callers without a certificate of our CA; docker-compose.yml wires
// the same templates to its services. hopwarden itself is not started here
// (the end-to-end suite does that): its port is left unbound.

import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join, posix } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parse as parseYaml } from "yaml";
import { loadPolicyText } from "../src/adapters/config/policy-file.js";
import { templatePlaceholders } from "../envoy/render-config.mjs";
import {
  ENVOY_TEMPLATES,
  envoyBinary,
  freePort,
  frontProxyValues,
  mcpFrontProxyValues,
  mtlsRequest,
  renderEnvoyConfig,
  renderTemplate,
  sidecarXfccValues,
  startEchoUpstream,
  startFrontProxy,
  startSidecarXfcc,
  validateEnvoyConfig,
  type EchoUpstream,
  type RunningProxy,
} from "./support/envoy.js";
import { createTestPki, writePki } from "./support/pki.js";

type PkiPaths = Awaited<ReturnType<typeof writePki>>;

const repoRoot = join(dirname(fileURLToPath(import.meta.url)), "..");

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
    const mcp = await mcpFrontProxyValues({ server: paths("server"), caFile: paths("ca").cert, hopwardenPort: 1, researchPort: 2, dbPort: 3 });
    for (const [file, values] of [
      [ENVOY_TEMPLATES.frontProxy, front.values],
      [ENVOY_TEMPLATES.sidecarXfcc, sidecar.values],
      [ENVOY_TEMPLATES.mcpFrontProxy, mcp.values],
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

  it("accepts mcp-front-proxy.yaml rendered for loopback", async () => {
    const { values } = await mcpFrontProxyValues({ server: paths("server"), caFile: paths("ca").cert, hopwardenPort: 9191, researchPort: 8081, dbPort: 8082 });
    const result = await validateEnvoyConfig(await renderEnvoyConfig(ENVOY_TEMPLATES.mcpFrontProxy, values, dir));
    expect(result.ok, result.output).toBe(true);
  });

  it("mcp-front-proxy.yaml puts the MCP filter ahead of ext_authz, which forwards its namespace", async () => {
    const { values } = await mcpFrontProxyValues({ server: paths("server"), caFile: paths("ca").cert, hopwardenPort: 9191, researchPort: 8081, dbPort: 8082 });
    const config = parseYaml(renderTemplate(await readFile(ENVOY_TEMPLATES.mcpFrontProxy, "utf8"), values)) as {
      static_resources: { listeners: { filter_chains: { filters: { typed_config: { http_filters: { name: string; typed_config: Record<string, unknown> }[] } }[] }[] }[] };
    };
    const filters = config.static_resources.listeners[0]!.filter_chains[0]!.filters[0]!.typed_config.http_filters;
    expect(filters.map((f) => f.name)).toEqual(["envoy.filters.http.mcp", "envoy.filters.http.ext_authz", "envoy.filters.http.router"]);
    expect(filters[0]!.typed_config).toMatchObject({ traffic_mode: "PASS_THROUGH", reject_duplicate_keys: true });
    expect(filters[1]!.typed_config).toMatchObject({ metadata_context_namespaces: ["envoy.filters.http.mcp"], include_peer_certificate: true, failure_mode_allow: false });
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
    await expect(call(undefined)).rejects.toThrow(/alert certificate required/);
    expect(upstream.requests).toHaveLength(0);
  });

  it("refuses a certificate from a foreign CA", async () => {
    await expect(call("foreign-ca-agent")).rejects.toThrow(/alert unknown ca/);
    expect(upstream.requests).toHaveLength(0);
  });

  it("refuses a certificate of our CA outside the SPIFFE trust domain", async () => {
    await expect(call("foreign-domain")).rejects.toThrow(/alert certificate unknown/);
    expect(upstream.requests).toHaveLength(0);
  });

  it("refuses an expired certificate of our CA", async () => {
    await expect(call("expired")).rejects.toThrow(/alert certificate expired/);
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

// `docker compose config` cannot run here (no Compose plugin, no engine), so
// the demo's wiring is checked by reading docker-compose.yml: every path it
// mounts exists or is generated, and every address the rendered front proxy
// uses is a service and port of the same file.
describe("docker-compose.yml is consistent with the Envoy config and the image", () => {
  interface Service {
    image?: string;
    build?: { context: string; target: string };
    command?: string[] | string;
    entrypoint?: string[];
    environment?: Record<string, string>;
    volumes?: string[];
    ports?: string[];
  }
  let services: Record<string, Service>;
  let defaults: Map<string, string | undefined>;

  beforeAll(async () => {
    const compose = parseYaml(await readFile(join(repoRoot, "docker-compose.yml"), "utf8"), { strict: true, uniqueKeys: true }) as { services: Record<string, Service> };
    services = compose.services;
    defaults = templatePlaceholders(await readFile(ENVOY_TEMPLATES.frontProxy, "utf8"));
  });

  const service = (name: string): Service => {
    const found = services[name];
    if (found === undefined) throw new Error(`docker-compose.yml has no service ${name}`);
    return found;
  };
  const fallback = (name: string): string => {
    const value = defaults.get(name);
    if (value === undefined) throw new Error(`front-proxy.yaml has no default for ${name}`);
    return value;
  };
  const args = (s: Service): string[] => (Array.isArray(s.command) ? s.command : (s.command ?? "").split(/\s+/));
  const flag = (s: Service, name: string): string => {
    const list = args(s);
    const i = list.indexOf(name);
    if (i < 0) throw new Error(`no ${name} in ${JSON.stringify(list)}`);
    return list[i + 1]!;
  };
  /** The host path (relative to the repo) that `containerPath` of service `name` is, through its bind mounts. */
  const hostPath = (name: string, containerPath: string): string => {
    for (const volume of service(name).volumes ?? []) {
      const [source, target] = volume.split(":");
      if (source === undefined || target === undefined) continue;
      if (containerPath === target) return posix.normalize(source);
      if (containerPath.startsWith(`${target}/`)) return posix.join(source, containerPath.slice(target.length + 1));
    }
    throw new Error(`${name}: ${containerPath} is not under any bind mount`);
  };

  it("mounts only files that exist, or that demo-init generates under ./.tmp/demo", () => {
    for (const [name, s] of Object.entries(services)) {
      for (const volume of s.volumes ?? []) {
        const source = volume.split(":")[0]!;
        expect(source, `${name}: ${volume} is a bind mount`).toMatch(/^\.\//);
        if (source.startsWith("./.tmp/demo")) continue;
        expect(existsSync(join(repoRoot, source)), `${name}: ${source} exists`).toBe(true);
      }
    }
  });

  it("pins the same Envoy as the tests, and Jaeger 2.13.0", async () => {
    const installer = await readFile(join(repoRoot, "scripts", "install-test-tools.sh"), "utf8");
    const version = /^ENVOY_VERSION=(\S+)$/m.exec(installer)?.[1];
    expect(service("envoy").image).toBe(`envoyproxy/envoy:v${version}`);
    expect(service("jaeger").image).toBe("jaegertracing/jaeger:2.13.0");
  });

  it("Envoy runs the file demo-init renders from envoy/front-proxy.yaml", () => {
    const init = args(service("demo-init")).join(" ");
    const rendered = /envoy\/render-config\.mjs envoy\/front-proxy\.yaml (\S+)/.exec(init)?.[1];
    expect(rendered).toBeDefined();
    expect(hostPath("demo-init", "/app/envoy/front-proxy.yaml")).toBe("envoy/front-proxy.yaml");
    expect(hostPath("envoy", flag(service("envoy"), "-c"))).toBe(hostPath("demo-init", rendered!));
  });

  it("the proxy's default certificate paths are where demo-init writes the demo PKI", () => {
    const certDir = /gen-demo-certs\.mjs (\S+)/.exec(args(service("demo-init")).join(" "))?.[1];
    expect(certDir).toBeDefined();
    for (const [placeholder, file] of [
      ["TLS_CERT", "server.crt"],
      ["TLS_KEY", "server.key"],
      ["TLS_CA", "ca.crt"],
    ] as const) {
      expect(hostPath("envoy", fallback(placeholder))).toBe(posix.join(hostPath("demo-init", certDir!), file));
    }
  });

  it("publishes the proxy's listener port, and the listener binds all interfaces inside the container", () => {
    expect(fallback("LISTEN_ADDRESS")).toBe("0.0.0.0");
    expect(service("envoy").ports).toContain(`127.0.0.1:${fallback("LISTEN_PORT")}:${fallback("LISTEN_PORT")}`);
    expect(fallback("ADMIN_ADDRESS")).toBe("127.0.0.1");
  });

  it("the proxy's clusters name services of this file on the ports they listen on", () => {
    const hopwarden = service(fallback("HOPWARDEN_HOST"));
    expect(flag(hopwarden, "--listen")).toBe(`0.0.0.0:${fallback("HOPWARDEN_PORT")}`);
    for (const agent of ["RESEARCH", "DB"]) {
      expect(service(fallback(`${agent}_HOST`)).environment?.PORT).toBe(fallback(`${agent}_PORT`));
    }
    expect(service(fallback("OTLP_HOST")).image).toMatch(/^jaegertracing\/jaeger:/);
    expect(fallback("OTLP_PORT")).toBe("4317");
    expect(hopwarden.environment?.OTEL_EXPORTER_OTLP_ENDPOINT).toBe(`http://${fallback("OTLP_HOST")}:${fallback("OTLP_PORT")}`);
  });

  it("hopwarden reads a valid policy from a mounted directory", async () => {
    const hopwarden = service("hopwarden");
    const policy = flag(hopwarden, "--policy");
    expect(policy).toBe("/etc/hopwarden/policy.yaml");
    const mount = (hopwarden.volumes ?? []).find((v) => v.split(":")[1] === posix.dirname(policy));
    expect(mount, "the policy's directory is the mount, not the file").toBeDefined();
    const file = join(repoRoot, hostPath("hopwarden", policy));
    const loaded = loadPolicyText(await readFile(file, "utf8"), file);
    expect(loaded.ok ? [] : loaded.errors).toEqual([]);
  });

  it("builds the stages the Dockerfile defines, and the runtime stage is non-root", async () => {
    const dockerfile = await readFile(join(repoRoot, "Dockerfile"), "utf8");
    for (const s of Object.values(services)) {
      if (s.build !== undefined) expect(dockerfile).toMatch(new RegExp(`^FROM \\S+ AS ${s.build.target}$`, "m"));
    }
    const runtime = dockerfile.slice(dockerfile.search(/^FROM \S+ AS runtime$/m));
    expect(runtime).toMatch(/^USER [1-9]\d*(:\d+)?$/m);
    expect(runtime).toMatch(/"serve", "--policy", "\/etc\/hopwarden\/policy\.yaml"/);
  });

  it("the demo PKI and the compose defaults make a config Envoy accepts", async () => {
    const demoCerts = join(dir, "demo-certs");
    const run = spawnSync(process.execPath, [join(repoRoot, "scripts", "gen-demo-certs.mjs"), demoCerts], { encoding: "utf8" });
    expect(run.status, run.stderr).toBe(0);
    await mkdir(join(dir, "compose"));
    // Only the certificate paths differ from what the container sees.
    const configPath = await renderEnvoyConfig(
      ENVOY_TEMPLATES.frontProxy,
      { TLS_CERT: join(demoCerts, "server.crt"), TLS_KEY: join(demoCerts, "server.key"), TLS_CA: join(demoCerts, "ca.crt") },
      join(dir, "compose"),
    );
    const result = await validateEnvoyConfig(configPath);
    expect(result.ok, result.output).toBe(true);
  });
});

describe("XFCC sidecar admits only the known proxy", () => {
  let sidecar: RunningProxy | undefined;
  let upstream: EchoUpstream;

  beforeAll(async () => {
    upstream = await startEchoUpstream();
    sidecar = await startSidecarXfcc({
      server: paths("server"),
      caFile: paths("ca").cert,
      // The test PKI's `server` certificate doubles as the proxy's client certificate.
      proxySpiffeId: "spiffe://example.org/agent/gateway",
      hopwardenPort: await freePort(),
      agent: "research",
      agentPort: upstream.port,
      dir,
    });
  });

  afterAll(async () => {
    await sidecar?.stop();
    await upstream?.close();
  });

  const viaSidecar = (agent: string) =>
    mtlsRequest({
      port: sidecar!.port,
      path: "/query",
      ca: paths("ca").cert,
      cert: paths(agent).cert,
      key: paths(agent).key,
      headers: { "x-forwarded-client-cert": "URI=spiffe://example.org/agent/orchestrator" },
    });

  it("lets the proxy through to ext_authz, which fails closed (503, nothing forwarded)", async () => {
    expect((await viaSidecar("server")).status).toBe(503);
    expect(upstream.requests).toHaveLength(0);
  });

  it("refuses an agent that connects directly with its own XFCC", async () => {
    await expect(viaSidecar("orchestrator")).rejects.toThrow(/alert certificate unknown/);
    expect(upstream.requests).toHaveLength(0);
  });
});
