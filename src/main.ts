// The one place where hopwarden is wired: policy store, caches, the decision
// pipeline, tracing, metrics, decision sinks, the gRPC server and the admin
// server. Everything else is either pure core or a single adapter.

import { CheckPipeline } from "./core/decision/check-pipeline.js";
import { createExplainPipeline } from "./adapters/admin/explain-pipeline.js";
import { tokenVerifiersFor } from "./adapters/tokens/token-verifiers.js";
import type { HeaderNames } from "./core/decision/check-input.js";
import type { TxnTokenVerifier } from "./core/decision/txn-token-check.js";
import type { McpMetadataKeys } from "./core/mcp/mcp-metadata.js";
import type { Clock, DecisionSink, DelegationTokenVerifier } from "./core/ports.js";
import { PolicyStore, type PolicyStoreEvents } from "./adapters/config/policy-store.js";
import { CachingCertificateParser } from "./adapters/x509/certificate-parser.js";
import { LruHopDecisionCache } from "./adapters/cache/hop-decision-cache.js";
import { UlidGenerator } from "./adapters/ids/ulid.js";
import { authorizationImplementation } from "./adapters/grpc/authorization-service.js";
import { startCheckServer, type RunningCheckServer } from "./adapters/grpc/check-server.js";
import { CheckPortTls } from "./adapters/grpc/check-port-tls.js";
import type { TlsFiles } from "./adapters/grpc/tls-file-set.js";
import { startAdminServer, type RunningAdminServer } from "./adapters/admin/admin-server.js";
import { DecisionTracing } from "./adapters/telemetry/decision-tracing.js";
import type { DecisionSpan } from "./adapters/telemetry/decision-span.js";
import { otlpExportFromEnvironment, type OtlpExportConfig } from "./adapters/telemetry/otlp-config.js";
import type { OtlpTransport } from "./adapters/telemetry/otlp-transport.js";
import { boundText } from "./adapters/text/bounded-text.js";
import { HopwardenMetrics } from "./adapters/telemetry/metrics.js";
import type { Logger } from "./adapters/logging/logger.js";
import type { AuditLogStats } from "./adapters/audit/audit-record-target.js";
import { ReplayMemory } from "./adapters/tokens/replay-memory.js";
import { systemClock } from "./adapters/clock/system-clock.js";
import type { ReplayStore } from "./adapters/tokens/replay-store.js";

export interface HopwardenOptions {
  readonly policyFile: string;
  /** host:port for Check, health and reflection. */
  readonly listen: string;
  /** host:port for the admin API and /metrics; undefined: no admin server. */
  readonly adminListen?: string | undefined;
  readonly logger: Logger;
  readonly headerNames?: HeaderNames;
  readonly trustForwardedClientCert?: boolean;
  /**
   * Decision spans: `export` defaults to what the OTEL_* variables describe
   * (undefined: export nowhere); `transport` replaces the exporter's
   * transport and `observer` sees every span record (tests); false turns
   * decision spans off.
   */
  readonly tracing?: DecisionTracingSettings | false;
  readonly sinks?: readonly DecisionSink[];
  readonly tokens?: DelegationTokenVerifier;
  /** Verifies Transaction Tokens (SPEC 8); default: JWKS from the policy's txnTokens, sharing key sources with delegation tokens. */
  readonly txnTokens?: TxnTokenVerifier;
  /** Where Envoy's MCP filter writes the method and tool (`--config` `mcp:`); default Envoy 1.40's. */
  readonly mcpKeys?: McpMetadataKeys;
  readonly clock?: Clock;
  /** Watch the policy file and reload on change (default true). */
  readonly watchPolicy?: boolean;
  readonly hopCacheSize?: number;
  readonly hopCacheBytes?: number;
  readonly certificateCacheSize?: number;
  readonly certificateCacheBytes?: number;
  /** Asked before each Check; false denies it with internal_error (see AuthorizationServiceDeps.admit). */
  readonly admit?: () => boolean | Promise<boolean>;
  /** Extra metric sources (the audit log's counters). */
  readonly auditStats?: () => AuditLogStats;
  /** TLS (and with a client CA, mTLS) on the Check port; the files are watched and rotations taken up. */
  readonly tls?: TlsFiles | undefined;
  /** Where `tokens.singleUse` records first uses (SPEC 5); default a ReplayMemory of this process. Closed by shutdown(). */
  readonly replayStore?: ReplayStore;
}

export interface DecisionTracingSettings {
  readonly export?: OtlpExportConfig | undefined;
  readonly transport?: OtlpTransport;
  readonly observer?: (span: DecisionSpan) => void;
  /** Bytes of encoded spans held for the collector at most (default 16 MiB). */
  readonly maxQueueBytes?: number;
}

export interface Hopwarden {
  readonly grpcAddress: string;
  readonly grpcPort: number;
  readonly adminAddress: string | undefined;
  readonly policies: PolicyStore;
  readonly pipeline: CheckPipeline;
  readonly metrics: HopwardenMetrics;
  readonly check: RunningCheckServer;
  /** The Check port's TLS, when configured. */
  readonly tls: CheckPortTls | undefined;
  reload(trigger?: string): ReturnType<PolicyStore["reload"]>;
  /** Sends the decision spans queued so far to the collector (tests; shutdown does it too). */
  flushSpans(): Promise<void>;
  /** Graceful: NOT_SERVING, drain in-flight Checks, flush spans, close admin. */
  shutdown(deadlineMs?: number): Promise<void>;
}

const SPAN_FLUSH_DEADLINE_MS = 3000;

