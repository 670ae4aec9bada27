// OTLP protobuf encoding of finished spans (ExportTraceServiceRequest,
// opentelemetry/proto/collector/trace/v1), written straight from the SDK's
// ReadableSpan with the hot-path WireWriter. The SDK's serializer costs more
// per span than deciding a Check; this writes the same message (the tests
// decode both and compare) without intermediate objects. Spans are grouped
// by resource and instrumentation scope object, in first-seen order, as the
// SDK's serializer groups them. Zero-valued scalars are left out (proto3
// defaults); the SDK writes some of them explicitly, which decodes the same.

import type { Attributes, HrTime, Link } from "@opentelemetry/api";
import type { ReadableSpan, TimedEvent } from "@opentelemetry/sdk-trace-base";
import { WireType, WireWriter } from "../protobuf/wire.js";

// ExportTraceServiceRequest
const REQUEST_RESOURCE_SPANS = 1;
// ResourceSpans
const RS_RESOURCE = 1;
const RS_SCOPE_SPANS = 2;
const RS_SCHEMA_URL = 3;
// Resource
const RESOURCE_ATTRIBUTES = 1;
// ScopeSpans
const SS_SCOPE = 1;
const SS_SPANS = 2;
const SS_SCHEMA_URL = 3;
// InstrumentationScope
const SCOPE_NAME = 1;
const SCOPE_VERSION = 2;
const SCOPE_ATTRIBUTES = 3;
const SCOPE_DROPPED_ATTRIBUTES = 4;
// Span
const SPAN_TRACE_ID = 1;
const SPAN_SPAN_ID = 2;
const SPAN_TRACE_STATE = 3;
const SPAN_PARENT_SPAN_ID = 4;
const SPAN_NAME = 5;
const SPAN_KIND = 6;
const SPAN_START = 7;
const SPAN_END = 8;
const SPAN_ATTRIBUTES = 9;
const SPAN_DROPPED_ATTRIBUTES = 10;
const SPAN_EVENTS = 11;
const SPAN_DROPPED_EVENTS = 12;
const SPAN_LINKS = 13;
const SPAN_DROPPED_LINKS = 14;
const SPAN_STATUS = 15;
const SPAN_FLAGS = 16;
// Span.Event
const EVENT_TIME = 1;
const EVENT_NAME = 2;
const EVENT_ATTRIBUTES = 3;
const EVENT_DROPPED_ATTRIBUTES = 4;
// Span.Link
const LINK_TRACE_ID = 1;
const LINK_SPAN_ID = 2;
const LINK_TRACE_STATE = 3;
const LINK_ATTRIBUTES = 4;
const LINK_DROPPED_ATTRIBUTES = 5;
const LINK_FLAGS = 6;
// Status
const STATUS_MESSAGE = 2;
const STATUS_CODE = 3;
// KeyValue, KeyValueList, ArrayValue
const KV_KEY = 1;
const KV_VALUE = 2;
const LIST_VALUES = 1;
// AnyValue
const ANY_STRING = 1;
const ANY_BOOL = 2;
const ANY_INT = 3;
const ANY_DOUBLE = 4;
const ANY_ARRAY = 5;
const ANY_KVLIST = 6;
const ANY_BYTES = 7;

// Span.flags: the low byte is the W3C trace flags; bit 8 says whether bit 9 (parent is remote) is known.
const FLAGS_HAS_IS_REMOTE = 0x100;
const FLAGS_IS_REMOTE = 0x200;

const INT64_MIN = -(2 ** 63);
const INT64_END = 2 ** 63;
const TWO_32 = 0x100000000;
const TWO_16 = 0x10000;
const NANOS_PER_SECOND = 1_000_000_000;

/** Bytes reserved per span for the first buffer: the largest seen so far, plus a margin; the writer grows past it when needed. */
let bytesPerSpanEstimate = 1024;

type Resource = ReadableSpan["resource"];
type Scope = ReadableSpan["instrumentationScope"];

