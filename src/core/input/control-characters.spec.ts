import { describe, expect, it } from "vitest";
import { holdsControlCharacter, isControlCode } from "./control-characters.js";

describe("control characters", () => {
  it("are C0, DEL and C1, and nothing printable around them", () => {
    const control = [0x00, 0x09, 0x0a, 0x1b, 0x1f, 0x7f, 0x80, 0x85, 0x9f];
    const printable = [0x20, 0x41, 0x7e, 0xa0, 0xe9, 0x2028, 0xfeff];
    for (const c of control) expect(isControlCode(c), c.toString(16)).toBe(true);
    for (const c of printable) expect(isControlCode(c), c.toString(16)).toBe(false);
  });

  it("are found anywhere in a string", () => {
    expect(holdsControlCharacter("2026-11-01.3")).toBe(false);
    expect(holdsControlCharacter("été release")).toBe(false);
    expect(holdsControlCharacter("")).toBe(false);
    expect(holdsControlCharacter("v1\n")).toBe(true);
    expect(holdsControlCharacter("\u0085v1")).toBe(true);
    expect(holdsControlCharacter("v\u001b[31m1")).toBe(true);
  });
});