export async function startHopwarden(options: HopwardenOptions): Promise<Hopwarden> {
  const { logger } = options;
  const policyEvents: PolicyStoreEvents = {};
  const policies = new PolicyStore(options.policyFile, logger, policyEvents);
  const warnings = await policies.loadInitial();
  for (const warning of warnings) logger.warn("policy warning", { warning });

  const certificates = new CachingCertificateParser(options.certificateCacheSize, options.certificateCacheBytes);
  const hopCache = new LruHopDecisionCache(options.hopCacheSize, options.hopCacheBytes);
  const clock = options.clock ?? systemClock;
  const jwksRefreshes = { ok: 0, failed: 0 };
  const replay = options.replayStore ?? new ReplayMemory();
  // One pair of verifiers per process: their key sources and verified-token caches outlive policy reloads.
  const verifiers = options.tokens === undefined || options.txnTokens === undefined ? tokenVerifiersFor(options.policyFile, logger, jwksRefreshes, replay) : undefined;
  const pipeline = new CheckPipeline({
    policies,
    certificates,
    clock,
    ids: new UlidGenerator(),
    hopCache,
    tokens: options.tokens ?? verifiers!.tokens,
    txnTokens: options.txnTokens ?? verifiers!.txnTokens,
    ...(options.headerNames !== undefined && { headerNames: options.headerNames }),
    ...(options.mcpKeys !== undefined && { mcpKeys: options.mcpKeys }),
    trustForwardedClientCert: options.trustForwardedClientCert ?? false,
  });
  const explainPipeline = createExplainPipeline(policies, {
    clock,
    ...(options.headerNames !== undefined && { headerNames: options.headerNames }),
    ...(options.mcpKeys !== undefined && { mcpKeys: options.mcpKeys }),
    trustForwardedClientCert: options.trustForwardedClientCert ?? false,
    ...(options.tokens !== undefined && { tokens: options.tokens }),
    ...(options.txnTokens !== undefined && { txnTokens: options.txnTokens }),
    logger,
  });

  let tracing: DecisionTracing | undefined;
  if (options.tracing !== false) {
    const settings = options.tracing ?? {};
    const exportTo = "export" in settings ? settings.export : otlpExportFromEnvironment();
    // No exporter and no observer: spans would go nowhere, so none are made.
    if (exportTo !== undefined || settings.transport !== undefined || settings.observer !== undefined) {
      tracing = new DecisionTracing({
        serviceName: process.env.OTEL_SERVICE_NAME ?? "hopwarden",
        export: exportTo,
        bound: boundText,
        logger,
        ...(settings.transport !== undefined && { transport: settings.transport }),
        ...(settings.observer !== undefined && { observer: settings.observer }),
        ...(settings.maxQueueBytes !== undefined && { maxQueueBytes: settings.maxQueueBytes }),
      });
    }
  }
  const metrics = new HopwardenMetrics({
    hopCache,
    certificateCache: certificates,
    policyVersion: () => policies.current()?.version,
    ...(tracing !== undefined && { spans: tracing.stats }),
    ...(options.auditStats !== undefined && { audit: options.auditStats }),
    jwksRefreshes,
    replay: () => replay.stats(),
  });

  policyEvents.onReload = (outcome) => metrics.recordReload(outcome.ok);

  // Unusable TLS files at start are a start-up error (TlsFileError names the file).
  const tls = options.tls === undefined ? undefined : await CheckPortTls.open(options.tls, logger);
  const check = await startCheckServer({
    listen: options.listen,
    ...(tls !== undefined && { credentials: tls.credentials }),
    headersRead: pipeline.headersRead,
    mcpNamespace: pipeline.mcpKeys.namespace,
    authorization: authorizationImplementation({
      pipeline,
      logger,
      sinks: [metrics, ...(options.sinks ?? [])],
      ...(tracing !== undefined && { tracing }),
      ...(options.admit !== undefined && { admit: options.admit }),
    }),
  });

  if (check.directChecks() === undefined) {
    // Same answers, more CPU a call: worth knowing before a load test finds it (src/adapters/grpc/direct-unary.ts).
    logger.warn("every Check goes through grpc-js's general path: this grpc-js cannot be hooked to answer Check from the HTTP/2 stream", { event: "check_direct_route_off" });
  }
  const reload = (trigger = "admin") => policies.reload(trigger);
  let admin: RunningAdminServer | undefined;
  if (options.adminListen !== undefined) {
    try {
      admin = await startAdminServer({ listen: options.adminListen, explainPipeline, policies, reload: () => reload("admin"), metrics: metrics.handler() });
    } catch (err) {
      await check.shutdown(0);
      throw err;
    }
  }
  if (options.watchPolicy !== false) policies.watch();
  tls?.watch();

  let stopping: Promise<void> | undefined;
  return {
    grpcAddress: check.address,
    grpcPort: check.port,
    adminAddress: admin?.address,
    policies,
    pipeline,
    metrics,
    check,
    tls,
    reload,
    flushSpans: () => tracing?.flush() ?? Promise.resolve(),
    shutdown(deadlineMs = 10_000) {
      stopping ??= (async () => {
        policies.close();
        tls?.close();
        await check.shutdown(deadlineMs);
        await replay.close();
        await admin?.close();
        // A collector that is down must not hold the exit for the exporter's full time-out.
        if (tracing !== undefined) {
          const flushed = await tracing.shutdown(SPAN_FLUSH_DEADLINE_MS);
          if (!flushed) logger.warn("decision spans could not all be sent at shutdown (the collector is unreachable or slow); what was left is lost", { deadline_ms: SPAN_FLUSH_DEADLINE_MS, queued_spans: tracing.stats.queuedSpans });
        }
        await metrics.shutdown().catch(() => undefined);
      })();
      return stopping;
    },
  };
}
