// Real Envoy for the integration and end-to-end suites: render the configs in
// envoy/ with loopback ports and test certificates, start and stop Envoy,
// plus the two peers it needs in a test: an mTLS HTTPS client and an echo
// upstream standing in for an agent. Nothing here installs anything; Envoy
// comes from scripts/install-test-tools.sh envoy.

import { spawn, type ChildProcess } from "node:child_process";
import { randomInt } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdtemp, readFile, writeFile } from "node:fs/promises";
import { createServer as createHttpServer, type IncomingHttpHeaders } from "node:http";
import { request as httpsRequest } from "node:https";
import { connect, createServer as createNetServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { renderTemplate } from "../../envoy/render-config.mjs";

export { renderTemplate };

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..");

/** Where scripts/install-test-tools.sh puts Envoy. */
export const ENVOY_BIN = join(repoRoot, ".tools", "bin", "envoy");
export const ENVOY_TEMPLATES = {
  frontProxy: join(repoRoot, "envoy", "front-proxy.yaml"),
  sidecarXfcc: join(repoRoot, "envoy", "sidecar-xfcc.yaml"),
  mcpFrontProxy: join(repoRoot, "envoy", "mcp-front-proxy.yaml"),
} as const;

/** The Envoy binary, or an error that says how to install it. */
export function envoyBinary(): string {
  if (!existsSync(ENVOY_BIN)) {
    throw new Error(`Envoy is not installed at ${ENVOY_BIN}: run scripts/install-test-tools.sh envoy`);
  }
  return ENVOY_BIN;
}

/** A TCP port that was free on 127.0.0.1 a moment ago. */
export async function freePort(): Promise<number> {
  const server = createNetServer();
  await new Promise<void>((ok, fail) => {
    server.once("error", fail);
    server.listen(0, "127.0.0.1", ok);
  });
  const address = server.address();
  await new Promise<void>((ok) => server.close(() => ok()));
  if (address === null || typeof address === "string") throw new Error("no port from listen(0)");
  return address.port;
}

/** `count` distinct free ports (held open together, so they differ). */
export async function freePorts(count: number): Promise<number[]> {
  const servers = Array.from({ length: count }, () => createNetServer());
  try {
    return await Promise.all(
      servers.map(
        (server) =>
          new Promise<number>((ok, fail) => {
            server.once("error", fail);
            server.listen(0, "127.0.0.1", () => {
              const address = server.address();
              if (address === null || typeof address === "string") fail(new Error("no port from listen(0)"));
              else ok(address.port);
            });
          }),
      ),
    );
  } finally {
    await Promise.all(servers.map((server) => new Promise<void>((ok) => (server.listening ? server.close(() => ok()) : ok()))));
  }
}

export type TemplateValues = Readonly<Record<string, string | number | undefined>>;

/** Renders `template` (a path) with `values` into `dir` (a new temp dir when absent); returns the rendered file. */
export async function renderEnvoyConfig(template: string, values: TemplateValues, dir?: string): Promise<string> {
  const outDir = dir ?? (await mkdtemp(join(tmpdir(), "hopwarden-envoy-")));
  const name = template.split(/[\\/]/).pop() ?? "envoy.yaml";
  const out = join(outDir, name.replace(/\.yaml$/, "") + ".rendered.yaml");
  await writeFile(out, renderTemplate(await readFile(template, "utf8"), values));
  return out;
}

/** A base id no other concurrent Envoy of these suites picks (shared memory names derive from it). */
export function randomBaseId(): number {
  return randomInt(1_000, 2_000_000_000);
}

export interface ValidationResult {
  readonly ok: boolean;
  readonly output: string;
}

/** `envoy --mode validate -c <file>`: parses the config and builds every listener and cluster, serving nothing. */
export async function validateEnvoyConfig(configPath: string): Promise<ValidationResult> {
  const child = spawn(envoyBinary(), ["--mode", "validate", "-c", configPath, "--base-id", String(randomBaseId()), "--log-level", "warn"], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  child.stdout.on("data", (chunk: Buffer) => (output += chunk.toString()));
  child.stderr.on("data", (chunk: Buffer) => (output += chunk.toString()));
  const code = await new Promise<number | null>((ok, fail) => {
    child.once("error", fail);
    child.once("close", (exitCode) => ok(exitCode));
  });
  return { ok: code === 0, output };
}

export interface StartEnvoyOptions {
  readonly configPath: string;
  /** The config's admin port (rendered as ADMIN_PORT). */
  readonly adminPort: number;
  /** Listener ports that must accept connections before start resolves. */
  readonly listenerPorts?: readonly number[];
  readonly logLevel?: "trace" | "debug" | "info" | "warn" | "error" | "critical" | "off";
  readonly readyTimeoutMs?: number;
  /** Envoy worker threads (default 2). */
  readonly concurrency?: number;
}

export interface EnvoyProcess {
  readonly pid: number;
  readonly adminUrl: string;
  readonly configPath: string;
  /** Everything Envoy wrote so far (stdout, where access logs go, and stderr). */
  output(): string;
  /** GET on the admin interface, e.g. `stats?filter=ext_authz`. */
  admin(path: string): Promise<string>;
  /** SIGTERM, then SIGKILL after `graceMs`; resolves once the process has exited. Safe to call twice. */
  stop(graceMs?: number): Promise<void>;
}

/** Starts Envoy and resolves when its admin /ready says LIVE and every listener port accepts connections. */
export async function startEnvoy(options: StartEnvoyOptions): Promise<EnvoyProcess> {
  const child = spawn(
    envoyBinary(),
    [
      "-c",
      options.configPath,
      "--base-id",
      String(randomBaseId()),
      "--log-level",
      options.logLevel ?? "warn",
      // One Envoy per test, never hot-restarted: no shared-memory handshake to collide on.
      "--disable-hot-restart",
      // Two worker threads are plenty on loopback, and the machine is shared.
      "--concurrency",
      String(options.concurrency ?? 2),
    ],
    { stdio: ["ignore", "pipe", "pipe"] },
  );
  let output = "";
  child.stdout.on("data", (chunk: Buffer) => (output += chunk.toString()));
  child.stderr.on("data", (chunk: Buffer) => (output += chunk.toString()));
  const exited = new Promise<void>((ok) => child.once("exit", () => ok()));
  const adminUrl = `http://127.0.0.1:${options.adminPort}`;
  const envoy: EnvoyProcess = {
    pid: child.pid ?? -1,
    adminUrl,
    configPath: options.configPath,
    output: () => output,
    admin: async (path) => {
      const response = await fetch(`${adminUrl}/${path.replace(/^\//, "")}`);
      return response.text();
    },
    stop: (graceMs = 3_000) => stopChild(child, exited, graceMs),
  };
  try {
    await waitUntilReady(child, envoy, options, () => output);
  } catch (error) {
    await envoy.stop(500);
    throw error;
  }
  return envoy;
}

async function waitUntilReady(child: ChildProcess, envoy: EnvoyProcess, options: StartEnvoyOptions, output: () => string): Promise<void> {
  const deadline = Date.now() + (options.readyTimeoutMs ?? 15_000);
  let state = "";
  while (Date.now() < deadline) {
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(`Envoy exited (${child.exitCode ?? child.signalCode}) before it was ready:\n${output()}`);
    }
    try {
      state = (await envoy.admin("ready")).trim();
      if (state === "LIVE" && (await Promise.all((options.listenerPorts ?? []).map(accepts))).every(Boolean)) return;
    } catch {
      // admin not listening yet
    }
    await new Promise((ok) => setTimeout(ok, 50));
  }
  throw new Error(`Envoy was not ready within ${options.readyTimeoutMs ?? 15_000} ms (admin /ready: ${state || "no answer"}):\n${output()}`);
}

function accepts(port: number): Promise<boolean> {
  return new Promise((ok) => {
    const socket = connect(port, "127.0.0.1");
    socket.once("connect", () => {
      socket.destroy();
      ok(true);
    });
    socket.once("error", () => ok(false));
  });
}

async function stopChild(child: ChildProcess, exited: Promise<void>, graceMs: number): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  child.kill("SIGTERM");
  const timer = setTimeout(() => child.kill("SIGKILL"), graceMs);
  await exited;
  clearTimeout(timer);
}

