// The fast OTLP/HTTP exporter against real Jaeger: a decision-shaped span
// sent through OtlpHttpSpanExporter is stored with its kind, parent,
// attributes (the chain as a string array, the depth as an int) and hop events.

import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ROOT_CONTEXT, SpanKind, SpanStatusCode, trace } from "@opentelemetry/api";
import { ExportResultCode } from "@opentelemetry/core";
import { resourceFromAttributes } from "@opentelemetry/resources";
import { AlwaysOnSampler, BasicTracerProvider, SimpleSpanProcessor } from "@opentelemetry/sdk-trace-base";
import { OtlpHttpSpanExporter } from "../src/adapters/telemetry/otlp-http-span-exporter.js";
import { startJaeger, waitFor, type JaegerProcess } from "./support/jaeger.js";

let jaeger: JaegerProcess;

beforeAll(async () => {
  jaeger = await startJaeger();
});

afterAll(async () => {
  await jaeger?.stop();
});

describe("OtlpHttpSpanExporter → Jaeger (OTLP/HTTP protobuf)", () => {
  it("stores the span with its attributes and events", async () => {
    const exporter = new OtlpHttpSpanExporter({ url: jaeger.otlpHttpTracesUrl, timeoutMillis: 5_000 }, {});
    const provider = new BasicTracerProvider({
      sampler: new AlwaysOnSampler(),
      resource: resourceFromAttributes({ "service.name": "hopwarden-exporter-test" }),
      spanProcessors: [new SimpleSpanProcessor(exporter)],
    });
    const traceId = "4bf92f3577b34da6a3ce929d0e0e4736";
    const parentSpanId = "00f067aa0ba902b7";
    const parent = trace.setSpanContext(ROOT_CONTEXT, { traceId, spanId: parentSpanId, traceFlags: 0, isRemote: true });
    const span = provider.getTracer("hopwarden.authz").startSpan("authz.check", { kind: SpanKind.SERVER }, parent);
    span.setAttributes({
      "authz.decision": "deny",
      "authz.reason": "hop_not_allowed",
      "agent.delegation.chain": ["spiffe://example.org/agent/orchestrator", "spiffe://example.org/agent/research"],
      "agent.delegation.depth": 2,
      "test.negative": -7,
      "test.ratio": 0.25,
      "test.flag": true,
    });
    span.addEvent("authz.hop", { from: "spiffe://example.org/agent/orchestrator", to: "spiffe://example.org/agent/research", rule: "hops[0]", result: "allow", cached: false });
    span.addEvent("authz.hop", { from: "spiffe://example.org/agent/research", to: "spiffe://example.org/agent/db", rule: "", result: "deny", cached: true });
    span.setStatus({ code: SpanStatusCode.ERROR, message: "denied" });
    span.end();
    await provider.forceFlush();
    await provider.shutdown();

    const stored = await waitFor("the span in Jaeger", async () => (await jaeger.traceV3(traceId)).find((s) => s.name === "authz.check"));
    expect(stored.service).toBe("hopwarden-exporter-test");
    expect(stored.kind).toBe(2);
    expect(stored.parentSpanId).toBe(parentSpanId);
    expect(stored.spanId).toBe(span.spanContext().spanId);
    expect(stored.attributes).toMatchObject({
      "authz.decision": "deny",
      "authz.reason": "hop_not_allowed",
      "agent.delegation.chain": ["spiffe://example.org/agent/orchestrator", "spiffe://example.org/agent/research"],
      "agent.delegation.depth": 2,
      "test.negative": -7,
      "test.ratio": 0.25,
      "test.flag": true,
    });
    expect(stored.events.map((e) => e.attributes)).toEqual([
      expect.objectContaining({ from: "spiffe://example.org/agent/orchestrator", to: "spiffe://example.org/agent/research", result: "allow", cached: false }),
      expect.objectContaining({ from: "spiffe://example.org/agent/research", to: "spiffe://example.org/agent/db", result: "deny", cached: true }),
    ]);
  });

  it("reports FAILED once Jaeger is gone", async () => {
    const exporter = new OtlpHttpSpanExporter({ url: jaeger.otlpHttpTracesUrl, timeoutMillis: 1_000 }, {});
    await jaeger.stop();
    const result = await new Promise<{ code: ExportResultCode }>((ok) => exporter.export([], ok));
    expect(result.code).toBe(ExportResultCode.FAILED);
    await exporter.shutdown();
  });
});
