import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { WireReader, WireWriter } from "./wire.js";

/** What Buffer's own hex decoder makes of `hex`, zero-padded to the declared length (the writer's contract). */
function reference(hex: string): Buffer {
  const out = Buffer.alloc(hex.length >>> 1);
  Buffer.from(hex, "hex").copy(out);
  return out;
}

describe("WireWriter.hexBytes", () => {
  it("writes the bytes Buffer's hex decoder gives, for trace ids, odd cases and junk alike (property)", () => {
    const hexText = fc.oneof(
      fc.string({ unit: fc.constantFrom(..."0123456789abcdefABCDEF"), maxLength: 40 }),
      fc.string({ unit: fc.constantFrom(..."0123456789abcdefxyzG -\u00e9"), maxLength: 40 }),
      fc.string({ maxLength: 40 }),
    );
    fc.assert(
      fc.property(hexText, (hex) => {
        const w = new WireWriter(4);
        w.hexBytes(3, hex);
        const r = new WireReader(w.finish());
        expect(r.tag()).toBe((3 << 3) | 2);
        const [start, end] = r.lengthDelimited();
        expect(w.finish().subarray(start, end)).toEqual(reference(hex));
      }),
      { numRuns: 1000, seed: 7 },
    );
  });
});
