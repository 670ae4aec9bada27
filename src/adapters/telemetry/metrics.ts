// Prometheus metrics on the admin port, through OpenTelemetry's metrics SDK:
// decisions by outcome and reason, Check latency, cache hit/miss counts,
// policy version and reloads, span export health. The decision counters are a
// DecisionSink; gauges are read from their sources when scraped.

import type { IncomingMessage, ServerResponse } from "node:http";
import { PrometheusExporter, PrometheusSerializer } from "@opentelemetry/exporter-prometheus";
import { MeterProvider } from "@opentelemetry/sdk-metrics";
import { resourceFromAttributes } from "@opentelemetry/resources";
import type { Counter, Meter } from "@opentelemetry/api";
import { ALLOW_REASON, CALLER_BINDINGS, type Decision } from "../../core/decision/decision.js";
import { DENIAL_REASONS } from "../../core/reasons.js";
import type { DecisionContext, DecisionSink } from "../../core/ports.js";
import type { AuditLogStats } from "../audit/audit-record-target.js";
import type { ReplayStoreStats } from "../tokens/replay-store.js";
import { LatencyHistogram } from "./latency-histogram.js";

export interface ObservedSources {
  readonly hopCache?: { hits: number; misses: number; size: number; bytes: number };
  readonly certificateCache?: { hits: number; misses: number; size: number; bytes: number };
  readonly policyVersion?: () => string | undefined;
  readonly spans?: { exportedSpans: number; lostSpans: number; failedExports: number; queuedSpans: number; queuedBytes: number };
  readonly audit?: () => AuditLogStats;
  readonly jwksRefreshes?: { readonly ok: number; readonly failed: number };
  readonly replay?: () => ReplayStoreStats;
}


/**
 * The decision counter's label sets, made once: `decision`, `reason` and
 * `binding` (SPEC 8: how the caller was bound; "none" when the request named
 * no caller). A Check only adds one to a slot of a typed array: no label
 * object, key string or hashing per call.
 */
const BINDING_LABELS = [...CALLER_BINDINGS, "none"] as const;
const NO_BINDING = BINDING_LABELS.length - 1;
const BINDING_INDEX: Readonly<Record<string, number>> = Object.fromEntries(CALLER_BINDINGS.map((b, i) => [b, i]));
const REASON_LABELS = [ALLOW_REASON, ...DENIAL_REASONS] as const;
const REASON_INDEX: ReadonlyMap<string, number> = new Map(REASON_LABELS.map((r, i) => [r, i]));
const INTERNAL_ERROR = REASON_INDEX.get("internal_error")!;
const DECISION_LABEL_SETS: readonly Readonly<Record<string, string>>[] = REASON_LABELS.flatMap((reason, r) =>
  BINDING_LABELS.map((binding) => Object.freeze({ decision: r === 0 ? "allow" : "deny", reason, binding })),
);

export class HopwardenMetrics implements DecisionSink {
  private readonly exporter: PrometheusExporter;
  private readonly provider: MeterProvider;
  readonly meter: Meter;
  /** Decision counts by label set (DECISION_LABEL_SETS), read at scrape time: cheaper on the hot path than attribute hashing per call. */
  private readonly decisionCounts = new Float64Array(DECISION_LABEL_SETS.length);
  private readonly latency = new LatencyHistogram("hopwarden_check_duration_seconds", "Time to decide one Check");
  private readonly reloads: Counter;