// --- front proxy -------------------------------------------------------------

/** Certificate and key paths, as writePki returns them. */
export interface CertPaths {
  readonly cert: string;
  readonly key: string;
}

/** mTLS from Envoy's ext_authz cluster to hopwarden (the templates' HOPWARDEN_MTLS block). */
export interface HopwardenTlsOptions {
  /** Envoy's client certificate, from the CA hopwarden's --tls-client-ca names. */
  readonly clientCert: CertPaths;
  /** CA that issued hopwarden's server certificate. */
  readonly serverCa: string;
  /** SNI, and the DNS SAN hopwarden's certificate must carry. */
  readonly serverName: string;
}

/** Template values for the hopwarden cluster: plaintext unless `tls` is given. */
export function hopwardenTlsValues(tls: HopwardenTlsOptions | undefined): Record<string, string> {
  if (tls === undefined) return { HOPWARDEN_MTLS: "false" };
  return {
    HOPWARDEN_MTLS: "true",
    HOPWARDEN_CLIENT_CERT: tls.clientCert.cert,
    HOPWARDEN_CLIENT_KEY: tls.clientCert.key,
    HOPWARDEN_SERVER_CA: tls.serverCa,
    HOPWARDEN_SERVER_NAME: tls.serverName,
  };
}

export interface FrontProxyOptions {
  /** The proxy's server certificate (test PKI: `server`, DNS localhost). */
  readonly server: CertPaths;
  /** CA file that agent certificates must chain to. */
  readonly caFile: string;
  readonly hopwardenPort: number;
  /** mTLS to hopwarden; absent: plaintext. */
  readonly hopwardenTls?: HopwardenTlsOptions;
  /** Upstreams of the "research" and "db" virtual hosts (an echo upstream, say). */
  readonly researchPort: number;
  readonly dbPort: number;
  /** OTLP/gRPC collector; defaults to a port nothing listens on (spans are dropped). */
  readonly otlpPort?: number;
  readonly extAuthzTimeout?: string;
  readonly trustDomain?: string;
  /** Directory for the rendered config (a new temp dir when absent). */
  readonly dir?: string;
  readonly logLevel?: StartEnvoyOptions["logLevel"];
  /** Envoy worker threads (default 2). */
  readonly concurrency?: number;
}

