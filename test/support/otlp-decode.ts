// Decoding OTLP trace export requests in tests: a schema-driven protobuf
// walker that turns a message into a normalized tree (proto3 defaults dropped
// outside oneofs, attribute order ignored), so that two encoders' bytes can be
// compared, and a reader that turns a request into plain span objects for
// assertions. Independent of the encoders under test.

import { WireReader, WireType } from "../../src/adapters/protobuf/wire.js";

// ---- a generic protobuf walker, driven by a schema of the OTLP messages ----

export type FieldType = "string" | "bytes" | "varint" | "fixed64" | "fixed32" | "double" | Schema;
export interface Schema {
  readonly fields: Readonly<Record<number, FieldType>>;
  /** Repeated fields whose order carries no meaning (attributes: keys are unique). */
  readonly unordered?: readonly number[];
  /** A oneof message: a zero value present differs from no value, so nothing is dropped. */
  readonly oneof?: boolean;
}

const anyValue: { fields: Record<number, FieldType>; oneof: boolean } = { fields: {}, oneof: true };
const keyValue: Schema = { fields: { 1: "string", 2: anyValue } };
const arrayValue: Schema = { fields: { 1: anyValue } };
const keyValueList: Schema = { fields: { 1: keyValue }, unordered: [1] };
Object.assign(anyValue.fields, { 1: "string", 2: "varint", 3: "varint", 4: "double", 5: arrayValue, 6: keyValueList, 7: "bytes" });
const resource: Schema = { fields: { 1: keyValue, 2: "varint" }, unordered: [1] };
const scope: Schema = { fields: { 1: "string", 2: "string", 3: keyValue, 4: "varint" }, unordered: [3] };
const status: Schema = { fields: { 2: "string", 3: "varint" } };
const event: Schema = { fields: { 1: "fixed64", 2: "string", 3: keyValue, 4: "varint" }, unordered: [3] };
const link: Schema = { fields: { 1: "bytes", 2: "bytes", 3: "string", 4: keyValue, 5: "varint", 6: "fixed32" }, unordered: [4] };
const span: Schema = {
  fields: {
    1: "bytes",
    2: "bytes",
    3: "string",
    4: "bytes",
    5: "string",
    6: "varint",
    7: "fixed64",
    8: "fixed64",
    9: keyValue,
    10: "varint",
    11: event,
    12: "varint",
    13: link,
    14: "varint",
    15: status,
    16: "fixed32",
  },
  unordered: [9],
};
const scopeSpans: Schema = { fields: { 1: scope, 2: span, 3: "string" } };
const resourceSpans: Schema = { fields: { 1: resource, 2: scopeSpans, 3: "string" } };
export const requestSchema: Schema = { fields: { 1: resourceSpans } };

export type Tree = { [field: string]: unknown[] };

function uint64(r: WireReader): bigint {
  let result = 0n;
  for (let shift = 0n; shift < 70n; shift += 7n) {
    const byte = r.buf[r.pos++];
    if (byte === undefined) throw new Error("truncated varint");
    result |= BigInt(byte & 0x7f) << shift;
    if ((byte & 0x80) === 0) return BigInt.asUintN(64, result);
  }
  throw new Error("varint too long");
}

/** Decodes a message into field → values, dropping proto3 defaults outside oneofs; unknown fields are kept raw. */
export function walk(buf: Buffer, schema: Schema, start = 0, end = buf.length): Tree {
  const r = new WireReader(buf, start, end);
  const tree: Tree = {};
  while (!r.done()) {
    const key = Number(uint64(r));
    const field = Math.floor(key / 8);
    const wireType = key % 8;
    const type = schema.fields[field];
    let value: unknown;
    let isDefault = false;
    if (wireType === WireType.VARINT) {
      const v = uint64(r);
      value = v.toString();
      isDefault = v === 0n;
    } else if (wireType === WireType.I64) {
      const bytes = buf.subarray(r.pos, r.pos + 8);
      r.pos += 8;
      value = type === "double" ? `double:${bytes.toString("hex")}` : bytes.readBigUInt64LE().toString();
      isDefault = bytes.every((b) => b === 0);
    } else if (wireType === WireType.I32) {
      value = buf.readUInt32LE(r.pos);
      r.pos += 4;
      isDefault = value === 0;
    } else if (wireType === WireType.LEN) {
      const [s, e] = r.lengthDelimited();
      if (typeof type === "object") {
        const nested = walk(buf, type, s, e);
        value = nested;
        // An empty message where absence means the same (Status, Resource); never inside a oneof or a repeated list.
        isDefault = Object.keys(nested).length === 0 && (type === status || type === resource);
      } else if (type === "string") {
        value = buf.toString("utf8", s, e);
        isDefault = s === e;
      } else {
        value = `bytes:${buf.subarray(s, e).toString("hex")}`;
        isDefault = s === e;
      }
    } else {
      throw new Error(`unexpected wire type ${wireType} for field ${field}`);
    }
    if (type === undefined) value = { unknownField: field, wireType, value };
    if (isDefault && !schema.oneof && type !== undefined) continue;
    (tree[field] ??= []).push(value);
  }
  for (const field of schema.unordered ?? []) {
    tree[field]?.sort((a, b) => (JSON.stringify(a) < JSON.stringify(b) ? -1 : 1));
  }
  return tree;
}

