import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { WireError, WireReader, WireWriter } from "./wire.js";

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

describe("WireWriter.string", () => {
  it("writes a string field as UTF-8 with its byte length, short ASCII and everything else alike (property)", () => {
    const text = fc.oneof(fc.string({ maxLength: 40 }), fc.string({ unit: "grapheme", maxLength: 40 }), fc.string({ unit: fc.constantFrom(..."ab\u007f\u0080\u00e9\ud83d"), maxLength: 40 }));
    fc.assert(
      fc.property(text, fc.integer({ min: 1, max: 64 }), (value, initial) => {
        const w = new WireWriter(initial);
        w.string(2, value);
        const utf8 = Buffer.from(value, "utf8");
        const r = new WireReader(w.finish());
        expect(r.tag()).toBe((2 << 3) | 2);
        const [start, end] = r.lengthDelimited();
        expect(w.finish().subarray(start, end)).toEqual(utf8);
        expect(end).toBe(w.finish().length);
      }),
      { numRuns: 2000, seed: 11 },
    );
  });
});

describe("WireReader lengths and tags", () => {
  /** A varint of `value` (a bigint, any size). */
  const varint = (value: bigint): number[] => {
    const out: number[] = [];
    do {
      const low = Number(value & 0x7fn);
      value >>= 7n;
      out.push(value > 0n ? low | 0x80 : low);
    } while (value > 0n);
    return out;
  };

  it("reads a length that fits and refuses one past the message", () => {
    expect(new WireReader(Buffer.from([0x0a, ...varint(3n), 1, 2, 3])).tag()).toBe(0x0a);
    const fits = new WireReader(Buffer.from([...varint(3n), 1, 2, 3]));
    expect(fits.field()).toBe(1);
    expect(fits.fieldEnd).toBe(4);
    expect(() => new WireReader(Buffer.from([...varint(4n), 1, 2, 3])).field()).toThrow(WireError);
  });

  // The review found 2^49 + 39 read as 39, so a 39-byte field was read where protobuf refuses the message.
  it.each([2n ** 49n + 3n, 2n ** 56n + 3n, 2n ** 63n + 3n])("never wraps a huge length (%s) to a small one", (length) => {
    expect(() => new WireReader(Buffer.from([...varint(length), 1, 2, 3])).field()).toThrow(/runs past its message/);
  });

  it("refuses a tag wider than 32 bits however many bytes carry it", () => {
    expect(() => new WireReader(Buffer.from(varint(2n ** 49n + 0x0an))).tag()).toThrow(WireError);
  });
});
