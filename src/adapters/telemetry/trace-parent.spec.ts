// Reading Envoy's span context from the Check's gRPC metadata (SPEC 6):
// W3C traceparent, else b3, else B3 multi-header; anything malformed starts
// a new trace instead.

import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { parseB3Single, parseTraceparent, readTraceParent, type MetadataReader } from "./trace-parent.js";
import { SpanIdSource } from "./span-ids.js";

const TRACE = "4bf92f3577b34da6a3ce929d0e0e4736";
const SPAN = "00f067aa0ba902b7";

function metadata(entries: Record<string, string | string[]>): MetadataReader {
  return { get: (key) => { const v = entries[key]; return v === undefined ? [] : Array.isArray(v) ? v : [v]; } };
}

describe("W3C traceparent", () => {
  it("reads the trace id and Envoy's span id, and keeps tracestate", () => {
    expect(readTraceParent(metadata({ traceparent: `00-${TRACE}-${SPAN}-01`, tracestate: "congo=t61rcWkgMzE" }))).toEqual({ traceId: TRACE, spanId: SPAN, traceState: "congo=t61rcWkgMzE" });
  });

  it("reads an unsampled parent too: decision spans are always recorded", () => {
    expect(parseTraceparent(`00-${TRACE}-${SPAN}-00`)).toEqual({ traceId: TRACE, spanId: SPAN });
  });

  it.each([
    `00-${TRACE}-${SPAN}-01-extra`,
    `ff-${TRACE}-${SPAN}-01`,
    `00-${"0".repeat(32)}-${SPAN}-01`,
    `00-${TRACE}-${"0".repeat(16)}-01`,
    `00-${TRACE.toUpperCase()}-${SPAN}-01`,
    `00-${TRACE}-${SPAN}`,
    `00_${TRACE}-${SPAN}-01`,
    "",
  ])("ignores %j", (value) => {
    expect(parseTraceparent(value)).toBeUndefined();
  });

  it("accepts a later version with more fields", () => {
    expect(parseTraceparent(`01-${TRACE}-${SPAN}-01-future`)).toEqual({ traceId: TRACE, spanId: SPAN });
  });

  it("drops an oversized tracestate, and ignores a repeated traceparent", () => {
    expect(readTraceParent(metadata({ traceparent: `00-${TRACE}-${SPAN}-01`, tracestate: "a=".padEnd(600, "b") }))?.traceState).toBeUndefined();
    expect(readTraceParent(metadata({ traceparent: [`00-${TRACE}-${SPAN}-01`, `00-${TRACE}-${SPAN}-01`] }))).toBeUndefined();
  });

  it("drops a tracestate that is not printable ASCII (the direct route does not filter headers as grpc-js's Metadata does)", () => {
    for (const tracestate of ["a=caf\u00e9", "a=b\u0000c", "a=b\tc"]) {
      expect(readTraceParent(metadata({ traceparent: `00-${TRACE}-${SPAN}-01`, tracestate }))?.traceState).toBeUndefined();
    }
    expect(readTraceParent(metadata({ traceparent: `00-${TRACE}-${SPAN}-01`, tracestate: "a=b,c=d e" }))?.traceState).toBe("a=b,c=d e");
  });
});

describe("B3", () => {
  it("reads the single header, widening a 64-bit trace id", () => {
    expect(parseB3Single(`${TRACE}-${SPAN}-1`)).toEqual({ traceId: TRACE, spanId: SPAN });
    expect(parseB3Single(`a3ce929d0e0e4736-${SPAN}`)).toEqual({ traceId: `0000000000000000a3ce929d0e0e4736`, spanId: SPAN });
    expect(parseB3Single(`${TRACE}-${SPAN}-d-05e3ac9a4f6e3b90`)).toEqual({ traceId: TRACE, spanId: SPAN });
  });

  it.each(["0", "1", "d", `${TRACE}`, `${TRACE}-short`, `${TRACE}-${SPAN}-1-${SPAN}-x`])("ignores %j", (value) => {
    expect(parseB3Single(value)).toBeUndefined();
  });

  it("reads the multi-header form", () => {
    expect(readTraceParent(metadata({ "x-b3-traceid": TRACE, "x-b3-spanid": SPAN, "x-b3-sampled": "1" }))).toEqual({ traceId: TRACE, spanId: SPAN, traceState: undefined });
  });

  it("prefers a valid traceparent, and falls back to b3 when traceparent is malformed", () => {
    const other = "11112222333344445555666677778888";
    expect(readTraceParent(metadata({ traceparent: `00-${TRACE}-${SPAN}-01`, b3: `${other}-${SPAN}` }))?.traceId).toBe(TRACE);
    expect(readTraceParent(metadata({ traceparent: "garbage", b3: `${other}-${SPAN}` }))?.traceId).toBe(other);
  });

  it("starts a new trace when nothing parses", () => {
    expect(readTraceParent(metadata({}))).toBeUndefined();
  });
});

describe("untrusted metadata (property)", () => {
  it("never throws, and what it returns is well-formed", () => {
    const hexish = fc.string({ unit: fc.constantFrom("0", "1", "a", "f", "F", "-", "x"), maxLength: 70 });
    fc.assert(
      fc.property(hexish, hexish, hexish, (tp, b3, tid) => {
        const parent = readTraceParent(metadata({ traceparent: tp, b3, "x-b3-traceid": tid, "x-b3-spanid": SPAN }));
        return parent === undefined || (/^[0-9a-f]{32}$/.test(parent.traceId) && /^[0-9a-f]{16}$/.test(parent.spanId) && !/^0+$/.test(parent.traceId));
      }),
      { numRuns: 3000, seed: 11 },
    );
  });
});

describe("span ids", () => {
  it("are random hex of the right length, never zero, and do not repeat", () => {
    const ids = new SpanIdSource();
    const seen = new Set<string>();
    for (let i = 0; i < 5000; i++) {
      const span = ids.spanId();
      expect(span).toMatch(/^[0-9a-f]{16}$/);
      seen.add(span);
    }
    expect(seen.size).toBe(5000);
    expect(ids.traceId()).toMatch(/^[0-9a-f]{32}$/);
  });
});
