// A stand-in collector for decision spans in-process: the OTLP transport that
// keeps the bytes hopwarden would send, and decodes them on request. Tests
// see exactly what a collector would receive, encoder included.

import type { OtlpTransport, SendResult } from "../../src/adapters/telemetry/otlp-transport.js";
import { otlpExportFromEnvironment, type OtlpExportConfig, type OtlpProtocol } from "../../src/adapters/telemetry/otlp-config.js";
import { decodeSpans, type DecodedSpan } from "./otlp-decode.js";

export class SpanCapture implements OtlpTransport {
  readonly target = "capture";
  requests: Buffer[] = [];

  send(pieces: readonly Buffer[]): Promise<SendResult> {
    this.requests.push(Buffer.concat(pieces));
    return Promise.resolve({ ok: true });
  }

  close(): void {}

  reset(): void {
    this.requests = [];
  }

  /** The spans received so far; call after `hopwarden.flushSpans()`. */
  spans(): DecodedSpan[] {
    return this.requests.flatMap((bytes) => decodeSpans(bytes));
  }
}

/** An export configuration for `startHopwarden`'s tracing: the standard defaults, this protocol and URL. */
export function otlpExport(protocol: OtlpProtocol, url: string, timeoutMillis?: number): OtlpExportConfig {
  const config = otlpExportFromEnvironment({}, { protocol, url, ...(timeoutMillis !== undefined && { timeoutMillis }) });
  if (config === undefined) throw new Error("an explicit OTLP URL always yields an export configuration");
  return config;
}
