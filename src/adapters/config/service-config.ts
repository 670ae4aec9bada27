// The --config file (SPEC 7): what is not policy. YAML, unknown keys are
// errors, every problem reported as `file:line:column: field: problem`.

import { readFile } from "node:fs/promises";
import { LineCounter, parseDocument, type Pair } from "yaml";
import { DEFAULT_HEADER_NAMES, DEFAULT_TXN_TOKEN_HEADER, type HeaderNames } from "../../core/decision/check-input.js";
import { DEFAULT_MCP_METADATA_KEYS, type McpMetadataKeys } from "../../core/mcp/mcp-metadata.js";
import { isLogLevel, type LogLevel } from "../logging/logger.js";
import { parseRedisUrl } from "../tokens/redis-url.js";
import { child, mapFields, readBoolean, readDurationMs, readInteger, readNonEmptyString, SchemaContext } from "./yaml-schema.js";
import { HopwardenError } from "../../core/errors.js";

export interface ServiceConfig {
  /** Always carries `txnToken` (default "txn-token"). */
  readonly headers: HeaderNames & { readonly txnToken: string };
  readonly trustForwardedClientCert: boolean;
  readonly policy?: string;
  readonly listen?: string;
  readonly adminListen?: string;
  readonly workers?: string;
  readonly auditLog?: string;
  readonly auditKey?: string;
  readonly tlsCert?: string;
  readonly tlsKey?: string;
  readonly tlsClientCa?: string;
  readonly logLevel?: LogLevel;
  readonly hopCacheSize?: number;
  readonly hopCacheBytes?: number;
  readonly certificateCacheSize?: number;
  readonly certificateCacheBytes?: number;
  readonly audit?: AuditConfig;
  /** Where Envoy's MCP filter puts the method and tool (SPEC 8); defaults are Envoy 1.40's. */
  readonly mcp: McpMetadataKeys;
  readonly replay?: ReplayConfig;
}

/** The `replay:` section: where `tokens.singleUse` records first uses (SPEC 5). */
export interface ReplayConfig {
  /** redis:// or rediss:// URL of the shared store; absent: the process's own memory. */
  readonly store?: string;
  /** How long a Check waits for the shared store (or the --workers primary). */
  readonly timeoutMs?: number;
  /** Unexpired jti values the in-process memory holds before it refuses new tokens. */
  readonly capacity?: number;
}

/** The `audit:` section: tuning of the audit log writer (see docs/audit-log.md). */
export interface AuditConfig {
  readonly rotateBytes?: number;
  readonly checkpointEveryRecords?: number;
  readonly checkpointEveryMs?: number;
  readonly bufferRecords?: number;
  readonly bufferBytes?: number;
  readonly overflow?: "deny" | "block";
  readonly blockTimeoutMs?: number;
}

export const DEFAULT_SERVICE_CONFIG: ServiceConfig = {
  headers: { ...DEFAULT_HEADER_NAMES, txnToken: DEFAULT_TXN_TOKEN_HEADER },
  trustForwardedClientCert: false,
  mcp: DEFAULT_MCP_METADATA_KEYS,
};

const TOP_KEYS = ["headers", "identity", "policy", "listen", "adminListen", "workers", "auditLog", "auditKey", "tlsCert", "tlsKey", "tlsClientCa", "logLevel", "cache", "audit", "replay", "mcp"];
const HEADER_KEYS = ["subject", "onBehalfOf", "chain", "token", "txnToken"] as const;
const MCP_KEYS = ["namespace", "methodKey", "toolKey", "resourceKey"] as const;
/** Envoy filter names (reverse-DNS) and dotted struct paths: letters, digits, "_", "-", separated by single dots. */
const DOTTED_NAME = /^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$/;
const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9a-z-]+$/;

/** A --config file that cannot be read or is not valid; `errors` holds one `file:line:column: field: problem` line each. */
export class ServiceConfigError extends HopwardenError {
  readonly code = "invalid_service_config";
  constructor(readonly errors: readonly string[]) {
    super(`the config file is not usable:\n${errors.join("\n")}`);
  }
}

type Fields = Map<string, Pair<unknown, unknown>> | undefined;

/** Drops undefined values, so that an absent key stays absent (exactOptionalPropertyTypes-safe). */
function defined<T extends object>(value: T): { [K in keyof T]: Exclude<T[K], undefined> } {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as { [K in keyof T]: Exclude<T[K], undefined> };
}

