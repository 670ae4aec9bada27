// The decision-span queue: batches by size and age, exports one batch at a
// time, holds spans through a collector outage (backing off) up to its byte
// bound, and counts what it cannot hold as lost without encoding it.

import { afterEach, describe, expect, it, vi } from "vitest";
import type { Decision } from "../../core/decision/decision.js";
import { decodeSpans } from "../../../test/support/otlp-decode.js";
import { boundText } from "../text/bounded-text.js";
import type { DecisionSpan } from "./decision-span.js";
import { encodeResourceField, encodeScopeField } from "./decision-tracing.js";
import type { OtlpTransport, SendResult } from "./otlp-transport.js";
import { SpanBatchQueue, type SpanBatchQueueOptions } from "./span-batch-queue.js";

const DECISION: Decision = {
  allowed: true,
  reason: undefined,
  message: "allowed",
  decisionId: "01KB0000000000000000000000",
  policyVersion: "v1",
  decidedAtMs: 0,
  caller: "spiffe://example.org/agent/research",
  callee: "spiffe://example.org/agent/db",
  onBehalfOf: "alice@example.com",
  chain: ["spiffe://example.org/agent/orchestrator", "spiffe://example.org/agent/research"],
  hops: [],
  peerCertificateSha256: undefined,
  method: "GET",
  path: "/query",
  tokenId: undefined,
  tokenSha256: undefined,
  tokenPrev: undefined,
  callerBinding: undefined,
  mcp: undefined,
  txn: undefined,
};

let counter = 0;
function span(): DecisionSpan {
  counter++;
  return { traceId: counter.toString(16).padStart(32, "a"), spanId: counter.toString(16).padStart(16, "b"), parent: undefined, startPerfMs: 1, endPerfMs: 2, decision: DECISION };
}

/** A transport that answers from a script (then "ok"), and records what it was sent. */
class ScriptedTransport implements OtlpTransport {
  readonly target = "scripted";
  readonly sent: Buffer[] = [];
  closed = false;
  hang = false;
  constructor(private readonly script: SendResult[] = []) {}
  send(pieces: readonly Buffer[]): Promise<SendResult> {
    this.sent.push(Buffer.concat(pieces));
    if (this.hang) return new Promise(() => undefined);
    return Promise.resolve(this.script.shift() ?? { ok: true });
  }
  close(): void {
    this.closed = true;
  }
}

const retryable: SendResult = { ok: false, retryable: true, error: new Error("ECONNREFUSED") };
const fatal: SendResult = { ok: false, retryable: false, error: new Error("answered 400") };

function queue(transport: OtlpTransport, options: Partial<SpanBatchQueueOptions> = {}): SpanBatchQueue {
  return new SpanBatchQueue({ transport, resourceField: encodeResourceField({ "service.name": "t" }), scopeField: encodeScopeField(), bound: boundText, ...options });
}

afterEach(() => {
  vi.useRealTimers();
});

describe("batching", () => {
  it("sends the spans of one batch in one request, once the batch is old enough", async () => {
    vi.useFakeTimers();
    const transport = new ScriptedTransport();
    const q = queue(transport, { batchDelayMs: 200 });
    for (let i = 0; i < 5; i++) q.append(span());
    expect(q.stats).toMatchObject({ queuedSpans: 5 });
    expect(transport.sent).toHaveLength(0);
    await vi.advanceTimersByTimeAsync(200);
    expect(transport.sent).toHaveLength(1);
    expect(decodeSpans(transport.sent[0]!)).toHaveLength(5);
    expect(q.stats).toMatchObject({ exportedSpans: 5, queuedSpans: 0, queuedBytes: 0, lostSpans: 0 });
  });

  it("seals a batch as soon as it reaches its size", async () => {
    const transport = new ScriptedTransport();
    const q = queue(transport, { maxBatchBytes: 2_000, batchDelayMs: 60_000 });
    for (let i = 0; i < 20; i++) q.append(span());
    await q.flush();
    expect(transport.sent.length).toBeGreaterThan(2);
    expect(transport.sent.reduce((n, b) => n + decodeSpans(b).length, 0)).toBe(20);
    expect(q.stats.exportedSpans).toBe(20);
  });
});