export const decodeTree = (bytes: Uint8Array): Tree => walk(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength), requestSchema);

/** A span as a test asserts on it. */
export interface DecodedSpan {
  readonly traceId: string;
  readonly spanId: string;
  readonly parentSpanId: string;
  readonly traceState: string;
  readonly name: string;
  /** OTLP kind: 2 is SERVER. */
  readonly kind: number;
  readonly startTimeUnixNano: bigint;
  readonly endTimeUnixNano: bigint;
  readonly attributes: Record<string, unknown>;
  readonly events: { name: string; timeUnixNano: bigint; attributes: Record<string, unknown> }[];
  readonly status: { code: number; message: string };
  readonly flags: number;
  readonly resource: Record<string, unknown>;
  readonly scope: string;
}

function str(tree: Tree, field: number): string {
  return (tree[field]?.[0] as string | undefined) ?? "";
}

function hexOf(tree: Tree, field: number): string {
  const v = tree[field]?.[0] as string | undefined;
  return v === undefined ? "" : v.slice("bytes:".length);
}

function anyValueOf(tree: Tree): unknown {
  if (tree[1] !== undefined) return tree[1][0];
  if (tree[2] !== undefined) return tree[2][0] === "1";
  if (tree[3] !== undefined) return Number(BigInt.asIntN(64, BigInt(tree[3][0] as string)));
  if (tree[4] !== undefined) return Buffer.from((tree[4][0] as string).slice("double:".length), "hex").readDoubleLE();
  if (tree[5] !== undefined) return ((tree[5][0] as Tree)[1] ?? []).map((v) => anyValueOf(v as Tree));
  return undefined;
}

function attributesOf(list: unknown[] | undefined): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const kv of list ?? []) {
    const t = kv as Tree;
    out[str(t, 1)] = anyValueOf((t[2]?.[0] as Tree | undefined) ?? {});
  }
  return out;
}

/** Every span of an ExportTraceServiceRequest, with its resource and scope. */
export function decodeSpans(bytes: Uint8Array): DecodedSpan[] {
  const spans: DecodedSpan[] = [];
  for (const rs of decodeTree(bytes)[1] ?? []) {
    const rsTree = rs as Tree;
    const resource = attributesOf(((rsTree[1]?.[0] as Tree | undefined) ?? {})[1]);
    for (const ss of rsTree[2] ?? []) {
      const ssTree = ss as Tree;
      const scope = str((ssTree[1]?.[0] as Tree | undefined) ?? {}, 1);
      for (const sp of ssTree[2] ?? []) {
        const s = sp as Tree;
        const status = (s[15]?.[0] as Tree | undefined) ?? {};
        spans.push({
          traceId: hexOf(s, 1),
          spanId: hexOf(s, 2),
          traceState: str(s, 3),
          parentSpanId: hexOf(s, 4),
          name: str(s, 5),
          kind: Number(s[6]?.[0] ?? 0),
          startTimeUnixNano: BigInt((s[7]?.[0] as string | undefined) ?? "0"),
          endTimeUnixNano: BigInt((s[8]?.[0] as string | undefined) ?? "0"),
          attributes: attributesOf(s[9]),
          events: (s[11] ?? []).map((e) => {
            const ev = e as Tree;
            return { name: str(ev, 2), timeUnixNano: BigInt((ev[1]?.[0] as string | undefined) ?? "0"), attributes: attributesOf(ev[3]) };
          }),
          status: { code: Number(status[3]?.[0] ?? 0), message: str(status, 2) },
          flags: Number(s[16]?.[0] ?? 0),
          resource,
          scope,
        });
      }
    }
  }
  return spans;
}
