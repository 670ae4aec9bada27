// Repeated large strings decoded once: the peer certificate (about 2 KiB of
// URL-encoded PEM) arrives with almost every Check, and the same few
// certificates come again and again. Decoding and validating it every time
// costs a 2 KiB string and a UTF-8 scan, and every cache keyed by it must
// hash a fresh copy. Interned, a repeat costs one memcmp against the bytes it
// was decoded from, and downstream caches see the same string object, whose
// hash V8 keeps. Bounded by count and bytes; a miss decodes as usual.

import { utf8Text } from "./wire.js";

interface Interned {
  readonly bytes: Buffer;
  readonly text: string;
}

/** Bytes of the tail hashed to find a candidate: high entropy for a certificate (its signature). */
const TAIL_BYTES = 64;

function tailHash(buf: Buffer, start: number, end: number): number {
  // FNV-1a over the length and the last TAIL_BYTES bytes.
  let h = (0x811c9dc5 ^ (end - start)) >>> 0;
  for (let i = Math.max(start, end - TAIL_BYTES); i < end; i++) h = Math.imul(h ^ buf[i]!, 0x01000193) >>> 0;
  return h;
}

export class TextIntern {
  private readonly entries = new Map<number, Interned>();
  private bytesHeld = 0;

  constructor(
    private readonly maxEntries = 1024,
    private readonly maxBytes = 4 * 1024 * 1024,
  ) {}

  /** The UTF-8 text of buf[start, end) (validated as utf8Text does), the same string object for the same bytes. */
  text(buf: Buffer, start: number, end: number, what: string): string {
    const length = end - start;
    const hash = tailHash(buf, start, end);
    const hit = this.entries.get(hash);
    if (hit !== undefined && hit.bytes.length === length && buf.compare(hit.bytes, 0, length, start, end) === 0) return hit.text;
    const text = utf8Text(buf, start, end, what);
    if (length <= this.maxBytes / 16) this.keep(hash, Buffer.from(buf.subarray(start, end)), text);
    return text;
  }

  private keep(hash: number, bytes: Buffer, text: string): void {
    const prior = this.entries.get(hash);
    if (prior !== undefined) {
      this.bytesHeld -= prior.bytes.length;
      this.entries.delete(hash);
    }
    // Oldest first out (a Map keeps insertion order): cheap, and the working set is a few certificates.
    while (this.entries.size >= this.maxEntries || (this.entries.size > 0 && this.bytesHeld + bytes.length > this.maxBytes)) {
      const oldest = this.entries.entries().next().value as [number, Interned];
      this.bytesHeld -= oldest[1].bytes.length;
      this.entries.delete(oldest[0]);
    }
    this.entries.set(hash, { bytes, text });
    this.bytesHeld += bytes.length;
  }

  get size(): number {
    return this.entries.size;
  }
}
