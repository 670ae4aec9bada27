// The CheckRequest as hopwarden's hand-written decoder reads it: a schema,
// built at run time, with only the fields Check uses, at Envoy's field
// numbers. Everything else in a CheckRequest is, to this schema, an unknown
// field that protobuf-es frames and skips, as the hand-written decoder does.
//
// It lets the property tests say precisely where the two decoders may differ.
// The full generated schema validates fields the decoder never reads (bad
// UTF-8 in http.body, say): such a rejection says nothing about the decoder.
// Decoding with this schema instead, the generated decoder rejects only for
// what the decoder reads. Maps are declared as repeated entry messages (the
// same bytes on the wire): protobuf-es (2.16) does not skip an unknown field
// inside a map entry but reads its value as the next tag, and this keeps
// that quirk out of the comparison (the full-schema test notes it).
//
// metadata_context is read as the decoder reads it: every filter_metadata key,
// and the value of the MCP namespace only. The value is kept as its pieces
// (bytes, in wire order; together they are the merged Struct) and decoded
// after, when its key is the namespace and the pieces are within
// MAX_MCP_METADATA_BYTES and MAX_MCP_METADATA_PIECES, with Struct and Value
// spelled out level by level down to MAX_MCP_METADATA_DEPTH: a struct or
// list deeper than that is bytes, framed and not read, as the decoder frames
// it.

import { create, createFileRegistry, fromBinary, type DescMessage } from "@bufbuild/protobuf";
import { FieldDescriptorProto_Label, FieldDescriptorProto_Type, FileDescriptorProtoSchema } from "@bufbuild/protobuf/wkt";
import { MAX_MCP_METADATA_BYTES, MAX_MCP_METADATA_DEPTH, MAX_MCP_METADATA_PIECES, MCP_METADATA_OVER_BOUNDS } from "../../src/core/mcp/mcp-metadata.js";
import { BoundedMetadata, type CheckRequestView } from "./reference-codec.js";

const PACKAGE = "hopwarden.test.asread";

function field(name: string, number: number, type: FieldDescriptorProto_Type, typeName?: string, repeated = false, oneofIndex?: number) {
  return {
    name,
    number,
    type,
    label: repeated ? FieldDescriptorProto_Label.REPEATED : FieldDescriptorProto_Label.OPTIONAL,
    ...(typeName !== undefined && { typeName: `.${PACKAGE}.${typeName}` }),
    ...(oneofIndex !== undefined && { oneofIndex }),
  };
}
const string = (name: string, number: number) => field(name, number, FieldDescriptorProto_Type.STRING);
const bytes = (name: string, number: number) => field(name, number, FieldDescriptorProto_Type.BYTES);
const message = (name: string, number: number, typeName: string) => field(name, number, FieldDescriptorProto_Type.MESSAGE, typeName);
const repeated = (name: string, number: number, typeName: string) => field(name, number, FieldDescriptorProto_Type.MESSAGE, typeName, true);

/** Struct, its entries, Value and ListValue at one depth (the namespace's Struct is depth 1); past the bound, a container is bytes. */
function structLevel(depth: number) {
  const deeper = depth + 1 <= MAX_MCP_METADATA_DEPTH;
  const inOneof = (f: ReturnType<typeof field>) => ({ ...f, oneofIndex: 0 });
  const container = (name: string, number: number, typeName: string) =>
    inOneof(deeper ? field(name, number, FieldDescriptorProto_Type.MESSAGE, `${typeName}${depth + 1}`) : field(name, number, FieldDescriptorProto_Type.BYTES));
  const levels = [
    { name: `Struct${depth}`, field: [repeated("fields", 1, `StructEntry${depth}`)] },
    { name: `StructEntry${depth}`, field: [string("key", 1), message("value", 2, `Value${depth}`)] },
    {
      name: `Value${depth}`,
      oneofDecl: [{ name: "kind" }],
      field: [
        inOneof(field("null_value", 1, FieldDescriptorProto_Type.INT32)),
        inOneof(field("number_value", 2, FieldDescriptorProto_Type.DOUBLE)),
        inOneof(string("string_value", 3)),
        inOneof(field("bool_value", 4, FieldDescriptorProto_Type.BOOL)),
        container("struct_value", 5, "Struct"),
        container("list_value", 6, "ListValue"),
      ],
    },
  ];
  if (depth > 1) levels.push({ name: `ListValue${depth}`, field: [repeated("values", 1, `Value${depth}`)] });
  return levels;
}

