// The --config file (SPEC 7): what is not policy. YAML, unknown keys are
// errors, every problem reported as `file:line:column: field: problem`.

import { readFile } from "node:fs/promises";
import { LineCounter, parseDocument } from "yaml";
import { DEFAULT_HEADER_NAMES, type HeaderNames } from "../../core/decision/check-input.js";
import { isLogLevel, type LogLevel } from "../logging/logger.js";
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
    const top = mapFields(ctx, doc.contents, "", ["headers", "identity", "policy", "listen", "adminListen", "workers", "auditLog", "auditKey", "logLevel", "cache"]);
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
