// Reads one namespace of a CheckRequest's `attributes.metadata_context`
// (envoy.config.core.v3.Metadata: map<string, google.protobuf.Struct>
// filter_metadata = 1) into plain JSON, for the MCP facts (SPEC 8). Only the
// namespace asked for is decoded; every other entry is framed and its key
// read, nothing more.
//
// Read as protobuf reads it (the generated schema is the reference:
// check-request-decoder.properties.spec.ts): the last filter_metadata entry
// for the namespace wins; a Struct sent in several pieces is merged (its
// fields added up, the last value of a key winning); a Value whose
// struct_value or list_value comes twice is merged (fields added, list
// items appended), whereas a Value switching kinds takes the last; a Value
// with no kind is null. Objects have no prototype, so a key "__proto__" is
// an ordinary key.
//
// Bounded: Envoy's MCP filter writes a few short fields in one piece
// (docs/mcp.md), so a namespace whose Struct is over MAX_MCP_METADATA_BYTES
// or comes in more than MAX_MCP_METADATA_PIECES pieces is not read at all,
// and a struct or list nested deeper than MAX_MCP_METADATA_DEPTH is framed,
// not read; either way the namespace becomes MCP_METADATA_OVER_BOUNDS, which
// no `mcp:` rule admits. Finding the namespace keeps no list: a map entry's
// key may come after its values, or more than once (the last one counts), so
// each entry is framed whole, and of the last one naming the namespace only
// where it lies and the count and bytes of its pieces are kept. Memory stays
// the same however many entries or pieces a request holds.

import { MAX_MCP_METADATA_BYTES, MAX_MCP_METADATA_DEPTH, MAX_MCP_METADATA_PIECES, MCP_METADATA_OVER_BOUNDS } from "../../core/mcp/mcp-metadata.js";
import { WireError, WireReader, WireType } from "../protobuf/wire.js";

/** The last filter_metadata entry naming the namespace: its bytes, and the value fields (pieces of its Struct) in them. */
export interface NamespaceEntry {
  /** [start, end) of the map entry (key and values). */
  readonly start: number;
  readonly end: number;
  /** How many pieces the Struct came in, and their bytes added up. */
  readonly pieces: number;
  readonly bytes: number;
}

function expectWireType(wireType: number, expected: number, what: string): void {
  if (wireType !== expected) throw new WireError(`${what} has wire type ${wireType}, expected ${expected}`);
}

/**
 * Metadata { map<string, Struct> filter_metadata = 1 }: the last entry whose
 * key is `namespace`, or `found` unchanged when no entry of these bytes names
 * it. Keys are read (they must be UTF-8); values only framed and counted.
 */
export function findNamespace(buf: Buffer, start: number, end: number, namespace: string, found: NamespaceEntry | undefined): NamespaceEntry | undefined {
  const r = new WireReader(buf, start, end);
  const entry = new WireReader(buf, start, start);
  while (!r.done()) {
    const tag = r.tag();
    if (tag >>> 3 !== 1) {
      r.skip(tag & 7);
      continue;
    }
    expectWireType(tag & 7, WireType.LEN, "Metadata.filter_metadata");
    const s = r.field();
    const e = r.fieldEnd;
    entry.reset(buf, s, e);
    let key = "";
    let pieces = 0;
    let bytes = 0;
    while (!entry.done()) {
      const t = entry.tag();
      const field = t >>> 3;
      if (field === 1) {
        expectWireType(t & 7, WireType.LEN, "Metadata.filter_metadata key");
        key = entry.string("Metadata.filter_metadata key");
      } else if (field === 2) {
        expectWireType(t & 7, WireType.LEN, "Metadata.filter_metadata value");
        const vs = entry.field();
        pieces++;
        bytes += entry.fieldEnd - vs;
      } else entry.skip(t & 7);
    }
    if (key === namespace) found = { start: s, end: e, pieces, bytes };
  }
  return found;
}

/** A Value being read: its kind (0 for none, else the oneof's field number) and what it holds. */
interface ValueState {
  kind: number;
  value: unknown;
}

const NULL_VALUE = 1;
const NUMBER_VALUE = 2;
const STRING_VALUE = 3;
const BOOL_VALUE = 4;
const STRUCT_VALUE = 5;
const LIST_VALUE = 6;

class OverBounds {
  over = false;
}

