// Decision ids: ULIDs (48-bit millisecond time + 80 random bits, Crockford
// base32), so ids sort by time as strings. Within one millisecond the random
// part is incremented, so ids from one process also sort in issue order.
// Random bytes are drawn in blocks to keep the hot path cheap.

import { randomFillSync } from "node:crypto";
import type { DecisionIdGenerator } from "../../core/ports.js";

const ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";
const POOL_SIZE = 10 * 512;

export class UlidGenerator implements DecisionIdGenerator {
  private lastMs = -1;
  /** The time part of the last id: several ids share each millisecond under load. */
  private timeMs = -1;
  private timeText = "";
  private readonly random = new Uint8Array(10);
  private readonly pool = new Uint8Array(POOL_SIZE);
  private poolOffset = POOL_SIZE;

  next(nowMs: number): string {
    let ms = Math.floor(nowMs);
    if (ms <= this.lastMs) {
      ms = this.lastMs;
      if (!this.increment()) {
        // 80 bits exhausted within one millisecond: borrow the next millisecond.
        ms = this.lastMs + 1;
        this.fillRandom();
      }
    } else {
      this.fillRandom();
    }
    this.lastMs = ms;
    if (ms !== this.timeMs) {
      this.timeText = encodeTime(ms);
      this.timeMs = ms;
    }
    return this.timeText + encodeRandom(this.random);
  }

  private fillRandom(): void {
    if (this.poolOffset + 10 > POOL_SIZE) {
      randomFillSync(this.pool);
      this.poolOffset = 0;
    }
    this.random.set(this.pool.subarray(this.poolOffset, this.poolOffset + 10));
    this.poolOffset += 10;
  }

  private increment(): boolean {
    for (let i = 9; i >= 0; i--) {
      const v = this.random[i]!;
      if (v < 255) {
        this.random[i] = v + 1;
        return true;
      }
      this.random[i] = 0;
    }
    return false;
  }
}

function encodeTime(ms: number): string {
  let out = "";
  let t = ms;
  for (let i = 0; i < 10; i++) {
    out = ALPHABET[t % 32]! + out;
    t = Math.floor(t / 32);
  }
  return out;
}

/** The alphabet's character codes, by 5-bit value. */
const CODES = Array.from(ALPHABET, (c) => c.charCodeAt(0));

/** The 16-character random part of a ULID for 10 bytes (exported for its test). */
export function encodeRandom(bytes: Uint8Array): string {
  // 80 bits → 16 base32 characters, 5 bits at a time, most significant first:
  // two 40-bit halves of 8 characters each, made as one string (not 16
  // concatenations, which would allocate a string per character on every Check).
  const high = bytes[0]! * 2 ** 32 + (((bytes[1]! << 24) | (bytes[2]! << 16) | (bytes[3]! << 8) | bytes[4]!) >>> 0);
  const low = bytes[5]! * 2 ** 32 + (((bytes[6]! << 24) | (bytes[7]! << 16) | (bytes[8]! << 8) | bytes[9]!) >>> 0);
  return String.fromCharCode(
    CODES[digit(high, 7)]!, CODES[digit(high, 6)]!, CODES[digit(high, 5)]!, CODES[digit(high, 4)]!,
    CODES[digit(high, 3)]!, CODES[digit(high, 2)]!, CODES[digit(high, 1)]!, CODES[digit(high, 0)]!,
    CODES[digit(low, 7)]!, CODES[digit(low, 6)]!, CODES[digit(low, 5)]!, CODES[digit(low, 4)]!,
    CODES[digit(low, 3)]!, CODES[digit(low, 2)]!, CODES[digit(low, 1)]!, CODES[digit(low, 0)]!,
  );
}

/** The `position`-th 5-bit digit (0 = least significant) of a 40-bit number. */
function digit(value: number, position: number): number {
  return Math.floor(value / 2 ** (5 * position)) % 32;
}
