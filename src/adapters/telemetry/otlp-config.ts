// Where decision spans go, from the standard OpenTelemetry variables: the
// exporter (OTEL_TRACES_EXPORTER, OTEL_SDK_DISABLED), the protocol
// (http/protobuf by default, or grpc), endpoint, headers, time-out,
// compression and TLS files, traces-specific variables over general ones,
// explicit settings over both.

import { diag } from "@opentelemetry/api";
import { validateHeaderName, validateHeaderValue } from "node:http";
import { HopwardenError } from "../../core/errors.js";

export type OtlpProtocol = "http/protobuf" | "grpc";

export interface OtlpExportConfig {
  readonly protocol: OtlpProtocol;
  /** http/protobuf: the full traces URL (…/v1/traces); grpc: scheme, host and port. */
  readonly url: string;
  readonly headers: Readonly<Record<string, string>>;
  /** Per export, connection included. */
  readonly timeoutMillis: number;
  readonly compression: "gzip" | "none";
  /** grpc over an https endpoint without TLS (OTEL_EXPORTER_OTLP_INSECURE). */
  readonly insecure?: boolean;
  /** PEM files: the CA that signs the collector's certificate, and a client certificate and key. */
  readonly certificate?: string;
  readonly clientCertificate?: string;
  readonly clientKey?: string;
}

export const DEFAULT_OTLP_HTTP_URL = "http://localhost:4318/v1/traces";
export const DEFAULT_OTLP_GRPC_URL = "http://localhost:4317";
export const DEFAULT_OTLP_TIMEOUT_MILLIS = 10_000;

const nonEmpty = (value: string | undefined): string | undefined => {
  const trimmed = value?.trim();
  return trimmed === undefined || trimmed === "" ? undefined : trimmed;
};

/** The traces-specific variable, else the general one. */
function pick(env: NodeJS.ProcessEnv, name: string): string | undefined {
  return nonEmpty(env[`OTEL_EXPORTER_OTLP_TRACES_${name}`]) ?? nonEmpty(env[`OTEL_EXPORTER_OTLP_${name}`]);
}

/** http/protobuf: the traces endpoint as is, else the general endpoint + /v1/traces, else localhost:4318. */
export function tracesUrlFromEnvironment(env: NodeJS.ProcessEnv, protocol: OtlpProtocol = "http/protobuf"): string {
  const traces = nonEmpty(env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT);
  if (traces !== undefined) return traces;
  const base = nonEmpty(env.OTEL_EXPORTER_OTLP_ENDPOINT);
  if (protocol === "grpc") return base ?? DEFAULT_OTLP_GRPC_URL;
  if (base !== undefined) return base.endsWith("/") ? `${base}v1/traces` : `${base}/v1/traces`;
  return DEFAULT_OTLP_HTTP_URL;
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

export class OtlpConfigError extends HopwardenError {
  readonly code = "invalid_otlp_config";
}

export interface OtlpExportOverrides {
  readonly protocol?: OtlpProtocol;
  readonly url?: string;
  readonly headers?: Readonly<Record<string, string>>;
  readonly timeoutMillis?: number;
}

/**
 * The export configuration the environment asks for, or undefined when
 * traces are switched off (OTEL_TRACES_EXPORTER=none, OTEL_SDK_DISABLED=true).
 * Throws OtlpConfigError for an endpoint that is not an http(s) URL or an
 * unknown protocol: a misconfigured audit trail should not start quietly.
 */
export function otlpExportFromEnvironment(env: NodeJS.ProcessEnv = process.env, overrides: OtlpExportOverrides = {}): OtlpExportConfig | undefined {
  if (overrides.url === undefined) {
    if (env.OTEL_SDK_DISABLED === "true") return undefined;
    const kinds = (env.OTEL_TRACES_EXPORTER ?? "otlp").split(",").map((s) => s.trim());
    if (kinds.includes("none") || !kinds.includes("otlp")) return undefined;
  }
  const protocolText = overrides.protocol ?? nonEmpty(env.OTEL_EXPORTER_OTLP_TRACES_PROTOCOL) ?? nonEmpty(env.OTEL_EXPORTER_OTLP_PROTOCOL) ?? "http/protobuf";
  if (protocolText !== "http/protobuf" && protocolText !== "grpc") {
    throw new OtlpConfigError(`OTEL_EXPORTER_OTLP_PROTOCOL "${protocolText}" is not supported (use http/protobuf or grpc)`);
  }
  const protocol: OtlpProtocol = protocolText;
  const url = overrides.url ?? tracesUrlFromEnvironment(env, protocol);
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new OtlpConfigError(`OTLP traces endpoint "${url}" is not a URL`);
  }
  if (parsed.protocol !== "http:" && parsed.protocol !== "https:") throw new OtlpConfigError(`OTLP traces endpoint "${url}" is neither http nor https`);

  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries({ ...parseOtlpHeaders(env.OTEL_EXPORTER_OTLP_HEADERS), ...parseOtlpHeaders(env.OTEL_EXPORTER_OTLP_TRACES_HEADERS), ...overrides.headers })) {
    try {
      validateHeaderName(name);
      validateHeaderValue(name, value);
      headers[name.toLowerCase()] = value;
    } catch {
      diag.warn(`OTLP headers: ignoring invalid header "${name}"`);
    }
  }
  const timeoutMillis = overrides.timeoutMillis !== undefined && overrides.timeoutMillis > 0 ? overrides.timeoutMillis : (timeoutFromEnvironment(env) ?? DEFAULT_OTLP_TIMEOUT_MILLIS);
  const compression = pick(env, "COMPRESSION") === "gzip" ? "gzip" : "none";
  const insecure = pick(env, "INSECURE")?.toLowerCase() === "true";
  const certificate = pick(env, "CERTIFICATE");
  const clientCertificate = pick(env, "CLIENT_CERTIFICATE");
  const clientKey = pick(env, "CLIENT_KEY");
  return {
    protocol,
    url,
    headers,
    timeoutMillis,
    compression,
    ...(insecure && { insecure }),
    ...(certificate !== undefined && { certificate }),
    ...(clientCertificate !== undefined && { clientCertificate }),
    ...(clientKey !== undefined && { clientKey }),
  };
}
