// Random trace and span ids for decision spans, as lower-case hex. Random
// bytes are drawn in blocks, so an id costs a slice of a pooled buffer
// rather than a call into the kernel (W3C Trace Context: ids are random and
// never all zero).

import { randomFillSync } from "node:crypto";

const POOL_BYTES = 8 * 1024;

export class SpanIdSource {
  private readonly pool = Buffer.allocUnsafe(POOL_BYTES);
  private offset = POOL_BYTES;

  private take(bytes: number): string {
    for (;;) {
      if (this.offset + bytes > POOL_BYTES) {
        randomFillSync(this.pool);
        this.offset = 0;
      }
      const start = this.offset;
      this.offset += bytes;
      let zero = true;
      for (let i = start; i < start + bytes; i++) {
        if (this.pool[i] !== 0) {
          zero = false;
          break;
        }
      }
      if (!zero) return this.pool.toString("hex", start, start + bytes);
    }
  }

  /** 16 random bytes as 32 hex digits. */
  traceId(): string {
    return this.take(16);
  }

  /** 8 random bytes as 16 hex digits. */
  spanId(): string {
    return this.take(8);
  }
}
