// Sends an encoded ExportTraceServiceRequest to an OTLP collector, by the
// protocol the standard variables choose: http/protobuf (the default; POST
// to …/v1/traces over a keep-alive agent) or grpc (TraceService/Export over
// grpc-js). Both carry the same bytes. A send settles once, by its time-out
// at the latest, as ok or as a failure that says whether a retry may help
// (OTLP: HTTP 429/502/503/504 and connection errors; gRPC UNAVAILABLE and
// kin), so the queue can back off rather than drop.

import { Agent as HttpAgent, request as httpRequest, type ClientRequest, type IncomingMessage, type RequestOptions } from "node:http";
import { Agent as HttpsAgent, request as httpsRequest } from "node:https";
import { readFileSync } from "node:fs";
import { gzip } from "node:zlib";
import { Client, credentials, Metadata, status as GrpcStatus, type ChannelCredentials, type ServiceError } from "@grpc/grpc-js";
import type { OtlpExportConfig } from "./otlp-config.js";

export type SendResult = { readonly ok: true } | { readonly ok: false; readonly retryable: boolean; readonly error: Error };

export interface OtlpTransport {
  /** Where spans go, for logs. */
  readonly target: string;
  /** Sends the concatenation of `pieces`; never rejects. */
  send(pieces: readonly Buffer[]): Promise<SendResult>;
  close(): void;
}

const RETRYABLE_HTTP = new Set([429, 502, 503, 504]);
const RETRYABLE_GRPC = new Set([
  GrpcStatus.CANCELLED,
  GrpcStatus.DEADLINE_EXCEEDED,
  GrpcStatus.RESOURCE_EXHAUSTED,
  GrpcStatus.ABORTED,
  GrpcStatus.OUT_OF_RANGE,
  GrpcStatus.UNAVAILABLE,
  GrpcStatus.DATA_LOSS,
]);

function failure(error: Error, retryable: boolean): SendResult {
  return { ok: false, retryable, error };
}

function gzipped(body: Buffer): Promise<Buffer> {
  // zlib runs on libuv's thread pool: compression never blocks the Check path.
  return new Promise((resolve, reject) => gzip(body, (err, out) => (err ? reject(err) : resolve(out))));
}

export class OtlpHttpTransport implements OtlpTransport {
  readonly target: string;
  private readonly url: URL;
  private readonly agent: HttpAgent;
  private readonly request: (url: URL, options: RequestOptions, onResponse: (res: IncomingMessage) => void) => ClientRequest;

  constructor(private readonly config: OtlpExportConfig) {
    this.url = new URL(config.url);
    this.target = this.url.href;
    if (this.url.protocol === "http:") {
      this.agent = new HttpAgent({ keepAlive: true, maxSockets: 2 });
      this.request = httpRequest;
    } else {
      this.agent = new HttpsAgent({ keepAlive: true, maxSockets: 2, ...tlsFiles(config) });
      this.request = httpsRequest;
    }
  }

  async send(pieces: readonly Buffer[]): Promise<SendResult> {
    let body = pieces.length === 1 ? pieces[0]! : Buffer.concat(pieces);
    const headers: Record<string, string | number> = { ...this.config.headers, "content-type": "application/x-protobuf" };
    if (this.config.compression === "gzip") {
      try {
        body = await gzipped(body);
      } catch (err) {
        return failure(err instanceof Error ? err : new Error(String(err)), false);
      }
      headers["content-encoding"] = "gzip";
    }
    headers["content-length"] = body.length;
    return new Promise((resolve) => this.post(body, headers, Date.now() + this.config.timeoutMillis, true, resolve));
  }

