// The fast OTLP encoder against the SDK's own serializer: both outputs are
// decoded by a small schema-driven protobuf walker into a normalized tree
// (proto3 defaults dropped outside oneofs, attribute order ignored) and
// compared. Byte equality is not the goal: the SDK writes some zero fields
// explicitly and may group differently only in ways the tree ignores.

import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { SpanKind, SpanStatusCode, TraceFlags, type Attributes, type HrTime, type Link, type SpanContext } from "@opentelemetry/api";
import { TraceState } from "@opentelemetry/core";
import { resourceFromAttributes, type Resource } from "@opentelemetry/resources";
import { AlwaysOnSampler, BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor, type ReadableSpan, type TimedEvent } from "@opentelemetry/sdk-trace-base";
import { ProtobufTraceSerializer } from "@opentelemetry/otlp-transformer";
import { WireReader, WireType } from "../protobuf/wire.js";
import { encodeExportTraceServiceRequest } from "./otlp-span-encoder.js";

// ---- a generic protobuf walker, driven by a schema of the OTLP messages ----

type FieldType = "string" | "bytes" | "varint" | "fixed64" | "fixed32" | "double" | Schema;
interface Schema {
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
const request: Schema = { fields: { 1: resourceSpans } };

type Tree = { [field: string]: unknown[] };

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
function walk(buf: Buffer, schema: Schema, start = 0, end = buf.length): Tree {
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

const decode = (bytes: Uint8Array): Tree => walk(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength), request);
const reference = (spans: ReadableSpan[]): Uint8Array => ProtobufTraceSerializer.serializeRequest(spans) ?? new Uint8Array();

function expectEquivalent(spans: ReadableSpan[]): void {
  const ours = decode(encodeExportTraceServiceRequest(spans));
  expect(ours).toEqual(decode(reference(spans)));
}

// ---- spans ----

let idCounter = 0;
const hexId = (bytes: number): string => {
  idCounter++;
  return (idCounter.toString(16).padStart(4, "0") + "9f3c".repeat(bytes)).slice(0, bytes * 2);
};

interface SpanSpec {
  name?: string;
  kind?: SpanKind;
  attributes?: Attributes;
  events?: TimedEvent[];
  links?: Link[];
  parent?: SpanContext;
  status?: { code: SpanStatusCode; message?: string };
  resource?: Resource;
  scope?: ReadableSpan["instrumentationScope"];
  start?: HrTime;
  end?: HrTime;
  traceState?: TraceState;
  traceFlags?: number;
  dropped?: { attributes?: number; events?: number; links?: number };
}

const defaultResource = resourceFromAttributes({ "service.name": "hopwarden", "service.version": "0.1.0" });
const defaultScope = { name: "hopwarden.authz" };

function makeSpan(spec: SpanSpec = {}): ReadableSpan {
  const ctx: SpanContext = { traceId: hexId(16), spanId: hexId(8), traceFlags: spec.traceFlags ?? TraceFlags.SAMPLED, traceState: spec.traceState };
  return {
    name: spec.name ?? "authz.check",
    kind: spec.kind ?? SpanKind.SERVER,
    spanContext: () => ctx,
    parentSpanContext: spec.parent,
    startTime: spec.start ?? [1_763_900_000, 123_456_789],
    endTime: spec.end ?? [1_763_900_000, 987_654_321],
    status: spec.status ?? { code: SpanStatusCode.UNSET },
    attributes: spec.attributes ?? {},
    links: spec.links ?? [],
    events: spec.events ?? [],
    duration: [0, 864_197_532],
    ended: true,
    resource: spec.resource ?? defaultResource,
    instrumentationScope: spec.scope ?? defaultScope,
    droppedAttributesCount: spec.dropped?.attributes ?? 0,
    droppedEventsCount: spec.dropped?.events ?? 0,
    droppedLinksCount: spec.dropped?.links ?? 0,
  };
}

const checkAttributes: Attributes = {
  "authz.decision": "allow",
  "authz.reason": "allowed",
  "authz.decision_id": "01M840E2FF5JE12XZX1WHF7H6T",
  "authz.policy.version": "sha256:4f2a",
  "agent.caller": "spiffe://example.org/agent/research",
  "agent.callee": "spiffe://example.org/agent/db",
  "agent.on_behalf_of": "alice@example.com",
  "agent.delegation.chain": ["spiffe://example.org/agent/orchestrator", "spiffe://example.org/agent/research"],
  "agent.delegation.depth": 2,
  "tls.client.hash.sha256": "34D9D4B167AA400380CA12CBB921B19F03B0B66FB8FA4D23208502BB1EA65004",
  "http.request.method": "GET",
  "url.path": "/query",
};

const hop = (from: string, to: string, result: string, time: HrTime = [1_763_900_000, 200_000_000]): TimedEvent => ({
  name: "authz.hop",
  time,
  attributes: { from, to, rule: "hops[0]", result, cached: false },
  droppedAttributesCount: 0,
});

describe("encodeExportTraceServiceRequest: the same OTLP message as the SDK's ProtobufTraceSerializer", () => {
  it("a decision span: SERVER, remote parent, string array, hop events", () => {
    const parent: SpanContext = { traceId: hexId(16), spanId: hexId(8), traceFlags: 0, isRemote: true };
    expectEquivalent([
      makeSpan({
        attributes: checkAttributes,
        parent,
        events: [hop("spiffe://example.org/agent/orchestrator", "spiffe://example.org/agent/research", "allow"), hop("spiffe://example.org/agent/research", "spiffe://example.org/agent/db", "allow")],
      }),
    ]);
  });

  it("attributes of every type: negative and large ints, doubles, booleans, arrays with nulls, bytes, kv lists, non-ASCII", () => {
    expectEquivalent([
      makeSpan({
        attributes: {
          zero: 0,
          negativeZero: -0,
          small: 7,
          u32: 0xffffffff,
          aboveU32: 0x100000000,
          maxSafe: Number.MAX_SAFE_INTEGER,
          beyondSafe: 2 ** 60,
          int64Min: -(2 ** 63),
          int64End: 2 ** 63, // not an int64: double
          negative: -1,
          negativeLarge: -1_234_567_890_123,
          minSafe: Number.MIN_SAFE_INTEGER,
          fraction: 0.5,
          negativeFraction: -3.25,
          nan: NaN,
          infinity: Infinity,
          negativeInfinity: -Infinity,
          tiny: 5e-324,
          t: true,
          f: false,
          empty: "",
          unicode: "ünïcødé ✓ 𝄞",
          long: "x".repeat(300),
          strings: ["a", "", "spiffe://example.org/agent/x"],
          numbers: [1, -2, 2.5, NaN],
          booleans: [true, false],
          holes: ["a", null, undefined, "b"] as unknown as string[],
          emptyArray: [],
          undefinedValue: undefined,
          bytes: new Uint8Array([0, 1, 255]) as unknown as string,
          kvlist: { nested: "yes", n: 3, deeper: { x: [1, "two"] } } as unknown as string,
        },
      }),
    ]);
  });

  it("no parent, unset status; error status with message; ok status without message; every kind; trace state; dropped counts", () => {
    expectEquivalent([
      makeSpan({ kind: SpanKind.INTERNAL }),
      makeSpan({ kind: SpanKind.CLIENT, status: { code: SpanStatusCode.ERROR, message: "internal_error" } }),
      makeSpan({ kind: SpanKind.PRODUCER, status: { code: SpanStatusCode.OK } }),
      makeSpan({ kind: SpanKind.CONSUMER, status: { code: SpanStatusCode.UNSET, message: "ignored?" } }),
      makeSpan({ traceState: new TraceState("vendor=abc,other=1"), traceFlags: TraceFlags.NONE, dropped: { attributes: 3, events: 2, links: 1 } }),
      makeSpan({ parent: { traceId: hexId(16), spanId: hexId(8), traceFlags: 1, isRemote: false } }),
      makeSpan({ parent: { traceId: hexId(16), spanId: "", traceFlags: 1 } }),
    ]);
  });

  it("events without attributes or with dropped attributes, and links with and without attributes", () => {
    expectEquivalent([
      makeSpan({
        events: [
          { name: "bare", time: [1, 2] },
          { name: "dropped", time: [1_763_900_001, 999_999_999], attributes: { a: 1 }, droppedAttributesCount: 4 },
        ],
        links: [
          { context: { traceId: hexId(16), spanId: hexId(8), traceFlags: 1, isRemote: true, traceState: new TraceState("k=v") } },
          { context: { traceId: hexId(16), spanId: hexId(8), traceFlags: 0 }, attributes: { why: "follows", n: -5 }, droppedAttributesCount: 2 },
        ],
      }),
    ]);
  });

  it("times: epoch, far future and nanosecond edges", () => {
    expectEquivalent([
      makeSpan({ start: [0, 0], end: [0, 1] }),
      makeSpan({ start: [4_294_967_295, 999_999_999], end: [17_179_869_183, 999_999_999] }),
      makeSpan({ start: [1_763_900_000, 999_999_999], end: [1_763_900_001, 0] }),
    ]);
  });

  it("several resources and scopes, interleaved, grouped as the SDK groups them (by object, first seen first)", () => {
    const other = resourceFromAttributes({ "service.name": "other", "host.id": 42, "deployment.weights": [0.5, 1.5] });
    const empty = resourceFromAttributes({});
    const scopeB = { name: "b", version: "1.2.3", schemaUrl: "https://opentelemetry.io/schemas/1.30.0" };
    const scopeC = { name: "c", version: "" };
    const sameAsDefault = { name: "hopwarden.authz" }; // equal content, another object: its own ScopeSpans, as in the SDK
    expectEquivalent([
      makeSpan({ name: "1" }),
      makeSpan({ name: "2", resource: other }),
      makeSpan({ name: "3", scope: scopeB }),
      makeSpan({ name: "4", resource: other, scope: scopeC }),
      makeSpan({ name: "5" }),
      makeSpan({ name: "6", resource: empty }),
      makeSpan({ name: "7", scope: sameAsDefault }),
      makeSpan({ name: "8", resource: other }),
    ]);
  });

  it("spans from the real SDK (two providers, two tracers)", async () => {
    const memory = new InMemorySpanExporter();
    const providers = [defaultResource, resourceFromAttributes({ "service.name": "second" })].map(
      (r) => new BasicTracerProvider({ sampler: new AlwaysOnSampler(), resource: r, spanProcessors: [new SimpleSpanProcessor(memory)] }),
    );
    for (const provider of providers) {
      for (const tracerName of ["one", "two"]) {
        const tracer = provider.getTracer(tracerName, "9.9.9");
        const s = tracer.startSpan("authz.check", { kind: SpanKind.SERVER, attributes: checkAttributes });
        s.addEvent("authz.hop", { from: "a", to: "b", rule: "hops[1]", result: "deny", cached: true });
        s.setStatus({ code: SpanStatusCode.ERROR, message: "policy_unavailable" });
        s.end();
      }
    }
    await Promise.all(providers.map((p) => p.forceFlush()));
    const spans = memory.getFinishedSpans();
    expect(spans).toHaveLength(4);
    expectEquivalent(spans);
    await Promise.all(providers.map((p) => p.shutdown()));
  });

  it("an empty batch encodes to an empty request", () => {
    expect(encodeExportTraceServiceRequest([])).toHaveLength(0);
  });

  it("stays equivalent past its caches' bounds (many distinct values for one key, many keys)", () => {
    const spans = Array.from({ length: 150 }, (_, i) =>
      makeSpan({
        name: `span-${i}`,
        attributes: { id: `value-${i}`, [`key-${i}`]: i, chain: [`agent-${i}`, "shared"], flag: i % 2 === 0 },
        events: [{ name: `event-${i}`, time: [1_763_900_000, i], attributes: { i, [`k${i}`]: `v${i}` } }],
      }),
    );
    expectEquivalent(spans);
    expectEquivalent(spans); // second time: from the caches where they hold the pair
  });

  it("writes times as exact nanoseconds (fixed64) and negative ints as ten-byte varints", () => {
    const s = makeSpan({ start: [1_763_900_000, 123_456_789], end: [9_007_199_254, 740_993_000], attributes: { n: -1 } });
    const tree = decode(encodeExportTraceServiceRequest([s]));
    const decoded = ((tree[1]![0] as Tree)[2]![0] as Tree)[2]![0] as Tree;
    expect(decoded[7]).toEqual([(1_763_900_000n * 1_000_000_000n + 123_456_789n).toString()]);
    expect(decoded[8]).toEqual([(9_007_199_254n * 1_000_000_000n + 740_993_000n).toString()]);
    expect(decoded[9]).toEqual([{ 1: ["n"], 2: [{ 3: [(2n ** 64n - 1n).toString()] }] }]);
    const bytes = encodeExportTraceServiceRequest([makeSpan({ attributes: { n: -1 } })]);
    expect(Buffer.from(bytes).includes(Buffer.from([0x18, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]))).toBe(true);
  });
});

// ---- properties ----

const attributeValue = fc.oneof(
  fc.string({ unit: "grapheme", maxLength: 40 }),
  fc.string({ maxLength: 200 }),
  fc.boolean(),
  fc.integer(),
  fc.maxSafeInteger(),
  fc.double(),
  fc.constantFrom(2 ** 53, 2 ** 62, -(2 ** 63), 2 ** 63, 2 ** 64, -0),
  fc.array(fc.string({ maxLength: 30 }), { maxLength: 6 }),
  fc.array(fc.oneof(fc.integer(), fc.double()), { maxLength: 4 }),
  fc.array(fc.boolean(), { maxLength: 4 }),
);
const attributeMap: fc.Arbitrary<Attributes> = fc.dictionary(fc.string({ maxLength: 20 }), attributeValue, { maxKeys: 14 });
const hrTime: fc.Arbitrary<HrTime> = fc.tuple(fc.integer({ min: 0, max: 2 ** 34 - 1 }), fc.integer({ min: 0, max: 999_999_999 }));
const timedEvent: fc.Arbitrary<TimedEvent> = fc.record({ name: fc.string({ maxLength: 20 }), time: hrTime, attributes: attributeMap, droppedAttributesCount: fc.nat(5) });
const spanSpec: fc.Arbitrary<SpanSpec> = fc.record({
  name: fc.string({ maxLength: 30 }),
  kind: fc.constantFrom(SpanKind.INTERNAL, SpanKind.SERVER, SpanKind.CLIENT, SpanKind.PRODUCER, SpanKind.CONSUMER),
  attributes: attributeMap,
  events: fc.array(timedEvent, { maxLength: 6 }),
  parent: fc.option(
    fc.record({ traceId: fc.constant("0af7651916cd43dd8448eb211c80319c"), spanId: fc.constant("b7ad6b7169203331"), traceFlags: fc.nat(255), isRemote: fc.boolean() }),
    { nil: undefined },
  ),
  status: fc.record({ code: fc.constantFrom(SpanStatusCode.UNSET, SpanStatusCode.OK, SpanStatusCode.ERROR), message: fc.option(fc.string({ maxLength: 20 }), { nil: undefined }) }),
  start: hrTime,
  end: hrTime,
  traceFlags: fc.nat(255),
});

describe("encodeExportTraceServiceRequest: properties", () => {
  it("equals the SDK serializer's message for random attribute maps, events, parents and statuses", () => {
    const resources = [defaultResource, resourceFromAttributes({ "service.name": "b" })];
    const scopes = [defaultScope, { name: "x", version: "1" }];
    fc.assert(
      fc.property(fc.array(fc.tuple(spanSpec, fc.nat(1), fc.nat(1)), { minLength: 1, maxLength: 5 }), (specs) => {
        expectEquivalent(specs.map(([spec, r, s]) => makeSpan({ ...spec, resource: resources[r]!, scope: scopes[s]! })));
      }),
      { numRuns: 300 },
    );
  });

  it("encodes every hr time as seconds × 10⁹ + nanos, exactly", () => {
    fc.assert(
      fc.property(hrTime, (time) => {
        const tree = decode(encodeExportTraceServiceRequest([makeSpan({ start: time })]));
        const decoded = ((tree[1]![0] as Tree)[2]![0] as Tree)[2]![0] as Tree;
        expect(decoded[7]).toEqual(BigInt(time[0]) * 1_000_000_000n + BigInt(time[1]) === 0n ? undefined : [(BigInt(time[0]) * 1_000_000_000n + BigInt(time[1])).toString()]);
      }),
      { numRuns: 500 },
    );
  });
});
