// What `hopwarden trace` asks Jaeger for: which kind of id it was given, and
// the time window of each search. Pure: the clock is passed in.

/** Jaeger trace ids: 32 hex digits (W3C), or 16 (64-bit B3 ids). */
const TRACE_ID = /^(?:[0-9a-f]{32}|[0-9a-f]{16})$/i;
/** Decision ids are ULIDs: 10 Crockford base32 digits of milliseconds, then 16 of randomness. */
const ULID = /^[0-7][0-9A-HJKMNP-TV-Z]{25}$/;
const CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";

const DURATION = /^(\d+(?:\.\d+)?)(ms|s|m|h|d|w)$/;
const UNIT_MS: Readonly<Record<string, number>> = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 };

/** How far around a decision id's own time to look for its span (clocks of hosts differ). */
export const DECISION_SEARCH_MARGIN_MS = 10 * 60_000;
/** Without a time in the id, how far back to look for a decision. */
export const DECISION_DEFAULT_LOOKBACK_MS = 2 * 86_400_000;
/** How far before and after a decision to look for the rest of its workflow. */
export const WORKFLOW_MARGIN_MS = 60 * 60_000;
/** --on-behalf-of without --since. */
export const ON_BEHALF_OF_DEFAULT_LOOKBACK_MS = 60 * 60_000;

export interface TimeWindow {
  readonly startMs: number;
  readonly endMs: number;
}

export type IdKind = "trace" | "decision";

/** A trace id is hex of trace-id length; anything else non-empty is taken for a decision id. */
export function classifyId(id: string): IdKind {
  return TRACE_ID.test(id) ? "trace" : "decision";
}

/** The millisecond time inside a ULID decision id; undefined when `id` is not a ULID. */
export function ulidTimeMs(id: string): number | undefined {
  if (!ULID.test(id)) return undefined;
  let ms = 0;
  for (const ch of id.slice(0, 10)) ms = ms * 32 + CROCKFORD.indexOf(ch);
  return ms;
}

/** "500ms", "90s", "15m", "2h", "7d", "1w" in milliseconds; undefined when `value` is not one. */
export function parseDurationMs(value: string): number | undefined {
  const match = DURATION.exec(value.trim());
  return match ? Number(match[1]) * UNIT_MS[match[2]!]! : undefined;
}

/**
 * A point in time from the command line: a duration back from now ("90s",
 * "15m", "2h", "7d", "1w") or an ISO 8601 time ("2026-11-23T10:00:00Z").
 * Undefined when it is neither.
 */
export function parseTimeBound(value: string, nowMs: number): number | undefined {
  const trimmed = value.trim();
  const duration = parseDurationMs(trimmed);
  if (duration !== undefined) return nowMs - duration;
  // A bare date or a time with an offset; Date.parse alone would also take "1" or "May 3".
  if (!/^\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?)?$/i.test(trimmed)) return undefined;
  const ms = Date.parse(trimmed);
  return Number.isNaN(ms) ? undefined : ms;
}

/** Where to search for one decision's span: around the time in its id, unless the user gave a window. */
export function decisionSearchWindow(decisionId: string, nowMs: number, given?: Partial<TimeWindow>): TimeWindow {
  if (given?.startMs !== undefined) return { startMs: given.startMs, endMs: given.endMs ?? nowMs };
  const at = ulidTimeMs(decisionId);
  if (at === undefined) return { startMs: nowMs - DECISION_DEFAULT_LOOKBACK_MS, endMs: given?.endMs ?? nowMs };
  return { startMs: at - DECISION_SEARCH_MARGIN_MS, endMs: given?.endMs ?? at + DECISION_SEARCH_MARGIN_MS };
}

/** Where to search for the rest of a decision's workflow, around its time. */
export function workflowSearchWindow(decisionAtMs: number, given?: Partial<TimeWindow>): TimeWindow {
  return {
    startMs: given?.startMs ?? decisionAtMs - WORKFLOW_MARGIN_MS,
    endMs: given?.endMs ?? decisionAtMs + WORKFLOW_MARGIN_MS,
  };
}
