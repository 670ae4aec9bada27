// The decision spans waiting for the collector, as OTLP bytes: each span is
// encoded when it arrives (a few microseconds, so no step holds the event
// loop), appended to the open batch, and a batch is sealed when it is big
// enough or old enough. Exports run one at a time, off the Check path. The
// queue is bounded in BYTES: when it is full, a new span is counted as lost
// without being encoded, so a collector outage costs neither memory beyond
// the bound nor the Check path's CPU. A failure that a retry may cure (the
// collector is down, busy or slow) keeps the batch and backs off,
// exponentially; one that it cannot (the collector refused the bytes) drops
// the batch and counts its spans as failed.

import { WireWriter } from "../protobuf/wire.js";
import { silentLogger, type Logger } from "../logging/logger.js";
import type { DecisionSpan } from "./decision-span.js";
import { DecisionSpanEncoder, type BoundText } from "./decision-span-encoder.js";
import { REQUEST_RESOURCE_SPANS, RS_SCOPE_SPANS } from "./otlp-wire.js";
import type { OtlpTransport } from "./otlp-transport.js";

export interface SpanBatchQueueOptions {
  readonly transport: OtlpTransport;
  /** The encoded `ResourceSpans.resource` field, written once. */
  readonly resourceField: Buffer;
  /** The encoded `ScopeSpans.scope` field, written once. */
  readonly scopeField: Buffer;
  readonly bound: BoundText;
  /** Bytes of encoded spans held at most (queued and in flight). Default 16 MiB. */
  readonly maxQueueBytes?: number;
  /** A batch is sealed at this size. Default 512 KiB. */
  readonly maxBatchBytes?: number;
  /** ...or this long after its first span. Default 200 ms. */
  readonly batchDelayMs?: number;
  /** Back-off after a retryable failure: first delay, doubled up to the maximum. Defaults 250 ms and 30 s. */
  readonly minBackoffMs?: number;
  readonly maxBackoffMs?: number;
  readonly logger?: Logger;
}

export interface SpanQueueStats {
  /** Spans the collector accepted. */
  exportedSpans: number;
  /** Spans lost: the queue was full (never encoded) or the collector refused their batch for good. */
  lostSpans: number;
  /** Exports that failed (each retryable one is tried again after a back-off). */
  failedExports: number;
  /** Bytes of encoded spans held now. */
  queuedBytes: number;
  /** Spans held now. */
  queuedSpans: number;
}

interface Batch {
  readonly bytes: Buffer;
  readonly spans: number;
}

const DEFAULT_MAX_QUEUE_BYTES = 16 * 1024 * 1024;
const DEFAULT_MAX_BATCH_BYTES = 512 * 1024;

export class SpanBatchQueue {
  readonly stats: SpanQueueStats = { exportedSpans: 0, lostSpans: 0, failedExports: 0, queuedBytes: 0, queuedSpans: 0 };
  private readonly sealed: Batch[] = [];
  private open: WireWriter | undefined;
  private openSpans = 0;
  private sealTimer: NodeJS.Timeout | undefined;
  private backoffTimer: NodeJS.Timeout | undefined;
  private backoffMs = 0;
  private exporting: Promise<void> | undefined;
  private closed = false;
  private outageLogged = false;
  private readonly maxQueueBytes: number;
  private readonly maxBatchBytes: number;
  private readonly batchDelayMs: number;
  private readonly minBackoffMs: number;
  private readonly maxBackoffMs: number;
  private readonly log: Logger;

  private readonly encoder: DecisionSpanEncoder;

  constructor(private readonly options: SpanBatchQueueOptions) {
    this.encoder = new DecisionSpanEncoder(options.bound);
    this.maxQueueBytes = options.maxQueueBytes ?? DEFAULT_MAX_QUEUE_BYTES;
    this.maxBatchBytes = options.maxBatchBytes ?? DEFAULT_MAX_BATCH_BYTES;
    this.batchDelayMs = options.batchDelayMs ?? 200;
    this.minBackoffMs = options.minBackoffMs ?? 250;
    this.maxBackoffMs = options.maxBackoffMs ?? 30_000;
    this.log = options.logger ?? silentLogger;
  }

  /** Encodes and enqueues one span; never throws, never waits. */
  append(span: DecisionSpan): void {
    if (this.closed || this.stats.queuedBytes >= this.maxQueueBytes) {
      this.stats.lostSpans++;
      return;
    }
    let w = this.open;
    if (w === undefined) {
      w = this.open = new WireWriter(Math.min(this.maxBatchBytes + 4096, 64 * 1024));
      this.sealTimer = setTimeout(() => this.sealAndExport(), this.batchDelayMs);
      this.sealTimer.unref();
    }
    const before = w.length;
    try {
      this.encoder.write(w, span);
    } catch (error) {
      // A half-written span would corrupt the batch: start a fresh one.
      this.log.error("a decision span could not be encoded", { decision_id: span.decision.decisionId, error });
      this.stats.lostSpans++;
      this.stats.queuedBytes -= before;
      this.discardOpen();
      return;
    }
    this.openSpans++;
    this.stats.queuedSpans++;
    this.stats.queuedBytes += w.length - before;
    if (w.length >= this.maxBatchBytes) this.sealAndExport();
  }