export interface RunningProxy {
  readonly envoy: EnvoyProcess;
  /** The mTLS listener on 127.0.0.1. */
  readonly port: number;
  readonly adminPort: number;
  stop(): Promise<void>;
}

/** Values for envoy/front-proxy.yaml on loopback. */
export async function frontProxyValues(options: FrontProxyOptions): Promise<{ values: Record<string, string | number>; port: number; adminPort: number }> {
  const [port, adminPort, spare] = await freePorts(3);
  const values = {
    LISTEN_ADDRESS: "127.0.0.1",
    LISTEN_PORT: port!,
    ADMIN_ADDRESS: "127.0.0.1",
    ADMIN_PORT: adminPort!,
    TLS_CERT: options.server.cert,
    TLS_KEY: options.server.key,
    TLS_CA: options.caFile,
    TRUST_DOMAIN: options.trustDomain ?? "example.org",
    HOPWARDEN_HOST: "127.0.0.1",
    HOPWARDEN_PORT: options.hopwardenPort,
    ...hopwardenTlsValues(options.hopwardenTls),
    EXT_AUTHZ_TIMEOUT: options.extAuthzTimeout ?? "0.5s",
    RESEARCH_HOST: "127.0.0.1",
    RESEARCH_PORT: options.researchPort,
    DB_HOST: "127.0.0.1",
    DB_PORT: options.dbPort,
    OTLP_HOST: "127.0.0.1",
    OTLP_PORT: options.otlpPort ?? spare!,
    SERVICE_NAME: "envoy-front-proxy",
  };
  return { values, port: port!, adminPort: adminPort! };
}

