// Encodes a DecisionSpan as one OTLP `Span` (opentelemetry/proto/trace/v1),
// straight from the Decision: no attribute map, no SDK objects. A span is
// appended to a ScopeSpans body as field `spans`; the request around a batch
// (resource, scope) is written once per export (span-batch-queue.ts).
// Attributes and events are SPEC 6's and 8's, and SPEC 5's token hash chain;
// attacker-supplied strings (method, path, on-behalf-of, identities, MCP
// names, token claims) pass through `bound` first (SPEC 6: kept up to 1,024
// bytes, then cut with a marker); the chain is bounded as a list, in entries
// and bytes, as audit records bound it (spanChainItems).
//
// What a decision's shape fixes (decision-shape-cache.ts: the outcome, the
// agents, the person, the policy version, the hop events) is kept encoded
// per shape and copied; the ids, times and request line are written per span.

import { reasonOf, type Decision } from "../../core/decision/decision.js";
import { DecisionShapeCache } from "../cache/decision-shape-cache.js";
import { WireWriter } from "../protobuf/wire.js";
import { CHECK_SPAN_NAME, HOP_EVENT_NAME, isServiceFailure, pathWithoutQuery, spanChainItems, TIME_ORIGIN, type DecisionSpan } from "./decision-span.js";
import {
  EVENT_ATTRIBUTES,
  EVENT_NAME,
  EVENT_TIME,
  FLAGS_HAS_IS_REMOTE,
  FLAGS_IS_REMOTE,
  SPAN_ATTRIBUTES,
  SPAN_END,
  SPAN_EVENTS,
  SPAN_FLAGS,
  SPAN_KIND,
  SPAN_NAME,
  SPAN_PARENT_SPAN_ID,
  SPAN_SPAN_ID,
  SPAN_START,
  SPAN_STATUS,
  SPAN_TRACE_ID,
  SPAN_TRACE_STATE,
  SS_SPANS,
  STATUS_CODE,
  STATUS_MESSAGE,
  writeBoolAttribute,
  writeOffsetTime,
  writeIntAttribute,
  writeName,
  writeStringArrayAttribute,
  writeStringAttribute,
  writeUncachedStringAttribute,
} from "./otlp-wire.js";

/** OTLP's Span.SpanKind: SERVER. */
const KIND_SERVER = 2;
/** OTLP's Status.StatusCode: ERROR. */
const STATUS_ERROR = 2;
/** W3C trace flags of every decision span: sampled, always (SPEC 6). */
const SAMPLED = 0x01;

/** Shortens an attacker-supplied string to what a span keeps of it. */
export type BoundText = (value: string) => string;

/** The encoded parts of a span that a decision's shape fixes, in the order they are written. */
interface SpanTemplate {
  /** authz.decision, authz.reason. */
  readonly outcome: Uint8Array;
  /** authz.policy.version through agent.delegation.depth. */
  readonly agents: Uint8Array;
  /** authz.caller.binding, or nothing. */
  readonly binding: Uint8Array;
  /** Each hop event's name and attributes (its time is the span's end, written per span). */
  readonly hopEvents: readonly Uint8Array[];
}

/** Shapes whose template would be larger are encoded every time. */
const MAX_TEMPLATE_BYTES = 8192;

/** Writes decision spans; one per span queue, since the template depends on `bound`. */
export class DecisionSpanEncoder {
  /** null: the shape's template would be too large, so its spans are encoded in full (and the template is not built again). */
  private readonly templates = new DecisionShapeCache<SpanTemplate | null>();
  private readonly scratch = new WireWriter(1024);

  constructor(private readonly bound: BoundText) {}

