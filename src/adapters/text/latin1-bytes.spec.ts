import { describe, expect, it } from "vitest";
import { isAscii, SHORT_TEXT_CHARS, writeLatin1 } from "./latin1-bytes.js";

describe("writeLatin1", () => {
  it.each([0, 1, SHORT_TEXT_CHARS - 1, SHORT_TEXT_CHARS, SHORT_TEXT_CHARS + 1, 200])("writes %i characters exactly as Buffer.write(latin1) does", (length) => {
    // Every latin1 character, and one beyond (Buffer.write keeps its low byte, as a Uint8Array store does).
    const text = Array.from({ length }, (_, i) => String.fromCharCode(i === 3 ? 0x141 : (i * 37) % 256)).join("");
    const ours = Buffer.alloc(length + 8, 0xee);
    const theirs = Buffer.alloc(length + 8, 0xee);
    expect(writeLatin1(ours, 3, text)).toBe(theirs.write(text, 3, "latin1"));
    expect(ours).toEqual(theirs);
  });
});

describe("isAscii", () => {
  it("is true exactly when every character is below 0x80", () => {
    expect(isAscii("")).toBe(true);
    expect(isAscii("01JBENCH\u007f")).toBe(true);
    expect(isAscii("caf\u00e9")).toBe(false);
    expect(isAscii("\u0080")).toBe(false);
    expect(isAscii("a\ud83d")).toBe(false);
  });
});
