// Protobuf-level mutations of a valid CheckRequest: the bytes are read into
// a tree of fields (nested where Envoy's schema nests messages), one to three
// mutations are applied to chosen nodes, and the tree is written back with
// correct lengths except where a mutation lies about one. Then, optionally,
// byte-level damage: bit flips, truncation, garbage at the end.
//
// Mutations: flip a bit in a field's bytes, duplicate a field (a repeated
// header_map entry, a second `source` Peer, a second `attributes`), remove a
// field, insert a random field, give a field the wrong wire type, a huge or
// off-by-one length prefix, an over-long (non-minimal, still valid) varint,
// swap two fields.

import fc from "fast-check";

const VARINT = 0;
const I64 = 1;
const LEN = 2;
const I32 = 5;

/** Which LEN fields hold messages, by message: CheckRequest → AttributeContext → Peer/Request → HttpRequest → HeaderMap → HeaderValue. */
type MessageKind = "CheckRequest" | "AttributeContext" | "Peer" | "Request" | "HttpRequest" | "HeaderMap" | "Leaf";
const NESTED: Readonly<Record<MessageKind, Readonly<Record<number, MessageKind>>>> = {
  CheckRequest: { 1: "AttributeContext" },
  AttributeContext: { 1: "Peer", 2: "Peer", 4: "Request", 10: "Leaf" },
  Peer: {},
  Request: { 2: "HttpRequest" },
  HttpRequest: { 3: "Leaf", 13: "HeaderMap" },
  HeaderMap: { 1: "Leaf" },
  Leaf: {},
};

export interface WireField {
  field: number;
  wireType: number;
  /** Content of a LEN field or the raw bytes of a VARINT/I64/I32 value. */
  bytes: Uint8Array;
  children: WireField[] | undefined;
  /** Written instead of the true length (a lie). */
  lengthOverride?: bigint;
  /** Extra 0x80 bytes in the tag's and length's varints (still valid protobuf). */
  overlong?: number;
  /** Written with this wire type, the content as it was. */
  wireTypeOverride?: number;
}

function readVarint(buf: Uint8Array, pos: number): [bigint, number] {
  let result = 0n;
  let shift = 0n;
  for (let i = 0; i < 10; i++) {
    if (pos >= buf.length) throw new Error("truncated varint");
    const b = buf[pos++]!;
    result |= BigInt(b & 0x7f) << shift;
    if ((b & 0x80) === 0) return [result, pos];
    shift += 7n;
  }
  throw new Error("varint too long");
}

/** Parses well-formed protobuf (the fuzz's own valid requests) into a tree. */
export function parseTree(buf: Uint8Array, kind: MessageKind = "CheckRequest"): WireField[] {
  const out: WireField[] = [];
  let pos = 0;
  while (pos < buf.length) {
    const [tag, afterTag] = readVarint(buf, pos);
    pos = afterTag;
    const field = Number(tag >> 3n);
    const wireType = Number(tag & 7n);
    let bytes: Uint8Array;
    if (wireType === VARINT) {
      const start = pos;
      [, pos] = readVarint(buf, pos);
      bytes = buf.subarray(start, pos);
    } else if (wireType === I64 || wireType === I32) {
      const n = wireType === I64 ? 8 : 4;
      bytes = buf.subarray(pos, pos + n);
      pos += n;
    } else if (wireType === LEN) {
      const [len, start] = readVarint(buf, pos);
      pos = start + Number(len);
      bytes = buf.subarray(start, pos);
    } else throw new Error(`wire type ${wireType} in a valid request`);
    const nested = wireType === LEN ? NESTED[kind][field] : undefined;
    out.push({ field, wireType, bytes, children: nested !== undefined && nested !== "Leaf" ? parseTree(bytes, nested) : nested === "Leaf" ? parseTree(bytes, "Leaf") : undefined });
  }
  return out;
}

/** `maxBytes`: a tag is a uint32, so protobuf readers take at most 5 bytes for it. */
function writeVarint(out: number[], value: bigint, overlong = 0, maxBytes = 10): void {
  let v = value;
  const bytes: number[] = [];
  do {
    bytes.push(Number(v & 0x7fn));
    v >>= 7n;
  } while (v > 0n);
  // Non-minimal: continue with zero groups (a valid encoding of the same number), within 10 bytes.
  const pad = Math.max(0, Math.min(overlong, maxBytes - bytes.length));
  for (let i = 0; i < pad; i++) bytes.push(0);
  for (let i = 0; i < bytes.length; i++) out.push(i < bytes.length - 1 ? bytes[i]! | 0x80 : bytes[i]!);
}