/** Renders a template with loopback values and starts Envoy with it, ready once its listener accepts. */
async function startRendered(
  template: string,
  { values, port, adminPort }: { values: Record<string, string | number>; port: number; adminPort: number },
  options: { dir?: string; logLevel?: StartEnvoyOptions["logLevel"]; concurrency?: number },
): Promise<RunningProxy> {
  const configPath = await renderEnvoyConfig(template, values, options.dir);
  const envoy = await startEnvoy({ configPath, adminPort, listenerPorts: [port], logLevel: options.logLevel, ...(options.concurrency !== undefined && { concurrency: options.concurrency }) });
  return { envoy, port, adminPort, stop: () => envoy.stop() };
}

/** Renders envoy/front-proxy.yaml for loopback and starts Envoy with it. */
export async function startFrontProxy(options: FrontProxyOptions): Promise<RunningProxy> {
  return startRendered(ENVOY_TEMPLATES.frontProxy, await frontProxyValues(options), options);
}

export interface McpFrontProxyOptions extends FrontProxyOptions {
  /** MCP_MAX_BODY_BYTES: the largest body the MCP filter parses whole (template default 65536). */
  readonly mcpMaxBodyBytes?: number;
}

/** Values for envoy/mcp-front-proxy.yaml on loopback: the front proxy's, plus the MCP filter's body limit. */
export async function mcpFrontProxyValues(options: McpFrontProxyOptions): Promise<{ values: Record<string, string | number>; port: number; adminPort: number }> {
  const base = await frontProxyValues(options);
  return { ...base, values: { ...base.values, SERVICE_NAME: "envoy-mcp-front-proxy", MCP_MAX_BODY_BYTES: options.mcpMaxBodyBytes ?? 65536 } };
}

/** Renders envoy/mcp-front-proxy.yaml (the MCP filter ahead of ext_authz) for loopback and starts Envoy with it. */
export async function startMcpFrontProxy(options: McpFrontProxyOptions): Promise<RunningProxy> {
  return startRendered(ENVOY_TEMPLATES.mcpFrontProxy, await mcpFrontProxyValues(options), options);
}

export interface SidecarXfccOptions {
  /** The sidecar's server certificate. */
  readonly server: CertPaths;
  readonly caFile: string;
  /** The exact URI SAN of the one proxy allowed to connect (test PKI `server`: spiffe://example.org/agent/gateway). */
  readonly proxySpiffeId: string;
  readonly hopwardenPort: number;
  /** mTLS to hopwarden; absent: plaintext. */
  readonly hopwardenTls?: HopwardenTlsOptions;
  /** The agent behind this sidecar: policy alias (context extension) and local port. */
  readonly agent: string;
  readonly agentPort: number;
  readonly otlpPort?: number;
  readonly extAuthzTimeout?: string;
  readonly dir?: string;
  readonly logLevel?: StartEnvoyOptions["logLevel"];
}

/** Values for envoy/sidecar-xfcc.yaml on loopback. */
export async function sidecarXfccValues(options: SidecarXfccOptions): Promise<{ values: Record<string, string | number>; port: number; adminPort: number }> {
  const [port, adminPort, spare] = await freePorts(3);
  const values = {
    LISTEN_ADDRESS: "127.0.0.1",
    LISTEN_PORT: port!,
    ADMIN_ADDRESS: "127.0.0.1",
    ADMIN_PORT: adminPort!,
    TLS_CERT: options.server.cert,
    TLS_KEY: options.server.key,
    TLS_CA: options.caFile,
    PROXY_SPIFFE_ID: options.proxySpiffeId,
    HOPWARDEN_HOST: "127.0.0.1",
    HOPWARDEN_PORT: options.hopwardenPort,
    ...hopwardenTlsValues(options.hopwardenTls),
    EXT_AUTHZ_TIMEOUT: options.extAuthzTimeout ?? "0.5s",
    AGENT: options.agent,
    AGENT_HOST: "127.0.0.1",
    AGENT_PORT: options.agentPort,
    OTLP_HOST: "127.0.0.1",
    OTLP_PORT: options.otlpPort ?? spare!,
    SERVICE_NAME: `envoy-sidecar-${options.agent}`,
  };
  return { values, port: port!, adminPort: adminPort! };
}

