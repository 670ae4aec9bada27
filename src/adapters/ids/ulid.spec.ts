// Decision ids (SPEC 2): unique and sortable. ULIDs: 10 characters of
// millisecond time and 16 of randomness, Crockford base32.

import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { encodeRandom, UlidGenerator } from "./ulid.js";

const ULID = /^[0-9A-HJKMNP-TV-Z]{26}$/;
const T = Date.UTC(2026, 10, 1);

function decodeTime(id: string): number {
  const alphabet = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";
  let ms = 0;
  for (const c of id.slice(0, 10)) ms = ms * 32 + alphabet.indexOf(c);
  return ms;
}

describe("decision ids", () => {
  it("are 26 characters of Crockford base32", () => {
    expect(new UlidGenerator().next(T)).toMatch(ULID);
  });

  it("encode the decision's millisecond in their first 10 characters", () => {
    const gen = new UlidGenerator();
    expect(decodeTime(gen.next(T))).toBe(T);
    expect(gen.next(0).slice(0, 10)).toBe(gen.next(0).slice(0, 10));
  });

  it("are unique and sort in issue order within one millisecond", () => {
    const gen = new UlidGenerator();
    const ids = Array.from({ length: 5000 }, () => gen.next(T));
    expect(new Set(ids).size).toBe(ids.length);
    expect([...ids].sort()).toEqual(ids);
  });

  it("sort by time across milliseconds, and never go backwards when the clock does", () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: T - 1000, max: T + 1000 }), { minLength: 1, maxLength: 50 }), (times) => {
        const gen = new UlidGenerator();
        const ids = times.map((t) => gen.next(t));
        return ids.every((id, i) => ULID.test(id) && (i === 0 || ids[i - 1]! < id));
      }),
      { numRuns: 300 },
    );
  });

  it("borrow the next millisecond when the random part runs out", () => {
    const gen = new UlidGenerator();
    const first = gen.next(T);
    (gen as unknown as { random: Uint8Array }).random.fill(255);
    const next = gen.next(T);
    expect(next > first).toBe(true);
    expect(decodeTime(next)).toBe(T + 1);
  });

  it("differ between generators", () => {
    expect(new UlidGenerator().next(T)).not.toBe(new UlidGenerator().next(T));
  });
});

describe("the random part", () => {
  it("is the 80 bits, most significant first, in 16 base32 digits (property, against BigInt)", () => {
    const alphabet = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 10, maxLength: 10 }), (bytes) => {
        let n = 0n;
        for (const b of bytes) n = (n << 8n) | BigInt(b);
        let expected = "";
        for (let i = 0; i < 16; i++) {
          expected = alphabet[Number(n & 31n)]! + expected;
          n >>= 5n;
        }
        expect(encodeRandom(bytes)).toBe(expected);
      }),
      { numRuns: 2000, seed: 11 },
    );
    expect(encodeRandom(new Uint8Array(10).fill(255))).toBe("ZZZZZZZZZZZZZZZZ");
  });
});
