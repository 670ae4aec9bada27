// Certificate serials in `revoked.serials` are hex and compared as numbers
// (SPEC 3): case and ":" separators do not matter, nor do leading zeros.

import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { normalizeSerial } from "./certificate-serial.js";

describe("serials compare as numbers", () => {
  it("ignores case", () => {
    expect(normalizeSerial("7A1B")).toBe(normalizeSerial("7a1b"));
  });

  it("ignores ':' separators", () => {
    expect(normalizeSerial("7a:1b:00")).toBe(normalizeSerial("7a1b00"));
  });

  it("ignores leading zeros, as a number would", () => {
    expect(normalizeSerial("00:0A:1b")).toBe("a1b");
    expect(normalizeSerial("0a1b")).toBe(normalizeSerial("A1B"));
  });

  it("keeps zero as zero", () => {
    expect(normalizeSerial("00")).toBe("0");
    expect(normalizeSerial("0")).toBe("0");
  });

  it("tells different numbers apart", () => {
    expect(normalizeSerial("a1b")).not.toBe(normalizeSerial("a1b0"));
  });

  it.each(["", ":", "::", "0x1f", "g1", "1f ", " 1f", "1-f", "１"])("refuses %j, which is not a hex serial", (serial) => {
    expect(normalizeSerial(serial)).toBeUndefined();
  });

  it("agrees with BigInt on every hex spelling of a number (property)", () => {
    fc.assert(
      fc.property(fc.bigInt({ min: 0n, max: (1n << 160n) - 1n }), fc.nat(3), fc.boolean(), fc.boolean(), (n, zeros, upper, colons) => {
        let hex = "0".repeat(zeros) + n.toString(16);
        if (upper) hex = hex.toUpperCase();
        if (colons) hex = (hex.length % 2 === 1 ? "0" + hex : hex).replace(/(..)(?=.)/g, "$1:");
        return normalizeSerial(hex) === n.toString(16);
      }),
      { numRuns: 500 },
    );
  });

  it("never throws on arbitrary strings, and accepts only hex digits and ':' (property)", () => {
    fc.assert(
      fc.property(fc.string(), (s) => {
        const normal = normalizeSerial(s);
        return normal === undefined || (/^[0-9a-fA-F:]+$/.test(s) && /^(0|[1-9a-f][0-9a-f]*)$/.test(normal));
      }),
      { numRuns: 500 },
    );
  });
});
