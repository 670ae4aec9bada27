// OTLP/HTTP (protobuf) span exporter on the fast encoder: one POST per batch
// to the endpoint the standard OTEL_EXPORTER_OTLP_* variables name, over a
// keep-alive agent. Every failure (a non-2xx answer, a timeout, a refused or
// broken connection, an encoding error) is reported as FAILED to the caller
// (the BatchSpanProcessor, which counts it); nothing throws and nothing waits
// past the timeout. No retries beyond one: a request on a reused keep-alive
// socket the collector had closed meanwhile is sent once more on a new one.

import { Agent as HttpAgent, request as httpRequest, validateHeaderName, validateHeaderValue, type ClientRequest, type IncomingMessage, type RequestOptions } from "node:http";
import { Agent as HttpsAgent, request as httpsRequest } from "node:https";
import { diag } from "@opentelemetry/api";
import { ExportResultCode, type ExportResult } from "@opentelemetry/core";
import type { ReadableSpan, SpanExporter } from "@opentelemetry/sdk-trace-base";
import { encodeExportTraceServiceRequest } from "./otlp-span-encoder.js";

export const DEFAULT_OTLP_TRACES_URL = "http://localhost:4318/v1/traces";
export const DEFAULT_OTLP_TIMEOUT_MILLIS = 10_000;

export interface OtlpHttpSpanExporterConfig {
  /** The full traces URL (…/v1/traces); overrides the environment. */
  readonly url?: string;
  /** Sent with every request, over those from the environment. */
  readonly headers?: Readonly<Record<string, string>>;
  /** Per export, connection included; overrides the environment. */
  readonly timeoutMillis?: number;
}

export interface ResolvedOtlpHttpConfig {
  readonly url: string;
  readonly headers: Readonly<Record<string, string>>;
  readonly timeoutMillis: number;
}

const nonEmpty = (value: string | undefined): string | undefined => {
  const trimmed = value?.trim();
  return trimmed === undefined || trimmed === "" ? undefined : trimmed;
};

/** OTEL_EXPORTER_OTLP_TRACES_ENDPOINT as is, else OTEL_EXPORTER_OTLP_ENDPOINT + /v1/traces, else the default. */
export function tracesUrlFromEnvironment(env: NodeJS.ProcessEnv): string {
  const traces = nonEmpty(env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT);
  if (traces !== undefined) return traces;
  const base = nonEmpty(env.OTEL_EXPORTER_OTLP_ENDPOINT);
  if (base !== undefined) return base.endsWith("/") ? `${base}v1/traces` : `${base}/v1/traces`;
  return DEFAULT_OTLP_TRACES_URL;
}

/** `k1=v1,k2=v2`, keys and values URL-decoded and trimmed; entries without a key or `=` are skipped. */
export function parseOtlpHeaders(value: string | undefined): Record<string, string> {
  const headers: Record<string, string> = {};
  for (const entry of (value ?? "").split(",")) {
    const eq = entry.indexOf("=");
    if (eq <= 0) {
      if (entry.trim() !== "") diag.warn(`OTLP headers: ignoring "${entry.trim()}" (not key=value)`);
      continue;
    }
    const key = urlDecode(entry.slice(0, eq).trim());
    if (key === "") continue;
    headers[key] = urlDecode(entry.slice(eq + 1).trim());
  }
  return headers;
}

function urlDecode(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}

function timeoutFromEnvironment(env: NodeJS.ProcessEnv): number | undefined {
  for (const raw of [env.OTEL_EXPORTER_OTLP_TRACES_TIMEOUT, env.OTEL_EXPORTER_OTLP_TIMEOUT]) {
    const text = nonEmpty(raw);
    if (text === undefined) continue;
    const ms = Number(text);
    if (Number.isFinite(ms) && ms > 0) return ms;
    diag.warn(`OTLP timeout: ignoring "${text}" (not a positive number of milliseconds)`);
  }
  return undefined;
}

/** Explicit config over the traces-specific variables over the general ones over the defaults. */
export function resolveOtlpHttpConfig(config: OtlpHttpSpanExporterConfig = {}, env: NodeJS.ProcessEnv = process.env): ResolvedOtlpHttpConfig {
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries({ ...parseOtlpHeaders(env.OTEL_EXPORTER_OTLP_HEADERS), ...parseOtlpHeaders(env.OTEL_EXPORTER_OTLP_TRACES_HEADERS), ...config.headers })) {
    try {
      validateHeaderName(name);
      validateHeaderValue(name, value);
      headers[name.toLowerCase()] = value;
    } catch {
      diag.warn(`OTLP headers: ignoring invalid header "${name}"`);
    }
  }
  const timeoutMillis = config.timeoutMillis !== undefined && config.timeoutMillis > 0 ? config.timeoutMillis : (timeoutFromEnvironment(env) ?? DEFAULT_OTLP_TIMEOUT_MILLIS);
  return { url: config.url ?? tracesUrlFromEnvironment(env), headers, timeoutMillis };
}

