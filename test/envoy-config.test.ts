// The Envoy configs in envoy/ against real Envoy 1.40: every template renders
// and passes `envoy --mode validate`, plaintext or with mTLS to hopwarden (the
// HOPWARDEN_MTLS block), and a running front proxy fails closed and refuses
// callers without a certificate of our CA; docker-compose.yml wires the same
// templates to its services. hopwarden itself is not started here
// (the end-to-end suite does that): its port is left unbound.

import { spawnSync } from "node:child_process";
import { X509Certificate } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join, posix } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parse as parseYaml } from "yaml";
import { loadPolicyText } from "../src/adapters/config/policy-file.js";
import { loadTlsFileSet } from "../src/adapters/grpc/tls-file-set.js";
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
  type HopwardenTlsOptions,
  startEchoUpstream,
  startFrontProxy,
  startSidecarXfcc,
  validateEnvoyConfig,
  type EchoUpstream,
  type RunningProxy,
} from "./support/envoy.js";
import { CHECK_PORT_SERVER_NAME, createTestPki, writeCheckPortPki, writePki, type CheckPortPki } from "./support/pki.js";
import { SERVE_NODE_FLAGS } from "./support/serve-node-flags.js";

type PkiPaths = Awaited<ReturnType<typeof writePki>>;

const repoRoot = join(dirname(fileURLToPath(import.meta.url)), "..");

let dir: string;
let pki: PkiPaths;
let checkPort: CheckPortPki;
let hopwardenTls: HopwardenTlsOptions;