/** Encodes `spans` as one ExportTraceServiceRequest. */
export function encodeExportTraceServiceRequest(spans: readonly ReadableSpan[]): Buffer {
  const w = new WireWriter(Math.max(512, spans.length * bytesPerSpanEstimate));
  for (const [resource, scopes] of groupSpans(spans)) {
    w.fork(REQUEST_RESOURCE_SPANS);
    writeResource(w, resource);
    for (const [scope, scopeSpans] of scopes) {
      w.fork(RS_SCOPE_SPANS);
      writeScope(w, scope);
      for (const span of scopeSpans) writeSpan(w, span);
      if (scope.schemaUrl) w.string(SS_SCHEMA_URL, scope.schemaUrl);
      w.join();
    }
    if (resource.schemaUrl) w.string(RS_SCHEMA_URL, resource.schemaUrl);
    w.join();
  }
  const body = w.finish();
  if (spans.length > 0) bytesPerSpanEstimate = Math.min(64 * 1024, Math.max(bytesPerSpanEstimate, Math.ceil((body.length / spans.length) * 1.25)));
  return body;
}

/** Resource → scope → spans, by object identity, in first-seen order; consecutive spans of one tracer skip the lookups. */
function groupSpans(spans: readonly ReadableSpan[]): Map<Resource, Map<Scope, ReadableSpan[]>> {
  const byResource = new Map<Resource, Map<Scope, ReadableSpan[]>>();
  let lastResource: Resource | undefined;
  let lastScope: Scope | undefined;
  let lastList: ReadableSpan[] | undefined;
  for (const span of spans) {
    if (span.resource === lastResource && span.instrumentationScope === lastScope && lastList !== undefined) {
      lastList.push(span);
      continue;
    }
    let byScope = byResource.get(span.resource);
    if (byScope === undefined) {
      byScope = new Map();
      byResource.set(span.resource, byScope);
    }
    let list = byScope.get(span.instrumentationScope);
    if (list === undefined) {
      list = [];
      byScope.set(span.instrumentationScope, list);
    }
    list.push(span);
    lastResource = span.resource;
    lastScope = span.instrumentationScope;
    lastList = list;
  }
  return byResource;
}

function writeResource(w: WireWriter, resource: Resource): void {
  w.fork(RS_RESOURCE);
  writeAttributes(w, RESOURCE_ATTRIBUTES, resource.attributes);
  w.join();
}

function writeScope(w: WireWriter, scope: Scope): void {
  w.fork(SS_SCOPE);
  w.string(SCOPE_NAME, scope.name);
  if (scope.version) w.string(SCOPE_VERSION, scope.version);
  const extra = scope as { attributes?: Attributes; droppedAttributesCount?: number };
  if (extra.attributes !== undefined) writeAttributes(w, SCOPE_ATTRIBUTES, extra.attributes);
  if (extra.droppedAttributesCount) w.varint(SCOPE_DROPPED_ATTRIBUTES, extra.droppedAttributesCount);
  w.join();
}

function writeSpan(w: WireWriter, span: ReadableSpan): void {
  const ctx = span.spanContext();
  const parent = span.parentSpanContext;
  w.fork(SS_SPANS);
  w.hexBytes(SPAN_TRACE_ID, ctx.traceId);
  w.hexBytes(SPAN_SPAN_ID, ctx.spanId);
  const traceState = ctx.traceState?.serialize();
  if (traceState) w.string(SPAN_TRACE_STATE, traceState);
  if (parent?.spanId) w.hexBytes(SPAN_PARENT_SPAN_ID, parent.spanId);
  writeName(w, SPAN_NAME, span.name);
  // OTLP's SpanKind has UNSPECIFIED at 0, so the API's values shift by one.
  if (span.kind !== undefined && span.kind !== null) w.varint(SPAN_KIND, span.kind + 1);
  writeHrTime(w, SPAN_START, span.startTime);
  writeHrTime(w, SPAN_END, span.endTime);
  writeAttributes(w, SPAN_ATTRIBUTES, span.attributes);
  if (span.droppedAttributesCount) w.varint(SPAN_DROPPED_ATTRIBUTES, span.droppedAttributesCount);
  for (const event of span.events) writeEvent(w, event);
  if (span.droppedEventsCount) w.varint(SPAN_DROPPED_EVENTS, span.droppedEventsCount);
  for (const link of span.links) writeLink(w, link);
  if (span.droppedLinksCount) w.varint(SPAN_DROPPED_LINKS, span.droppedLinksCount);
  const status = span.status;
  if (status.code || status.message) {
    w.fork(SPAN_STATUS);
    if (status.message) w.string(STATUS_MESSAGE, status.message);
    if (status.code) w.varint(STATUS_CODE, status.code);
    w.join();
  }
  w.fixed32(SPAN_FLAGS, spanFlags(ctx.traceFlags, parent?.isRemote));
  w.join();
}

