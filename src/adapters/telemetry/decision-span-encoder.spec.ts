// The direct decision-span encoder against the OpenTelemetry SDK: for random
// decisions, the bytes a batch of ours carries decode to the same spans as
// the SDK's ProtobufTraceSerializer makes of the SDK-shaped span that the
// former recorder (SDK Span + setAttributes + addEvent) produced: same ids,
// parent, kind, times, attributes, hop events, status and flags. Both are
// decoded by a schema walker into a normalized tree (test/support/otlp-decode.ts).

import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { SpanKind, SpanStatusCode, TraceFlags, type Attributes, type HrTime } from "@opentelemetry/api";
import { TraceState } from "@opentelemetry/core";
import { resourceFromAttributes } from "@opentelemetry/resources";
import type { ReadableSpan } from "@opentelemetry/sdk-trace-base";
import { ProtobufTraceSerializer } from "@opentelemetry/otlp-transformer";
import { CALLER_BINDINGS, reasonOf, type Decision } from "../../core/decision/decision.js";
import { DENIAL_REASONS } from "../../core/reasons.js";
import { decodeSpans, decodeTree } from "../../../test/support/otlp-decode.js";
import { SpanCapture } from "../../../test/support/span-capture.js";
import { makeDecision } from "../../../test/support/decisions.js";
import { boundText } from "../text/bounded-text.js";
import { DECISION_SCOPE_NAME, spanChainItems, TIME_ORIGIN, type DecisionSpan } from "./decision-span.js";
import { decisionResourceAttributes, encodeResourceField, encodeScopeField } from "./decision-tracing.js";
import { SpanBatchQueue } from "./span-batch-queue.js";

const RESOURCE = decisionResourceAttributes("hopwarden");
/** One object: the SDK serializer groups spans by resource object. */
const SDK_RESOURCE = resourceFromAttributes(RESOURCE);
const SDK_SCOPE = { name: DECISION_SCOPE_NAME };

/** performance.now()-style offset → the SDK's HrTime, exactly, with BigInt arithmetic. */
function hrTimeOf(offsetMs: number): HrTime {
  const ns = BigInt(TIME_ORIGIN[0]) * 1_000_000_000n + BigInt(TIME_ORIGIN[1]) + BigInt(Math.round(offsetMs * 1_000_000));
  return [Number(ns / 1_000_000_000n), Number(ns % 1_000_000_000n)];
}

