// The one spelling of bytes in unpadded base64url (RFC 7515 2, RFC 4648 5),
// as a JWS part must be written. Node's decoder is lenient: it accepts `=`,
// `+` and `/`, skips other characters, and ignores the unused low bits of the
// last character, so 16 strings decode to one ES256 signature. A verifier
// that took them all would accept one token under several spellings, and
// anything keyed by the token's text (SPEC 5's `prev` hash chain, the
// verified-token cache) would see several tokens.

const BASE64URL_ALPHABET = /^[A-Za-z0-9_-]*$/;

/** The bytes `text` encodes, or undefined when `text` is not their canonical unpadded base64url spelling. */
export function decodeCanonicalBase64url(text: string): Buffer | undefined {
  if (!BASE64URL_ALPHABET.test(text)) return undefined;
  const bytes = Buffer.from(text, "base64url");
  // Re-encoding catches what the alphabet cannot: a length of 4n+1 and nonzero unused bits.
  return bytes.toString("base64url") === text ? bytes : undefined;
}
