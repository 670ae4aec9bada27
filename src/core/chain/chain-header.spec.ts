// The delegation chain header (SPEC 2 check 5): a comma-separated list with
// optional spaces or tabs around entries, stricter than RFC 9110 5.6.1: an
// empty entry, or a present but empty header, is malformed, never ignored.

import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { parseChainHeader } from "./chain-header.js";

const A = "spiffe://example.org/agent/orchestrator";
const B = "spiffe://example.org/agent/research";

describe("parsing the chain header", () => {
  it("reads a single entry", () => {
    expect(parseChainHeader(A)).toEqual({ ok: true, entries: [A] });
  });

  it("reads entries in order, the first agent first", () => {
    expect(parseChainHeader(`${A},${B}`)).toEqual({ ok: true, entries: [A, B] });
  });

  it("drops optional spaces and tabs around entries", () => {
    expect(parseChainHeader(` \t${A} ,\t ${B}\t `)).toEqual({ ok: true, entries: [A, B] });
  });

  it("keeps whitespace other than space and tab inside the entry, for the SPIFFE ID check to refuse", () => {
    expect(parseChainHeader(`${A}\n,${B}`)).toEqual({ ok: true, entries: [`${A}\n`, B] });
    expect(parseChainHeader(`\u00a0${A}`)).toEqual({ ok: true, entries: [`\u00a0${A}`] });
  });

  it("does not split inside an entry on anything but a comma", () => {
    expect(parseChainHeader(`${A};${B}`)).toEqual({ ok: true, entries: [`${A};${B}`] });
    expect(parseChainHeader(`${A} ${B}`)).toEqual({ ok: true, entries: [`${A} ${B}`] });
  });
});

describe("an empty entry or an empty header is malformed, never ignored", () => {
  it.each([
    ["", "the chain header is present but empty"],
    ["   ", "the chain header is present but empty"],
    ["\t", "the chain header is present but empty"],
    [",", "entry 1 is empty"],
    [`,${A}`, "entry 1 is empty"],
    [`${A},`, "entry 2 is empty"],
    [`${A},,${B}`, "entry 2 is empty"],
    [`${A}, \t ,${B}`, "entry 2 is empty"],
  ])("refuses %j", (header, problem) => {
    expect(parseChainHeader(header)).toEqual({ ok: false, problem });
  });
});

describe("parsing untrusted input (property)", () => {
  const pieces = fc.constantFrom(A, B, ",", " ", "\t", "", "x", "\n", ", ,");
  const headers = fc.oneof(fc.string(), fc.array(pieces, { maxLength: 12 }).map((p) => p.join("")));

  it("never throws, and accepts exactly the headers whose every entry is non-empty after trimming spaces and tabs", () => {
    fc.assert(
      fc.property(headers, (header) => {
        const expected = header.split(",").map((e) => e.replace(/^[ \t]+|[ \t]+$/g, ""));
        const parsed = parseChainHeader(header);
        if (expected.some((e) => e.length === 0)) return !parsed.ok;
        return parsed.ok && JSON.stringify(parsed.entries) === JSON.stringify(expected);
      }),
      { numRuns: 800 },
    );
  });

  it("round-trips any list of non-empty entries joined with optional whitespace", () => {
    const entry = fc.string({ minLength: 1 }).filter((s) => !s.includes(",") && s.replace(/^[ \t]+|[ \t]+$/g, "") === s);
    const ows = fc.constantFrom("", " ", "\t", " \t ");
    fc.assert(
      fc.property(fc.array(fc.tuple(ows, entry, ows), { minLength: 1, maxLength: 8 }), (parts) => {
        const header = parts.map(([l, e, r]) => `${l}${e}${r}`).join(",");
        const parsed = parseChainHeader(header);
        return parsed.ok && JSON.stringify(parsed.entries) === JSON.stringify(parts.map(([, e]) => e));
      }),
      { numRuns: 500 },
    );
  });
});
