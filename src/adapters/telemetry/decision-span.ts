// The `authz.check` span of one decision (SPEC 6), as a compact immutable
// record that the Check path hands over: the Decision itself, the span's
// ids, Envoy's span as its remote parent, and two times. No SDK Span object
// and no per-call closure: the record is encoded straight to OTLP bytes
// (decision-span-encoder.ts).

import type { Decision } from "../../core/decision/decision.js";
import { boundTextList } from "../text/bounded-text.js";
import type { TraceParent } from "./trace-parent.js";

export const CHECK_SPAN_NAME = "authz.check";
export const HOP_EVENT_NAME = "authz.hop";
/** The instrumentation scope decision spans are recorded under. */
export const DECISION_SCOPE_NAME = "hopwarden.authz";

/** The span's identity, fixed when the Check starts so the audit record can name it. */
export interface DecisionSpanIds {
  /** 32 lower-case hex digits: the parent's trace, or a new one. */
  readonly traceId: string;
  /** 16 lower-case hex digits. */
  readonly spanId: string;
  readonly parent: TraceParent | undefined;
  /** performance.now() when the Check arrived (see TIME_ORIGIN). */
  readonly startPerfMs: number;
}

export interface DecisionSpan extends DecisionSpanIds {
  /** performance.now() when the answer was sent. */
  readonly endPerfMs: number;
  readonly decision: Decision;
}

/**
 * performance.timeOrigin as [seconds, nanoseconds] since the epoch. Span times
 * are this plus performance.now(): a small number of milliseconds keeps its
 * nanoseconds as a double, where epoch milliseconds would round them to
 * about a quarter of a microsecond.
 */
export const TIME_ORIGIN: readonly [number, number] = (() => {
  const seconds = Math.floor(performance.timeOrigin / 1000);
  return [seconds, Math.round((performance.timeOrigin - seconds * 1000) * 1_000_000)];
})();

/** url.path is the path without its query string (OpenTelemetry semantic conventions). */
export function pathWithoutQuery(target: string): string {
  const q = target.indexOf("?");
  return q === -1 ? target : target.slice(0, q);
}

/** The decisions whose span status is ERROR: the service failed, rather than the request. */
export function isServiceFailure(decision: Decision): boolean {
  return decision.reason === "internal_error" || decision.reason === "policy_unavailable";
}

/** What a span keeps of a chain, as an audit record does: a denied chain can hold as many entries as its header fits. */
export const SPAN_CHAIN_BOUNDS = { maxItems: 64, maxBytes: 4 * 1024 } as const;

/**
 * The `agent.delegation.chain` items of a decision (SPEC 6): each entry
 * bounded, as many as fit SPAN_CHAIN_BOUNDS, then one marker for them all.
 * Written as they are: an item is already bounded.
 */
export function spanChainItems(chain: readonly string[]): readonly string[] {
  return boundTextList(chain, SPAN_CHAIN_BOUNDS);
}
