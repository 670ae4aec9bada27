// One `authz.check` span per Check (SPEC 6): kind SERVER, child of Envoy's
// span whose context arrives in the gRPC metadata (W3C traceparent or B3),
// with the decision's attributes and one `authz.hop` event per evaluated hop.

import { ROOT_CONTEXT, SpanKind, SpanStatusCode, trace, type Span, type TextMapGetter, type TextMapPropagator, type Tracer } from "@opentelemetry/api";
import { CompositePropagator, W3CTraceContextPropagator } from "@opentelemetry/core";
import { B3InjectEncoding, B3Propagator } from "@opentelemetry/propagator-b3";
import type { Metadata } from "@grpc/grpc-js";
import { ALLOW_REASON, type Decision } from "../../core/decision/decision.js";

export const CHECK_SPAN_NAME = "authz.check";
export const HOP_EVENT_NAME = "authz.hop";

const metadataGetter: TextMapGetter<Metadata> = {
  keys: (carrier) => Object.keys(carrier.getMap()),
  get: (carrier, key) => {
    const values = carrier.get(key);
    if (values.length === 0) return undefined;
    return values.map((v) => (typeof v === "string" ? v : v.toString("utf8")));
  },
};

export function defaultPropagator(): TextMapPropagator {
  // B3 extraction reads both the single `b3` header and the multi-header form.
  return new CompositePropagator({
    propagators: [new W3CTraceContextPropagator(), new B3Propagator({ injectEncoding: B3InjectEncoding.MULTI_HEADER })],
  });
}

export class CheckSpanRecorder {
  constructor(
    private readonly tracer: Tracer,
    private readonly propagator: TextMapPropagator = defaultPropagator(),
  ) {}

  start(metadata: Metadata | undefined): Span {
    const parent = metadata === undefined ? ROOT_CONTEXT : this.propagator.extract(ROOT_CONTEXT, metadata, metadataGetter);
    return this.tracer.startSpan(CHECK_SPAN_NAME, { kind: SpanKind.SERVER }, parent);
  }

  end(span: Span, decision: Decision): void {
    span.setAttributes({
      "authz.decision": decision.allowed ? "allow" : "deny",
      "authz.reason": decision.reason ?? ALLOW_REASON,
      "authz.decision_id": decision.decisionId,
      "authz.policy.version": decision.policyVersion,
      "agent.caller": decision.caller ?? "",
      "agent.callee": decision.callee ?? "",
      "agent.on_behalf_of": decision.onBehalfOf ?? "",
      "agent.delegation.chain": [...decision.chain],
      "agent.delegation.depth": decision.chain.length,
      "http.request.method": decision.method,
      "url.path": pathOnly(decision.path),
    });
    if (decision.peerCertificateSha256 !== undefined) span.setAttribute("tls.client.hash.sha256", decision.peerCertificateSha256);
    if (decision.tokenId !== undefined) span.setAttribute("agent.delegation.token_id", decision.tokenId);
    for (const hop of decision.hops) {
      span.addEvent(HOP_EVENT_NAME, { from: hop.from, to: hop.to, rule: hop.rule, result: hop.result, cached: hop.cached });
    }
    if (decision.reason === "internal_error" || decision.reason === "policy_unavailable") {
      span.setStatus({ code: SpanStatusCode.ERROR, message: decision.reason });
    }
    span.end();
  }

  /** The ids to record beside the decision in the audit log, so log and trace join. */
  static ids(span: Span): { traceId: string; spanId: string } | undefined {
    const ctx = span.spanContext();
    return trace.isSpanContextValid(ctx) ? { traceId: ctx.traceId, spanId: ctx.spanId } : undefined;
  }
}

/** url.path is the path without its query string (OpenTelemetry semantic conventions). */
function pathOnly(target: string): string {
  const q = target.indexOf("?");
  return q === -1 ? target : target.slice(0, q);
}