  /** POSTs `body`; calls `done` exactly once, by `deadline` at the latest. */
  private post(body: Buffer, headers: Record<string, string | number>, deadline: number, mayRetry: boolean, done: (result: SendResult) => void): void {
    let finished = false;
    let req: ClientRequest | undefined;
    const finish = (result: SendResult): void => {
      if (finished) return;
      finished = true;
      clearTimeout(timer);
      done(result);
    };
    const timer = setTimeout(() => {
      const error = new Error(`OTLP export to ${this.target} timed out after ${this.config.timeoutMillis} ms`);
      req?.destroy(error);
      finish(failure(error, true));
    }, Math.max(0, deadline - Date.now()));
    timer.unref();
    try {
      req = this.request(this.url, { method: "POST", agent: this.agent, headers }, (res) => {
        const status = res.statusCode ?? 0;
        res.on("error", (err) => finish(failure(err, true)));
        res.on("end", () => {
          if (status >= 200 && status < 300) finish({ ok: true });
          else finish(failure(new Error(`OTLP collector at ${this.target} answered ${status}`), RETRYABLE_HTTP.has(status)));
        });
        res.on("close", () => finish(failure(new Error(`OTLP collector at ${this.target} closed the response early`), true)));
        res.resume();
      });
      const sent = req;
      sent.on("error", (err: NodeJS.ErrnoException) => {
        // A keep-alive socket the collector closed while idle: once more, on a new connection.
        if (mayRetry && !finished && sent.reusedSocket && err.code === "ECONNRESET" && Date.now() < deadline) {
          finished = true;
          clearTimeout(timer);
          this.post(body, headers, deadline, false, done);
          return;
        }
        finish(failure(err, true));
      });
      sent.end(body);
    } catch (err) {
      finish(failure(err instanceof Error ? err : new Error(String(err)), false));
    }
  }

  close(): void {
    this.agent.destroy();
  }
}

const EXPORT_METHOD = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";

export class OtlpGrpcTransport implements OtlpTransport {
  readonly target: string;
  private readonly client: Client;
  private readonly metadata: Metadata;

  constructor(private readonly config: OtlpExportConfig) {
    const url = new URL(config.url);
    this.target = url.host;
    const secure = url.protocol === "https:" && config.insecure !== true;
    const channel: ChannelCredentials = secure ? credentials.createSsl(...sslFiles(config)) : credentials.createInsecure();
    this.client = new Client(url.host, channel, config.compression === "gzip" ? { "grpc.default_compression_algorithm": 2 } : {});
    this.metadata = new Metadata();
    for (const [key, value] of Object.entries(config.headers)) this.metadata.set(key, value);
  }

  send(pieces: readonly Buffer[]): Promise<SendResult> {
    const body = pieces.length === 1 ? pieces[0]! : Buffer.concat(pieces);
    return new Promise((resolve) => {
      this.client.makeUnaryRequest(
        EXPORT_METHOD,
        (b: Buffer) => b,
        () => undefined,
        body,
        this.metadata,
        { deadline: Date.now() + this.config.timeoutMillis },
        (err: ServiceError | null) => {
          if (err === null) resolve({ ok: true });
          else resolve(failure(new Error(`OTLP collector at ${this.target}: ${err.message}`), RETRYABLE_GRPC.has(err.code)));
        },
      );
    });
  }

  close(): void {
    this.client.close();
  }
}

function readOptional(path: string | undefined): Buffer | undefined {
  return path === undefined ? undefined : readFileSync(path);
}

function tlsFiles(config: OtlpExportConfig): { ca?: Buffer; cert?: Buffer; key?: Buffer } {
  const ca = readOptional(config.certificate);
  const cert = readOptional(config.clientCertificate);
  const key = readOptional(config.clientKey);
  return { ...(ca !== undefined && { ca }), ...(cert !== undefined && { cert }), ...(key !== undefined && { key }) };
}

function sslFiles(config: OtlpExportConfig): [Buffer | null, Buffer | null, Buffer | null] {
  return [readOptional(config.certificate) ?? null, readOptional(config.clientKey) ?? null, readOptional(config.clientCertificate) ?? null];
}

export function createOtlpTransport(config: OtlpExportConfig): OtlpTransport {
  return config.protocol === "grpc" ? new OtlpGrpcTransport(config) : new OtlpHttpTransport(config);
}
