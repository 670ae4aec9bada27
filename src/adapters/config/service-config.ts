// The --config file (SPEC 7): what is not policy. YAML, unknown keys are
// errors, every problem reported as `file:line:column: field: problem`.

import { readFile } from "node:fs/promises";
import { LineCounter, parseDocument } from "yaml";
import { DEFAULT_HEADER_NAMES, type HeaderNames } from "../../core/decision/check-input.js";
import { isLogLevel, type LogLevel } from "../logging/logger.js";
import { parseDuration } from "./duration.js";
import { child, mapFields, readBoolean, readInteger, readNonEmptyString, SchemaContext } from "./yaml-schema.js";

export interface ServiceConfig {
  readonly headers: HeaderNames;
  readonly trustForwardedClientCert: boolean;
  readonly policy?: string;
  readonly listen?: string;
  readonly adminListen?: string;
  readonly workers?: string;
  readonly auditLog?: string;
  readonly auditKey?: string;
  readonly logLevel?: LogLevel;
  readonly hopCacheSize?: number;
  readonly certificateCacheSize?: number;
  readonly audit?: AuditConfig;
}

/** The `audit:` section: tuning of the audit log writer (see docs/audit-log.md). */
export interface AuditConfig {
  readonly rotateBytes?: number;
  readonly checkpointEveryRecords?: number;
  readonly checkpointEveryMs?: number;
  readonly bufferRecords?: number;
  readonly overflow?: "deny" | "block";
  readonly blockTimeoutMs?: number;
}

export const DEFAULT_SERVICE_CONFIG: ServiceConfig = { headers: DEFAULT_HEADER_NAMES, trustForwardedClientCert: false };

const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9a-z-]+$/;

export class ServiceConfigError extends Error {
  constructor(readonly errors: readonly string[]) {
    super(errors.join("\n"));
    this.name = "ServiceConfigError";
  }
}

