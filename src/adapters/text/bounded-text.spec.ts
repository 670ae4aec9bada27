import { createHash } from "node:crypto";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { boundText, boundTextList, DEFAULT_TEXT_LIMIT_BYTES, TRUNCATION_MARKER, truncationMarker } from "./bounded-text.js";

const sha256 = (text: string) => createHash("sha256").update(text, "utf8").digest("hex");
const utf8Bytes = (text: string) => Buffer.byteLength(text, "utf8");

/** The kept part of a bounded string (without its marker). */
const kept = (bounded: string) => bounded.replace(TRUNCATION_MARKER, "");

describe("boundText (SPEC 6: attacker strings are kept up to 1,024 bytes, then cut with a marker)", () => {
  it("keeps a string of up to 1,024 bytes whole", () => {
    expect(boundText("")).toBe("");
    expect(boundText("alice@example.com")).toBe("alice@example.com");
    const exactly = "a".repeat(DEFAULT_TEXT_LIMIT_BYTES);
    expect(boundText(exactly)).toBe(exactly);
  });

  it("cuts a 60 KiB header value to 1,024 bytes and a marker with the full length and SHA-256", () => {
    const value = "x".repeat(60 * 1024);
    const bounded = boundText(value);
    expect(bounded).toBe(`${"x".repeat(1024)}…[truncated: 61440 bytes, sha256=${sha256(value)}]`);
    expect(utf8Bytes(bounded)).toBeLessThan(1200);
  });

  it("cuts at a character boundary, never inside a multi-byte character", () => {
    // 1023 ASCII bytes then a 4-byte emoji: the emoji does not fit, and is not split.
    const value = `${"a".repeat(1023)}😀${"b".repeat(10)}`;
    expect(kept(boundText(value))).toBe("a".repeat(1023));
    // 2-byte characters: 512 of them fill exactly 1,024 bytes.
    const twoByte = "é".repeat(600);
    expect(kept(boundText(twoByte))).toBe("é".repeat(512));
  });

  it("takes another limit", () => {
    expect(boundText("abcdef", 3)).toBe(`abc${truncationMarker(6, sha256("abcdef"))}`);
    expect(boundText("abcdef", 0)).toBe(truncationMarker(6, sha256("abcdef")));
    expect(() => boundText("abc", -1)).toThrow(RangeError);
  });

  it("property: the kept part is a prefix within the limit, whole characters, and the marker names the original", () => {
    fc.assert(
      fc.property(fc.string({ unit: "grapheme", maxLength: 400 }), fc.integer({ min: 0, max: 200 }), (value, limit) => {
        const bounded = boundText(value, limit);
        if (utf8Bytes(value) <= limit) return bounded === value;
        const match = TRUNCATION_MARKER.exec(bounded);
        expect(match).not.toBeNull();
        expect(Number(match![1])).toBe(utf8Bytes(value));
        expect(match![2]).toBe(sha256(value));
        const prefix = kept(bounded);
        expect(utf8Bytes(prefix)).toBeLessThanOrEqual(limit);
        expect(value.startsWith(prefix)).toBe(true);
        // Whole characters: one more code point would not have fitted.
        const next = String.fromCodePoint(value.codePointAt(prefix.length)!);
        expect(utf8Bytes(prefix + next)).toBeGreaterThan(limit);
        return true;
      }),
      { seed: 20261101, numRuns: 500 },
    );
  });
});

describe("boundTextList (a chain from a request, bounded in count and bytes)", () => {
  const bounds = { maxItems: 4, maxBytes: 100 };

  it("keeps a list that fits whole", () => {
    expect(boundTextList(["a", "b", "c"], bounds)).toEqual(["a", "b", "c"]);
    expect(boundTextList([], bounds)).toEqual([]);
  });

  it("keeps the first items that fit, then one marker with the original count, length and SHA-256", () => {
    const values = ["a", "b", "c", "d", "e", "f"];
    expect(boundTextList(values, bounds)).toEqual(["a", "b", "c", "d", `…[truncated: 6 items, 11 bytes, sha256=${sha256("a,b,c,d,e,f")}]`]);
  });

  it("stops at the byte budget, and bounds each item on its own", () => {
    const big = "y".repeat(5000);
    const list = boundTextList(["spiffe://a/b", big, "spiffe://a/c"], { maxItems: 10, maxBytes: 1140, itemLimitBytes: 1024 });
    expect(list).toHaveLength(3);
    expect(list[1]).toBe(boundText(big));
    expect(list[2]).toMatch(/^…\[truncated: 3 items, 5026 bytes, sha256=[0-9a-f]{64}\]$/);
    const tight = boundTextList(["spiffe://a/b", big], { maxItems: 10, maxBytes: 100 });
    expect(tight).toEqual(["spiffe://a/b", expect.stringMatching(/^…\[truncated: 2 items, 5013 bytes/) as unknown]);
  });
});