function readHeaders(ctx: SchemaContext, top: Fields): ServiceConfig["headers"] {
  const headers: Record<(typeof HEADER_KEYS)[number], string> = { ...DEFAULT_SERVICE_CONFIG.headers };
  const h = child(top, "headers");
  if (!h.present) return headers;
  const fields = mapFields(ctx, h.node, "headers", HEADER_KEYS, h.key);
  for (const name of HEADER_KEYS) {
    const c = child(fields, name);
    if (!c.present) continue;
    const value = readNonEmptyString(ctx, c.node, `headers.${name}`, c.key);
    if (value === undefined) continue;
    // Envoy sends header names lower case; configured names match case-insensitively.
    const lower = value.toLowerCase();
    if (!HEADER_NAME.test(lower)) ctx.error(c.node, `headers.${name}`, `${JSON.stringify(value)} is not an HTTP header name`);
    else headers[name] = lower;
  }
  const names = Object.entries(headers);
  for (const [name, value] of names) {
    const other = names.find(([n, v]) => n < name && v === value);
    if (other !== undefined) ctx.error(child(fields, name).node ?? h.node, `headers.${name}`, `${JSON.stringify(value)} is also headers.${other[0]}; each header must have its own name`);
  }
  return headers;
}

/** The `mcp:` section: where Envoy's MCP filter writes the method, the tool and the resource URI. */
function readMcp(ctx: SchemaContext, top: Fields): McpMetadataKeys {
  const m = child(top, "mcp");
  if (!m.present) return DEFAULT_MCP_METADATA_KEYS;
  const fields = mapFields(ctx, m.node, "mcp", MCP_KEYS, m.key);
  const keys: Record<(typeof MCP_KEYS)[number], string> = { ...DEFAULT_MCP_METADATA_KEYS };
  for (const name of MCP_KEYS) {
    const c = child(fields, name);
    if (!c.present) continue;
    const value = readNonEmptyString(ctx, c.node, `mcp.${name}`, c.key);
    if (value === undefined) continue;
    if (!DOTTED_NAME.test(value)) ctx.error(c.node, `mcp.${name}`, `${JSON.stringify(value)} is not a ${name === "namespace" ? "metadata namespace" : "dotted key path"} (letters, digits, "_" and "-", separated by single dots)`);
    else keys[name] = value;
  }
  return keys;
}

function readTrustForwardedClientCert(ctx: SchemaContext, top: Fields): boolean {
  const id = child(top, "identity");
  if (!id.present) return false;
  const t = child(mapFields(ctx, id.node, "identity", ["trustForwardedClientCert"], id.key), "trustForwardedClientCert");
  return t.present ? (readBoolean(ctx, t.node, "identity.trustForwardedClientCert", t.key) ?? false) : false;
}

type CacheConfig = Pick<ServiceConfig, "hopCacheSize" | "hopCacheBytes" | "certificateCacheSize" | "certificateCacheBytes">;

function readCache(ctx: SchemaContext, top: Fields): CacheConfig {
  const cache = child(top, "cache");
  if (!cache.present) return {};
  const fields = mapFields(ctx, cache.node, "cache", ["hopDecisions", "hopDecisionBytes", "certificates", "certificateBytes"], cache.key);
  const int = (name: string, min: number, max: number) => {
    const c = child(fields, name);
    return c.present ? readInteger(ctx, c.node, `cache.${name}`, min, max, c.key) : undefined;
  };
  return defined({
    hopCacheSize: int("hopDecisions", 1, 10_000_000),
    hopCacheBytes: int("hopDecisionBytes", 64 * 1024, 16 * 1024 * 1024 * 1024),
    certificateCacheSize: int("certificates", 1, 1_000_000),
    certificateCacheBytes: int("certificateBytes", 64 * 1024, 16 * 1024 * 1024 * 1024),
  });
}

function readAudit(ctx: SchemaContext, top: Fields): AuditConfig | undefined {
  const au = child(top, "audit");
  if (!au.present) return undefined;
  const fields = mapFields(ctx, au.node, "audit", ["rotateBytes", "checkpointEvery", "bufferRecords", "bufferBytes", "overflow", "blockTimeout"], au.key);
  const int = (name: string, min: number, max: number) => {
    const c = child(fields, name);
    return c.present ? readInteger(ctx, c.node, `audit.${name}`, min, max, c.key) : undefined;
  };
  let checkpointEveryRecords: number | undefined;
  let checkpointEveryMs: number | undefined;
  const ce = child(fields, "checkpointEvery");
  if (ce.present) {
    const cf = mapFields(ctx, ce.node, "audit.checkpointEvery", ["records", "interval"], ce.key);
    const r = child(cf, "records");
    if (r.present) checkpointEveryRecords = readInteger(ctx, r.node, "audit.checkpointEvery.records", 1, 1_000_000, r.key);
    const i = child(cf, "interval");
    if (i.present) checkpointEveryMs = readDurationMs(ctx, i.node, "audit.checkpointEvery.interval", 3_600_000, i.key);
  }
  let overflow: "deny" | "block" | undefined;
  const ov = child(fields, "overflow");
  if (ov.present) {
    const v = readNonEmptyString(ctx, ov.node, "audit.overflow", ov.key);
    if (v === "deny" || v === "block") overflow = v;
    else if (v !== undefined) ctx.error(ov.node, "audit.overflow", `${JSON.stringify(v)} is not "deny" (refuse new Checks) or "block" (wait, bounded)`);
  }
  const bt = child(fields, "blockTimeout");
  return defined({
    rotateBytes: int("rotateBytes", 0, Number.MAX_SAFE_INTEGER),
    bufferRecords: int("bufferRecords", 1, 10_000_000),
    // At least room for one record of the largest bounded size.
    bufferBytes: int("bufferBytes", 65_536, Number.MAX_SAFE_INTEGER),
    checkpointEveryRecords,
    checkpointEveryMs,
    overflow,
    blockTimeoutMs: bt.present ? readDurationMs(ctx, bt.node, "audit.blockTimeout", 60_000, bt.key) : undefined,
  });
}

