import { describe, expect, it } from "vitest";
import { hexDigitValue } from "./hex-digit.js";

describe("hexDigitValue", () => {
  it("reads 0-9, a-f and A-F, and nothing else", () => {
    const digits = "0123456789abcdef";
    for (let v = 0; v < 16; v++) {
      expect(hexDigitValue(digits.charCodeAt(v))).toBe(v);
      expect(hexDigitValue(digits.toUpperCase().charCodeAt(v))).toBe(v);
    }
    for (const c of "gG/:@`{ \u0000\u00e0\uff10") expect(hexDigitValue(c.charCodeAt(0)), JSON.stringify(c)).toBe(-1);
  });
});
