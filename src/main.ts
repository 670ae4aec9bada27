// The one place where hopwarden is wired: policy store, caches, the decision
// pipeline, tracing, metrics, decision sinks, the gRPC server and the admin
// server. Everything else is either pure core or a single adapter.

import type { SpanProcessor, SpanExporter } from "@opentelemetry/sdk-trace-base";
import { CheckPipeline } from "./core/decision/check-pipeline.js";
import { createExplainPipeline, tokenVerifierFor } from "./adapters/admin/explain-pipeline.js";
import type { HeaderNames } from "./core/decision/check-input.js";
import type { Clock, DecisionSink, DelegationTokenVerifier } from "./core/ports.js";
import { PolicyStore, type PolicyStoreEvents } from "./adapters/config/policy-store.js";
import { CachingCertificateParser } from "./adapters/x509/certificate-parser.js";
import { LruHopDecisionCache } from "./adapters/cache/hop-decision-cache.js";
import { UlidGenerator } from "./adapters/ids/ulid.js";
import { authorizationImplementation } from "./adapters/grpc/authorization-service.js";
import { startCheckServer, type RunningCheckServer } from "./adapters/grpc/check-server.js";
import { startAdminServer, type RunningAdminServer } from "./adapters/admin/admin-server.js";
import { CheckSpanRecorder } from "./adapters/telemetry/check-span.js";
import { createDecisionTracing, exporterFromEnvironment, type DecisionTracing } from "./adapters/telemetry/decision-tracer-provider.js";
import { HopwardenMetrics } from "./adapters/telemetry/metrics.js";
import type { Logger } from "./adapters/logging/logger.js";
import type { AuditLogStats } from "./adapters/audit/audit-record-target.js";
import { ReplayMemory } from "./adapters/tokens/replay-memory.js";
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
   * Decision spans: `exporter` defaults to the OTLP exporter the OTEL_*
   * variables describe; `processor` adds one (tests use an in-memory one);
   * false turns decision spans off.
   */
  readonly tracing?: { readonly exporter?: SpanExporter | undefined; readonly processor?: SpanProcessor } | false;
  readonly sinks?: readonly DecisionSink[];
  readonly tokens?: DelegationTokenVerifier;
  readonly clock?: Clock;
  /** Watch the policy file and reload on change (default true). */
  readonly watchPolicy?: boolean;
  readonly hopCacheSize?: number;
  readonly certificateCacheSize?: number;
  /** Asked before each Check; false denies it with internal_error (see AuthorizationServiceDeps.admit). */
  readonly admit?: () => boolean | Promise<boolean>;
  /** Extra metric sources (the audit log's counters). */
  readonly auditStats?: () => AuditLogStats;
  /** Where `tokens.singleUse` records first uses (SPEC 5); default a ReplayMemory of this process. Closed by shutdown(). */
  readonly replayStore?: ReplayStore;
}

export interface Hopwarden {
  readonly grpcAddress: string;
  readonly grpcPort: number;
  readonly adminAddress: string | undefined;
  readonly policies: PolicyStore;
  readonly pipeline: CheckPipeline;
  readonly metrics: HopwardenMetrics;
  readonly check: RunningCheckServer;
  reload(trigger?: string): ReturnType<PolicyStore["reload"]>;
  /** Graceful: NOT_SERVING, drain in-flight Checks, flush spans, close admin. */
  shutdown(deadlineMs?: number): Promise<void>;
}

const systemClock: Clock = { nowMs: () => Date.now() };

const SPAN_FLUSH_DEADLINE_MS = 3000;

/** Resolves true when `work` settles in time, false when the deadline passes first. */
function withDeadline(work: Promise<unknown>, ms: number): Promise<boolean> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => resolve(false), ms);
    timer.unref();
    work.then(
      () => {
        clearTimeout(timer);
        resolve(true);
      },
      (err: unknown) => {
        clearTimeout(timer);
        reject(err instanceof Error ? err : new Error(String(err)));
      },
    );
  });
}

export async function startHopwarden(options: HopwardenOptions): Promise<Hopwarden> {
  const { logger } = options;
  const policyEvents: PolicyStoreEvents = {};
  const policies = new PolicyStore(options.policyFile, logger, policyEvents);
  const warnings = await policies.loadInitial();
  for (const warning of warnings) logger.warn("policy warning", { warning });

  const certificates = new CachingCertificateParser(options.certificateCacheSize);
  const hopCache = new LruHopDecisionCache(options.hopCacheSize);
  const clock = options.clock ?? systemClock;
  const jwksRefreshes = { ok: 0, failed: 0 };
  const replay = options.replayStore ?? new ReplayMemory();
  // One verifier per process: its key sources and verified-token cache outlive policy reloads.
  const pipeline = new CheckPipeline({
    policies,
    certificates,
    clock,
    ids: new UlidGenerator(),
    hopCache,
    tokens: options.tokens ?? tokenVerifierFor(options.policyFile, logger, jwksRefreshes, replay),
    ...(options.headerNames !== undefined && { headerNames: options.headerNames }),
    trustForwardedClientCert: options.trustForwardedClientCert ?? false,
  });
  const explainPipeline = createExplainPipeline(policies, {
    clock,
    ...(options.headerNames !== undefined && { headerNames: options.headerNames }),
    trustForwardedClientCert: options.trustForwardedClientCert ?? false,
    ...(options.tokens !== undefined && { tokens: options.tokens }),
    logger,
  });

  let tracing: DecisionTracing | undefined;
  if (options.tracing !== false) {
    const config = options.tracing ?? {};
    const exporter = "exporter" in config ? config.exporter : exporterFromEnvironment();
    // No exporter and no processor: spans would go nowhere, so none are made.
    if (exporter !== undefined || config.processor !== undefined) {
      tracing = createDecisionTracing({
        serviceName: process.env.OTEL_SERVICE_NAME ?? "hopwarden",
        exporter,
        ...(config.processor !== undefined && { processor: config.processor }),
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

  const check = await startCheckServer({
    listen: options.listen,
    headersRead: pipeline.headersRead,
    authorization: authorizationImplementation({
      pipeline,
      logger,
      sinks: [metrics, ...(options.sinks ?? [])],
      ...(tracing !== undefined && { spans: new CheckSpanRecorder(tracing.tracer) }),
      ...(options.admit !== undefined && { admit: options.admit }),
    }),
  });

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

  let stopping: Promise<void> | undefined;
  return {
    grpcAddress: check.address,
    grpcPort: check.port,
    adminAddress: admin?.address,
    policies,
    pipeline,
    metrics,
    check,
    reload,
    shutdown(deadlineMs = 10_000) {
      stopping ??= (async () => {
        policies.close();
        await check.shutdown(deadlineMs);
        await replay.close();
        await admin?.close();
        // A collector that is down must not hold the exit for the exporter's full time-out.
        if (tracing !== undefined) {
          const flushed = await withDeadline(tracing.shutdown(), SPAN_FLUSH_DEADLINE_MS).catch((err: unknown) => {
            logger.warn("flushing decision spans failed", { error: err });
            return true;
          });
          if (!flushed) logger.warn("decision spans not flushed before the deadline; the collector may be unreachable", { deadline_ms: SPAN_FLUSH_DEADLINE_MS });
        }
        await metrics.shutdown().catch(() => undefined);
      })();
      return stopping;
    },
  };
}
