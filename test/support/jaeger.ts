// Real Jaeger (the v2 all-in-one, memory storage) for the audit-trail suites:
// started on free loopback ports from a config file written to a temp dir,
// ready once its query API answers and its OTLP receivers accept connections,
// always stopped (SIGTERM, then SIGKILL). Nothing here installs anything;
// Jaeger comes from scripts/install-test-tools.sh jaeger.

import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { JaegerQueryClient } from "../../src/adapters/telemetry/jaeger-query-client.js";
import { freePorts } from "./envoy.js";

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..");

/** Where scripts/install-test-tools.sh puts Jaeger. */
export const JAEGER_BIN = join(repoRoot, ".tools", "bin", "jaeger");

/** The Jaeger binary, or an error that says how to install it. */
export function jaegerBinary(): string {
  if (!existsSync(JAEGER_BIN)) {
    throw new Error(`Jaeger is not installed at ${JAEGER_BIN}: run scripts/install-test-tools.sh jaeger (builds the v2 all-in-one once, ~6 min)`);
  }
  return JAEGER_BIN;
}

export interface JaegerPorts {
  readonly otlpGrpc: number;
  readonly otlpHttp: number;
  readonly queryHttp: number;
  readonly queryGrpc: number;
}

/**
 * Only what the suites use: the OTLP receivers, memory storage and the query
 * service, each on a port of ours. No Prometheus endpoint, health check,
 * zpages, remote sampling or legacy receivers (they would take fixed ports).
 */
export function jaegerConfig(ports: JaegerPorts): string {
  return `service:
  extensions: [jaeger_storage, jaeger_query]
  pipelines:
    traces:
      receivers: [otlp]
      exporters: [jaeger_storage_exporter]
  telemetry:
    resource:
      service.name: jaeger
    metrics:
      level: none
    logs:
      level: warn
extensions:
  jaeger_storage:
    backends:
      memory_store:
        memory:
          max_traces: 50000
  jaeger_query:
    storage:
      traces: memory_store
    http:
      endpoint: 127.0.0.1:${ports.queryHttp}
    grpc:
      endpoint: 127.0.0.1:${ports.queryGrpc}
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 127.0.0.1:${ports.otlpGrpc}
      http:
        endpoint: 127.0.0.1:${ports.otlpHttp}
exporters:
  jaeger_storage_exporter:
    trace_storage: memory_store
`;
}

/** A span as Jaeger's OTLP-native API (/api/v3) returns it: attribute types kept (arrays stay arrays). */
export interface OtlpStoredSpan {
  readonly traceId: string;
  readonly spanId: string;
  readonly parentSpanId: string;
  readonly name: string;
  /** OTLP SpanKind: 2 = SERVER, 3 = CLIENT. */
  readonly kind: number;
  readonly service: string;
  readonly attributes: Readonly<Record<string, unknown>>;
  readonly events: readonly { readonly name: string; readonly attributes: Readonly<Record<string, unknown>> }[];
}

export interface JaegerProcess {
  readonly ports: JaegerPorts;
  /** Base URL of the query API, e.g. http://127.0.0.1:PORT. */
  readonly queryUrl: string;
  /** For @opentelemetry/exporter-trace-otlp-grpc: http://127.0.0.1:PORT. */
  readonly otlpGrpcUrl: string;
  /** For @opentelemetry/exporter-trace-otlp-proto: http://127.0.0.1:PORT/v1/traces. */
  readonly otlpHttpTracesUrl: string;
  /** The query client hopwarden's own `trace` command uses. */
  readonly client: JaegerQueryClient;
  /** Spans of one trace from /api/v3/traces/<id>; [] when Jaeger has none (yet). */
  traceV3(traceId: string): Promise<OtlpStoredSpan[]>;
  output(): string;
  /** SIGTERM, then SIGKILL after `graceMs`; resolves once the process has exited. Safe to call twice. */
  stop(graceMs?: number): Promise<void>;
}

export interface StartJaegerOptions {
  readonly readyTimeoutMs?: number;
}

/** Starts Jaeger on free loopback ports; retries once with new ports if it dies at start (a port taken meanwhile). */
export async function startJaeger(options: StartJaegerOptions = {}): Promise<JaegerProcess> {
  const binary = jaegerBinary();
  try {
    return await startOnce(binary, options);
  } catch (err) {
    if (!(err instanceof EarlyExit)) throw err;
    return startOnce(binary, options);
  }
}

class EarlyExit extends Error {}