const file = create(FileDescriptorProtoSchema, {
  name: "hopwarden/test/check_request_as_read.proto",
  package: PACKAGE,
  syntax: "proto3",
  messageType: [
    { name: "CheckRequest", field: [message("attributes", 1, "AttributeContext")] },
    {
      name: "AttributeContext",
      field: [
        message("source", 1, "Peer"),
        message("destination", 2, "Peer"),
        message("request", 4, "Request"),
        repeated("context_extensions", 10, "StringEntry"),
        message("metadata_context", 11, "Metadata"),
      ],
    },
    { name: "Metadata", field: [repeated("filter_metadata", 1, "MetadataEntry")] },
    // The value's pieces, each a part of one Struct (the namespace's is decoded after).
    { name: "MetadataEntry", field: [string("key", 1), field("value", 2, FieldDescriptorProto_Type.BYTES, undefined, true)] },
    ...Array.from({ length: MAX_MCP_METADATA_DEPTH }, (_, i) => structLevel(i + 1)).flat(),
    { name: "Peer", field: [string("principal", 4), string("certificate", 5)] },
    { name: "Request", field: [message("http", 2, "HttpRequest")] },
    { name: "HttpRequest", field: [string("method", 2), repeated("headers", 3, "StringEntry"), string("path", 4), message("header_map", 13, "HeaderMap")] },
    { name: "HeaderMap", field: [repeated("headers", 1, "HeaderValue")] },
    { name: "HeaderValue", field: [string("key", 1), string("value", 2), bytes("raw_value", 3)] },
    { name: "StringEntry", field: [string("key", 1), string("value", 2)] },
  ],
});

const registry = createFileRegistry(file, () => undefined);
const schema: DescMessage = registry.getMessage(`${PACKAGE}.CheckRequest`)!;
const namespaceSchema: DescMessage = registry.getMessage(`${PACKAGE}.Struct1`)!;

interface AsReadValue {
  kind: { case: undefined } | { case: "nullValue" | "numberValue" | "stringValue" | "boolValue"; value: unknown } | { case: "structValue" | "listValue"; value: AsReadStruct | AsReadList | Uint8Array };
}
interface AsReadStruct {
  fields: { key: string; value?: AsReadValue }[];
}
interface AsReadList {
  values: AsReadValue[];
}

class TooDeep extends Error {}

function valueJson(v: AsReadValue | undefined): unknown {
  const kind = v?.kind;
  if (kind === undefined || kind.case === undefined || kind.case === "nullValue") return null;
  if (kind.case === "structValue" || kind.case === "listValue") {
    if (kind.value instanceof Uint8Array) throw new TooDeep();
    return kind.case === "structValue" ? structJson(kind.value as AsReadStruct) : (kind.value as AsReadList).values.map(valueJson);
  }
  return kind.value;
}

function structJson(s: AsReadStruct): Record<string, unknown> {
  const out = Object.create(null) as Record<string, unknown>;
  for (const entry of s.fields) out[entry.key] = valueJson(entry.value);
  return out;
}

/** The namespace's pieces as the decoder reads them: over the size or piece-count bound, not read; nested too deep, the marker. */
function namespaceJson(pieces: readonly Uint8Array[]): unknown {
  const size = pieces.reduce((n, p) => n + p.byteLength, 0);
  if (size > MAX_MCP_METADATA_BYTES || pieces.length > MAX_MCP_METADATA_PIECES) return MCP_METADATA_OVER_BOUNDS;
  const struct = fromBinary(namespaceSchema, Buffer.concat(pieces)) as unknown as AsReadStruct;
  try {
    return structJson(struct);
  } catch (err) {
    if (err instanceof TooDeep) return MCP_METADATA_OVER_BOUNDS;
    throw err;
  }
}

interface Entry {
  key: string;
  value: string;
}
interface AsRead {
  attributes?: {
    source?: { principal: string; certificate: string };
    destination?: { principal: string };
    request?: {
      http?: {
        method: string;
        path: string;
        headers: Entry[];
        headerMap?: { headers: { key: string; value: string; rawValue: Uint8Array }[] };
      };
    };
    contextExtensions: Entry[];
    metadataContext?: { filterMetadata: { key: string; value: Uint8Array[] }[] };
  };
}

/** Map entries in wire order: the last entry of a key wins, as protobuf decodes a map. */
function entries(list: readonly Entry[]): Record<string, string> {
  const out = Object.create(null) as Record<string, string>;
  for (const e of list) out[e.key] = e.value;
  return out;
}

/**
 * Decodes bytes with the read-fields schema (throws what protobuf-es throws)
 * into the reference's view; `mcpNamespace` is the metadata_context namespace
 * whose value is read.
 */
export function decodeAsRead(bytes: Uint8Array, mcpNamespace?: string): CheckRequestView {
  const m = fromBinary(schema, bytes) as unknown as AsRead;
  const a = m.attributes;
  if (a === undefined) return {};
  const http = a.request?.http;
  const entry = mcpNamespace === undefined ? undefined : a.metadataContext?.filterMetadata.findLast((e) => e.key === mcpNamespace);
  return {
    attributes: {
      source: a.source,
      destination: a.destination,
      contextExtensions: entries(a.contextExtensions),
      request: a.request === undefined ? undefined : { http: http === undefined ? undefined : { ...http, headers: entries(http.headers) } },
      ...(entry !== undefined && { metadataContext: { filterMetadata: { [mcpNamespace!]: new BoundedMetadata(namespaceJson(entry.value)) } } }),
    },
  };
}
