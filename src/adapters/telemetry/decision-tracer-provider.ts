// The tracer provider for decision spans. It samples every span, whatever
// OTEL_TRACES_SAMPLER says for other spans and whatever the parent's sampled
// flag is, because the audit trail must not have holes (SPEC 6). The exporter
// follows the standard OTEL_* variables (endpoint, headers, protocol); the
// queue is bounded, so a collector outage costs memory up to the bound and
// then counted loss, never a slower Check.

import type { Tracer } from "@opentelemetry/api";
import { OTLPTraceExporter as OtlpGrpcExporter } from "@opentelemetry/exporter-trace-otlp-grpc";
import { resourceFromAttributes } from "@opentelemetry/resources";
import { AlwaysOnSampler, BasicTracerProvider, BatchSpanProcessor, type SpanExporter, type SpanProcessor } from "@opentelemetry/sdk-trace-base";
import { ExportResultCode, type ExportResult } from "@opentelemetry/core";
import type { ReadableSpan } from "@opentelemetry/sdk-trace-base";
import { OtlpHttpSpanExporter } from "./otlp-http-span-exporter.js";

export interface ExportStats {
  exportedSpans: number;
  failedSpans: number;
  failedExports: number;
}

/** Counts what reached the collector and what was lost, for metrics. */
class CountingExporter implements SpanExporter {
  readonly stats: ExportStats = { exportedSpans: 0, failedSpans: 0, failedExports: 0 };
  constructor(private readonly inner: SpanExporter) {}
  export(spans: ReadableSpan[], done: (result: ExportResult) => void): void {
    this.inner.export(spans, (result) => {
      if (result.code === ExportResultCode.SUCCESS) this.stats.exportedSpans += spans.length;
      else {
        this.stats.failedSpans += spans.length;
        this.stats.failedExports += 1;
      }
      done(result);
    });
  }
  shutdown(): Promise<void> {
    return this.inner.shutdown();
  }
  forceFlush(): Promise<void> {
    return this.inner.forceFlush?.() ?? Promise.resolve();
  }
}

export interface DecisionTracing {
  readonly tracer: Tracer;
  readonly stats: ExportStats;
  shutdown(): Promise<void>;
}

/** Which OTLP exporter the environment asks for; undefined when traces are switched off. */
export function exporterFromEnvironment(env: NodeJS.ProcessEnv = process.env): SpanExporter | undefined {
  if (env.OTEL_SDK_DISABLED === "true") return undefined;
  const kinds = (env.OTEL_TRACES_EXPORTER ?? "otlp").split(",").map((s) => s.trim());
  if (kinds.includes("none") || !kinds.includes("otlp")) return undefined;
  const protocol = env.OTEL_EXPORTER_OTLP_TRACES_PROTOCOL ?? env.OTEL_EXPORTER_OTLP_PROTOCOL ?? "http/protobuf";
  // http/protobuf on our encoder (the SDK's serializer costs more per span than a Check); grpc stays on the SDK's exporter.
  return protocol === "grpc" ? new OtlpGrpcExporter() : new OtlpHttpSpanExporter({}, env);
}

export function createDecisionTracing(options: { serviceName: string; exporter?: SpanExporter | undefined; processor?: SpanProcessor; maxQueueSize?: number }): DecisionTracing {
  const counting = options.exporter === undefined ? undefined : new CountingExporter(options.exporter);
  const processors: SpanProcessor[] = [];
  if (options.processor !== undefined) processors.push(options.processor);
  if (counting !== undefined) {
    processors.push(
      new BatchSpanProcessor(counting, {
        maxQueueSize: options.maxQueueSize ?? 8192,
        maxExportBatchSize: 512,
        scheduledDelayMillis: 500,
        exportTimeoutMillis: 10_000,
      }),
    );
  }
  const provider = new BasicTracerProvider({
    sampler: new AlwaysOnSampler(),
    resource: resourceFromAttributes({ "service.name": options.serviceName }),
    spanProcessors: processors,
  });
  return {
    tracer: provider.getTracer("hopwarden.authz"),
    stats: counting?.stats ?? { exportedSpans: 0, failedSpans: 0, failedExports: 0 },
    shutdown: () => provider.shutdown(),
  };
}
