// Finding and reading the MCP namespace of metadata_context (SPEC 8) on
// hand-made wire bytes: where a map entry's key comes, how many pieces its
// Struct comes in, and what finding it keeps. The generated Metadata schema
// is the reference for what protobuf makes of the same bytes.

import { fromBinary } from "@bufbuild/protobuf";
import { BinaryWriter, WireType as PbWireType } from "@bufbuild/protobuf/wire";
import { describe, expect, it } from "vitest";
import { boundedMcpMetadata } from "../../../test/support/reference-codec.js";
import { MAX_MCP_METADATA_PIECES, MCP_METADATA_OVER_BOUNDS } from "../../core/mcp/mcp-metadata.js";
import { MetadataSchema } from "../../gen/envoy/config/core/v3/base_pb.js";
import { findNamespace, readNamespaceStruct } from "./metadata-struct-reader.js";

const NS = "envoy.filters.http.mcp";
const w = () => new BinaryWriter();

/** Struct { fields { key: { string_value: value } } } */
const stringField = (key: string, value: string) =>
  w()
    .tag(1, PbWireType.LengthDelimited)
    .bytes(w().tag(1, PbWireType.LengthDelimited).string(key).tag(2, PbWireType.LengthDelimited).bytes(w().tag(3, PbWireType.LengthDelimited).string(value).finish()).finish())
    .finish();

/** One filter_metadata entry's fields, in the order given: a string is a key, bytes a value (a piece of the Struct). */
function entry(fields: ReadonlyArray<string | Uint8Array>): Uint8Array {
  const e = w();
  for (const f of fields) {
    if (typeof f === "string") e.tag(1, PbWireType.LengthDelimited).string(f);
    else e.tag(2, PbWireType.LengthDelimited).bytes(f);
  }
  return e.finish();
}

/** `n` empty value fields (tag 0x12, length 0): pieces of the Struct that add up to nothing. */
const emptyPieces = (n: number) => Buffer.alloc(2 * n, Uint8Array.from([0x12, 0x00]));
const key = (k: string) => entry([k]);

/** Metadata { filter_metadata: entries } */
function metadata(...entries: Uint8Array[]): Buffer {
  const m = w();
  for (const e of entries) m.tag(1, PbWireType.LengthDelimited).bytes(e);
  return Buffer.from(m.finish());
}

/** What the production reader makes of the namespace in `buf`, or undefined when no entry names it. */
function read(buf: Buffer): unknown {
  const found = findNamespace(buf, 0, buf.length, NS, undefined);
  return found === undefined ? undefined : readNamespaceStruct(buf, found);
}

/** What protobuf makes of it, bounded as CheckInput.mcpMetadata is. */
function reference(buf: Buffer): unknown {
  const struct = fromBinary(MetadataSchema, buf).filterMetadata[NS];
  return struct === undefined ? undefined : boundedMcpMetadata(struct);
}

describe("finding the MCP namespace (SPEC 8: only that namespace is read)", () => {
  it("takes an entry's last key, wherever it comes among the values", () => {
    const cases = [
      metadata(entry([NS, stringField("a", "1")])),
      metadata(entry([stringField("a", "1"), NS])),
      metadata(entry([stringField("a", "1"), NS, stringField("b", "2")])),
      metadata(entry([NS, stringField("a", "1"), "other"])),
      metadata(entry(["other", stringField("a", "1"), NS])),
      metadata(entry([stringField("a", "1")])), // no key: the empty string
    ];
    for (const b of cases) expect(read(b)).toStrictEqual(reference(b));
    expect(read(cases[1]!)).toStrictEqual(Object.assign(Object.create(null) as object, { a: "1" }));
    expect(read(cases[3]!)).toBeUndefined();
    expect(read(cases[4]!)).toStrictEqual(Object.assign(Object.create(null) as object, { a: "1" }));
  });

  it("lets the last entry naming the namespace win, across metadata_context fields too", () => {
    const b = metadata(entry([NS, stringField("a", "1")]), entry(["other", stringField("x", "y")]), entry([stringField("b", "2"), NS]));
    expect(read(b)).toStrictEqual(reference(b));
    expect(read(b)).toStrictEqual(Object.assign(Object.create(null) as object, { b: "2" }));
    const first = metadata(entry([NS, stringField("a", "1")]));
    const second = metadata(entry(["other", stringField("x", "y")]));
    const both = Buffer.concat([first, second]);
    const found = findNamespace(both, first.length, both.length, NS, findNamespace(both, 0, first.length, NS, undefined));
    expect(readNamespaceStruct(both, found!)).toStrictEqual(Object.assign(Object.create(null) as object, { a: "1" }));
  });

  it("keeps only where the entry lies and its count of pieces, however many pieces it has", () => {
    const pieces = 1_000_000;
    const b = metadata(Buffer.concat([key(NS), emptyPieces(pieces)]));
    const found = findNamespace(b, 0, b.length, NS, undefined);
    expect(found).toEqual({ start: expect.any(Number) as number, end: b.length, pieces, bytes: 0 });
    expect(Object.values(found!).every((v) => typeof v === "number")).toBe(true);
    // Another namespace's pieces are framed and forgotten.
    const other = metadata(Buffer.concat([key("other"), emptyPieces(pieces)]));
    expect(findNamespace(other, 0, other.length, NS, undefined)).toBeUndefined();
    expect(findNamespace(other, 0, other.length, NS, found)).toBe(found);
  });
});

describe("reading the namespace's Struct sent in pieces (SPEC 8: over the bounds, unparsable)", () => {
  it("merges up to MAX_MCP_METADATA_PIECES pieces as protobuf does", () => {
    const b = metadata(entry([NS, ...Array.from({ length: MAX_MCP_METADATA_PIECES }, (_, i) => stringField(`k${i % 7}`, `v${i}`))]));
    const struct = read(b) as Record<string, unknown>;
    expect(struct).toStrictEqual(reference(b));
    expect(Object.keys(struct)).toHaveLength(7);
    expect(struct[`k${(MAX_MCP_METADATA_PIECES - 1) % 7}`]).toBe(`v${MAX_MCP_METADATA_PIECES - 1}`);
  });

  it("is MCP_METADATA_OVER_BOUNDS in a piece more, or in a million empty pieces, wherever the key comes", () => {
    const over = Array.from({ length: MAX_MCP_METADATA_PIECES + 1 }, (_, i) => stringField("k", `v${i}`));
    expect(read(metadata(entry([NS, ...over])))).toBe(MCP_METADATA_OVER_BOUNDS);
    const million = emptyPieces(1_000_000);
    expect(read(metadata(Buffer.concat([key(NS), million])))).toBe(MCP_METADATA_OVER_BOUNDS);
    expect(read(metadata(Buffer.concat([million, key(NS)])))).toBe(MCP_METADATA_OVER_BOUNDS);
    // Only the winning entry's pieces count.
    expect(read(metadata(Buffer.concat([key(NS), million]), entry([NS, stringField("a", "1")])))).toStrictEqual(Object.assign(Object.create(null) as object, { a: "1" }));
  });
});