/** What the former SDK-based recorder made of a decision: its attribute map, events, status and parent. */
function referenceSpan(span: DecisionSpan, bound: (s: string) => string): ReadableSpan {
  const d = span.decision;
  const attributes: Attributes = {
    "authz.decision": d.allowed ? "allow" : "deny",
    "authz.reason": reasonOf(d),
    "authz.decision_id": d.decisionId,
    "authz.policy.version": d.policyVersion,
    "agent.caller": bound(d.caller ?? ""),
    "agent.callee": bound(d.callee ?? ""),
    "agent.on_behalf_of": bound(d.onBehalfOf ?? ""),
    "agent.delegation.chain": [...spanChainItems(d.chain)],
    "agent.delegation.depth": d.chain.length,
    "http.request.method": bound(d.method),
    "url.path": bound(d.path.split("?")[0]!),
  };
  if (d.peerCertificateSha256 !== undefined) attributes["tls.client.hash.sha256"] = d.peerCertificateSha256;
  if (d.tokenId !== undefined) attributes["agent.delegation.token_id"] = bound(d.tokenId);
  if (d.tokenSha256 !== undefined) attributes["agent.delegation.token_sha256"] = d.tokenSha256;
  if (d.tokenPrev !== undefined) attributes["agent.delegation.token_prev"] = bound(d.tokenPrev);
  if (d.callerBinding !== undefined) attributes["authz.caller.binding"] = d.callerBinding;
  if (d.mcp !== undefined) {
    attributes["mcp.method.name"] = bound(d.mcp.method);
    if (d.mcp.tool !== undefined) attributes["gen_ai.tool.name"] = bound(d.mcp.tool);
    if (d.mcp.resource !== undefined) attributes["mcp.resource.uri"] = bound(d.mcp.resource);
  }
  if (d.txn !== undefined) attributes["authz.txn"] = bound(d.txn);
  const end = hrTimeOf(span.endPerfMs);
  const failed = d.reason === "internal_error" || d.reason === "policy_unavailable";
  const ctx = { traceId: span.traceId, spanId: span.spanId, traceFlags: TraceFlags.SAMPLED, ...(span.parent?.traceState !== undefined && { traceState: new TraceState(span.parent.traceState) }) };
  return {
    name: "authz.check",
    kind: SpanKind.SERVER,
    spanContext: () => ctx,
    parentSpanContext: span.parent === undefined ? undefined : { traceId: span.traceId, spanId: span.parent.spanId, traceFlags: 0, isRemote: true },
    startTime: hrTimeOf(span.startPerfMs),
    endTime: end,
    status: failed ? { code: SpanStatusCode.ERROR, message: d.reason } : { code: SpanStatusCode.UNSET },
    attributes,
    links: [],
    events: d.hops.map((h) => ({ name: "authz.hop", time: end, attributes: { from: bound(h.from), to: bound(h.to), rule: h.rule, result: h.result, cached: h.cached }, droppedAttributesCount: 0 })),
    duration: [0, 0],
    ended: true,
    resource: SDK_RESOURCE,
    instrumentationScope: SDK_SCOPE,
    droppedAttributesCount: 0,
    droppedEventsCount: 0,
    droppedLinksCount: 0,
  };
}

async function ourBytes(spans: readonly DecisionSpan[], bound: (s: string) => string): Promise<Buffer> {
  const capture = new SpanCapture();
  const queue = new SpanBatchQueue({ transport: capture, resourceField: encodeResourceField(RESOURCE), scopeField: encodeScopeField(), bound });
  for (const span of spans) queue.append(span);
  await queue.flush();
  expect(capture.requests).toHaveLength(1);
  return capture.requests[0]!;
}

function sdkBytes(spans: readonly DecisionSpan[], bound: (s: string) => string): Uint8Array {
  return ProtobufTraceSerializer.serializeRequest(spans.map((s) => referenceSpan(s, bound))) ?? new Uint8Array();
}

// ---- random decisions ----

const hex = (bytes: number) => fc.uint8Array({ minLength: bytes, maxLength: bytes }).filter((b) => b.some((x) => x !== 0)).map((b) => Buffer.from(b).toString("hex"));
const text = fc.oneof(fc.string({ maxLength: 20 }), fc.constantFrom("spiffe://example.org/agent/research", "alice@example.com", "ä€😀", ""), fc.string({ unit: "binary", maxLength: 12 }));
const id = fc.constantFrom("spiffe://example.org/agent/orchestrator", "spiffe://example.org/agent/research", "spiffe://example.org/agent/db", "spiffe://other.org/x");
const hop = fc.record({ from: id, to: id, rule: fc.constantFrom("hops[0]", "hops[12]", ""), result: fc.constantFrom("allow" as const, "deny" as const), cached: fc.boolean(), detail: fc.constant("") });
const decision: fc.Arbitrary<Decision> = fc
  .record({
    reason: fc.option(fc.constantFrom(...DENIAL_REASONS), { nil: undefined }),
    decisionId: fc.string({ unit: fc.constantFrom(..."0123456789ABCDEFGHJKMNPQRSTVWXYZ"), minLength: 26, maxLength: 26 }),
    policyVersion: text,
    caller: fc.option(id, { nil: undefined }),
    callee: fc.option(id, { nil: undefined }),
    onBehalfOf: fc.option(text, { nil: undefined }),
    chain: fc.array(id, { maxLength: 6 }),
    hops: fc.array(hop, { maxLength: 6 }),
    peerCertificateSha256: fc.option(hex(32).map((h) => h.toUpperCase()), { nil: undefined }),
    method: text,
    path: fc.oneof(text, text.map((t) => `/q?${t}`)),
    tokenId: fc.option(text, { nil: undefined }),
    tokenSha256: fc.option(fc.oneof(hex(32).map((h) => Buffer.from(h, "hex").toString("base64url")), text), { nil: undefined }),
    tokenPrev: fc.option(fc.oneof(hex(32).map((h) => Buffer.from(h, "hex").toString("base64url")), text), { nil: undefined }),
    callerBinding: fc.option(fc.constantFrom(...CALLER_BINDINGS), { nil: undefined }),
    mcp: fc.option(fc.record({ method: fc.oneof(text, fc.constant("tools/call")), tool: fc.option(text, { nil: undefined }), resource: fc.option(text, { nil: undefined }) }), { nil: undefined }),
    txn: fc.option(text, { nil: undefined }),
  })
  .map((r) => makeDecision({ ...r, message: "m", decidedAtMs: 0 }));
