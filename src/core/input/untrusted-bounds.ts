// Bounds on the values a caller sends (SPEC 1), checked before any work on
// them: a subject, chain entry or on-behalf-of longer than a SPIFFE ID may be
// (2,048 bytes), a delegation token over 16 KiB, a path over 8 KiB. Each is
// refused with the reason of the check that reads it.

export const MAX_IDENTITY_BYTES = 2048;
export const MAX_TOKEN_BYTES = 16 * 1024;

/**
 * True when the UTF-8 encoding of `value` is longer than `limit` bytes,
 * without encoding it: a UTF-16 unit is 1 to 3 bytes (a surrogate pair 4 for
 * two units), so most values are settled by their length alone.
 */
export function exceedsUtf8Bytes(value: string, limit: number): boolean {
  if (value.length > limit) return true;
  if (value.length * 3 <= limit) return false;
  let bytes = 0;
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i);
    if (c < 0x80) bytes += 1;
    else if (c < 0x800) bytes += 2;
    else if (c >= 0xd800 && c <= 0xdbff && i + 1 < value.length && (value.charCodeAt(i + 1) & 0xfc00) === 0xdc00) {
      bytes += 4; // a surrogate pair
      i++;
    } else bytes += 3; // includes a lone surrogate, written as U+FFFD
    if (bytes > limit) return true;
  }
  return false;
}

/** Characters of a caller's value that a deny message quotes. */
export const MAX_QUOTED_CHARS = 128;

/**
 * A caller's value quoted for a deny message: JSON-escaped, and cut after
 * MAX_QUOTED_CHARS characters with its full length. The message goes into
 * the deny body and the logs; quoted whole, a 60 KB header of '"' came back
 * as a 240 KB response (escaped once here and again in the JSON body).
 */
export function quoted(value: string): string {
  if (value.length <= MAX_QUOTED_CHARS) return JSON.stringify(value);
  return JSON.stringify(value.slice(0, MAX_QUOTED_CHARS)) + cutMarker(value.length);
}

/** quoted() for a value of any JSON type (a token's claim or header field): its JSON text, cut the same way. */
export function quotedValue(value: unknown): string {
  if (typeof value === "string") return quoted(value);
  const text = JSON.stringify(value) ?? String(value);
  return text.length <= MAX_QUOTED_CHARS ? text : text.slice(0, MAX_QUOTED_CHARS) + cutMarker(text.length);
}

function cutMarker(fullLength: number): string {
  return `… (${fullLength} characters)`;
}