/** Renders envoy/sidecar-xfcc.yaml for loopback and starts Envoy with it. */
export async function startSidecarXfcc(options: SidecarXfccOptions): Promise<RunningProxy> {
  return startRendered(ENVOY_TEMPLATES.sidecarXfcc, await sidecarXfccValues(options), options);
}

// --- HTTPS client -------------------------------------------------------------

export interface MtlsRequest {
  readonly port: number;
  readonly path?: string;
  readonly method?: string;
  /** Host header: selects the callee's virtual host ("research", "db"). */
  readonly authority?: string;
  /** A header given as an array is sent as one line per value (a header repeated). */
  readonly headers?: Readonly<Record<string, string | readonly string[]>>;
  readonly body?: string | Buffer;
  /** Client certificate and key files; omit both to connect without one. */
  readonly cert?: string;
  readonly key?: string;
  /** CA file that the proxy's server certificate chains to. */
  readonly ca: string;
  /** SNI and the name checked on the server certificate. */
  readonly servername?: string;
  readonly timeoutMs?: number;
}

export interface HttpResult {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  readonly body: string;
}

/** One HTTPS request over a fresh connection (agent: false) presenting the given client certificate. */
export async function mtlsRequest(request: MtlsRequest): Promise<HttpResult> {
  const [cert, key, ca] = await Promise.all([
    request.cert === undefined ? undefined : readFile(request.cert),
    request.key === undefined ? undefined : readFile(request.key),
    readFile(request.ca),
  ]);
  const headers: Record<string, string | string[]> = {};
  for (const [name, value] of Object.entries(request.headers ?? {})) headers[name] = typeof value === "string" ? value : [...value];
  if (request.authority !== undefined) headers.host = request.authority;
  if (request.body !== undefined) headers["content-length"] = String(Buffer.byteLength(request.body));
  return new Promise<HttpResult>((ok, fail) => {
    const req = httpsRequest(
      {
        host: "127.0.0.1",
        port: request.port,
        path: request.path ?? "/",
        method: request.method ?? "GET",
        headers,
        cert,
        key,
        ca,
        servername: request.servername ?? "localhost",
        agent: false,
        timeout: request.timeoutMs ?? 5_000,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (chunk: Buffer) => chunks.push(chunk));
        res.on("end", () => ok({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString("utf8") }));
        res.on("error", fail);
      },
    );
    req.on("timeout", () => req.destroy(new Error(`no answer from 127.0.0.1:${request.port} within ${request.timeoutMs ?? 5_000} ms`)));
    req.on("error", fail);
    req.end(request.body);
  });
}

// --- echo upstream ------------------------------------------------------------

export interface EchoedRequest {
  readonly method: string;
  readonly path: string;
  readonly headers: IncomingHttpHeaders;
}

export interface EchoUpstream {
  readonly port: number;
  /** Every request received so far, oldest first. */
  readonly requests: readonly EchoedRequest[];
  close(): Promise<void>;
}

/** An agent stand-in on 127.0.0.1: answers 200 with `{method, path, headers}` of the request it received as JSON. */
export async function startEchoUpstream(): Promise<EchoUpstream> {
  const requests: EchoedRequest[] = [];
  const server = createHttpServer((req, res) => {
    const echoed: EchoedRequest = { method: req.method ?? "", path: req.url ?? "", headers: req.headers };
    requests.push(echoed);
    req.resume();
    req.on("end", () => {
      res.writeHead(200, { "content-type": "application/json" });
      res.end(JSON.stringify(echoed));
    });
  });
  await new Promise<void>((ok, fail) => {
    server.once("error", fail);
    server.listen(0, "127.0.0.1", ok);
  });
  const address = server.address();
  if (address === null || typeof address === "string") throw new Error("echo upstream has no port");
  return {
    port: address.port,
    requests,
    close: () =>
      new Promise<void>((ok) => {
        server.closeAllConnections();
        server.close(() => ok());
      }),
  };
}