export function writeTree(fields: readonly WireField[]): Uint8Array {
  const out: number[] = [];
  writeInto(out, fields);
  return Uint8Array.from(out);
}

function contentOf(f: WireField): Uint8Array {
  return f.children !== undefined ? writeTree(f.children) : f.bytes;
}

function writeInto(out: number[], fields: readonly WireField[]): void {
  for (const f of fields) {
    const wt = f.wireTypeOverride ?? f.wireType;
    writeVarint(out, (BigInt(f.field) << 3n) | BigInt(wt), f.overlong ?? 0, 5);
    const content = contentOf(f);
    if (f.wireType === LEN) {
      // A LEN field written with another wire type keeps its length and content bytes after the tag.
      writeVarint(out, f.lengthOverride ?? BigInt(content.length), f.overlong ?? 0);
    }
    for (const b of content) out.push(b);
  }
}

/** Every node with its parent list, for choosing where to mutate. */
function nodes(fields: WireField[], into: { list: WireField[]; index: number; node: WireField }[] = []): { list: WireField[]; index: number; node: WireField }[] {
  fields.forEach((node, index) => {
    into.push({ list: fields, index, node });
    if (node.children !== undefined) nodes(node.children, into);
  });
  return into;
}

function clone(fields: readonly WireField[]): WireField[] {
  return fields.map((f) => ({ ...f, bytes: f.bytes, children: f.children === undefined ? undefined : clone(f.children) }));
}

export type TreeMutation =
  | { op: "flip"; target: number; bit: number }
  | { op: "duplicate"; target: number }
  | { op: "remove"; target: number }
  | { op: "insert"; target: number; field: number; wireType: number; payload: Uint8Array }
  | { op: "wireType"; target: number; wireType: number }
  | { op: "length"; target: number; length: bigint }
  | { op: "overlong"; target: number; extra: number }
  | { op: "swap"; target: number; other: number };

export type ByteMutation = { op: "bitflip"; at: number; bit: number } | { op: "truncate"; at: number } | { op: "append"; bytes: Uint8Array };

function applyTree(fields: WireField[], m: TreeMutation): void {
  const all = nodes(fields);
  if (all.length === 0) return;
  const t = all[m.target % all.length]!;
  switch (m.op) {
    case "flip": {
      const bytes = Uint8Array.from(contentOf(t.node));
      if (bytes.length === 0) return;
      const bit = m.bit % (bytes.length * 8);
      bytes[bit >> 3]! ^= 1 << (bit & 7);
      t.list[t.index] = { ...t.node, bytes, children: undefined };
      return;
    }
    case "duplicate":
      t.list.splice(t.index + 1, 0, { ...t.node, children: t.node.children === undefined ? undefined : clone(t.node.children) });
      return;
    case "remove":
      t.list.splice(t.index, 1);
      return;
    case "insert":
      t.list.splice(t.index, 0, { field: m.field, wireType: m.wireType, bytes: m.payload, children: undefined });
      return;
    case "wireType":
      t.node.wireTypeOverride = m.wireType;
      return;
    case "length":
      if (t.node.wireType === LEN) t.node.lengthOverride = m.length;
      return;
    case "overlong":
      t.node.overlong = m.extra;
      return;
    case "swap": {
      if (t.list.length < 2) return;
      const j = m.other % t.list.length;
      const tmp = t.list[t.index]!;
      t.list[t.index] = t.list[j]!;
      t.list[j] = tmp;
      return;
    }
  }
}

function applyBytes(bytes: Uint8Array, m: ByteMutation): Uint8Array {
  switch (m.op) {
    case "bitflip": {
      if (bytes.length === 0) return bytes;
      const out = Uint8Array.from(bytes);
      const at = m.at % out.length;
      out[at]! ^= 1 << (m.bit & 7);
      return out;
    }
    case "truncate":
      return bytes.subarray(0, bytes.length === 0 ? 0 : m.at % bytes.length);
    case "append": {
      const out = new Uint8Array(bytes.length + m.bytes.length);
      out.set(bytes);
      out.set(m.bytes, bytes.length);
      return out;
    }
  }
}

export interface WireMutationPlan {
  readonly tree: readonly TreeMutation[];
  readonly bytes: readonly ByteMutation[];
  /**
   * Split the request into two CheckRequests sent back to back, each field
   * in one of them (chosen by this seed). Protobuf reads concatenated
   * messages as one, merged: the same request, spelled differently.
   */
  readonly split?: number;
}

