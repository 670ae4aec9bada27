import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { decodeCanonicalBase64url } from "./canonical-base64url.js";

const ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

describe("canonical base64url: one spelling for each byte string", () => {
  it("accepts the unpadded base64url of any bytes and gives them back", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), (bytes) => {
        const decoded = decodeCanonicalBase64url(Buffer.from(bytes).toString("base64url"));
        expect(decoded !== undefined && decoded.equals(bytes)).toBe(true);
      }),
    );
  });

  it("accepts nothing else: whatever it accepts is the encoding of what it returns", () => {
    fc.assert(
      fc.property(fc.string({ unit: fc.constantFrom(...ALPHABET, "=", "+", "/", " ", ".", "\n"), maxLength: 40 }), (text) => {
        const decoded = decodeCanonicalBase64url(text);
        if (decoded !== undefined) expect(decoded.toString("base64url")).toBe(text);
        else expect(Buffer.from(text, "base64url").toString("base64url")).not.toBe(text);
      }),
      { numRuns: 2_000 },
    );
  });

  it("refuses every other value of a last character's unused bits (16 spellings of an ES256 signature become one)", () => {
    const signature = Buffer.alloc(64, 0xa5).toString("base64url");
    expect(signature).toHaveLength(86);
    const last = ALPHABET.indexOf(signature.at(-1)!);
    const spellings = [...ALPHABET].filter((c) => (ALPHABET.indexOf(c) & ~0b1111) === (last & ~0b1111)).map((c) => signature.slice(0, -1) + c);
    expect(spellings).toHaveLength(16);
    expect(spellings.filter((s) => decodeCanonicalBase64url(s) !== undefined)).toEqual([signature]);
    // The lenient decoder Node offers takes all 16 as the same bytes.
    for (const s of spellings) expect(Buffer.from(s, "base64url").equals(Buffer.from(signature, "base64url"))).toBe(true);
  });

  it("refuses padding, the standard alphabet, characters outside it, and a dangling character", () => {
    for (const text of ["YQ==", "YQ=", "-_+/", "+/8", "YW Jj", "YWJj\n", "YWJjZ"]) expect(decodeCanonicalBase64url(text)).toBeUndefined();
    expect(decodeCanonicalBase64url("")).toEqual(Buffer.alloc(0));
    expect(decodeCanonicalBase64url("YWJj")).toEqual(Buffer.from("abc"));
  });
});
