// The on-behalf-of header names ONE principal (SPEC 1). Envoy joins repeated
// headers with ",", so "mallory@evil.com,x@example.com" would otherwise pass
// the pattern "*@example.com" (finding 7). A value holding a ",", whitespace,
// a control or invisible format character, or longer than a SPIFFE ID may
// be, is refused before it is matched against any pattern.

import { isControlCode } from "../input/control-characters.js";
import { exceedsUtf8Bytes, MAX_IDENTITY_BYTES } from "../input/untrusted-bounds.js";

/** Unicode White_Space outside ASCII, which no principal's name should hold. */
function isUnicodeSpace(c: number): boolean {
  return c === 0xa0 || c === 0x1680 || (c >= 0x2000 && c <= 0x200a) || c === 0x2028 || c === 0x2029 || c === 0x202f || c === 0x205f || c === 0x3000 || c === 0xfeff;
}

/**
 * Characters that change how a name is shown without being seen: format
 * characters (zero-width spaces and joiners, bidi overrides as in
 * "\u202emoc.elpmaxe@ecila"), other default-ignorable ones (the Hangul
 * filler U+3164, variation selectors, the combining grapheme joiner), the
 * replacement character (bytes that were not UTF-8) and lone surrogates.
 * "alice\u200b@example.com" matches "*@example.com" and reads as alice in
 * Jaeger and in the audit log.
 */
const INVISIBLE = /[\p{Cf}\p{Default_Ignorable_Code_Point}\p{Cs}\uFFFD]/u;

/** Why this value cannot name one principal, or undefined when it can. */
export function onBehalfOfProblem(value: string): string | undefined {
  if (exceedsUtf8Bytes(value, MAX_IDENTITY_BYTES)) return `is longer than ${MAX_IDENTITY_BYTES} bytes`;
  let ascii = true;
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i);
    if (c === 0x2c) return 'holds a "," (it must name one principal; repeated headers are joined with ",")';
    if (c === 0x20 || c === 0x09) return "holds whitespace";
    if (isControlCode(c)) return "holds a control character";
    if (isUnicodeSpace(c)) return "holds whitespace";
    if (c >= 0x80) ascii = false;
  }
  if (!ascii && INVISIBLE.test(value)) return "holds an invisible format character, a lone surrogate or bytes that are not UTF-8";
  return undefined;
}