const parent = fc.option(
  fc.record({ traceId: hex(16), spanId: hex(8), traceState: fc.option(fc.constantFrom("congo=t61rcWkgMzE", "a=1,b=2"), { nil: undefined }) }),
  { nil: undefined },
);
const decisionSpan: fc.Arbitrary<DecisionSpan> = fc
  .record({ parent, traceId: hex(16), spanId: hex(8), start: fc.double({ min: 0, max: 1e9, noNaN: true }), took: fc.double({ min: 0, max: 5_000, noNaN: true }), decision })
  .map(({ parent: p, traceId, spanId, start, took, decision: d }) => ({ traceId: p?.traceId ?? traceId, spanId, parent: p, startPerfMs: start, endPerfMs: start + took, decision: d }));

describe("decision spans: our bytes decode to the SDK serializer's spans", () => {
  it("for random decisions, parents and times, in batches (property)", async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(decisionSpan, { minLength: 1, maxLength: 4 }), async (spans) => {
        expect(decodeTree(await ourBytes(spans, boundText))).toEqual(decodeTree(sdkBytes(spans, boundText)));
      }),
      { numRuns: 300, seed: 42 },
    );
  });

  it("for decisions of one shape repeated with other ids, times and request lines, written from the shape's template (property)", async () => {
    // What a shape does not fix: taken from other random decisions, the shape's own fields from the first.
    const perCall = fc.array(decisionSpan, { minLength: 2, maxLength: 5 });
    await fc.assert(
      fc.asyncProperty(decisionSpan, perCall, async (first, others) => {
        const d = first.decision;
        const repeated = others.map((o) => ({
          ...o,
          decision: { ...o.decision, allowed: d.allowed, reason: d.reason, callee: d.callee, caller: d.caller, onBehalfOf: d.onBehalfOf, policyVersion: d.policyVersion, callerBinding: d.callerBinding, chain: [...d.chain], hops: d.hops.map((h) => ({ ...h })) } as Decision,
        }));
        const spans = [first, ...repeated];
        expect(decodeTree(await ourBytes(spans, boundText))).toEqual(decodeTree(sdkBytes(spans, boundText)));
      }),
      { numRuns: 200, seed: 43 },
    );
  });

  it("for a repeated shape too large for a template, encoded in full every time", async () => {
    const [span] = fc.sample(decisionSpan, { numRuns: 1, seed: 10 });
    const longChain = Array.from({ length: 12 }, (_, i) => `spiffe://example.org/agent/${"a".repeat(900)}${i}`);
    const large = { ...span!.decision, caller: longChain[11], chain: longChain, hops: longChain.slice(1).map((to, i) => ({ from: longChain[i]!, to, rule: "hops[0]", result: "allow" as const, cached: true, detail: "" })) } as Decision;
    const spans = [0, 1, 2].map((i) => ({ ...span!, spanId: `00f067aa0ba902b${i}`, decision: { ...large, decisionId: `01JBZ6Q6M3YV0V9F6X5K8T2R4${i}` } }));
    expect(decodeTree(await ourBytes(spans, boundText))).toEqual(decodeTree(sdkBytes(spans, boundText)));
  });

  // A denied chain holds as many entries as its header fits; 2,500 made a 74 KB span (review finding).
  it("for a chain of thousands of entries, which both keep to 64 (4 KiB) and a marker, with the real depth", async () => {
    const [span] = fc.sample(decisionSpan, { numRuns: 1, seed: 11 });
    const chain = Array.from({ length: 2500 }, (_, i) => `spiffe://example.org/agent/a${i}`);
    const denied = { ...span!, decision: { ...span!.decision, allowed: false, reason: "chain_too_long", chain, hops: [] } as Decision };
    const bytes = await ourBytes([denied], boundText);
    expect(decodeTree(bytes)).toEqual(decodeTree(sdkBytes([denied], boundText)));
    expect(bytes.length).toBeLessThan(8 * 1024);
    const [decoded] = decodeSpans(bytes);
    const kept = decoded!.attributes["agent.delegation.chain"] as string[];
    expect(kept).toHaveLength(65);
    expect(kept.slice(0, 64)).toEqual(chain.slice(0, 64));
    expect(kept[64]).toMatch(/^…\[truncated: 2500 items, \d+ bytes, sha256=[0-9a-f]{64}\]$/);
    expect(decoded!.attributes["agent.delegation.depth"]).toBe(2500);
  });

  it("for a chain of long IDs, which both keep to 4 KiB of entries and a marker", async () => {
    const [span] = fc.sample(decisionSpan, { numRuns: 1, seed: 12 });
    const chain = Array.from({ length: 10 }, (_, i) => `spiffe://example.org/agent/${"b".repeat(600)}${i}`);
    const denied = { ...span!, decision: { ...span!.decision, allowed: false, reason: "chain_too_long", chain, hops: [] } as Decision };
    const [decoded] = decodeSpans(await ourBytes([denied], boundText));
    const kept = decoded!.attributes["agent.delegation.chain"] as string[];
    expect(kept).toHaveLength(7);
    expect(kept.slice(0, 6)).toEqual(chain.slice(0, 6));
    expect(Buffer.byteLength(kept.slice(0, 6).join(""))).toBeLessThanOrEqual(4 * 1024);
    expect(kept[6]).toMatch(/^…\[truncated: 10 items, \d+ bytes, sha256=[0-9a-f]{64}\]$/);
  });

  it("for attacker-sized strings, which both keep only up to the bound", async () => {
    const big = "x".repeat(60 * 1024);
    const [span] = fc.sample(decisionSpan, { numRuns: 1, seed: 9 });
    const huge = { ...span!, decision: { ...span!.decision, method: big, path: `/${big}?q`, onBehalfOf: big, mcp: { method: big, tool: big, resource: big }, txn: big, tokenId: big, tokenPrev: big } };
    const bytes = await ourBytes([huge], boundText);
    expect(decodeTree(bytes)).toEqual(decodeTree(sdkBytes([huge], boundText)));
    expect(bytes.length).toBeLessThan(16 * 1024);
    const [decoded] = decodeSpans(bytes);
    for (const name of ["http.request.method", "mcp.method.name", "gen_ai.tool.name", "mcp.resource.uri", "authz.txn", "agent.delegation.token_id", "agent.delegation.token_prev"]) {
      expect(decoded!.attributes[name], name).toMatch(/…\[truncated: 61440 bytes, sha256=[0-9a-f]{64}\]$/);
    }
  });
});

