// OTLP protobuf building blocks shared by the span encoders: field numbers of
// opentelemetry/proto/{collector/trace,trace,common,resource}/v1, exact
// nanosecond times, and attribute encoding with bounded caches of the
// key/value pairs that repeat from span to span.

import type { Attributes, HrTime } from "@opentelemetry/api";
import { WireType, WireWriter } from "../protobuf/wire.js";

// ExportTraceServiceRequest
export const REQUEST_RESOURCE_SPANS = 1;
// ResourceSpans
export const RS_RESOURCE = 1;
export const RS_SCOPE_SPANS = 2;
export const RS_SCHEMA_URL = 3;
// Resource
export const RESOURCE_ATTRIBUTES = 1;
// ScopeSpans
export const SS_SCOPE = 1;
export const SS_SPANS = 2;
export const SS_SCHEMA_URL = 3;
// InstrumentationScope
export const SCOPE_NAME = 1;
export const SCOPE_VERSION = 2;
export const SCOPE_ATTRIBUTES = 3;
export const SCOPE_DROPPED_ATTRIBUTES = 4;
// Span
export const SPAN_TRACE_ID = 1;
export const SPAN_SPAN_ID = 2;
export const SPAN_TRACE_STATE = 3;
export const SPAN_PARENT_SPAN_ID = 4;
export const SPAN_NAME = 5;
export const SPAN_KIND = 6;
export const SPAN_START = 7;
export const SPAN_END = 8;
export const SPAN_ATTRIBUTES = 9;
export const SPAN_DROPPED_ATTRIBUTES = 10;
export const SPAN_EVENTS = 11;
export const SPAN_DROPPED_EVENTS = 12;
export const SPAN_LINKS = 13;
export const SPAN_DROPPED_LINKS = 14;
export const SPAN_STATUS = 15;
export const SPAN_FLAGS = 16;
// Span.Event
export const EVENT_TIME = 1;
export const EVENT_NAME = 2;
export const EVENT_ATTRIBUTES = 3;
export const EVENT_DROPPED_ATTRIBUTES = 4;
// Span.Link
export const LINK_TRACE_ID = 1;
export const LINK_SPAN_ID = 2;
export const LINK_TRACE_STATE = 3;
export const LINK_ATTRIBUTES = 4;
export const LINK_DROPPED_ATTRIBUTES = 5;
export const LINK_FLAGS = 6;
// Status
export const STATUS_MESSAGE = 2;
export const STATUS_CODE = 3;
// KeyValue, KeyValueList, ArrayValue
export const KV_KEY = 1;
export const KV_VALUE = 2;
export const LIST_VALUES = 1;
// AnyValue
export const ANY_STRING = 1;
export const ANY_BOOL = 2;
export const ANY_INT = 3;
export const ANY_DOUBLE = 4;
export const ANY_ARRAY = 5;
export const ANY_KVLIST = 6;
export const ANY_BYTES = 7;

// Span.flags: the low byte is the W3C trace flags; bit 8 says whether bit 9 (parent is remote) is known.
export const FLAGS_HAS_IS_REMOTE = 0x100;
export const FLAGS_IS_REMOTE = 0x200;

export const INT64_MIN = -(2 ** 63);
export const INT64_END = 2 ** 63;
export const TWO_32 = 0x100000000;
export const TWO_16 = 0x10000;
export const NANOS_PER_SECOND = 1_000_000_000;

/**
 * Nanoseconds since the epoch as fixed64, exact: seconds × 10⁹ passes 2⁵³,
 * so the seconds are split at 2¹⁶ and the product is assembled in 32-bit halves.
 */
export function writeHrTime(w: WireWriter, field: number, time: HrTime): void {
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

export function writeAttributes(w: WireWriter, field: number, attributes: Attributes): void {
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

export function cachedKeyValue(key: string, value: unknown): Uint8Array | undefined {
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

export function writeName(w: WireWriter, field: number, name: string): void {
  const cached = cachedEncoding(nameCache, name, false);
  if (cached === undefined) w.string(field, name);
  else w.tag(field, WireType.LEN).raw(cached);
}

/** The body of an AnyValue; nothing for null and undefined (an empty AnyValue, as the SDK writes). */
export function writeAnyValue(w: WireWriter, value: unknown): void {
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

/** One attribute with a string value, from the pair cache when it repeats. */
export function writeStringAttribute(w: WireWriter, field: number, key: string, value: string): void {
  const cached = cachedKeyValue(key, value);
  if (cached !== undefined) {
    w.tag(field, WireType.LEN).raw(cached);
    return;
  }
  w.fork(field).string(KV_KEY, key).fork(KV_VALUE).string(ANY_STRING, value).join().join();
}

/** One attribute with a string value that never repeats (an id): written without looking in the pair cache. */
export function writeUncachedStringAttribute(w: WireWriter, field: number, key: string, value: string): void {
  w.fork(field).string(KV_KEY, key).fork(KV_VALUE).string(ANY_STRING, value).join().join();
}

export function writeIntAttribute(w: WireWriter, field: number, key: string, value: number): void {
  const cached = cachedKeyValue(key, value);
  if (cached !== undefined) {
    w.tag(field, WireType.LEN).raw(cached);
    return;
  }
  w.fork(field).string(KV_KEY, key).fork(KV_VALUE).int64(ANY_INT, value).join().join();
}

export function writeBoolAttribute(w: WireWriter, field: number, key: string, value: boolean): void {
  const cached = cachedKeyValue(key, value);
  if (cached !== undefined) {
    w.tag(field, WireType.LEN).raw(cached);
    return;
  }
  w.fork(field).string(KV_KEY, key).fork(KV_VALUE).varint(ANY_BOOL, value ? 1 : 0).join().join();
}

/** A string-array attribute; `map` is applied to each item as it is written. */
export function writeStringArrayAttribute(w: WireWriter, field: number, key: string, values: readonly string[], map: (s: string) => string): void {
  w.fork(field).string(KV_KEY, key).fork(KV_VALUE).fork(ANY_ARRAY);
  for (const raw of values) {
    const item = map(raw);
    const cached = cachedEncoding(arrayStringCache, item, true);
    if (cached !== undefined) w.tag(LIST_VALUES, WireType.LEN).raw(cached);
    else w.fork(LIST_VALUES).string(ANY_STRING, item).join();
  }
  w.join().join().join();
}

/** `origin` ([seconds, nanoseconds] since the epoch) plus `offsetMs` milliseconds, as exact fixed64 nanoseconds. */
export function writeOffsetTime(w: WireWriter, field: number, origin: readonly [number, number], offsetMs: number): void {
  const nanos = origin[1] + Math.round(offsetMs * 1_000_000);
  const carry = Math.floor(nanos / NANOS_PER_SECOND);
  writeHrTime(w, field, [origin[0] + carry, nanos - carry * NANOS_PER_SECOND]);
}
