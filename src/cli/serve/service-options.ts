// The one mapping from serve's settings (flags, HOPWARDEN_* and --config) to
// the service's options (startHopwarden). A single-process serve and every
// --workers worker build theirs here, so a setting reaches both or neither:
// the two paths differ only in what the process's role says.

import type { AuditLogSink } from "../../adapters/audit/audit-log-sink.js";
import type { Logger } from "../../adapters/logging/logger.js";
import type { ReplayStore } from "../../adapters/tokens/replay-store.js";
import type { HopwardenOptions } from "../../main.js";
import type { ServeSettings } from "./settings.js";

/** What the process brings that is not a setting: its logger, its single-use store and its audit sink. */
export interface ServeProcessParts {
  /**
   * "single": this process also serves the admin API and watches the policy.
   * "worker": the --workers primary does both (it merges the workers'
   * /metrics and tells them to reload).
   */
  readonly role: "single" | "worker";
  readonly logger: Logger;
  readonly replayStore: ReplayStore;
  /** The audit log this process writes (the main log, or a worker's own chain); undefined: none. */
  readonly audit: AuditLogSink | undefined;
}

type CheckReading = Required<Pick<HopwardenOptions, "headerNames" | "mcpKeys" | "trustForwardedClientCert">>;

/** How a Check is read (header names, MCP metadata keys, forwarded certificates): the same for serving and for the primary's Explain. */
export function checkReadingOptions(settings: ServeSettings): CheckReading {
  return {
    headerNames: settings.config.headers,
    mcpKeys: settings.config.mcp,
    trustForwardedClientCert: settings.config.trustForwardedClientCert,
  };
}

type CacheBounds = Pick<HopwardenOptions, "hopCacheSize" | "hopCacheBytes" | "certificateCacheSize" | "certificateCacheBytes">;

/** The `cache:` section; an absent bound keeps the cache's default. */
function cacheBounds(settings: ServeSettings): CacheBounds {
  const { config } = settings;
  return {
    ...(config.hopCacheSize !== undefined && { hopCacheSize: config.hopCacheSize }),
    ...(config.hopCacheBytes !== undefined && { hopCacheBytes: config.hopCacheBytes }),
    ...(config.certificateCacheSize !== undefined && { certificateCacheSize: config.certificateCacheSize }),
    ...(config.certificateCacheBytes !== undefined && { certificateCacheBytes: config.certificateCacheBytes }),
  };
}

export function serviceOptions(settings: ServeSettings, parts: ServeProcessParts): HopwardenOptions {
  const single = parts.role === "single";
  const { audit } = parts;
  return {
    policyFile: settings.policyFile,
    listen: settings.listen,
    adminListen: single ? settings.adminListen : undefined,
    watchPolicy: single,
    logger: parts.logger,
    ...checkReadingOptions(settings),
    ...cacheBounds(settings),
    // Each worker serves TLS itself, and watches the files itself.
    tls: settings.tls,
    replayStore: parts.replayStore,
    ...(audit !== undefined && { sinks: [audit], admit: () => audit.admit(), auditStats: () => audit.stats() }),
  };
}