describe("the span a decision makes", () => {
  const base = fc.sample(decisionSpan, { numRuns: 1, seed: 3 })[0]!;

  it("is a SERVER span named authz.check under the hopwarden.authz scope, sampled, with a remote parent flagged", async () => {
    const withParent = { ...base, parent: { traceId: base.traceId, spanId: "00f067aa0ba902b7", traceState: undefined } };
    const [span] = decodeSpans(await ourBytes([withParent], boundText));
    expect(span).toMatchObject({ name: "authz.check", kind: 2, scope: "hopwarden.authz", parentSpanId: "00f067aa0ba902b7", flags: 0x301 });
    expect(span!.resource["service.name"]).toBe("hopwarden");
    const [root] = decodeSpans(await ourBytes([{ ...base, parent: undefined }], boundText));
    expect(root).toMatchObject({ parentSpanId: "", flags: 0x101 });
  });

  it("carries SPEC 8's attributes: the caller binding, the MCP method and tool, the transaction", async () => {
    const agentCall = { ...base, decision: { ...base.decision, callerBinding: "principal" as const, mcp: { method: "tools/call", tool: "search_docs", resource: undefined }, txn: "txn-42" } };
    const [span] = decodeSpans(await ourBytes([agentCall], boundText));
    expect(span!.attributes).toMatchObject({ "authz.caller.binding": "principal", "mcp.method.name": "tools/call", "gen_ai.tool.name": "search_docs", "authz.txn": "txn-42" });
    expect(span!.attributes).not.toHaveProperty("mcp.resource.uri");
    const none = { ...base, decision: { ...base.decision, callerBinding: undefined, mcp: undefined, txn: undefined } };
    const [plain] = decodeSpans(await ourBytes([none], boundText));
    for (const name of ["authz.caller.binding", "mcp.method.name", "gen_ai.tool.name", "authz.txn"]) expect(plain!.attributes).not.toHaveProperty(name);
  });

  it("SPEC 5: names the delegation token by its hash and gives its prev, so each hop's token_prev is the previous hop's token_sha256", async () => {
    const prev = Buffer.alloc(32, 1).toString("base64url");
    const sha = Buffer.alloc(32, 2).toString("base64url");
    const first = { ...base, decision: { ...base.decision, tokenId: "jti-1", tokenSha256: prev, tokenPrev: undefined } };
    const second = { ...base, decision: { ...base.decision, tokenId: "jti-2", tokenSha256: sha, tokenPrev: prev } };
    const [a, b] = decodeSpans(await ourBytes([first, second], boundText));
    expect(a!.attributes).toMatchObject({ "agent.delegation.token_id": "jti-1", "agent.delegation.token_sha256": prev });
    expect(a!.attributes).not.toHaveProperty("agent.delegation.token_prev");
    expect(b!.attributes).toMatchObject({ "agent.delegation.token_id": "jti-2", "agent.delegation.token_sha256": sha, "agent.delegation.token_prev": prev });
    const none = { ...base, decision: { ...base.decision, tokenId: undefined, tokenSha256: undefined, tokenPrev: undefined } };
    const [plain] = decodeSpans(await ourBytes([none], boundText));
    for (const name of ["agent.delegation.token_id", "agent.delegation.token_sha256", "agent.delegation.token_prev"]) expect(plain!.attributes).not.toHaveProperty(name);
  });

  it("has an ERROR status only when the service failed", async () => {
    const failed = { ...base, decision: { ...base.decision, allowed: false as const, reason: "internal_error" as const } };
    expect(decodeSpans(await ourBytes([failed], boundText))[0]!.status).toEqual({ code: 2, message: "internal_error" });
    const denied = { ...base, decision: { ...base.decision, allowed: false as const, reason: "hop_not_allowed" as const } };
    expect(decodeSpans(await ourBytes([denied], boundText))[0]!.status).toEqual({ code: 0, message: "" });
  });

  it("times its start and end to the nanosecond from performance.now()", async () => {
    const timed = { ...base, startPerfMs: 1234.000001, endPerfMs: 1234.5 };
    const [span] = decodeSpans(await ourBytes([timed], boundText));
    const origin = BigInt(TIME_ORIGIN[0]) * 1_000_000_000n + BigInt(TIME_ORIGIN[1]);
    expect(span!.startTimeUnixNano - origin).toBe(1_234_000_001n);
    expect(span!.endTimeUnixNano - origin).toBe(1_234_500_000n);
  });
});
