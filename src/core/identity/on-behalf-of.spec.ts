// SPEC 1: an on-behalf-of names one principal.

import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { onBehalfOfProblem } from "./on-behalf-of.js";

describe("an on-behalf-of names one principal (finding 7)", () => {
  it.each(["alice@example.com", "user:1234", "spiffe://example.org/person/alice", "ålice@example.com"])("accepts %j", (value) => {
    expect(onBehalfOfProblem(value)).toBeUndefined();
  });

  it.each([
    ["mallory@evil.com,x@example.com", '","'],
    ["a@example.com, b@example.com", '","'],
    ["alice @example.com", "whitespace"],
    ["alice@example.com\t", "whitespace"],
    ["alice@example.com\n", "control"],
    ["alice\u0000@example.com", "control"],
    ["alice\u0085@example.com", "control"],
    ["alice\u00a0@example.com", "whitespace"],
    ["alice\u2028@example.com", "whitespace"],
    [`${"a".repeat(2049)}@example.com`, "longer than 2048 bytes"],
    // Invisible in Jaeger and the audit log, so they read as another person (review finding).
    ["alice\u200b@example.com", "invisible format character"],
    ["alice\u200d@example.com", "invisible format character"],
    ["\u202emoc.elpmaxe@ecila\u202c@example.com", "invisible format character"],
    ["alice\u2066@example.com", "invisible format character"],
    ["alice\u00ad@example.com", "invisible format character"],
    ["alice\u3164@example.com", "invisible format character"],
    ["alice\u115f@example.com", "invisible format character"],
    ["alice\u034f@example.com", "invisible format character"],
    ["alice\ufe0f@example.com", "invisible format character"],
    ["\uFFFDalice@example.com", "not UTF-8"],
    ["alice\ud800@example.com", "lone surrogate"],
  ])("refuses %j", (value, problem) => {
    expect(onBehalfOfProblem(value)).toContain(problem);
  });

  it("refuses any value holding a comma, space, tab or control character (property)", () => {
    const bad = fc.constantFrom(",", " ", "\t", "\r", "\n", "\u0000", "\u007f");
    fc.assert(
      fc.property(fc.string({ maxLength: 20 }), bad, fc.string({ maxLength: 20 }), (a, b, c) => onBehalfOfProblem(a + b + c) !== undefined),
      { numRuns: 2000, seed: 7 },
    );
  });
});
