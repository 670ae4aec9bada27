// SPEC 1: untrusted values are bounded in UTF-8 bytes before any work.

import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { exceedsUtf8Bytes } from "./untrusted-bounds.js";

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
