// Interned text: the same bytes give the same string object; different bytes
// never give another's string; invalid UTF-8 is refused as utf8Text refuses it.

import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { TextIntern } from "./text-intern.js";
import { WireError } from "./wire.js";

const bytes = (text: string) => Buffer.from(`xx${text}yy`, "utf8");

describe("TextIntern", () => {
  it("returns the same string object for the same bytes, wherever they sit", () => {
    const intern = new TextIntern();
    const a = intern.text(bytes("certificate"), 2, 13, "f");
    const other = Buffer.concat([Buffer.from("zzz"), bytes("certificate")]);
    expect(intern.text(other, 5, 16, "f")).toBe(a);
    expect(a).toBe("certificate");
  });

  it("never returns another text that shares its length and tail", () => {
    const intern = new TextIntern();
    const tail = "t".repeat(100);
    expect(intern.text(Buffer.from(`A${tail}`), 0, 101, "f")).toBe(`A${tail}`);
    expect(intern.text(Buffer.from(`B${tail}`), 0, 101, "f")).toBe(`B${tail}`);
    expect(intern.text(Buffer.from(`A${tail}`), 0, 101, "f")).toBe(`A${tail}`);
  });

  it("refuses bytes that are not UTF-8", () => {
    expect(() => new TextIntern().text(Buffer.from([0x61, 0xff, 0x62]), 0, 3, "Peer.certificate")).toThrow(WireError);
  });

  it("stays within its bounds", () => {
    const intern = new TextIntern(8, 1 << 20);
    for (let i = 0; i < 100; i++) intern.text(Buffer.from(`value-${i}`), 0, `value-${i}`.length, "f");
    expect(intern.size).toBeLessThanOrEqual(8);
  });

  it("decodes exactly as Buffer does, for any UTF-8 text (property)", () => {
    const intern = new TextIntern(4);
    fc.assert(
      fc.property(fc.array(fc.string({ unit: "grapheme", maxLength: 80 }), { minLength: 1, maxLength: 20 }), (texts) => {
        for (const t of texts) {
          const b = Buffer.from(t, "utf8");
          if (intern.text(b, 0, b.length, "f") !== t) return false;
        }
        return true;
      }),
      { numRuns: 500, seed: 5 },
    );
  });
});