function readReplay(ctx: SchemaContext, top: Fields): ReplayConfig | undefined {
  const re = child(top, "replay");
  if (!re.present) return undefined;
  const fields = mapFields(ctx, re.node, "replay", ["store", "timeout", "capacity"], re.key);
  const st = child(fields, "store");
  let store: string | undefined;
  if (st.present) {
    store = readNonEmptyString(ctx, st.node, "replay.store", st.key);
    const parsed = store === undefined ? undefined : parseRedisUrl(store);
    if (parsed !== undefined && !parsed.ok) {
      ctx.error(st.node, "replay.store", parsed.problem);
      store = undefined;
    }
  }
  const to = child(fields, "timeout");
  const cap = child(fields, "capacity");
  return defined({
    store,
    timeoutMs: to.present ? readDurationMs(ctx, to.node, "replay.timeout", 10_000, to.key) : undefined,
    capacity: cap.present ? readInteger(ctx, cap.node, "replay.capacity", 1, 100_000_000, cap.key) : undefined,
  });
}

function readWorkers(ctx: SchemaContext, top: Fields): string | undefined {
  const w = child(top, "workers");
  if (!w.present) return undefined;
  const raw = (w.node as { value?: unknown } | null)?.value;
  if (raw === "auto" || (typeof raw === "number" && Number.isInteger(raw) && raw >= 1 && raw <= 256)) return String(raw);
  ctx.error(w.node ?? w.key, "workers", `must be a whole number from 1 to 256 or "auto", not ${JSON.stringify(raw ?? null)}`);
  return undefined;
}

function readLogLevel(ctx: SchemaContext, top: Fields): LogLevel | undefined {
  const c = child(top, "logLevel");
  if (!c.present) return undefined;
  const value = readNonEmptyString(ctx, c.node, "logLevel", c.key);
  if (value === undefined) return undefined;
  if (isLogLevel(value)) return value;
  ctx.error(c.node, "logLevel", `${JSON.stringify(value)} is not one of debug, info, warn, error`);
  return undefined;
}

export function parseServiceConfig(text: string, file: string): ServiceConfig {
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: false, uniqueKeys: true, strict: true });
  const ctx = new SchemaContext(lines);
  let config: ServiceConfig = DEFAULT_SERVICE_CONFIG;
  if (ctx.yamlProblems(doc) && doc.contents !== null) {
    const top = mapFields(ctx, doc.contents, "", TOP_KEYS);
    if (top !== undefined) {
      const str = (name: string) => {
        const c = child(top, name);
        return c.present ? readNonEmptyString(ctx, c.node, name, c.key) : undefined;
      };
      config = {
        headers: readHeaders(ctx, top),
        trustForwardedClientCert: readTrustForwardedClientCert(ctx, top),
        mcp: readMcp(ctx, top),
        ...readCache(ctx, top),
        ...defined({
          policy: str("policy"),
          listen: str("listen"),
          adminListen: str("adminListen"),
          workers: readWorkers(ctx, top),
          auditLog: str("auditLog"),
          auditKey: str("auditKey"),
          tlsCert: str("tlsCert"),
          tlsKey: str("tlsKey"),
          tlsClientCa: str("tlsClientCa"),
          logLevel: readLogLevel(ctx, top),
          audit: readAudit(ctx, top),
          replay: readReplay(ctx, top),
        }),
      };
    }
  }
  if (ctx.errors.length > 0) throw new ServiceConfigError(ctx.errors.map((e) => `${file}:${e.line}:${e.column}: ${e.field}: ${e.problem}`));
  return config;
}

export async function readServiceConfig(file: string): Promise<ServiceConfig> {
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch (err) {
    throw new ServiceConfigError([`${file}: cannot read the config file (${(err as NodeJS.ErrnoException).code ?? String(err)})`]);
  }
  return parseServiceConfig(text, file);
}