export function parseServiceConfig(text: string, file: string): ServiceConfig {
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, uniqueKeys: true, strict: true });
  const ctx = new SchemaContext(lines);
  for (const err of doc.errors) ctx.errorAtOffset(err.pos[0], "(yaml)", err.message.split("\n")[0] ?? err.message);
  let config: ServiceConfig = DEFAULT_SERVICE_CONFIG;
  if (doc.errors.length === 0 && doc.contents !== null) {
    const top = mapFields(ctx, doc.contents, "", ["headers", "identity", "policy", "listen", "adminListen", "workers", "auditLog", "auditKey", "logLevel", "cache", "audit"]);
    if (top !== undefined) {
      const str = (name: string) => {
        const c = child(top, name);
        return c.present ? readNonEmptyString(ctx, c.node, name, c.key) : undefined;
      };
      const headers: Record<string, string> = { ...DEFAULT_HEADER_NAMES };
      const h = child(top, "headers");
      if (h.present) {
        const hf = mapFields(ctx, h.node, "headers", ["subject", "onBehalfOf", "chain", "token"], h.key);
        for (const name of ["subject", "onBehalfOf", "chain", "token"] as const) {
          const c = child(hf, name);
          if (!c.present) continue;
          const value = readNonEmptyString(ctx, c.node, `headers.${name}`, c.key);
          if (value === undefined) continue;
          const lower = value.toLowerCase();
          if (!HEADER_NAME.test(lower)) ctx.error(c.node, `headers.${name}`, `${JSON.stringify(value)} is not an HTTP header name`);
          else headers[name] = lower;
        }
      }
      let trustForwardedClientCert = false;
      const id = child(top, "identity");
      if (id.present) {
        const idf = mapFields(ctx, id.node, "identity", ["trustForwardedClientCert"], id.key);
        const t = child(idf, "trustForwardedClientCert");
        if (t.present) trustForwardedClientCert = readBoolean(ctx, t.node, "identity.trustForwardedClientCert", t.key) ?? false;
      }
      let hopCacheSize: number | undefined;
      let certificateCacheSize: number | undefined;
      const cache = child(top, "cache");
      if (cache.present) {
        const cf = mapFields(ctx, cache.node, "cache", ["hopDecisions", "certificates"], cache.key);
        const hc = child(cf, "hopDecisions");
        if (hc.present) hopCacheSize = readInteger(ctx, hc.node, "cache.hopDecisions", 1, 10_000_000, hc.key);
        const cc = child(cf, "certificates");
        if (cc.present) certificateCacheSize = readInteger(ctx, cc.node, "cache.certificates", 1, 1_000_000, cc.key);
      }
      let audit: AuditConfig | undefined;
      const au = child(top, "audit");
      if (au.present) {
        const af = mapFields(ctx, au.node, "audit", ["rotateBytes", "checkpointEvery", "bufferRecords", "overflow", "blockTimeout"], au.key);
        const int = (name: string, min: number, max: number) => {
          const c = child(af, name);
          return c.present ? readInteger(ctx, c.node, `audit.${name}`, min, max, c.key) : undefined;
        };
        const duration = (node: unknown, field: string, key: unknown): number | undefined => {
          const raw = (node as { value?: unknown } | null)?.value;
          const seconds = typeof raw === "string" || typeof raw === "number" ? parseDuration(raw) : undefined;
          if (seconds === undefined || seconds <= 0) {
            ctx.error(node ?? key, field, `must be a duration such as "1s" or "250ms", not ${JSON.stringify(raw ?? null)}`);
            return undefined;
          }
          return Math.round(seconds * 1000);
        };
        const rotateBytes = int("rotateBytes", 0, Number.MAX_SAFE_INTEGER);
        const bufferRecords = int("bufferRecords", 1, 10_000_000);
        let checkpointEveryRecords: number | undefined;
        let checkpointEveryMs: number | undefined;
        const ce = child(af, "checkpointEvery");
        if (ce.present) {
          const cf = mapFields(ctx, ce.node, "audit.checkpointEvery", ["records", "interval"], ce.key);
          const r = child(cf, "records");
          if (r.present) checkpointEveryRecords = readInteger(ctx, r.node, "audit.checkpointEvery.records", 1, 1_000_000, r.key);
          const i = child(cf, "interval");
          if (i.present) checkpointEveryMs = duration(i.node, "audit.checkpointEvery.interval", i.key);
        }
        let overflow: "deny" | "block" | undefined;
        const ov = child(af, "overflow");
        if (ov.present) {
          const v = readNonEmptyString(ctx, ov.node, "audit.overflow", ov.key);
          if (v === "deny" || v === "block") overflow = v;
          else if (v !== undefined) ctx.error(ov.node, "audit.overflow", `${JSON.stringify(v)} is not "deny" (refuse new Checks) or "block" (wait, bounded)`);
        }
        const bt = child(af, "blockTimeout");
        const blockTimeoutMs = bt.present ? duration(bt.node, "audit.blockTimeout", bt.key) : undefined;
        audit = {
          ...(rotateBytes !== undefined && { rotateBytes }),
          ...(bufferRecords !== undefined && { bufferRecords }),
          ...(checkpointEveryRecords !== undefined && { checkpointEveryRecords }),
          ...(checkpointEveryMs !== undefined && { checkpointEveryMs }),
          ...(overflow !== undefined && { overflow }),
          ...(blockTimeoutMs !== undefined && { blockTimeoutMs }),
        };
      }
      const logLevel = str("logLevel");
      if (logLevel !== undefined && !isLogLevel(logLevel)) ctx.error(child(top, "logLevel").node, "logLevel", `${JSON.stringify(logLevel)} is not one of debug, info, warn, error`);
      const workersNode = child(top, "workers");
      let workers: string | undefined;
      if (workersNode.present) {
        const raw = (workersNode.node as { value?: unknown } | null)?.value;
        if (raw === "auto" || (typeof raw === "number" && Number.isInteger(raw) && raw >= 1 && raw <= 256)) workers = String(raw);
        else ctx.error(workersNode.node, "workers", `must be a whole number from 1 to 256 or "auto", not ${JSON.stringify(raw ?? null)}`);
      }
      const opt = <K extends string>(k: K, v: string | number | undefined) => (v === undefined ? {} : { [k]: v });
      config = {
        headers: headers as unknown as HeaderNames,
        trustForwardedClientCert,
        ...opt("policy", str("policy")),
        ...opt("listen", str("listen")),
        ...opt("adminListen", str("adminListen")),
        ...opt("workers", workers),
        ...opt("auditLog", str("auditLog")),
        ...opt("auditKey", str("auditKey")),
        ...(logLevel !== undefined && isLogLevel(logLevel) && { logLevel }),
        ...opt("hopCacheSize", hopCacheSize),
        ...opt("certificateCacheSize", certificateCacheSize),
        ...(audit !== undefined && { audit }),
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
