// The OTLP/HTTP exporter against a loopback HTTP server on a free port:
// what it sends (body, content type, headers), how it fails (500, no answer,
// nothing listening) and how it stops.

import { createServer, type IncomingHttpHeaders, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { SpanKind } from "@opentelemetry/api";
import { ExportResultCode, type ExportResult } from "@opentelemetry/core";
import { resourceFromAttributes } from "@opentelemetry/resources";
import { AlwaysOnSampler, BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor, type ReadableSpan } from "@opentelemetry/sdk-trace-base";
import { DEFAULT_OTLP_TRACES_URL, OtlpHttpSpanExporter, parseOtlpHeaders, resolveOtlpHttpConfig, tracesUrlFromEnvironment } from "./otlp-http-span-exporter.js";
import { encodeExportTraceServiceRequest } from "./otlp-span-encoder.js";

interface Received {
  readonly method: string;
  readonly url: string;
  readonly headers: IncomingHttpHeaders;
  readonly body: Buffer;
}

interface Collector {
  readonly url: string;
  readonly received: Received[];
  connections: number;
  close(): Promise<void>;
}

const servers = new Set<Server>();

afterEach(async () => {
  for (const server of servers) {
    server.closeAllConnections();
    await new Promise<void>((ok) => server.close(() => ok()));
  }
  servers.clear();
});

/** A loopback collector on a free port; `answer` decides each response (or none). */
async function startCollector(answer: (res: ServerResponse, received: Received) => void = (res) => res.writeHead(200).end()): Promise<Collector> {
  const received: Received[] = [];
  const collector = { received, connections: 0 } as { url: string; received: Received[]; connections: number; close(): Promise<void> };
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const r = { method: req.method ?? "", url: req.url ?? "", headers: req.headers, body: Buffer.concat(chunks) };
      received.push(r);
      answer(res, r);
    });
  });
  server.on("connection", () => collector.connections++);
  servers.add(server);
  await new Promise<void>((ok) => server.listen(0, "127.0.0.1", ok));
  collector.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1/traces`;
  collector.close = async () => {
    server.closeAllConnections();
    await new Promise<void>((ok) => server.close(() => ok()));
    servers.delete(server);
  };
  return collector;
}

async function someSpans(count = 3): Promise<ReadableSpan[]> {
  const memory = new InMemorySpanExporter();
  const provider = new BasicTracerProvider({
    sampler: new AlwaysOnSampler(),
    resource: resourceFromAttributes({ "service.name": "hopwarden" }),
    spanProcessors: [new SimpleSpanProcessor(memory)],
  });
  const tracer = provider.getTracer("hopwarden.authz");
  for (let i = 0; i < count; i++) {
    const span = tracer.startSpan("authz.check", { kind: SpanKind.SERVER, attributes: { "authz.decision": "allow", "agent.delegation.chain": ["a", "b"], n: i } });
    span.addEvent("authz.hop", { from: "a", to: "b", rule: "hops[0]", result: "allow", cached: false });
    span.end();
  }
  await provider.forceFlush();
  const spans = memory.getFinishedSpans();
  await provider.shutdown();
  return [...spans];
}

const exportOnce = (exporter: OtlpHttpSpanExporter, spans: ReadableSpan[]): Promise<ExportResult> => new Promise((ok) => exporter.export(spans, ok));

const NO_ENV: NodeJS.ProcessEnv = {};

describe("OtlpHttpSpanExporter against a loopback collector", () => {
  it("POSTs the encoder's bytes as application/x-protobuf with the configured and environment headers, and succeeds on 2xx", async () => {
    const collector = await startCollector();
    const exporter = new OtlpHttpSpanExporter({ url: collector.url, headers: { "x-api-key": "secret" } }, { OTEL_EXPORTER_OTLP_HEADERS: "tenant=acme%20corp, x-api-key=from-env" });
    const spans = await someSpans();
    try {
      expect(await exportOnce(exporter, spans)).toEqual({ code: ExportResultCode.SUCCESS });
      expect(collector.received).toHaveLength(1);
      const [r] = collector.received;
      expect(r!.method).toBe("POST");
      expect(r!.url).toBe("/v1/traces");
      expect(r!.headers["content-type"]).toBe("application/x-protobuf");
      expect(r!.headers["x-api-key"]).toBe("secret");
      expect(r!.headers.tenant).toBe("acme corp");
      expect(r!.body.equals(encodeExportTraceServiceRequest(spans))).toBe(true);
    } finally {
      await exporter.shutdown();
    }
  });

  it("keeps its connection alive between exports", async () => {
    const collector = await startCollector();
    const exporter = new OtlpHttpSpanExporter({ url: collector.url }, NO_ENV);
    const spans = await someSpans(1);
    try {
      for (let i = 0; i < 3; i++) expect((await exportOnce(exporter, spans)).code).toBe(ExportResultCode.SUCCESS);
      expect(collector.received).toHaveLength(3);
      expect(collector.connections).toBe(1);
    } finally {
      await exporter.shutdown();
    }
  });

  it("recovers when the collector closes the idle connection between exports", async () => {
    const collector = await startCollector((res) => res.writeHead(200, { connection: "close" }).end());
    const exporter = new OtlpHttpSpanExporter({ url: collector.url }, NO_ENV);
    const spans = await someSpans(1);
    try {
      for (let i = 0; i < 3; i++) expect((await exportOnce(exporter, spans)).code).toBe(ExportResultCode.SUCCESS);
      expect(collector.connections).toBe(3);
    } finally {
      await exporter.shutdown();
    }
  });

  it("fails on a 500 answer", async () => {
    const collector = await startCollector((res) => res.writeHead(500).end("no"));
    const exporter = new OtlpHttpSpanExporter({ url: collector.url }, NO_ENV);
    try {
      const result = await exportOnce(exporter, await someSpans());
      expect(result.code).toBe(ExportResultCode.FAILED);
      expect(result.error?.message).toMatch(/answered 500/);
    } finally {
      await exporter.shutdown();
    }
  });

  it("fails by its timeout when the collector never answers", async () => {
    const collector = await startCollector(() => undefined);
    const exporter = new OtlpHttpSpanExporter({ url: collector.url, timeoutMillis: 200 }, NO_ENV);
    try {
      const started = Date.now();
      const result = await exportOnce(exporter, await someSpans());
      expect(result.code).toBe(ExportResultCode.FAILED);
      expect(result.error?.message).toMatch(/timed out after 200 ms/);
      expect(Date.now() - started).toBeLessThan(2_000);
      expect(collector.received).toHaveLength(1);
    } finally {
      await exporter.shutdown();
    }
  });

  it("fails when nothing listens (connection refused)", async () => {
    const collector = await startCollector();
    const url = collector.url;
    await collector.close();
    const exporter = new OtlpHttpSpanExporter({ url, timeoutMillis: 2_000 }, NO_ENV);
    try {
      const result = await exportOnce(exporter, await someSpans());
      expect(result.code).toBe(ExportResultCode.FAILED);
      expect(result.error).toMatchObject({ code: "ECONNREFUSED" });
    } finally {
      await exporter.shutdown();
    }
  });

  it("shutdown waits for the export under way, then refuses new ones", async () => {
    const collector = await startCollector((res) => setTimeout(() => res.writeHead(200).end(), 150));
    const exporter = new OtlpHttpSpanExporter({ url: collector.url }, NO_ENV);
    const spans = await someSpans();
    let result: ExportResult | undefined;
    exporter.export(spans, (r) => (result = r));
    await exporter.shutdown();
    expect(result).toEqual({ code: ExportResultCode.SUCCESS });
    const after = await exportOnce(exporter, spans);
    expect(after.code).toBe(ExportResultCode.FAILED);
    expect(collector.received).toHaveLength(1);
  });

  it("shutdown is bounded by the timeout when the collector hangs", async () => {
    const collector = await startCollector(() => undefined);
    const exporter = new OtlpHttpSpanExporter({ url: collector.url, timeoutMillis: 200 }, NO_ENV);
    let result: ExportResult | undefined;
    exporter.export(await someSpans(), (r) => (result = r));
    const started = Date.now();
    await exporter.shutdown();
    expect(Date.now() - started).toBeLessThan(1_500);
    expect(result?.code).toBe(ExportResultCode.FAILED);
  });
});

describe("OTLP/HTTP configuration from the standard variables", () => {
  it("takes the traces endpoint as is, else the general endpoint plus /v1/traces, else localhost:4318", () => {
    expect(tracesUrlFromEnvironment({ OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: "https://c.example/custom", OTEL_EXPORTER_OTLP_ENDPOINT: "http://x:4318" })).toBe("https://c.example/custom");
    expect(tracesUrlFromEnvironment({ OTEL_EXPORTER_OTLP_ENDPOINT: "http://collector:4318" })).toBe("http://collector:4318/v1/traces");
    expect(tracesUrlFromEnvironment({ OTEL_EXPORTER_OTLP_ENDPOINT: "http://collector:4318/base/" })).toBe("http://collector:4318/base/v1/traces");
    expect(tracesUrlFromEnvironment({ OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: " " })).toBe(DEFAULT_OTLP_TRACES_URL);
    expect(tracesUrlFromEnvironment({})).toBe("http://localhost:4318/v1/traces");
  });

  it("parses comma-separated, URL-decoded key=value headers; traces-specific over general; explicit over both", () => {
    expect(parseOtlpHeaders("a=1, b = two%2Cthree ,bad,=novalue,c=x=y")).toEqual({ a: "1", b: "two,three", c: "x=y" });
    expect(parseOtlpHeaders(undefined)).toEqual({});
    const config = resolveOtlpHttpConfig({ headers: { c: "explicit" } }, { OTEL_EXPORTER_OTLP_HEADERS: "a=general,b=general,c=general", OTEL_EXPORTER_OTLP_TRACES_HEADERS: "b=traces" });
    expect(config.headers).toEqual({ a: "general", b: "traces", c: "explicit" });
    expect(resolveOtlpHttpConfig({}, { OTEL_EXPORTER_OTLP_HEADERS: "bad%0Aheader=1,ok=fine%0Dnot" }).headers).toEqual({});
  });

  it("takes the timeout from the traces variable, else the general one, else 10 s; explicit config first", () => {
    expect(resolveOtlpHttpConfig({}, { OTEL_EXPORTER_OTLP_TRACES_TIMEOUT: "250", OTEL_EXPORTER_OTLP_TIMEOUT: "500" }).timeoutMillis).toBe(250);
    expect(resolveOtlpHttpConfig({}, { OTEL_EXPORTER_OTLP_TIMEOUT: "500" }).timeoutMillis).toBe(500);
    expect(resolveOtlpHttpConfig({}, { OTEL_EXPORTER_OTLP_TIMEOUT: "soon" }).timeoutMillis).toBe(10_000);
    expect(resolveOtlpHttpConfig({ timeoutMillis: 42 }, { OTEL_EXPORTER_OTLP_TIMEOUT: "500" }).timeoutMillis).toBe(42);
    expect(resolveOtlpHttpConfig({ url: "http://explicit/v1/traces" }, { OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: "http://env/v1/traces" }).url).toBe("http://explicit/v1/traces");
  });

  it("refuses an endpoint that is not an http(s) URL", () => {
    expect(() => new OtlpHttpSpanExporter({ url: "grpc://collector:4317" }, NO_ENV)).toThrow(/neither http nor https/);
    expect(() => new OtlpHttpSpanExporter({ url: "not a url" }, NO_ENV)).toThrow(/not a URL/);
  });
});
