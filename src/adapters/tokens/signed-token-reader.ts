// Reads a compact JWS far enough to trust its bytes: that each part is
// spelled the one canonical way, the protected header's `typ`, `alg` and
// `kid`, then the signature against the key source. Every JWS hopwarden
// verifies (delegation tokens, Txn-Tokens, the token service's subject
// tokens) is read here.
// Claims are not judged here (no clock, no audience): only the signature is
// checked, so an expired token with a bad signature is reported as a bad
// signature, which is what SPEC 5's order requires.

import { decodeProtectedHeader, type ProtectedHeaderParameters } from "jose";
import { decodeCanonicalBase64url } from "./canonical-base64url.js";
import { jwsSignatureValid, keyObjectOf } from "./jws-signature.js";
import { isAllowedAlg, type DelegationTokenAlg } from "./delegation-token-format.js";
import type { VerificationKeySource } from "./jwks-key-source.js";
import { quotedValue } from "../../core/input/untrusted-bounds.js";

export type SignedTokenResult =
  | { readonly ok: true; readonly alg: DelegationTokenAlg; readonly kid: string; readonly payload: unknown }
  | { readonly ok: false; readonly problem: string };

export interface ReadOptions {
  /** The exact `typ` the header must carry; undefined accepts any typ except those in `refusedTyps`. */
  readonly typ: string | undefined;
  readonly refusedTyps?: readonly string[];
}

/** No delegation token or Txn-Token is anywhere near this long (SPEC 1); refuse before decoding. */
export const MAX_TOKEN_LENGTH = 16 * 1024;
const COMPACT_JWS = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*\.[A-Za-z0-9_-]+$/;

export async function readSignedToken(token: string, keys: VerificationKeySource, nowMs: number, options: ReadOptions): Promise<SignedTokenResult> {
  const fail = (problem: string): SignedTokenResult => ({ ok: false, problem });
  if (token.length > MAX_TOKEN_LENGTH) return fail(`is ${token.length} characters long, more than ${MAX_TOKEN_LENGTH}`);
  if (!COMPACT_JWS.test(token)) return fail("is not a compact JWS (three base64url parts separated by dots)");
  // One token, one spelling: SPEC 5's prev and the verified-token cache hash the token's text.
  const notCanonical = (part: string): SignedTokenResult =>
    fail(`has a ${part} that is not canonical base64url (its bytes re-encode to other text, e.g. unused bits set in its last character): a token has exactly one spelling`);
  const firstDot = token.indexOf(".");
  const lastDot = token.lastIndexOf(".");
  if (decodeCanonicalBase64url(token.slice(0, firstDot)) === undefined) return notCanonical("protected header");
  const payload = decodeCanonicalBase64url(token.slice(firstDot + 1, lastDot));
  if (payload === undefined) return notCanonical("payload");
  const signature = decodeCanonicalBase64url(token.slice(lastDot + 1));
  if (signature === undefined) return notCanonical("signature");
  let header: ProtectedHeaderParameters;
  try {
    header = decodeProtectedHeader(token);
  } catch {
    return fail("has a protected header that is not base64url JSON");
  }
  if (options.typ !== undefined && header.typ !== options.typ) {
    return fail(`has typ ${quotedValue(header.typ ?? null)}; only ${JSON.stringify(options.typ)} is accepted`);
  }
  if (options.typ === undefined && typeof header.typ === "string" && options.refusedTyps?.includes(header.typ) === true) {
    return fail(`has typ ${quotedValue(header.typ)}, which is not accepted here`);
  }
  const alg = header.alg;
  if (!isAllowedAlg(alg)) return fail(`has alg ${quotedValue(alg ?? null)}; only ES256, EdDSA, RS256 and PS256 are accepted`);
  // RFC 7515 4.1.11: a `crit` extension we do not understand must be refused;
  // none of the tokens read here uses one (nor RFC 7797's unencoded payload, `b64`).
  if (header.crit !== undefined) return fail("has a crit header parameter; hopwarden's tokens use no JWS extensions");
  if (header.b64 !== undefined) return fail("has a b64 header parameter; hopwarden's tokens use no JWS extensions");
  const kid = header.kid;
  if (typeof kid !== "string" || kid.length === 0) return fail("has no kid");
  const found = await keys.lookup(kid, alg, nowMs);
  if (!found.ok) return fail(found.problem);
  const signingInput = Buffer.from(token.slice(0, lastDot), "ascii");
  for (const key of found.keys) {
    if (jwsSignatureValid(alg, signingInput, signature, keyObjectOf(key))) {
      return { ok: true, alg, kid, payload: decodePayload(payload) };
    }
  }
  return fail(`has a signature that does not verify with key ${quotedValue(kid)}`);
}

function decodePayload(bytes: Uint8Array): unknown {
  try {
    return JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes)) as unknown;
  } catch {
    return undefined;
  }
}