function spanFlags(traceFlags: number, isRemote: boolean | undefined): number {
  return (traceFlags & 0xff) | FLAGS_HAS_IS_REMOTE | (isRemote ? FLAGS_IS_REMOTE : 0);
}

function writeEvent(w: WireWriter, event: TimedEvent): void {
  w.fork(SPAN_EVENTS);
  writeHrTime(w, EVENT_TIME, event.time);
  writeName(w, EVENT_NAME, event.name);
  if (event.attributes !== undefined) writeAttributes(w, EVENT_ATTRIBUTES, event.attributes);
  if (event.droppedAttributesCount) w.varint(EVENT_DROPPED_ATTRIBUTES, event.droppedAttributesCount);
  w.join();
}

function writeLink(w: WireWriter, link: Link): void {
  const ctx = link.context;
  w.fork(SPAN_LINKS);
  w.hexBytes(LINK_TRACE_ID, ctx.traceId);
  w.hexBytes(LINK_SPAN_ID, ctx.spanId);
  const traceState = ctx.traceState?.serialize();
  if (traceState) w.string(LINK_TRACE_STATE, traceState);
  if (link.attributes !== undefined) writeAttributes(w, LINK_ATTRIBUTES, link.attributes);
  if (link.droppedAttributesCount) w.varint(LINK_DROPPED_ATTRIBUTES, link.droppedAttributesCount);
  w.fixed32(LINK_FLAGS, spanFlags(ctx.traceFlags, ctx.isRemote));
  w.join();
}

/**
 * Nanoseconds since the epoch as fixed64, exact: seconds × 10⁹ passes 2⁵³,
 * so the seconds are split at 2¹⁶ and the product is assembled in 32-bit halves.
 */
function writeHrTime(w: WireWriter, field: number, time: HrTime): void {
  const seconds = Math.trunc(time[0]);
  const nanos = Math.trunc(time[1]);
  const secondsLow = seconds % TWO_16;
  const secondsHigh = (seconds - secondsLow) / TWO_16;
  const fromLow = secondsLow * NANOS_PER_SECOND + nanos; // < 2^47: exact
  const fromHigh = secondsHigh * NANOS_PER_SECOND; // exact while seconds < 2^37; counts 2^16 units
  const fromHighLow16 = fromHigh % TWO_16;
  const lowSum = fromHighLow16 * TWO_16 + fromLow; // < 2^48: exact
  const low = lowSum % TWO_32;
  w.fixed64(field, low, (fromHigh - fromHighLow16) / TWO_16 + (lowSum - low) / TWO_32);
}

function writeAttributes(w: WireWriter, field: number, attributes: Attributes): void {
  for (const key of Object.keys(attributes)) {
    const value = attributes[key];
    const cached = cachedKeyValue(key, value);
    if (cached !== undefined) {
      w.tag(field, WireType.LEN).raw(cached);
      continue;
    }
    w.fork(field);
    w.string(KV_KEY, key);
    w.fork(KV_VALUE);
    writeAnyValue(w, value);
    w.join();
    w.join();
  }
}

// Most attributes repeat from span to span (the decision, its reason, the
// policy version, the agents, every hop event's keys and values), and writing
// strings is most of the cost. A KeyValue with a primitive value is kept
// encoded (length prefix included) and copied next time. Bounded: at most
// MAX_VALUES_PER_KEY values per key and MAX_CACHED_PAIRS pairs in all; once
// full, new pairs are encoded each time (a unique id per span costs its own
// encoding and nothing more).
const MAX_VALUES_PER_KEY = 64;
const MAX_CACHED_PAIRS = 4096;
const MAX_CACHED_PAIR_BYTES = 256;
const keyValueCache = new Map<string, Map<unknown, Uint8Array>>();
let cachedPairs = 0;
const scratch = new WireWriter(MAX_CACHED_PAIR_BYTES * 2);

