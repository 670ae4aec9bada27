// SPEC 1: untrusted values are bounded in UTF-8 bytes before any work.

import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { exceedsUtf8Bytes, MAX_QUOTED_CHARS, quoted, quotedValue } from "./untrusted-bounds.js";

describe("exceedsUtf8Bytes", () => {
  it("counts ASCII as one byte a character", () => {
    expect(exceedsUtf8Bytes("a".repeat(2048), 2048)).toBe(false);
    expect(exceedsUtf8Bytes("a".repeat(2049), 2048)).toBe(true);
  });

  it("counts multi-byte characters by their UTF-8 length", () => {
    expect(exceedsUtf8Bytes("é".repeat(1024), 2048)).toBe(false);
    expect(exceedsUtf8Bytes("é".repeat(1025), 2048)).toBe(true);
    expect(exceedsUtf8Bytes("€".repeat(683), 2048)).toBe(true);
    expect(exceedsUtf8Bytes("😀".repeat(512), 2048)).toBe(false);
    expect(exceedsUtf8Bytes("😀".repeat(513), 2048)).toBe(true);
  });

  it("agrees with Buffer.byteLength (property)", () => {
    fc.assert(
      fc.property(fc.string({ unit: "binary", maxLength: 40 }), fc.integer({ min: 0, max: 120 }), (value, limit) => {
        return exceedsUtf8Bytes(value, limit) === Buffer.byteLength(value, "utf8") > limit;
      }),
      { numRuns: 5000, seed: 1 },
    );
  });
});

describe("quoted: a caller's value in a deny message", () => {
  it("is the value's JSON text when short", () => {
    expect(quoted('say "hi"')).toBe('"say \\"hi\\""');
    expect(quotedValue(null)).toBe("null");
    expect(quotedValue(["a", 1])).toBe('["a",1]');
  });

  it("is cut after MAX_QUOTED_CHARS characters, giving the full length, however the value is made", () => {
    fc.assert(
      fc.property(fc.string({ minLength: MAX_QUOTED_CHARS + 1, maxLength: 5000 }), (value) => {
        const q = quoted(value);
        return q.startsWith(JSON.stringify(value.slice(0, MAX_QUOTED_CHARS))) && q.endsWith(`… (${value.length} characters)`) && q.length <= 7 * MAX_QUOTED_CHARS + 40;
      }),
      { numRuns: 300, seed: 12 },
    );
    expect(quotedValue({ k: "x".repeat(10_000) })).toMatch(/^\{"k":"x+… \(10008 characters\)$/);
  });
});
