// Short text written byte by byte. Buffer.write is a call into C++ that costs
// about 70–180 ns whatever the length; a loop of charCodeAt stores costs
// about 4 ns a character, so it wins up to about 32 characters (measured on
// Node 24). The hot encoders write many short pieces (JSON keys, ids, the
// decision id into a cached CheckResponse): about 3 µs of an audit record's
// 10 µs was these calls.

/** Up to this many characters the loop is cheaper than Buffer.write. */
export const SHORT_TEXT_CHARS = 32;

/**
 * Writes `text` as latin1 (one byte a character: ASCII in practice) at `at`,
 * as `target.write(text, at, "latin1")` would; the caller has made room.
 * Returns the bytes written.
 */
export function writeLatin1(target: Buffer, at: number, text: string): number {
  const n = text.length;
  if (n > SHORT_TEXT_CHARS) return target.write(text, at, "latin1");
  for (let i = 0; i < n; i++) target[at + i] = text.charCodeAt(i);
  return n;
}

/** Every character is ASCII: its latin1 bytes are its UTF-8 bytes. */
export function isAscii(text: string): boolean {
  for (let i = 0; i < text.length; i++) if (text.charCodeAt(i) > 0x7f) return false;
  return true;
}
