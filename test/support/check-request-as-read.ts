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

import { create, createFileRegistry, fromBinary, type DescMessage } from "@bufbuild/protobuf";
import { FieldDescriptorProto_Label, FieldDescriptorProto_Type, FileDescriptorProtoSchema } from "@bufbuild/protobuf/wkt";
import type { CheckRequestView } from "./reference-codec.js";

const PACKAGE = "hopwarden.test.asread";

function field(name: string, number: number, type: FieldDescriptorProto_Type, typeName?: string, repeated = false) {
  return {
    name,
    number,
    type,
    label: repeated ? FieldDescriptorProto_Label.REPEATED : FieldDescriptorProto_Label.OPTIONAL,
    ...(typeName !== undefined && { typeName: `.${PACKAGE}.${typeName}` }),
  };
}
const string = (name: string, number: number) => field(name, number, FieldDescriptorProto_Type.STRING);
const bytes = (name: string, number: number) => field(name, number, FieldDescriptorProto_Type.BYTES);
const message = (name: string, number: number, typeName: string) => field(name, number, FieldDescriptorProto_Type.MESSAGE, typeName);
const repeated = (name: string, number: number, typeName: string) => field(name, number, FieldDescriptorProto_Type.MESSAGE, typeName, true);

const file = create(FileDescriptorProtoSchema, {
  name: "hopwarden/test/check_request_as_read.proto",
  package: PACKAGE,
  syntax: "proto3",
  messageType: [
    { name: "CheckRequest", field: [message("attributes", 1, "AttributeContext")] },
    {
      name: "AttributeContext",
      field: [message("source", 1, "Peer"), message("destination", 2, "Peer"), message("request", 4, "Request"), repeated("context_extensions", 10, "StringEntry")],
    },
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
  };
}

/** Map entries in wire order: the last entry of a key wins, as protobuf decodes a map. */
function entries(list: readonly Entry[]): Record<string, string> {
  const out = Object.create(null) as Record<string, string>;
  for (const e of list) out[e.key] = e.value;
  return out;
}

/** Decodes bytes with the read-fields schema (throws what protobuf-es throws) into the reference's view. */
export function decodeAsRead(bytes: Uint8Array): CheckRequestView {
  const m = fromBinary(schema, bytes) as unknown as AsRead;
  const a = m.attributes;
  if (a === undefined) return {};
  const http = a.request?.http;
  return {
    attributes: {
      source: a.source,
      destination: a.destination,
      contextExtensions: entries(a.contextExtensions),
      request: a.request === undefined ? undefined : { http: http === undefined ? undefined : { ...http, headers: entries(http.headers) } },
    },
  };
}