  constructor(sources: ObservedSources = {}) {
    this.exporter = new PrometheusExporter({ preventServerStart: true });
    this.provider = new MeterProvider({ readers: [this.exporter], resource: resourceFromAttributes({ "service.name": "hopwarden" }) });
    this.meter = this.provider.getMeter("hopwarden");
    this.meter.createObservableCounter("hopwarden_decisions", { description: "Check decisions by outcome, reason and caller binding" }).addCallback((result) => {
      this.decisionCounts.forEach((count, i) => {
        if (count > 0) result.observe(count, DECISION_LABEL_SETS[i]);
      });
    });
    this.reloads = this.meter.createCounter("hopwarden_policy_reloads", { description: "Policy reload attempts by result" });
    const observe = (name: string, description: string, read: () => number | undefined, counter = true) => {
      const instrument = counter ? this.meter.createObservableCounter(name, { description }) : this.meter.createObservableGauge(name, { description });
      instrument.addCallback((result) => {
        const v = read();
        if (v !== undefined) result.observe(v);
      });
    };
    const { hopCache, certificateCache, spans } = sources;
    if (hopCache) {
      observe("hopwarden_hop_cache_hits", "Hop decisions served from the cache", () => hopCache.hits);
      observe("hopwarden_hop_cache_misses", "Hop decisions evaluated because the cache had none", () => hopCache.misses);
      observe("hopwarden_hop_cache_entries", "Entries in the hop decision cache", () => hopCache.size, false);
      observe("hopwarden_hop_cache_bytes", "Bytes charged to the hop decision cache's entries (bounded by cache.hopDecisionBytes)", () => hopCache.bytes, false);
    }
    if (certificateCache) {
      observe("hopwarden_certificate_cache_hits", "Peer certificates served from the parse cache", () => certificateCache.hits);
      observe("hopwarden_certificate_cache_misses", "Peer certificates parsed", () => certificateCache.misses);
      observe("hopwarden_certificate_cache_entries", "Entries in the certificate parse cache", () => certificateCache.size, false);
      observe("hopwarden_certificate_cache_bytes", "Bytes charged to the certificate parse cache's entries (bounded by cache.certificateBytes)", () => certificateCache.bytes, false);
    }
    if (spans) {
      observe("hopwarden_spans_exported", "Decision spans the collector accepted", () => spans.exportedSpans);
      observe("hopwarden_spans_failed", "Decision spans lost: the export queue was full, or the collector refused their batch for good", () => spans.lostSpans);
      observe("hopwarden_span_exports_failed", "Span exports that failed (retryable ones are tried again after a back-off)", () => spans.failedExports);
      observe("hopwarden_spans_queued", "Decision spans waiting for the collector", () => spans.queuedSpans, false);
      observe("hopwarden_spans_queued_bytes", "Bytes of encoded decision spans waiting for the collector (bounded)", () => spans.queuedBytes, false);
    }
    if (sources.jwksRefreshes) {
      const refreshes = sources.jwksRefreshes;
      this.meter.createObservableCounter("hopwarden_jwks_refreshes", { description: "Delegation-token key set loads by result" }).addCallback((result) => {
        result.observe(refreshes.ok, { result: "ok" });
        result.observe(refreshes.failed, { result: "failed" });
      });
    }
    if (sources.audit) {
      const stats = sources.audit;
      observe("hopwarden_audit_buffer_depth", "Audit records accepted but not yet on disk", () => stats().depth, false);
      observe("hopwarden_audit_records_written", "Decision records written to the audit log", () => stats().written);
      observe("hopwarden_audit_checkpoints", "Signed checkpoints written to the audit log", () => stats().checkpoints);
      observe("hopwarden_audit_dropped", "Audit records lost (buffer limit, closed log, failed forwarding)", () => stats().dropped);
      observe("hopwarden_audit_blocked", "Checks that waited for room in the audit buffer", () => stats().blocked);
      observe("hopwarden_audit_refused", "Checks denied because the audit log could not take their record", () => stats().refused);
      observe("hopwarden_audit_write_errors", "Failed audit log writes", () => stats().writeErrors);
    }
    if (sources.replay) {
      const replay = sources.replay;
      this.meter
        .createObservableCounter("hopwarden_replay_store_failures", { description: "Single-use Checks denied (internal_error) because the replay store did not answer, by cause" })
        .addCallback((result) => {
          const stats = replay();
          for (const [failure, count] of Object.entries(stats.failures)) result.observe(count, { store: stats.kind, failure });
        });
      observe("hopwarden_replay_full_refusals", "Single-use tokens refused because the replay memory held only unexpired entries", () => replay().fullRefusals);
      observe("hopwarden_replay_memory_entries", "jti entries held by this process's replay memory", () => replay().entries, false);
    }
    if (sources.policyVersion) {
      const read = sources.policyVersion;
      this.meter.createObservableGauge("hopwarden_policy_info", { description: "1 for the policy version in force" }).addCallback((result) => {
        const version = read();
        if (version !== undefined) result.observe(1, { version });
      });
    }
  }

  record(decision: Decision, context: DecisionContext): void {
    const reason = decision.allowed ? 0 : (REASON_INDEX.get(decision.reason) ?? INTERNAL_ERROR);
    const binding = decision.callerBinding === undefined ? NO_BINDING : (BINDING_INDEX[decision.callerBinding] ?? NO_BINDING);
    this.decisionCounts[reason * BINDING_LABELS.length + binding]! += 1;
    this.latency.record(context.latencyMs, decision.allowed);
  }

  recordReload(ok: boolean): void {
    this.reloads.add(1, { result: ok ? "ok" : "refused" });
  }

  /** The Prometheus text of this process (a worker sends it to the primary, which merges). */
  async text(): Promise<string> {
    const { resourceMetrics } = await this.exporter.collect();
    return new PrometheusSerializer().serialize(resourceMetrics) + this.latency.text();
  }

  handler(): (req: IncomingMessage, res: ServerResponse) => void {
    return (_req, res) => {
      this.text().then(
        (text) => res.writeHead(200, { "content-type": "text/plain; version=0.0.4; charset=utf-8" }).end(text),
        () => res.writeHead(503).end(),
      );
    };
  }

  shutdown(): Promise<void> {
    return this.provider.shutdown();
  }
}