const failed = (error: Error): ExportResult => ({ code: ExportResultCode.FAILED, error });

export class OtlpHttpSpanExporter implements SpanExporter {
  readonly config: ResolvedOtlpHttpConfig;
  private readonly url: URL;
  private readonly agent: HttpAgent;
  private readonly request: (url: URL, options: RequestOptions, onResponse: (res: IncomingMessage) => void) => ClientRequest;
  private readonly inFlight = new Set<Promise<void>>();
  private stopped = false;

  /** Throws when the URL is not an http(s) URL: a misconfigured audit trail should not start quietly. */
  constructor(config: OtlpHttpSpanExporterConfig = {}, env: NodeJS.ProcessEnv = process.env) {
    this.config = resolveOtlpHttpConfig(config, env);
    let url: URL;
    try {
      url = new URL(this.config.url);
    } catch {
      throw new Error(`OTLP traces endpoint "${this.config.url}" is not a URL`);
    }
    if (url.protocol === "http:") {
      this.agent = new HttpAgent({ keepAlive: true });
      this.request = httpRequest;
    } else if (url.protocol === "https:") {
      this.agent = new HttpsAgent({ keepAlive: true });
      this.request = httpsRequest;
    } else {
      throw new Error(`OTLP traces endpoint "${this.config.url}" is neither http nor https`);
    }
    this.url = url;
  }

  export(spans: ReadableSpan[], resultCallback: (result: ExportResult) => void): void {
    if (this.stopped) {
      resultCallback(failed(new Error("OTLP exporter is shut down")));
      return;
    }
    let body: Buffer;
    try {
      body = encodeExportTraceServiceRequest(spans);
    } catch (err) {
      resultCallback(failed(err instanceof Error ? err : new Error(String(err))));
      return;
    }
    let settle!: () => void;
    const tracked = new Promise<void>((ok) => (settle = ok));
    this.inFlight.add(tracked);
    this.post(body, Date.now() + this.config.timeoutMillis, true, (result) => {
      this.inFlight.delete(tracked);
      settle();
      resultCallback(result);
    });
  }

  /** POSTs `body`; calls `done` exactly once, by `deadline` at the latest. */
  private post(body: Buffer, deadline: number, mayRetry: boolean, done: (result: ExportResult) => void): void {
    let finished = false;
    let req: ClientRequest | undefined;
    const finish = (result: ExportResult): void => {
      if (finished) return;
      finished = true;
      clearTimeout(timer);
      done(result);
    };
    const timeoutMs = Math.max(0, deadline - Date.now());
    const timer = setTimeout(() => {
      const error = new Error(`OTLP export to ${this.url.href} timed out after ${this.config.timeoutMillis} ms`);
      req?.destroy(error);
      finish(failed(error));
    }, timeoutMs);
    timer.unref();
    try {
      req = this.request(
        this.url,
        {
          method: "POST",
          agent: this.agent,
          headers: { ...this.config.headers, "content-type": "application/x-protobuf", "content-length": body.length },
        },
        (res) => {
          const status = res.statusCode ?? 0;
          res.on("error", (err) => finish(failed(err)));
          res.on("end", () => {
            if (status >= 200 && status < 300) finish({ code: ExportResultCode.SUCCESS });
            else finish(failed(new Error(`OTLP collector at ${this.url.href} answered ${status}`)));
          });
          res.on("close", () => finish(failed(new Error(`OTLP collector at ${this.url.href} closed the response early`))));
          res.resume();
        },
      );
      const sent = req;
      sent.on("error", (err: NodeJS.ErrnoException) => {
        // A keep-alive socket the collector closed while idle: once more, on a new connection.
        if (mayRetry && !finished && sent.reusedSocket && err.code === "ECONNRESET" && Date.now() < deadline) {
          finished = true;
          clearTimeout(timer);
          this.post(body, deadline, false, done);
          return;
        }
        finish(failed(err));
      });
      sent.end(body);
    } catch (err) {
      finish(failed(err instanceof Error ? err : new Error(String(err))));
    }
  }

  /** Waits for exports under way (each ends by its own timeout), then closes the connections. */
  async shutdown(): Promise<void> {
    this.stopped = true;
    await this.forceFlush();
    this.agent.destroy();
  }

  /** Resolves when the exports under way have ended, at most one timeout from now. */
  async forceFlush(): Promise<void> {
    if (this.inFlight.size === 0) return;
    let timer: NodeJS.Timeout | undefined;
    const bound = new Promise<void>((ok) => {
      timer = setTimeout(ok, this.config.timeoutMillis);
      timer.unref();
    });
    await Promise.race([Promise.all([...this.inFlight]), bound]);
    clearTimeout(timer);
  }
}