/** The namespace's Struct as JSON (its pieces merged in wire order), or MCP_METADATA_OVER_BOUNDS. */
export function readNamespaceStruct(buf: Buffer, found: NamespaceEntry): unknown {
  if (found.pieces > MAX_MCP_METADATA_PIECES || found.bytes > MAX_MCP_METADATA_BYTES) return MCP_METADATA_OVER_BOUNDS;
  const struct = Object.create(null) as Record<string, unknown>;
  const bounds = new OverBounds();
  // findNamespace framed the entry and checked its wire types: only the pieces are read here.
  const entry = new WireReader(buf, found.start, found.end);
  while (!entry.done()) {
    const t = entry.tag();
    if (t >>> 3 !== 2) {
      entry.skip(t & 7);
      continue;
    }
    const s = entry.field();
    readStruct(buf, s, entry.fieldEnd, struct, 1, bounds);
  }
  return bounds.over ? MCP_METADATA_OVER_BOUNDS : struct;
}

/** Struct { map<string, Value> fields = 1 }, merged into `into`; `depth` is the struct's own (the namespace's is 1). */
function readStruct(buf: Buffer, start: number, end: number, into: Record<string, unknown>, depth: number, bounds: OverBounds): void {
  const r = new WireReader(buf, start, end);
  while (!r.done()) {
    const tag = r.tag();
    if (tag >>> 3 !== 1) {
      r.skip(tag & 7);
      continue;
    }
    expectWireType(tag & 7, WireType.LEN, "Struct.fields");
    const [s, e] = r.lengthDelimited();
    const entry = new WireReader(buf, s, e);
    let key = "";
    const state: ValueState = { kind: 0, value: null };
    while (!entry.done()) {
      const t = entry.tag();
      const field = t >>> 3;
      if (field === 1) {
        expectWireType(t & 7, WireType.LEN, "Struct.fields key");
        key = entry.string("Struct.fields key");
      } else if (field === 2) {
        expectWireType(t & 7, WireType.LEN, "Struct.fields value");
        const [vs, ve] = entry.lengthDelimited();
        readValue(buf, vs, ve, state, depth, bounds);
      } else entry.skip(t & 7);
    }
    // A map entry replaces an earlier one of the same key.
    into[key] = state.value;
  }
}

/** ListValue { repeated Value values = 1 }, appended to `into`. */
function readList(buf: Buffer, start: number, end: number, into: unknown[], depth: number, bounds: OverBounds): void {
  const r = new WireReader(buf, start, end);
  while (!r.done()) {
    const tag = r.tag();
    if (tag >>> 3 !== 1) {
      r.skip(tag & 7);
      continue;
    }
    expectWireType(tag & 7, WireType.LEN, "ListValue.values");
    const [s, e] = r.lengthDelimited();
    const state: ValueState = { kind: 0, value: null };
    readValue(buf, s, e, state, depth, bounds);
    into.push(state.value);
  }
}

/**
 * Value { oneof kind { null_value = 1; number_value = 2; string_value = 3;
 * bool_value = 4; struct_value = 5; list_value = 6 } }, merged into `state`
 * (a Value sent in pieces). `depth` is that of the container holding it.
 */
function readValue(buf: Buffer, start: number, end: number, state: ValueState, depth: number, bounds: OverBounds): void {
  const r = new WireReader(buf, start, end);
  while (!r.done()) {
    const tag = r.tag();
    const field = tag >>> 3;
    const wt = tag & 7;
    switch (field) {
      case NULL_VALUE:
        expectWireType(wt, WireType.VARINT, "Value.null_value");
        r.varint();
        set(state, NULL_VALUE, null);
        break;
      case NUMBER_VALUE:
        expectWireType(wt, WireType.I64, "Value.number_value");
        set(state, NUMBER_VALUE, r.double());
        break;
      case STRING_VALUE:
        expectWireType(wt, WireType.LEN, "Value.string_value");
        set(state, STRING_VALUE, r.string("Value.string_value"));
        break;
      case BOOL_VALUE:
        expectWireType(wt, WireType.VARINT, "Value.bool_value");
        set(state, BOOL_VALUE, r.bool());
        break;
      case STRUCT_VALUE:
      case LIST_VALUE: {
        expectWireType(wt, WireType.LEN, field === STRUCT_VALUE ? "Value.struct_value" : "Value.list_value");
        const [s, e] = r.lengthDelimited();
        // The same message kind again merges into it; another kind is replaced.
        if (state.kind !== field) set(state, field, field === STRUCT_VALUE ? Object.create(null) : []);
        if (depth + 1 > MAX_MCP_METADATA_DEPTH) {
          bounds.over = true;
          break;
        }
        if (field === STRUCT_VALUE) readStruct(buf, s, e, state.value as Record<string, unknown>, depth + 1, bounds);
        else readList(buf, s, e, state.value as unknown[], depth + 1, bounds);
        break;
      }
      default:
        r.skip(wt);
    }
  }
}

function set(state: ValueState, kind: number, value: unknown): void {
  state.kind = kind;
  state.value = value;
}