function cachedKeyValue(key: string, value: unknown): Uint8Array | undefined {
  const type = typeof value;
  if (type !== "string" && type !== "number" && type !== "boolean") return undefined;
  let byValue = keyValueCache.get(key);
  const hit = byValue?.get(value);
  if (hit !== undefined) return hit;
  if (cachedPairs >= MAX_CACHED_PAIRS || (byValue !== undefined && byValue.size >= MAX_VALUES_PER_KEY)) return undefined;
  scratch.reset();
  scratch.fork(KV_VALUE); // stands in for the attribute's own tag: the cached bytes start at the length prefix
  scratch.string(KV_KEY, key);
  scratch.fork(KV_VALUE);
  writeAnyValue(scratch, value);
  scratch.join();
  scratch.join();
  const encoded = scratch.finish();
  if (encoded.length > MAX_CACHED_PAIR_BYTES) return undefined;
  const pair = new Uint8Array(encoded.subarray(1)); // a copy, without the stand-in tag byte
  if (byValue === undefined) {
    byValue = new Map();
    keyValueCache.set(key, byValue);
  }
  byValue.set(value, pair);
  cachedPairs++;
  return pair;
}

// Span and event names and the strings of string arrays (the delegation chain)
// repeat too: kept encoded, bounded likewise. Names are kept as the field's
// length-prefixed bytes, array strings as a length-prefixed AnyValue{string_value}.
const MAX_CACHED_STRINGS = 4096;
const MAX_CACHED_STRING_LENGTH = 120;
const nameCache = new Map<string, Uint8Array>();
const arrayStringCache = new Map<string, Uint8Array>();

function cachedEncoding(cache: Map<string, Uint8Array>, s: string, asAnyValue: boolean): Uint8Array | undefined {
  const hit = cache.get(s);
  if (hit !== undefined) return hit;
  if (cache.size >= MAX_CACHED_STRINGS || s.length > MAX_CACHED_STRING_LENGTH) return undefined;
  scratch.reset();
  // A stand-in one-byte tag first, dropped below: the cached bytes start at the length prefix.
  if (asAnyValue) scratch.fork(LIST_VALUES).string(ANY_STRING, s).join();
  else scratch.string(ANY_STRING, s);
  const encoded = new Uint8Array(scratch.finish().subarray(1)); // a copy: scratch is reused
  cache.set(s, encoded);
  return encoded;
}

function writeName(w: WireWriter, field: number, name: string): void {
  const cached = cachedEncoding(nameCache, name, false);
  if (cached === undefined) w.string(field, name);
  else w.tag(field, WireType.LEN).raw(cached);
}

/** The body of an AnyValue; nothing for null and undefined (an empty AnyValue, as the SDK writes). */
function writeAnyValue(w: WireWriter, value: unknown): void {
  switch (typeof value) {
    case "string":
      w.string(ANY_STRING, value);
      return;
    case "boolean":
      w.varint(ANY_BOOL, value ? 1 : 0);
      return;
    case "number":
      // The SDK's rule: integers within int64 go to int_value, everything else (fractions, NaN, ±∞, huge) to double_value.
      if (Number.isInteger(value) && value >= INT64_MIN && value < INT64_END) w.int64(ANY_INT, value);
      else w.double(ANY_DOUBLE, value);
      return;
    case "object":
      if (value === null) return;
      if (value instanceof Uint8Array) {
        w.bytes(ANY_BYTES, value);
        return;
      }
      if (Array.isArray(value)) {
        w.fork(ANY_ARRAY);
        for (const item of value as unknown[]) {
          if (typeof item === "string") {
            
            const cached = cachedEncoding(arrayStringCache, item, true);
            if (cached !== undefined) {
              w.tag(LIST_VALUES, WireType.LEN).raw(cached);
              continue;
            }
          }
          w.fork(LIST_VALUES);
          writeAnyValue(w, item);
          w.join();
        }
        w.join();
        return;
      }
      writeKeyValueList(w, value as Record<string, unknown>);
      return;
    default:
      return;
  }
}

function writeKeyValueList(w: WireWriter, value: Record<string, unknown>): void {
  w.fork(ANY_KVLIST);
  for (const key in value) {
    if (!Object.prototype.hasOwnProperty.call(value, key)) continue;
    w.fork(LIST_VALUES);
    w.string(KV_KEY, key);
    w.fork(KV_VALUE);
    writeAnyValue(w, value[key]);
    w.join();
    w.join();
  }
  w.join();
}
