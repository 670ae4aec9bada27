// The OTLP transports against loopback collectors on free ports: what the
// HTTP one sends (body, content type, headers, gzip), how both fail (a status
// that a retry may cure or not, no answer, nothing listening), and the
// export configuration read from the standard variables.

import { createServer, type IncomingHttpHeaders, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { gunzipSync } from "node:zlib";
import { afterEach, describe, expect, it } from "vitest";
import { Server as GrpcServer, ServerCredentials, status as GrpcStatus, type sendUnaryData, type ServerUnaryCall } from "@grpc/grpc-js";
import { DEFAULT_OTLP_HTTP_URL, otlpExportFromEnvironment, parseOtlpHeaders, tracesUrlFromEnvironment, type OtlpExportConfig } from "./otlp-config.js";
import { OtlpGrpcTransport, OtlpHttpTransport } from "./otlp-transport.js";

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

const BODY = [Buffer.from([0x0a, 0x02]), Buffer.from([0x12, 0x00])];
const NO_ENV: NodeJS.ProcessEnv = {};

function http(url: string, more: Partial<OtlpExportConfig> = {}): OtlpExportConfig {
  return { ...otlpExportFromEnvironment(NO_ENV, { protocol: "http/protobuf", url })!, ...more };
}

describe("OTLP/HTTP transport against a loopback collector", () => {
  it("POSTs the bytes as application/x-protobuf with the configured headers, and succeeds on 2xx", async () => {
    const collector = await startCollector();
    const transport = new OtlpHttpTransport(otlpExportFromEnvironment({ OTEL_EXPORTER_OTLP_HEADERS: "tenant=acme%20corp, x-api-key=from-env" }, { url: collector.url, headers: { "x-api-key": "secret" } })!);
    try {
      expect(await transport.send(BODY)).toEqual({ ok: true });
      const [r] = collector.received;
      expect(r).toMatchObject({ method: "POST", url: "/v1/traces" });
      expect(r!.headers["content-type"]).toBe("application/x-protobuf");
      expect(r!.headers["x-api-key"]).toBe("secret");
      expect(r!.headers.tenant).toBe("acme corp");
      expect(r!.body.equals(Buffer.concat(BODY))).toBe(true);
    } finally {
      transport.close();
    }
  });

  it("gzips the body when OTEL_EXPORTER_OTLP_COMPRESSION=gzip", async () => {
    const collector = await startCollector();
    const transport = new OtlpHttpTransport(otlpExportFromEnvironment({ OTEL_EXPORTER_OTLP_COMPRESSION: "gzip" }, { url: collector.url })!);
    try {
      expect(await transport.send(BODY)).toEqual({ ok: true });
      expect(collector.received[0]!.headers["content-encoding"]).toBe("gzip");
      expect(gunzipSync(collector.received[0]!.body).equals(Buffer.concat(BODY))).toBe(true);
    } finally {
      transport.close();
    }
  });

  it("keeps its connection alive between exports", async () => {
    const collector = await startCollector();
    const transport = new OtlpHttpTransport(http(collector.url));
    try {
      for (let i = 0; i < 3; i++) expect(await transport.send(BODY)).toEqual({ ok: true });
      expect(collector.connections).toBe(1);
    } finally {
      transport.close();
    }
  });

  it("recovers when the collector closes the idle connection between exports", async () => {
    const collector = await startCollector((res) => res.writeHead(200, { connection: "close" }).end());
    const transport = new OtlpHttpTransport(http(collector.url));
    try {
      for (let i = 0; i < 3; i++) expect(await transport.send(BODY)).toEqual({ ok: true });
      expect(collector.connections).toBe(3);
    } finally {
      transport.close();
    }
  });

  it.each([
    [503, true],
    [429, true],
    [502, true],
    [500, false],
    [400, false],
  ])("fails on a %i answer, retryable: %s (OTLP/HTTP's rule)", async (status, retryable) => {
    const collector = await startCollector((res) => res.writeHead(status).end("no"));
    const transport = new OtlpHttpTransport(http(collector.url));
    try {
      const result = await transport.send(BODY);
      expect(result).toMatchObject({ ok: false, retryable });
      expect(!result.ok && result.error.message).toMatch(new RegExp(`answered ${status}`));
    } finally {
      transport.close();
    }
  });

  it("fails, retryably, by its timeout when the collector never answers", async () => {
    const collector = await startCollector(() => undefined);
    const transport = new OtlpHttpTransport(http(collector.url, { timeoutMillis: 200 }));
    try {
      const started = Date.now();
      const result = await transport.send(BODY);
      expect(result).toMatchObject({ ok: false, retryable: true });
      expect(!result.ok && result.error.message).toMatch(/timed out after 200 ms/);
      expect(Date.now() - started).toBeLessThan(2_000);
    } finally {
      transport.close();
    }
  });

  it("fails, retryably, when nothing listens (connection refused)", async () => {
    const collector = await startCollector();
    const url = collector.url;
    await collector.close();
    const transport = new OtlpHttpTransport(http(url));
    try {
      const result = await transport.send(BODY);
      expect(result).toMatchObject({ ok: false, retryable: true, error: { code: "ECONNREFUSED" } });
    } finally {
      transport.close();
    }
  });
});

describe("OTLP/gRPC transport against a loopback TraceService", () => {
  async function startTraceService(answer: (body: Buffer) => { code: number } | null): Promise<{ url: string; received: Buffer[]; stop(): Promise<void> }> {
    const received: Buffer[] = [];
    const server = new GrpcServer();
    server.addService(
      {
        Export: {
          path: "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
          requestStream: false,
          responseStream: false,
          requestSerialize: (b: Buffer) => b,
          requestDeserialize: (b: Buffer) => b,
          responseSerialize: (b: Buffer) => b,
          responseDeserialize: (b: Buffer) => b,
        },
      },
      {
        Export: (call: ServerUnaryCall<Buffer, Buffer>, callback: sendUnaryData<Buffer>) => {
          received.push(call.request);
          const error = answer(call.request);
          if (error === null) callback(null, Buffer.alloc(0));
          else callback({ code: error.code, details: "no", name: "Error", message: "no" });
        },
      },
    );
    const port = await new Promise<number>((ok, fail) => server.bindAsync("127.0.0.1:0", ServerCredentials.createInsecure(), (err, p) => (err ? fail(err) : ok(p))));
    return { url: `http://127.0.0.1:${port}`, received, stop: () => new Promise((ok) => server.tryShutdown(() => ok())) };
  }

  it("calls TraceService/Export with the bytes and the headers as metadata", async () => {
    const service = await startTraceService(() => null);
    const transport = new OtlpGrpcTransport(otlpExportFromEnvironment({ OTEL_EXPORTER_OTLP_HEADERS: "tenant=acme" }, { protocol: "grpc", url: service.url })!);
    try {
      expect(await transport.send(BODY)).toEqual({ ok: true });
      expect(service.received[0]!.equals(Buffer.concat(BODY))).toBe(true);
    } finally {
      transport.close();
      await service.stop();
    }
  });

  it.each([
    [GrpcStatus.UNAVAILABLE, true],
    [GrpcStatus.RESOURCE_EXHAUSTED, true],
    [GrpcStatus.INVALID_ARGUMENT, false],
    [GrpcStatus.PERMISSION_DENIED, false],
  ])("fails with status %i, retryable: %s (OTLP/gRPC's rule)", async (code, retryable) => {
    const service = await startTraceService(() => ({ code }));
    const transport = new OtlpGrpcTransport(otlpExportFromEnvironment(NO_ENV, { protocol: "grpc", url: service.url })!);
    try {
      expect(await transport.send(BODY)).toMatchObject({ ok: false, retryable });
    } finally {
      transport.close();
      await service.stop();
    }
  });

  it("fails, retryably and within its time-out, when nothing listens", async () => {
    const service = await startTraceService(() => null);
    const url = service.url;
    await service.stop();
    const transport = new OtlpGrpcTransport(otlpExportFromEnvironment(NO_ENV, { protocol: "grpc", url, timeoutMillis: 500 })!);
    try {
      const started = Date.now();
      expect(await transport.send(BODY)).toMatchObject({ ok: false, retryable: true });
      expect(Date.now() - started).toBeLessThan(2_000);
    } finally {
      transport.close();
    }
  });
});

describe("OTLP export configuration from the standard variables", () => {
  it("takes the traces endpoint as is, else the general endpoint plus /v1/traces, else localhost:4318", () => {
    expect(tracesUrlFromEnvironment({ OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: "https://c.example/custom", OTEL_EXPORTER_OTLP_ENDPOINT: "http://x:4318" })).toBe("https://c.example/custom");
    expect(tracesUrlFromEnvironment({ OTEL_EXPORTER_OTLP_ENDPOINT: "http://collector:4318" })).toBe("http://collector:4318/v1/traces");
    expect(tracesUrlFromEnvironment({ OTEL_EXPORTER_OTLP_ENDPOINT: "http://collector:4318/base/" })).toBe("http://collector:4318/base/v1/traces");
    expect(tracesUrlFromEnvironment({ OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: " " })).toBe(DEFAULT_OTLP_HTTP_URL);
    expect(tracesUrlFromEnvironment({})).toBe("http://localhost:4318/v1/traces");
  });

  it("takes grpc's endpoint without a path, defaulting to localhost:4317", () => {
    expect(tracesUrlFromEnvironment({ OTEL_EXPORTER_OTLP_ENDPOINT: "http://collector:4317" }, "grpc")).toBe("http://collector:4317");
    expect(tracesUrlFromEnvironment({}, "grpc")).toBe("http://localhost:4317");
    expect(otlpExportFromEnvironment({ OTEL_EXPORTER_OTLP_PROTOCOL: "grpc" })).toMatchObject({ protocol: "grpc", url: "http://localhost:4317" });
  });

  it("parses comma-separated, URL-decoded key=value headers; traces-specific over general; explicit over both", () => {
    expect(parseOtlpHeaders("a=1, b = two%2Cthree ,bad,=novalue,c=x=y")).toEqual({ a: "1", b: "two,three", c: "x=y" });
    expect(parseOtlpHeaders(undefined)).toEqual({});
    const config = otlpExportFromEnvironment({ OTEL_EXPORTER_OTLP_HEADERS: "a=general,b=general,c=general", OTEL_EXPORTER_OTLP_TRACES_HEADERS: "b=traces" }, { headers: { c: "explicit" } });
    expect(config?.headers).toEqual({ a: "general", b: "traces", c: "explicit" });
    expect(otlpExportFromEnvironment({ OTEL_EXPORTER_OTLP_HEADERS: "bad%0Aheader=1,ok=fine%0Dnot" })?.headers).toEqual({});
  });

  it("takes the timeout from the traces variable, else the general one, else 10 s; explicit first", () => {
    expect(otlpExportFromEnvironment({ OTEL_EXPORTER_OTLP_TRACES_TIMEOUT: "250", OTEL_EXPORTER_OTLP_TIMEOUT: "500" })?.timeoutMillis).toBe(250);
    expect(otlpExportFromEnvironment({ OTEL_EXPORTER_OTLP_TIMEOUT: "500" })?.timeoutMillis).toBe(500);
    expect(otlpExportFromEnvironment({ OTEL_EXPORTER_OTLP_TIMEOUT: "soon" })?.timeoutMillis).toBe(10_000);
    expect(otlpExportFromEnvironment({ OTEL_EXPORTER_OTLP_TIMEOUT: "500" }, { timeoutMillis: 42 })?.timeoutMillis).toBe(42);
  });

  it("is off with OTEL_TRACES_EXPORTER=none or OTEL_SDK_DISABLED=true", () => {
    expect(otlpExportFromEnvironment({ OTEL_TRACES_EXPORTER: "none" })).toBeUndefined();
    expect(otlpExportFromEnvironment({ OTEL_TRACES_EXPORTER: "console" })).toBeUndefined();
    expect(otlpExportFromEnvironment({ OTEL_SDK_DISABLED: "true" })).toBeUndefined();
    expect(otlpExportFromEnvironment({})).toMatchObject({ protocol: "http/protobuf", url: DEFAULT_OTLP_HTTP_URL, compression: "none" });
  });

  it("refuses an endpoint that is not an http(s) URL, and an unknown protocol", () => {
    expect(() => otlpExportFromEnvironment({ OTEL_EXPORTER_OTLP_ENDPOINT: "grpc://collector:4317" })).toThrow(/neither http nor https/);
    expect(() => otlpExportFromEnvironment({ OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: "not a url" })).toThrow(/not a URL/);
    expect(() => otlpExportFromEnvironment({ OTEL_EXPORTER_OTLP_PROTOCOL: "http/json" })).toThrow(/not supported/);
  });
});
