// Decision spans (SPEC 6) from the Check path's point of view: `begin` reads
// Envoy's span context from the call metadata and fixes the span's ids (so
// the audit record can name them), `end` hands the finished decision over.
// Every decision span is recorded, whatever a sampler or the parent's flag
// says, because the audit trail must not have holes. Spans are encoded to
// OTLP and exported off the Check path by a byte-bounded queue; observers
// (tests, the demo) may watch the records go by.

import type { Attributes } from "@opentelemetry/api";
import { defaultResource, detectResources, envDetector, resourceFromAttributes } from "@opentelemetry/resources";
import { WireWriter } from "../protobuf/wire.js";
import type { Decision } from "../../core/decision/decision.js";
import type { Logger } from "../logging/logger.js";
import { DECISION_SCOPE_NAME, type DecisionSpan, type DecisionSpanIds } from "./decision-span.js";
import type { BoundText } from "./decision-span-encoder.js";
import type { OtlpExportConfig } from "./otlp-config.js";
import { createOtlpTransport, type OtlpTransport } from "./otlp-transport.js";
import { RESOURCE_ATTRIBUTES, RS_RESOURCE, SCOPE_NAME, SS_SCOPE, writeAttributes } from "./otlp-wire.js";
import { SpanBatchQueue, type SpanQueueStats } from "./span-batch-queue.js";
import { SpanIdSource } from "./span-ids.js";
import { readTraceParent, type MetadataReader } from "./trace-parent.js";

export interface DecisionTracingOptions {
  readonly serviceName: string;
  /** Where spans are exported; undefined: nowhere (observers only). */
  readonly export?: OtlpExportConfig | undefined;
  /** A transport to use instead of the one `export` names (tests). */
  readonly transport?: OtlpTransport;
  /** Called with every finished span record, before export (tests). */
  readonly observer?: (span: DecisionSpan) => void;
  readonly bound: BoundText;
  readonly maxQueueBytes?: number;
  readonly logger?: Logger;
}

const NO_STATS: SpanQueueStats = Object.freeze({ exportedSpans: 0, lostSpans: 0, failedExports: 0, queuedBytes: 0, queuedSpans: 0 });

/** The resource of every batch: the SDK's defaults, OTEL_RESOURCE_ATTRIBUTES (read by the SDK's detector), then service.name. */
export function decisionResourceAttributes(serviceName: string): Attributes {
  return defaultResource()
    .merge(detectResources({ detectors: [envDetector] }))
    .merge(resourceFromAttributes({ "service.name": serviceName })).attributes;
}

/** The encoded `ResourceSpans.resource` field. */
export function encodeResourceField(attributes: Attributes): Buffer {
  const w = new WireWriter(512);
  w.fork(RS_RESOURCE);
  writeAttributes(w, RESOURCE_ATTRIBUTES, attributes);
  w.join();
  return Buffer.from(w.finish());
}

/** The encoded `ScopeSpans.scope` field. */
export function encodeScopeField(): Buffer {
  return Buffer.from(new WireWriter(64).fork(SS_SCOPE).string(SCOPE_NAME, DECISION_SCOPE_NAME).join().finish());
}

export class DecisionTracing {
  private readonly ids = new SpanIdSource();
  private readonly queue: SpanBatchQueue | undefined;
  private readonly observer: ((span: DecisionSpan) => void) | undefined;

  constructor(options: DecisionTracingOptions) {
    this.observer = options.observer;
    const transport = options.transport ?? (options.export !== undefined ? createOtlpTransport(options.export) : undefined);
    if (transport !== undefined) {
      this.queue = new SpanBatchQueue({
        transport,
        resourceField: encodeResourceField(decisionResourceAttributes(options.serviceName)),
        scopeField: encodeScopeField(),
        bound: options.bound,
        ...(options.maxQueueBytes !== undefined && { maxQueueBytes: options.maxQueueBytes }),
        ...(options.logger !== undefined && { logger: options.logger }),
      });
    }
  }

  /** Where spans go, for the start-up log. */
  get target(): string | undefined {
    return this.queue === undefined ? undefined : "collector";
  }

  begin(metadata: MetadataReader | undefined): DecisionSpanIds {
    const parent = metadata === undefined ? undefined : readTraceParent(metadata);
    return { traceId: parent?.traceId ?? this.ids.traceId(), spanId: this.ids.spanId(), parent, startPerfMs: performance.now() };
  }

  end(ids: DecisionSpanIds, decision: Decision): void {
    const span: DecisionSpan = { traceId: ids.traceId, spanId: ids.spanId, parent: ids.parent, startPerfMs: ids.startPerfMs, endPerfMs: performance.now(), decision };
    this.observer?.(span);
    this.queue?.append(span);
  }

  get stats(): SpanQueueStats {
    return this.queue?.stats ?? NO_STATS;
  }

  /** Sends what is queued now (tests, shutdown). */
  flush(): Promise<void> {
    return this.queue?.flush() ?? Promise.resolve();
  }

  /** Stops taking spans and sends what is queued, within `deadlineMs`; true when nothing was left behind. */
  shutdown(deadlineMs: number): Promise<boolean> {
    return this.queue?.shutdown(deadlineMs) ?? Promise.resolve(true);
  }
}
