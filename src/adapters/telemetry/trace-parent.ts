// Envoy's span context, read from the gRPC call metadata of a Check (SPEC 6):
// W3C `traceparent` (+ `tracestate`), else B3 in its single-header form `b3`,
// else B3's multi-header form (`x-b3-traceid`, `x-b3-spanid`). A header that
// does not parse is ignored (the span starts a new trace) rather than
// trusted: trace context is a join key, not a security fact. This replaces
// the OpenTelemetry propagators on the hot path, which build a Context and a
// SpanContext object per call.

/** The remote parent of a decision span: lower-case hex ids. */
export interface TraceParent {
  /** 32 hex digits, not all zero. */
  readonly traceId: string;
  /** 16 hex digits, not all zero: Envoy's span. */
  readonly spanId: string;
  /** W3C tracestate, passed on unchanged when it is short enough to be one. */
  readonly traceState: string | undefined;
}

/** What the reader needs of grpc-js Metadata. */
export interface MetadataReader {
  get(key: string): ReadonlyArray<string | Buffer>;
}

const MAX_TRACESTATE_LENGTH = 512;
const PRINTABLE_ASCII = /^[\x20-\x7e]*$/;

function isLowerHex(value: string, start: number, end: number): boolean {
  for (let i = start; i < end; i++) {
    const c = value.charCodeAt(i);
    if (!((c >= 0x30 && c <= 0x39) || (c >= 0x61 && c <= 0x66))) return false;
  }
  return true;
}

function isAllZero(value: string): boolean {
  for (let i = 0; i < value.length; i++) if (value.charCodeAt(i) !== 0x30) return false;
  return true;
}

function first(metadata: MetadataReader, key: string): string | undefined {
  const values = metadata.get(key);
  if (values.length !== 1) return undefined; // absent, or repeated: ambiguous
  const v = values[0]!;
  return typeof v === "string" ? v : undefined;
}

/** version "-" trace-id "-" parent-id "-" flags, W3C Trace Context level 1; later versions may append fields. */
export function parseTraceparent(value: string): { traceId: string; spanId: string } | undefined {
  if (value.length < 55) return undefined;
  if (value[2] !== "-" || value[35] !== "-" || value[52] !== "-") return undefined;
  if (!isLowerHex(value, 0, 2) || value.startsWith("ff")) return undefined;
  if (value.startsWith("00") && value.length !== 55) return undefined;
  if (value.length > 55 && value[55] !== "-") return undefined;
  if (!isLowerHex(value, 3, 35) || !isLowerHex(value, 36, 52) || !isLowerHex(value, 53, 55)) return undefined;
  const traceId = value.slice(3, 35);
  const spanId = value.slice(36, 52);
  if (isAllZero(traceId) || isAllZero(spanId)) return undefined;
  return { traceId, spanId };
}

/** A B3 trace id of 16 or 32 hex digits, widened to 32. */
function b3TraceId(value: string): string | undefined {
  if ((value.length !== 16 && value.length !== 32) || !isLowerHex(value, 0, value.length) || isAllZero(value)) return undefined;
  return value.length === 16 ? `0000000000000000${value}` : value;
}

function b3SpanId(value: string): string | undefined {
  return value.length === 16 && isLowerHex(value, 0, 16) && !isAllZero(value) ? value : undefined;
}

/** `b3: {trace}-{span}[-{sampled}[-{parent}]]`; a lone sampling state carries no parent. */
export function parseB3Single(value: string): { traceId: string; spanId: string } | undefined {
  if (value.length > 68) return undefined;
  const parts = value.split("-");
  if (parts.length < 2 || parts.length > 4) return undefined;
  const traceId = b3TraceId(parts[0]!);
  const spanId = b3SpanId(parts[1]!);
  return traceId !== undefined && spanId !== undefined ? { traceId, spanId } : undefined;
}

export function readTraceParent(metadata: MetadataReader): TraceParent | undefined {
  const traceparent = first(metadata, "traceparent");
  if (traceparent !== undefined) {
    const parsed = parseTraceparent(traceparent);
    if (parsed !== undefined) {
      const state = first(metadata, "tracestate");
      // W3C tracestate is printable ASCII; grpc-js's Metadata drops anything else, and so do we on every path.
      const traceState = state !== undefined && state.length > 0 && state.length <= MAX_TRACESTATE_LENGTH && PRINTABLE_ASCII.test(state) ? state : undefined;
      return { ...parsed, traceState };
    }
  }
  const b3 = first(metadata, "b3");
  if (b3 !== undefined) {
    const parsed = parseB3Single(b3);
    if (parsed !== undefined) return { ...parsed, traceState: undefined };
  }
  const traceHeader = first(metadata, "x-b3-traceid");
  const spanHeader = first(metadata, "x-b3-spanid");
  if (traceHeader !== undefined && spanHeader !== undefined) {
    const traceId = b3TraceId(traceHeader);
    const spanId = b3SpanId(spanHeader);
    if (traceId !== undefined && spanId !== undefined) return { traceId, spanId, traceState: undefined };
  }
  return undefined;
}