  /** Seals the open batch and exports what is queued; resolves when the queue is empty or an export failed. */
  async flush(): Promise<void> {
    this.seal();
    for (;;) {
      if (this.exporting !== undefined) {
        await this.exporting;
        continue;
      }
      if (this.sealed.length === 0 || this.backingOff()) return;
      const before = this.stats.exportedSpans + this.stats.lostSpans;
      await this.exportHead();
      if (this.stats.exportedSpans + this.stats.lostSpans === before) return; // a retryable failure: stop here
    }
  }

  /** Stops taking spans and sends what is queued, bounded by `deadlineMs`; resolves true when everything went out. */
  async shutdown(deadlineMs: number): Promise<boolean> {
    this.closed = true;
    clearTimeout(this.sealTimer);
    clearTimeout(this.backoffTimer);
    this.backoffTimer = undefined;
    const deadline = new Promise<false>((resolve) => setTimeout(() => resolve(false), deadlineMs).unref());
    const drained = (async () => {
      await this.flush();
      return this.sealed.length === 0;
    })();
    const done = await Promise.race([drained, deadline]);
    this.options.transport.close();
    return done;
  }

  private discardOpen(): void {
    clearTimeout(this.sealTimer);
    this.stats.queuedSpans -= this.openSpans;
    this.stats.lostSpans += this.openSpans;
    this.open = undefined;
    this.openSpans = 0;
  }

  private seal(): void {
    clearTimeout(this.sealTimer);
    this.sealTimer = undefined;
    if (this.open === undefined || this.openSpans === 0) return;
    this.sealed.push({ bytes: this.open.finish(), spans: this.openSpans });
    this.open = undefined;
    this.openSpans = 0;
  }

  private sealAndExport(): void {
    this.seal();
    this.pump();
  }

  private backingOff(): boolean {
    return this.backoffTimer !== undefined;
  }

  private pump(): void {
    if (this.exporting !== undefined || this.backingOff() || this.sealed.length === 0 || this.closed) return;
    this.exporting = this.exportHead().finally(() => {
      this.exporting = undefined;
      this.pump();
    });
  }

  /** The request around a batch: ExportTraceServiceRequest { resource_spans { resource, scope_spans { scope, spans… } } }. */
  private requestHeader(spansLength: number): Buffer {
    const { resourceField, scopeField } = this.options;
    const scopeSpansLength = scopeField.length + spansLength;
    const inner = new WireWriter(16).lengthPrefix(RS_SCOPE_SPANS, scopeSpansLength).finish();
    const resourceSpansLength = resourceField.length + inner.length + scopeSpansLength;
    const w = new WireWriter(resourceField.length + scopeField.length + 32);
    w.lengthPrefix(REQUEST_RESOURCE_SPANS, resourceSpansLength).raw(resourceField).raw(inner).raw(scopeField);
    return w.finish();
  }

  private async exportHead(): Promise<void> {
    const batch = this.sealed[0];
    if (batch === undefined) return;
    const result = await this.options.transport.send([this.requestHeader(batch.bytes.length), batch.bytes]);
    if (result.ok) {
      this.sealed.shift();
      this.release(batch);
      this.stats.exportedSpans += batch.spans;
      this.backoffMs = 0;
      if (this.outageLogged) this.log.info("decision spans reach the collector again", { collector: this.options.transport.target });
      this.outageLogged = false;
      return;
    }
    this.stats.failedExports++;
    if (!result.retryable) {
      this.sealed.shift();
      this.release(batch);
      this.stats.lostSpans += batch.spans;
      this.log.warn("the collector refused a batch of decision spans; they are lost", { collector: this.options.transport.target, spans: batch.spans, error: result.error });
      return;
    }
    this.backoffMs = Math.min(this.maxBackoffMs, this.backoffMs === 0 ? this.minBackoffMs : this.backoffMs * 2);
    if (!this.outageLogged) {
      this.log.warn("decision spans cannot reach the collector; holding them (bounded) and retrying with back-off", {
        collector: this.options.transport.target,
        error: result.error,
        queued_bytes: this.stats.queuedBytes,
        max_queue_bytes: this.maxQueueBytes,
      });
      this.outageLogged = true;
    }
    if (this.closed) return;
    this.backoffTimer = setTimeout(() => {
      this.backoffTimer = undefined;
      this.pump();
    }, this.backoffMs);
    this.backoffTimer.unref();
  }

  private release(batch: Batch): void {
    this.stats.queuedBytes -= batch.bytes.length;
    this.stats.queuedSpans -= batch.spans;
  }
}
