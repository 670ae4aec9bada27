// Bounds a string that came from a request (a header value, a path, a chain
// entry) before it is kept in an audit record or a span attribute (SPEC 6):
// up to a limit of UTF-8 bytes it is kept whole; beyond it, the first bytes up
// to the limit are kept, cut at a character boundary, followed by a marker
// giving the full length and SHA-256, so the original can still be matched
// against other evidence without being stored.

import { createHash } from "node:crypto";

/** SPEC 6: a header value or path is kept up to this many bytes. */
export const DEFAULT_TEXT_LIMIT_BYTES = 1024;

/**
 * The marker appended to a cut string: `…[truncated: <full UTF-8 bytes> bytes, sha256=<lower-case hex of the full UTF-8 bytes>]`.
 * It starts with U+2026 so that a reader sees at a glance where the kept part ends.
 */
export function truncationMarker(fullBytes: number, sha256Hex: string): string {
  return `…[truncated: ${fullBytes} bytes, sha256=${sha256Hex}]`;
}

/** Matches a string that ends in a marker, capturing the full length and the hash. */
export const TRUNCATION_MARKER = /…\[truncated: (\d+) bytes, sha256=([0-9a-f]{64})\]$/;

/**
 * `value` itself when its UTF-8 encoding fits in `limitBytes`; otherwise its
 * longest prefix of whole characters within `limitBytes`, then the marker.
 * Lone surrogates are counted and hashed as U+FFFD, as UTF-8 encodes them.
 */
export function boundText(value: string, limitBytes: number = DEFAULT_TEXT_LIMIT_BYTES): string {
  if (!Number.isInteger(limitBytes) || limitBytes < 0) throw new RangeError(`limitBytes must be a non-negative integer, got ${limitBytes}`);
  // Fast path, no encoding: a UTF-16 code unit never takes more than 3 UTF-8 bytes.
  if (value.length * 3 <= limitBytes) return value;
  if (Buffer.byteLength(value, "utf8") <= limitBytes) return value;
  const bytes = Buffer.from(value, "utf8");
  let cut = limitBytes;
  // Back off to the first byte of a character: continuation bytes are 0b10xxxxxx.
  while (cut > 0 && (bytes[cut]! & 0xc0) === 0x80) cut--;
  const sha256 = createHash("sha256").update(bytes).digest("hex");
  return bytes.toString("utf8", 0, cut) + truncationMarker(bytes.length, sha256);
}

export interface TextListBounds {
  /** Each item is bounded like boundText. Default 1,024. */
  readonly itemLimitBytes?: number;
  /** Items kept at most. */
  readonly maxItems: number;
  /** The kept items (after bounding each) take at most this many UTF-8 bytes in all. */
  readonly maxBytes: number;
}

/**
 * A list from a request (a delegation chain) bounded in count and bytes:
 * each item as boundText; the items that fit within `maxItems` and `maxBytes`
 * are kept; if any had to go, one marker item follows, giving the original
 * count, and the length and SHA-256 of the items joined by "," (the header's
 * form): `…[truncated: <n> items, <bytes> bytes, sha256=<hex>]`.
 */
export function boundTextList(values: readonly string[], bounds: TextListBounds): string[] {
  const itemLimit = bounds.itemLimitBytes ?? DEFAULT_TEXT_LIMIT_BYTES;
  const kept: string[] = [];
  let used = 0;
  for (const value of values) {
    const item = boundText(value, itemLimit);
    const bytes = Buffer.byteLength(item, "utf8");
    if (kept.length >= bounds.maxItems || used + bytes > bounds.maxBytes) {
      kept.push(listTruncationMarker(values));
      return kept;
    }
    kept.push(item);
    used += bytes;
  }
  return kept;
}

/** The item that stands for the items of `values` a bounded list left out: `…[truncated: <n> items, <bytes> bytes, sha256=<hex>]` of them all joined by ",". */
function listTruncationMarker(values: readonly string[]): string {
  const joined = Buffer.from(values.join(","), "utf8");
  const sha256 = createHash("sha256").update(joined).digest("hex");
  return `…[truncated: ${values.length} items, ${joined.length} bytes, sha256=${sha256}]`;
}