describe("a collector outage", () => {
  it("keeps the batch on a retryable failure, backs off, and delivers it when the collector is back", async () => {
    vi.useFakeTimers();
    const transport = new ScriptedTransport([retryable, retryable]);
    const q = queue(transport, { batchDelayMs: 10, minBackoffMs: 100 });
    q.append(span());
    q.append(span());
    await vi.advanceTimersByTimeAsync(10);
    expect(transport.sent).toHaveLength(1);
    expect(q.stats).toMatchObject({ failedExports: 1, queuedSpans: 2, lostSpans: 0 });
    await vi.advanceTimersByTimeAsync(99);
    expect(transport.sent).toHaveLength(1); // still backing off
    await vi.advanceTimersByTimeAsync(1);
    expect(transport.sent).toHaveLength(2);
    await vi.advanceTimersByTimeAsync(199); // the back-off doubled
    expect(transport.sent).toHaveLength(2);
    await vi.advanceTimersByTimeAsync(1);
    expect(transport.sent).toHaveLength(3);
    expect(q.stats).toMatchObject({ exportedSpans: 2, failedExports: 2, queuedSpans: 0, lostSpans: 0 });
  });

  it("drops a batch the collector refuses for good, counting its spans as lost", async () => {
    const transport = new ScriptedTransport([fatal]);
    const q = queue(transport);
    q.append(span());
    q.append(span());
    await q.flush();
    q.append(span());
    await q.flush();
    expect(q.stats).toMatchObject({ lostSpans: 2, exportedSpans: 1, failedExports: 1, queuedSpans: 0 });
  });

  it("holds at most its byte bound, and counts the rest as lost without encoding them", () => {
    const transport = new ScriptedTransport(Array.from({ length: 100 }, () => retryable));
    const bound = vi.fn(boundText);
    const q = queue(transport, { maxQueueBytes: 4_096, maxBatchBytes: 1_024, batchDelayMs: 60_000, bound });
    for (let i = 0; i < 200; i++) q.append(span());
    expect(q.stats.queuedBytes).toBeLessThan(4_096 + 1_024);
    expect(q.stats.queuedSpans + q.stats.lostSpans).toBe(200);
    expect(q.stats.lostSpans).toBeGreaterThan(150);
    // Lost spans were never encoded: `bound` ran only as often as the kept spans alone make it run.
    const keptOnly = vi.fn(boundText);
    const roomy = queue(new ScriptedTransport([]), { batchDelayMs: 60_000, bound: keptOnly });
    for (let i = 0; i < q.stats.queuedSpans; i++) roomy.append(span());
    expect(bound.mock.calls.length).toBe(keptOnly.mock.calls.length);
  });
});

describe("shutdown", () => {
  it("sends what is queued and closes the transport", async () => {
    const transport = new ScriptedTransport();
    const q = queue(transport, { batchDelayMs: 60_000 });
    q.append(span());
    expect(await q.shutdown(1_000)).toBe(true);
    expect(transport.sent).toHaveLength(1);
    expect(transport.closed).toBe(true);
    q.append(span());
    expect(q.stats.lostSpans).toBe(1);
  });

  it("gives up at its deadline when the collector hangs", async () => {
    const transport = new ScriptedTransport();
    transport.hang = true;
    const q = queue(transport, { batchDelayMs: 60_000 });
    q.append(span());
    const started = Date.now();
    expect(await q.shutdown(200)).toBe(false);
    expect(Date.now() - started).toBeLessThan(1_000);
  });

  it("does not wait out a back-off", async () => {
    const transport = new ScriptedTransport([retryable, retryable]);
    const q = queue(transport, { batchDelayMs: 1, minBackoffMs: 60_000 });
    q.append(span());
    await new Promise((r) => setTimeout(r, 20));
    const started = Date.now();
    expect(await q.shutdown(2_000)).toBe(false);
    expect(Date.now() - started).toBeLessThan(1_000);
    expect(transport.sent).toHaveLength(2);
  });
});