beforeAll(async () => {
  envoyBinary(); // a missing Envoy fails here with the install hint
  dir = await mkdtemp(join(tmpdir(), "hopwarden-envoy-config-"));
  pki = await writePki(await createTestPki(), join(dir, "pki"));
  checkPort = await writeCheckPortPki(join(dir, "check-port-pki"));
  hopwardenTls = { clientCert: checkPort.files.envoy, serverCa: checkPort.files.ca, serverName: CHECK_PORT_SERVER_NAME };
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

  it("keeps a #% if block only when its condition is \"true\", needing no values for a dropped block", () => {
    const template = "a: 1\n#% if TLS\nb: ${B}\n#% end\nc: ${C:-3}";
    expect(renderTemplate(template, {})).toBe("a: 1\nc: 3");
    expect(renderTemplate(template, { TLS: "false" })).toBe("a: 1\nc: 3");
    expect(renderTemplate(template, { TLS: "true", B: 2 })).toBe("a: 1\nb: 2\nc: 3");
    expect(() => renderTemplate(template, { TLS: "true" })).toThrow(/\$\{B\}/);
  });

  it.each([
    ["a condition that is neither true nor false", "#% if TLS\nx: 1\n#% end\n", { TLS: "yes" }, /\$\{TLS\} must be "true" or "false", not "yes"/],
    ["a block without an end", "#% if TLS\nx: 1\n", {}, /"#% if TLS" has no "#% end"/],
    ["an end without a block", "x: 1\n#% end\n", {}, /line 2: "#% end" without "#% if"/],
    ["a nested block", "#% if A\n#% if B\n#% end\n#% end\n", {}, /blocks do not nest/],
    ["an unknown directive", "#% unless TLS\n", {}, /unknown directive/],
  ])("refuses %s", (_what, template, values, message) => {
    expect(() => renderTemplate(template, values)).toThrow(message);
  });

  it("lists a block's condition as a placeholder whose default is false", () => {
    expect([...templatePlaceholders("#% if TLS\nx: ${X:-1}\n#% end\n")]).toEqual([
      ["TLS", "false"],
      ["X", "1"],
    ]);
  });

  it.each(Object.entries(ENVOY_TEMPLATES))("%s has a default for every placeholder, so docker-compose needs no variables", async (_name, file) => {
    const placeholders = templatePlaceholders(await readFile(file, "utf8"));
    expect(placeholders.size).toBeGreaterThan(5);
    expect([...placeholders].filter(([, fallback]) => fallback === undefined).map(([name]) => name)).toEqual([]);
  });

  it("the loopback helpers give a value for every placeholder of their template", async () => {
    const front = await frontProxyValues({ server: paths("server"), caFile: paths("ca").cert, hopwardenPort: 1, hopwardenTls, researchPort: 2, dbPort: 3 });
    const sidecar = await sidecarXfccValues({
      server: paths("server"),
      caFile: paths("ca").cert,
      proxySpiffeId: "spiffe://example.org/agent/gateway",
      hopwardenPort: 1,
      hopwardenTls,
      agent: "research",
      agentPort: 2,
    });
    const mcp = await mcpFrontProxyValues({ server: paths("server"), caFile: paths("ca").cert, hopwardenPort: 1, hopwardenTls, researchPort: 2, dbPort: 3 });
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
  /** The hopwarden cluster of a rendered config, parsed. */
  const hopwardenCluster = async (configPath: string): Promise<Record<string, unknown>> => {
    const config = parseYaml(await readFile(configPath, "utf8")) as { static_resources: { clusters: Array<Record<string, unknown>> } };
    const cluster = config.static_resources.clusters.find((c) => c.name === "hopwarden");
    if (cluster === undefined) throw new Error(`${configPath} has no hopwarden cluster`);
    return cluster;
  };

  // mcp-front-proxy.yaml had no HOPWARDEN_MTLS block: HOPWARDEN_MTLS=true rendered plaintext (review finding).
  it.each([
    ["front-proxy.yaml", "frontProxy"],
    ["mcp-front-proxy.yaml", "mcpFrontProxy"],
    ["sidecar-xfcc.yaml", "sidecarXfcc"],
  ] as const)("accepts %s with mTLS to hopwarden: Envoy's client certificate, hopwarden's CA and name", async (_file, template) => {
    const { values } =
      template === "frontProxy"
        ? await frontProxyValues({ server: paths("server"), caFile: paths("ca").cert, hopwardenPort: 9191, hopwardenTls, researchPort: 8081, dbPort: 8082 })
        : template === "mcpFrontProxy"
        ? await mcpFrontProxyValues({ server: paths("server"), caFile: paths("ca").cert, hopwardenPort: 9191, hopwardenTls, researchPort: 8081, dbPort: 8082 })
        : await sidecarXfccValues({
            server: paths("server"),
            caFile: paths("ca").cert,
            proxySpiffeId: "spiffe://example.org/agent/gateway",
            hopwardenPort: 9191,
            hopwardenTls,
            agent: "research",
            agentPort: 8081,
          });
    await mkdir(join(dir, `mtls-${template}`));
    const configPath = await renderEnvoyConfig(ENVOY_TEMPLATES[template], values, join(dir, `mtls-${template}`));
    const result = await validateEnvoyConfig(configPath);
    expect(result.ok, result.output).toBe(true);
    const tls = (await hopwardenCluster(configPath)).transport_socket as { name: string; typed_config: Record<string, unknown> };
    expect(tls.name).toBe("envoy.transport_sockets.tls");
    expect(tls.typed_config).toMatchObject({
      "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext",
      sni: CHECK_PORT_SERVER_NAME,
      common_tls_context: {
        alpn_protocols: ["h2"],
        tls_certificates: [{ certificate_chain: { filename: checkPort.files.envoy.cert }, private_key: { filename: checkPort.files.envoy.key } }],
        validation_context: {
          trusted_ca: { filename: checkPort.files.ca },
          match_typed_subject_alt_names: [{ san_type: "DNS", matcher: { exact: CHECK_PORT_SERVER_NAME } }],
        },
      },
    });
  });

  it.each(Object.entries(ENVOY_TEMPLATES))("%s talks plaintext to hopwarden unless HOPWARDEN_MTLS is true", async (name, template) => {
    await mkdir(join(dir, `plain-${name}`));
    const configPath = await renderEnvoyConfig(template, { HOPWARDEN_MTLS: "false" }, join(dir, `plain-${name}`));
    expect(await hopwardenCluster(configPath)).not.toHaveProperty("transport_socket");
  });

  it.each(Object.entries(ENVOY_TEMPLATES))("%s bounds what one downstream connection holds: 100 streams, 64 KiB and 1 MiB windows", async (name, template) => {
    await mkdir(join(dir, `h2-${name}`));
    const configPath = await renderEnvoyConfig(template, {}, join(dir, `h2-${name}`));
    const config = parseYaml(await readFile(configPath, "utf8")) as {
      static_resources: { listeners: { filter_chains: { filters: { name: string; typed_config: Record<string, unknown> }[] }[] }[] };
    };
    const managers = config.static_resources.listeners.flatMap((l) => l.filter_chains.flatMap((c) => c.filters.filter((f) => f.name === "envoy.filters.network.http_connection_manager")));
    expect(managers.length).toBeGreaterThan(0);
    for (const manager of managers) {
      expect(manager.typed_config["http2_protocol_options"]).toEqual({ max_concurrent_streams: 100, initial_stream_window_size: 65536, initial_connection_window_size: 1048576 });
    }
  });

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
    user?: string;
    command?: string[] | string;
    entrypoint?: string[];
    environment?: Record<string, string>;
    volumes?: string[];
    depends_on?: Record<string, unknown>;
    ports?: string[];
    networks?: string[];
    network_mode?: string;
  }
  let services: Record<string, Service>;
  let networks: Record<string, { internal?: boolean }>;
  let defaults: Map<string, string | undefined>;

  beforeAll(async () => {
    const compose = parseYaml(await readFile(join(repoRoot, "docker-compose.yml"), "utf8"), { strict: true, uniqueKeys: true }) as {
      services: Record<string, Service>;
      networks?: Record<string, { internal?: boolean } | null>;
    };
    services = compose.services;
    networks = Object.fromEntries(Object.entries(compose.networks ?? {}).map(([name, n]) => [name, n ?? {}]));
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

  it("the proxy speaks mTLS to hopwarden with the demo PKI's Check-port files, and hopwarden demands it", () => {
    expect(service("demo-init").environment?.HOPWARDEN_MTLS).toBe("true");
    const certDir = hostPath("demo-init", /gen-demo-certs\.mjs (\S+)/.exec(args(service("demo-init")).join(" "))![1]!);
    for (const [placeholder, file] of [
      ["HOPWARDEN_CLIENT_CERT", "hopwarden-client.crt"],
      ["HOPWARDEN_CLIENT_KEY", "hopwarden-client.key"],
      ["HOPWARDEN_SERVER_CA", "hopwarden-ca.crt"],
    ] as const) {
      expect(hostPath("envoy", fallback(placeholder))).toBe(posix.join(certDir, file));
    }
    // Envoy's SNI is the Compose service it dials; gen-demo-certs puts that name on hopwarden's certificate.
    expect(fallback("HOPWARDEN_SERVER_NAME")).toBe(fallback("HOPWARDEN_HOST"));
    const hopwarden = service("hopwarden");
    for (const [flagName, file] of [
      ["--tls-cert", "hopwarden.crt"],
      ["--tls-key", "hopwarden.key"],
      ["--tls-client-ca", "hopwarden-ca.crt"],
    ] as const) {
      expect(hostPath("hopwarden", flag(hopwarden, flagName))).toBe(posix.join(certDir, file));
    }
    const mount = (hopwarden.volumes ?? []).find((v) => v.split(":")[1] === posix.dirname(flag(hopwarden, "--tls-cert")));
    expect(mount, "the certificates' directory is the mount, so a rotation reaches hopwarden").toBeDefined();
    expect(hopwarden.depends_on).toHaveProperty("demo-init");
  });

  it("publishes the proxy's listener port, and the listener binds all interfaces inside the container", () => {
    expect(fallback("LISTEN_ADDRESS")).toBe("0.0.0.0");
    expect(service("envoy").ports).toContain(`127.0.0.1:${fallback("LISTEN_PORT")}:${fallback("LISTEN_PORT")}`);
    expect(fallback("ADMIN_ADDRESS")).toBe("127.0.0.1");
  });

  // On one default network, an agent could call the other agent, hopwarden's admin API and Jaeger's OTLP
  // port directly, past the proxy and into the audit trail (review finding).
  it("lets each agent reach Envoy alone, and only Envoy and hopwarden reach each other and Jaeger", () => {
    const on = (name: string): string[] => {
      const s = service(name);
      expect(s.networks, `${name} must name its networks (the default one joins everything)`).toBeDefined();
      for (const n of s.networks!) expect(networks, `network ${n} of ${name}`).toHaveProperty(n);
      return s.networks!;
    };
    const members = (network: string) => Object.keys(services).filter((name) => services[name]!.networks?.includes(network)).sort();
    for (const agent of ["research-agent", "db-agent"]) {
      for (const network of on(agent)) {
        expect(members(network), `${agent}'s network ${network}`).toEqual([agent, "envoy"].sort());
        expect(networks[network]!.internal, `${network} needs no way out`).toBe(true);
      }
    }
    for (const network of on("hopwarden")) expect(members(network).every((name) => ["envoy", "hopwarden", "jaeger"].includes(name)), network).toBe(true);
    for (const network of on("jaeger")) expect(members(network).every((name) => ["envoy", "hopwarden", "jaeger"].includes(name)), network).toBe(true);
    expect(on("envoy").sort()).toEqual([...new Set([...on("research-agent"), ...on("db-agent"), ...on("hopwarden"), ...on("jaeger")])].sort());
    expect(service("demo-init").network_mode).toBe("none");
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
    // The last USER wins: numeric (Kubernetes runAsNonRoot checks it) and not root.
    const users = [...runtime.matchAll(/^USER (\S+)$/gm)].map((m) => m[1]);
    expect(users.at(-1)).toMatch(/^[1-9]\d*(:[1-9]\d*)?$/);
    expect(runtime).toMatch(/"serve", "--policy", "\/etc\/hopwarden\/policy\.yaml"/);
    // The image runs with the Node flags the bench measures.
    const entrypoint = JSON.parse(/^ENTRYPOINT (\[.*\])$/m.exec(runtime)?.[1] ?? "[]") as string[];
    expect(entrypoint).toEqual(["node", ...SERVE_NODE_FLAGS, "/app/dist/cli/bin.js"]);
    // And so does the README's `npm start`.
    const { scripts } = JSON.parse(await readFile(join(repoRoot, "package.json"), "utf8")) as { scripts: Record<string, string> };
    expect(scripts.start).toContain(`node ${SERVE_NODE_FLAGS.join(" ")} dist/cli/bin.js serve`);
    expect(service("hopwarden").user, "compose must not run hopwarden as another user").toBeUndefined();
  });

  it("every image with Node runs Node 24 LTS slim, the version the tests run on", async () => {
    const dockerfile = await readFile(join(repoRoot, "Dockerfile"), "utf8");
    const install = await readFile(join(repoRoot, "scripts", "install-test-tools.sh"), "utf8");
    const pinned = /^NODE_VERSION=(\S+)$/m.exec(install)?.[1];
    expect(pinned).toMatch(/^24\.\d+\.\d+$/);
    const image = `node:${pinned}-trixie-slim`;
    const bases = [...dockerfile.matchAll(/^FROM (\S+)/gm)].map((m) => m[1]);
    expect(bases.length).toBeGreaterThan(0);
    for (const base of bases) expect(base).toBe(image);
    const nodeServices = Object.entries(services).filter(([, s]) => s.image?.startsWith("node:") === true);
    expect(nodeServices.length).toBeGreaterThan(0);
    for (const [name, s] of nodeServices) {
      expect(s.image, name).toBe(image);
      expect(s.user, `${name} runs as a numeric non-root user`).toMatch(/^[1-9]\d*:[1-9]\d*$/);
    }
  });

  it("the demo PKI and the compose defaults make a config Envoy accepts", async () => {
    const demoCerts = join(dir, "demo-certs");
    const run = spawnSync(process.execPath, [join(repoRoot, "scripts", "gen-demo-certs.mjs"), demoCerts], { encoding: "utf8" });
    expect(run.status, run.stderr).toBe(0);
    await mkdir(join(dir, "compose"));
    // Only the certificate paths differ from what the container sees.
    const configPath = await renderEnvoyConfig(
      ENVOY_TEMPLATES.frontProxy,
      {
        ...service("demo-init").environment,
        TLS_CERT: join(demoCerts, "server.crt"),
        TLS_KEY: join(demoCerts, "server.key"),
        TLS_CA: join(demoCerts, "ca.crt"),
        HOPWARDEN_CLIENT_CERT: join(demoCerts, "hopwarden-client.crt"),
        HOPWARDEN_CLIENT_KEY: join(demoCerts, "hopwarden-client.key"),
        HOPWARDEN_SERVER_CA: join(demoCerts, "hopwarden-ca.crt"),
      },
      join(dir, "compose"),
    );
    const result = await validateEnvoyConfig(configPath);
    expect(result.ok, result.output).toBe(true);
    // hopwarden accepts the files its command names, and its certificate carries the name Envoy expects.
    const served = await loadTlsFileSet({ cert: join(demoCerts, "hopwarden.crt"), key: join(demoCerts, "hopwarden.key"), clientCa: join(demoCerts, "hopwarden-ca.crt") });
    expect(served.serving.subjectAltName).toContain(`DNS:${fallback("HOPWARDEN_SERVER_NAME")}`);
    const envoyClient = new X509Certificate(await readFile(join(demoCerts, "hopwarden-client.crt")));
    expect(envoyClient.verify(new X509Certificate(await readFile(join(demoCerts, "hopwarden-ca.crt"))).publicKey)).toBe(true);
    // ...and the agents' CA did not issue it: no agent's SVID opens hopwarden's port.
    expect(envoyClient.verify(new X509Certificate(await readFile(join(demoCerts, "ca.crt"))).publicKey)).toBe(false);
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