async function startOnce(binary: string, options: StartJaegerOptions): Promise<JaegerProcess> {
  const [otlpGrpc, otlpHttp, queryHttp, queryGrpc] = await freePorts(4);
  const ports: JaegerPorts = { otlpGrpc: otlpGrpc!, otlpHttp: otlpHttp!, queryHttp: queryHttp!, queryGrpc: queryGrpc! };
  const dir = await mkdtemp(join(tmpdir(), "hopwarden-jaeger-"));
  const configPath = join(dir, "jaeger.yaml");
  await writeFile(configPath, jaegerConfig(ports));
  const child = spawn(binary, ["--config", configPath], {
    // Jaeger's own telemetry off: with it on, Jaeger takes ~10 s to exit on SIGTERM.
    env: { ...process.env, OTEL_TRACES_SAMPLER: "always_off" },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  child.stdout.on("data", (chunk: Buffer) => (output += chunk.toString()));
  child.stderr.on("data", (chunk: Buffer) => (output += chunk.toString()));
  const exited = new Promise<void>((ok) => child.once("exit", () => ok()));
  child.once("error", (err) => (output += `\nspawn failed: ${err.message}`));

  const queryUrl = `http://127.0.0.1:${ports.queryHttp}`;
  let stopping: Promise<void> | undefined;
  const stop = (graceMs = 3_000): Promise<void> => {
    stopping ??= (async () => {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill("SIGTERM");
        const timer = setTimeout(() => child.kill("SIGKILL"), graceMs);
        await exited;
        clearTimeout(timer);
      }
      await rm(dir, { recursive: true, force: true });
    })();
    return stopping;
  };

  const jaeger: JaegerProcess = {
    ports,
    queryUrl,
    otlpGrpcUrl: `http://127.0.0.1:${ports.otlpGrpc}`,
    otlpHttpTracesUrl: `http://127.0.0.1:${ports.otlpHttp}/v1/traces`,
    client: new JaegerQueryClient(queryUrl, { timeoutMs: 5_000 }),
    traceV3: (traceId) => fetchTraceV3(queryUrl, traceId),
    output: () => output,
    stop,
  };

  const timeoutMs = options.readyTimeoutMs ?? 20_000;
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child.exitCode !== null || child.signalCode !== null) {
      await stop();
      throw new EarlyExit(`Jaeger exited (${child.exitCode ?? child.signalCode}) before it was ready:\n${output}`);
    }
    if ((await queryAnswers(queryUrl)) && (await accepts(ports.otlpGrpc)) && (await accepts(ports.otlpHttp))) return jaeger;
    await sleep(100);
  }
  await stop(500);
  throw new Error(`Jaeger was not ready within ${timeoutMs} ms (query API ${queryUrl}/api/services):\n${output}`);
}

async function queryAnswers(queryUrl: string): Promise<boolean> {
  try {
    const response = await fetch(`${queryUrl}/api/services`, { signal: AbortSignal.timeout(1_000) });
    await response.arrayBuffer();
    return response.ok;
  } catch {
    return false;
  }
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

const sleep = (ms: number) => new Promise((ok) => setTimeout(ok, ms));

/**
 * Polls `probe` until it returns something other than undefined, at most
 * `timeoutMs` (spans reach Jaeger after the exporter's batching delay).
 */
export async function waitFor<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 10_000, intervalMs = 150): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      const value = await probe();
      if (value !== undefined) return value;
    } catch (err) {
      lastError = err;
    }
    if (Date.now() >= deadline) {
      const why = lastError instanceof Error ? ` (last error: ${lastError.message})` : "";
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${why}`);
    }
    await sleep(intervalMs);
  }
}

async function fetchTraceV3(queryUrl: string, traceId: string): Promise<OtlpStoredSpan[]> {
  const response = await fetch(`${queryUrl}/api/v3/traces/${traceId}`, { signal: AbortSignal.timeout(5_000) });
  const body = (await response.json()) as { result?: { resourceSpans?: OtlpResourceSpans[] } };
  if (response.status === 404) return [];
  if (!response.ok) throw new Error(`Jaeger /api/v3/traces/${traceId} answered ${response.status}: ${JSON.stringify(body)}`);
  const out: OtlpStoredSpan[] = [];
  for (const rs of body.result?.resourceSpans ?? []) {
    const serviceName = decodeAttributes(rs.resource?.attributes)["service.name"];
    const service = typeof serviceName === "string" ? serviceName : "";
    for (const ss of rs.scopeSpans ?? []) {
      for (const span of ss.spans ?? []) {
        out.push({
          traceId: span.traceId,
          spanId: span.spanId,
          parentSpanId: span.parentSpanId ?? "",
          name: span.name,
          kind: span.kind ?? 0,
          service,
          attributes: decodeAttributes(span.attributes),
          events: (span.events ?? []).map((e) => ({ name: e.name, attributes: decodeAttributes(e.attributes) })),
        });
      }
    }
  }
  return out;
}

interface OtlpAnyValue {
  stringValue?: string;
  boolValue?: boolean;
  intValue?: string | number;
  doubleValue?: number;
  arrayValue?: { values?: OtlpAnyValue[] };
}
interface OtlpKeyValue {
  key: string;
  value?: OtlpAnyValue;
}
interface OtlpResourceSpans {
  resource?: { attributes?: OtlpKeyValue[] };
  scopeSpans?: {
    spans?: {
      traceId: string;
      spanId: string;
      parentSpanId?: string;
      name: string;
      kind?: number;
      attributes?: OtlpKeyValue[];
      events?: { name: string; attributes?: OtlpKeyValue[] }[];
    }[];
  }[];
}

function decodeAttributes(attributes: OtlpKeyValue[] | undefined): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const { key, value } of attributes ?? []) out[key] = decodeValue(value);
  return out;
}

function decodeValue(value: OtlpAnyValue | undefined): unknown {
  if (value === undefined) return undefined;
  if (value.stringValue !== undefined) return value.stringValue;
  if (value.boolValue !== undefined) return value.boolValue;
  if (value.intValue !== undefined) return Number(value.intValue);
  if (value.doubleValue !== undefined) return value.doubleValue;
  if (value.arrayValue !== undefined) return (value.arrayValue.values ?? []).map(decodeValue);
  return undefined;
}