/** Each field (down to the leaves) in `a` or `b`; messages in both, with their own share of fields. */
function splitTree(fields: readonly WireField[], next: () => boolean): [WireField[], WireField[]] {
  const a: WireField[] = [];
  const b: WireField[] = [];
  for (const f of fields) {
    if (f.children !== undefined && f.children.length > 1) {
      const [ca, cb] = splitTree(f.children, next);
      if (ca.length > 0) a.push({ ...f, children: ca });
      if (cb.length > 0) b.push({ ...f, children: cb });
    } else (next() ? a : b).push(f);
  }
  return [a, b];
}

export function mutateRequestBytes(valid: Uint8Array, plan: WireMutationPlan): Uint8Array {
  let tree: WireField[];
  try {
    tree = parseTree(valid);
  } catch {
    tree = [];
  }
  for (const m of plan.tree) applyTree(tree, m);
  let out = plan.tree.length > 0 ? writeTree(tree) : valid;
  if (plan.split !== undefined) {
    let state = plan.split >>> 0 || 1;
    const next = (): boolean => {
      state ^= state << 13;
      state ^= state >>> 17;
      state ^= state << 5;
      return (state & 1) === 1;
    };
    const [a, b] = splitTree(tree, next);
    const wa = writeTree(a);
    const wb = writeTree(b);
    out = new Uint8Array(wa.length + wb.length);
    out.set(wa);
    out.set(wb, wa.length);
  }
  for (const m of plan.bytes) out = applyBytes(out, m);
  return out;
}

const HUGE_LENGTHS = [2n ** 31n - 1n, 2n ** 31n, 2n ** 32n + 5n, 2n ** 53n, 2n ** 63n, 2n ** 64n - 1n, 1n << 35n];

const treeMutationArb: fc.Arbitrary<TreeMutation> = fc.oneof(
  fc.record({ op: fc.constant("flip" as const), target: fc.nat(), bit: fc.nat() }),
  { arbitrary: fc.record({ op: fc.constant("duplicate" as const), target: fc.nat() }), weight: 3 },
  fc.record({ op: fc.constant("remove" as const), target: fc.nat() }),
  fc.record({
    op: fc.constant("insert" as const),
    target: fc.nat(),
    field: fc.oneof(fc.integer({ min: 1, max: 16 }), fc.integer({ min: 1, max: 2 ** 29 - 1 })),
    wireType: fc.integer({ min: 0, max: 7 }),
    payload: fc.uint8Array({ maxLength: 24 }),
  }),
  fc.record({ op: fc.constant("wireType" as const), target: fc.nat(), wireType: fc.integer({ min: 0, max: 7 }) }),
  fc.record({
    op: fc.constant("length" as const),
    target: fc.nat(),
    length: fc.oneof(fc.constantFrom(...HUGE_LENGTHS), fc.bigInt({ min: 0n, max: 4096n })),
  }),
  fc.record({ op: fc.constant("overlong" as const), target: fc.nat(), extra: fc.integer({ min: 1, max: 9 }) }),
  fc.record({ op: fc.constant("swap" as const), target: fc.nat(), other: fc.nat() }),
);

const byteMutationArb: fc.Arbitrary<ByteMutation> = fc.oneof(
  fc.record({ op: fc.constant("bitflip" as const), at: fc.nat(), bit: fc.nat({ max: 7 }) }),
  fc.record({ op: fc.constant("truncate" as const), at: fc.nat() }),
  fc.record({ op: fc.constant("append" as const), bytes: fc.uint8Array({ minLength: 1, maxLength: 16 }) }),
);

export const wireMutationPlanArb: fc.Arbitrary<WireMutationPlan> = fc.oneof(
  { arbitrary: fc.record({ tree: fc.constant([]), bytes: fc.constant([]), split: fc.nat() }), weight: 3 },
  { arbitrary: fc.record({ tree: fc.array(treeMutationArb, { minLength: 1, maxLength: 3 }), bytes: fc.constant([]) }), weight: 6 },
  { arbitrary: fc.record({ tree: fc.constant([]), bytes: fc.array(byteMutationArb, { minLength: 1, maxLength: 3 }) }), weight: 2 },
  { arbitrary: fc.record({ tree: fc.array(treeMutationArb, { minLength: 1, maxLength: 2 }), bytes: fc.array(byteMutationArb, { minLength: 1, maxLength: 2 }) }), weight: 1 },
);
