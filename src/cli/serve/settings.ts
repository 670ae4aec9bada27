// Resolves `serve` settings: flags win over HOPWARDEN_* environment variables,
// which win over the --config file, which wins over defaults.

import { availableParallelism } from "node:os";
import type { ServiceConfig } from "../../adapters/config/service-config.js";
import { isLogLevel, type LogLevel } from "../../adapters/logging/logger.js";
import { splitHostPort } from "../../adapters/grpc/check-server.js";
import type { TlsFiles } from "../../adapters/grpc/tls-file-set.js";
import { parseRedisUrl, type RedisAddress } from "../../adapters/tokens/redis-url.js";
import { DEFAULT_REPLAY_CAPACITY } from "../../adapters/tokens/replay-memory.js";
import { DEFAULT_REPLAY_TIMEOUT_MS } from "../../adapters/tokens/replay-store.js";
import { resolveConfigAndPolicy } from "../config-and-policy.js";
import { fromEnv, UsageError } from "../options.js";

export interface ServeSettings {
  readonly policyFile: string;
  readonly listen: string;
  readonly adminListen: string | undefined;
  readonly workers: number;
  readonly auditLog: string | undefined;
  readonly auditKey: string | undefined;
  /** TLS on the Check port; undefined: plaintext. */
  readonly tls: TlsFiles | undefined;
  readonly logLevel: LogLevel;
  readonly replay: ReplaySettings;
  readonly config: ServiceConfig;
}

/** Where `tokens.singleUse` records first uses (SPEC 5). */
export interface ReplaySettings {
  /** The shared Redis-compatible store; undefined: the process's own memory (the primary's with --workers). */
  readonly store: RedisAddress | undefined;
  readonly timeoutMs: number;
  /** Capacity of the in-process memory. */
  readonly capacity: number;
}

export interface ServeFlags {
  readonly policy?: string | undefined;
  readonly config?: string | undefined;
  readonly listen?: string | undefined;
  readonly "admin-listen"?: string | undefined;
  readonly workers?: string | undefined;
  readonly "audit-log"?: string | undefined;
  readonly "audit-key"?: string | undefined;
  readonly "tls-cert"?: string | undefined;
  readonly "tls-key"?: string | undefined;
  readonly "tls-client-ca"?: string | undefined;
  readonly "log-level"?: string | undefined;
  readonly "replay-store"?: string | undefined;
}

export const DEFAULT_LISTEN = "0.0.0.0:9191";
/** Loopback: the admin API has no authentication, so only an explicit --admin-listen exposes it (SPEC 7). */
export const DEFAULT_ADMIN_LISTEN = "127.0.0.1:9192";

export function parseWorkers(value: string): number {
  if (value === "auto") return Math.max(1, availableParallelism());
  if (!/^\d+$/.test(value) || Number(value) < 1 || Number(value) > 256) throw new UsageError(`--workers ${JSON.stringify(value)} must be a whole number from 1 to 256, or "auto"`);
  return Number(value);
}

/** --tls-cert and --tls-key go together; --tls-client-ca adds client certificates to a TLS port, so it needs both. */
function resolveTlsFiles(cert: string | undefined, key: string | undefined, clientCa: string | undefined): TlsFiles | undefined {
  if (cert === undefined && key === undefined) {
    if (clientCa !== undefined) throw new UsageError("--tls-client-ca needs --tls-cert and --tls-key: client certificates are asked for in a TLS handshake, so the port must serve TLS");
    return undefined;
  }
  if (cert === undefined || key === undefined) {
    throw new UsageError(`--tls-cert and --tls-key go together (${cert === undefined ? "--tls-key" : "--tls-cert"} was given without ${cert === undefined ? "--tls-cert" : "--tls-key"})`);
  }
  return { cert, key, ...(clientCa !== undefined && { clientCa }) };
}

export async function resolveServeSettings(flags: ServeFlags): Promise<ServeSettings> {
  const pick = (flag: keyof ServeFlags, fromConfig: string | undefined) => flags[flag] ?? fromEnv(flag) ?? fromConfig;
  const { config, policyFile } = await resolveConfigAndPolicy(flags);
  const listen = pick("listen", config.listen) ?? DEFAULT_LISTEN;
  const adminRaw = pick("admin-listen", config.adminListen) ?? DEFAULT_ADMIN_LISTEN;
  for (const [flag, value] of [["--listen", listen], ["--admin-listen", adminRaw]] as const) {
    if (value === "off" && flag === "--admin-listen") continue;
    try {
      splitHostPort(value);
    } catch {
      throw new UsageError(`${flag} ${JSON.stringify(value)} must be host:port, e.g. 127.0.0.1:9191`);
    }
  }
  const logLevel = pick("log-level", config.logLevel) ?? "info";
  if (!isLogLevel(logLevel)) throw new UsageError(`--log-level ${JSON.stringify(logLevel)} must be debug, info, warn or error`);
  const auditLog = pick("audit-log", config.auditLog);
  const auditKey = pick("audit-key", config.auditKey);
  if ((auditLog === undefined) !== (auditKey === undefined)) throw new UsageError("--audit-log and --audit-key go together: the log is signed with the key");
  const tls = resolveTlsFiles(pick("tls-cert", config.tlsCert), pick("tls-key", config.tlsKey), pick("tls-client-ca", config.tlsClientCa));
  return {
    replay: resolveReplay(pick("replay-store", undefined), config),
    policyFile,
    listen,
    adminListen: adminRaw === "off" ? undefined : adminRaw,
    workers: parseWorkers(pick("workers", config.workers) ?? "1"),
    auditLog,
    auditKey,
    tls,
    logLevel,
    config,
  };
}

function resolveReplay(flagOrEnv: string | undefined, config: ServiceConfig): ReplaySettings {
  let store: RedisAddress | undefined;
  const url = flagOrEnv ?? config.replay?.store;
  if (url !== undefined) {
    const parsed = parseRedisUrl(url);
    // The --config value was checked when the file was read; a problem here is the flag's or HOPWARDEN_REPLAY_STORE's.
    if (!parsed.ok) throw new UsageError(`--replay-store (or HOPWARDEN_REPLAY_STORE) ${parsed.problem}`);
    store = parsed.address;
  }
  return { store, timeoutMs: config.replay?.timeoutMs ?? DEFAULT_REPLAY_TIMEOUT_MS, capacity: config.replay?.capacity ?? DEFAULT_REPLAY_CAPACITY };
}