  /** Appends `span` as one `ScopeSpans.spans` field. */
  write(w: WireWriter, span: DecisionSpan): void {
    const d = span.decision;
    let template = this.templates.get(d);
    if (template === undefined) {
      template = this.buildTemplate(d);
      this.templates.set(d, template);
    }
    const bound = this.bound;
    w.fork(SS_SPANS);
    w.hexBytes(SPAN_TRACE_ID, span.traceId);
    w.hexBytes(SPAN_SPAN_ID, span.spanId);
    if (span.parent?.traceState !== undefined) w.string(SPAN_TRACE_STATE, span.parent.traceState);
    if (span.parent !== undefined) w.hexBytes(SPAN_PARENT_SPAN_ID, span.parent.spanId);
    writeName(w, SPAN_NAME, CHECK_SPAN_NAME);
    w.varint(SPAN_KIND, KIND_SERVER);
    writeOffsetTime(w, SPAN_START, TIME_ORIGIN, span.startPerfMs);
    writeOffsetTime(w, SPAN_END, TIME_ORIGIN, span.endPerfMs);

    if (template !== null) w.raw(template.outcome);
    else writeOutcome(w, d);
    // Unique per span: the pair cache could only miss.
    writeUncachedStringAttribute(w, A, "authz.decision_id", d.decisionId);
    if (template !== null) w.raw(template.agents);
    else writeAgents(w, d, bound);
    writeStringAttribute(w, A, "http.request.method", bound(d.method));
    writeStringAttribute(w, A, "url.path", bound(pathWithoutQuery(d.path)));
    if (d.peerCertificateSha256 !== undefined) writeStringAttribute(w, A, "tls.client.hash.sha256", d.peerCertificateSha256);
    if (d.tokenId !== undefined) writeStringAttribute(w, A, "agent.delegation.token_id", bound(d.tokenId));
    // SPEC 5's hash chain: this hop's token_prev is the previous hop's token_sha256. The hash is this service's own (not bounded, like the certificate's); prev is the issuer's.
    if (d.tokenSha256 !== undefined) writeStringAttribute(w, A, "agent.delegation.token_sha256", d.tokenSha256);
    if (d.tokenPrev !== undefined) writeStringAttribute(w, A, "agent.delegation.token_prev", bound(d.tokenPrev));
    if (template !== null) w.raw(template.binding);
    else writeBinding(w, d);
    // SPEC 8. The MCP names come from the request body (through Envoy's MCP filter): bounded like every request string.
    if (d.mcp !== undefined) {
      writeStringAttribute(w, A, "mcp.method.name", bound(d.mcp.method));
      if (d.mcp.tool !== undefined) writeStringAttribute(w, A, "gen_ai.tool.name", bound(d.mcp.tool));
      if (d.mcp.resource !== undefined) writeStringAttribute(w, A, "mcp.resource.uri", bound(d.mcp.resource));
    }
    if (d.txn !== undefined) writeStringAttribute(w, A, "authz.txn", bound(d.txn));

    for (let i = 0; i < d.hops.length; i++) {
      w.fork(SPAN_EVENTS);
      writeOffsetTime(w, EVENT_TIME, TIME_ORIGIN, span.endPerfMs);
      if (template !== null) w.raw(template.hopEvents[i]!);
      else writeHopEvent(w, d.hops[i]!, bound);
      w.join();
    }
    if (isServiceFailure(d)) {
      w.fork(SPAN_STATUS).string(STATUS_MESSAGE, reasonOf(d)).varint(STATUS_CODE, STATUS_ERROR).join();
    }
    w.fixed32(SPAN_FLAGS, SAMPLED | FLAGS_HAS_IS_REMOTE | (span.parent !== undefined ? FLAGS_IS_REMOTE : 0));
    w.join();
  }

  private buildTemplate(d: Decision): SpanTemplate | null {
    const w = this.scratch.reset();
    const piece = (write: () => void): Uint8Array => {
      const start = w.length;
      write();
      return new Uint8Array(w.finish().subarray(start)); // a copy: the scratch writer is reused
    };
    const outcome = piece(() => writeOutcome(w, d));
    const agents = piece(() => writeAgents(w, d, this.bound));
    const binding = piece(() => writeBinding(w, d));
    const hopEvents = d.hops.map((hop) => piece(() => writeHopEvent(w, hop, this.bound)));
    return w.length > MAX_TEMPLATE_BYTES ? null : { outcome, agents, binding, hopEvents };
  }
}

const A = SPAN_ATTRIBUTES;

/** For items bounded already (spanChainItems): bounding a kept item again would cut its marker. */
const asBounded: BoundText = (value) => value;

function writeOutcome(w: WireWriter, d: Decision): void {
  writeStringAttribute(w, A, "authz.decision", d.allowed ? "allow" : "deny");
  writeStringAttribute(w, A, "authz.reason", reasonOf(d));
}

function writeAgents(w: WireWriter, d: Decision, bound: BoundText): void {
  writeStringAttribute(w, A, "authz.policy.version", d.policyVersion);
  writeStringAttribute(w, A, "agent.caller", bound(d.caller ?? ""));
  writeStringAttribute(w, A, "agent.callee", bound(d.callee ?? ""));
  writeStringAttribute(w, A, "agent.on_behalf_of", bound(d.onBehalfOf ?? ""));
  writeStringArrayAttribute(w, A, "agent.delegation.chain", spanChainItems(d.chain), asBounded);
  writeIntAttribute(w, A, "agent.delegation.depth", d.chain.length);
}

function writeBinding(w: WireWriter, d: Decision): void {
  if (d.callerBinding !== undefined) writeStringAttribute(w, A, "authz.caller.binding", d.callerBinding);
}

/** An authz.hop event's name and attributes; its time is written before them by the caller. */
function writeHopEvent(w: WireWriter, hop: Decision["hops"][number], bound: BoundText): void {
  writeName(w, EVENT_NAME, HOP_EVENT_NAME);
  writeStringAttribute(w, EVENT_ATTRIBUTES, "from", bound(hop.from));
  writeStringAttribute(w, EVENT_ATTRIBUTES, "to", bound(hop.to));
  writeStringAttribute(w, EVENT_ATTRIBUTES, "rule", hop.rule);
  writeStringAttribute(w, EVENT_ATTRIBUTES, "result", hop.result);
  writeBoolAttribute(w, EVENT_ATTRIBUTES, "cached", hop.cached);
}
