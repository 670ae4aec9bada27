// Reduces a request target to the path that path rules see, and refuses paths
// that an upstream might resolve differently from the rule (SPEC 3):
// dot-segments ("/./", "/../", also percent-encoded), encoded slashes or
// backslashes (%2F, %5C), a raw backslash, ";" (path parameters, as in
// "/..;/", which some servers strip before resolving), "%25" (double
// encoding: "%252e" becomes "%2e" one decode later), a "%" that starts no
// escape, and control or non-ASCII bytes, raw or percent-encoded. A refused
// path matches no path rule. One pass, linear in the path.
// The same safeguards guard the resource URIs of MCP rules (resourceUriProblem).

import { exceedsUtf8Bytes } from "../input/untrusted-bounds.js";
import { hexDigitValue } from "../input/hex-digit.js";

export type RulePath =
  | { readonly ok: true; readonly path: string }
  /** `tooLong`: the path is over MAX_PATH_BYTES, which refuses the request whatever the rules say (SPEC 1). */
  | { readonly ok: false; readonly problem: string; readonly tooLong?: true };

/** SPEC 1: a path (without its query string) over 8 KiB is refused before any work (hop_not_allowed). */
export const MAX_PATH_BYTES = 8 * 1024;

const SLASH = 0x2f;
const DOT = 0x2e;
const PERCENT = 0x25;

function refuse(problem: string): RulePath {
  return { ok: false, problem };
}

/** The byte a "%XY" escape at `i` stands for, or -1 when it is not a complete escape. */
function escapedByte(path: string, i: number): number {
  if (i + 2 >= path.length) return -1;
  const hi = hexDigitValue(path.charCodeAt(i + 1));
  const lo = hexDigitValue(path.charCodeAt(i + 2));
  return hi === -1 || lo === -1 ? -1 : hi * 16 + lo;
}


/** A segment that decodes to "." or ".." (dots written plain or as %2e in any case). */
function isDotSegment(path: string, start: number, end: number): boolean {
  let dots = 0;
  let i = start;
  while (i < end) {
    if (path.charCodeAt(i) === DOT) i += 1;
    else if (path.charCodeAt(i) === PERCENT && escapedByte(path, i) === DOT) i += 3;
    else return false;
    dots++;
    if (dots > 2) return false;
  }
  return dots === 1 || dots === 2;
}

export function toRulePath(target: string): RulePath {
  const path = target.slice(0, beforeQueryOrFragment(target));
  if (exceedsUtf8Bytes(path, MAX_PATH_BYTES)) return { ok: false, problem: `is longer than ${MAX_PATH_BYTES} bytes`, tooLong: true };
  const problem = unsafePathProblem(path);
  return problem === undefined ? { ok: true, path } : refuse(problem);
}

/** Where the query string or fragment of a target starts (its length when it has neither). */
function beforeQueryOrFragment(target: string): number {
  let end = target.length;
  const q = target.indexOf("?");
  if (q !== -1) end = q;
  const hash = target.indexOf("#");
  if (hash !== -1 && hash < end) end = hash;
  return end;
}

/** Why an upstream might resolve `path` differently from a rule (SPEC 3), or undefined when it is safe to match. */
function unsafePathProblem(path: string): string | undefined {
  let segmentStart = 0;
  for (let i = 0; i <= path.length; i++) {
    const c = i < path.length ? path.charCodeAt(i) : SLASH;
    if (c === SLASH) {
      if (isDotSegment(path, segmentStart, i)) return "holds a dot-segment";
      segmentStart = i + 1;
    } else if (c < 0x20 || c >= 0x7f) {
      return "holds a control or non-ASCII character";
    } else if (c === 0x5c) {
      return "holds a backslash";
    } else if (c === 0x3b) {
      return 'holds a ";" (path parameters)';
    } else if (c === PERCENT) {
      const byte = escapedByte(path, i);
      // RFC 3986 allows "%" only before two hex digits. Servers read the rest
      // their own way ("%u002e" is "." to IIS and old Jetty; "%%32%65"
      // becomes "%2e" after one decode and "." after two).
      if (byte === -1) return 'holds a "%" that is not followed by two hex digits';
      if (byte === 0x2f || byte === 0x5c) return "holds an encoded slash or backslash";
      if (byte === PERCENT) return 'holds "%25" (double percent-encoding)';
      // Decoded, these are control or non-ASCII bytes; over-long UTF-8 ("%c0%ae" for ".") starts with one too.
      if (byte < 0x20 || byte >= 0x7f) return "holds an encoded control or non-ASCII byte";
    }
  }
  return undefined;
}

/**
 * Why a resource URI of an MCP `resources/read` (SPEC 8) must match no
 * `resources` glob, or undefined. The MCP server resolves the URI, so the
 * path rules' safeguards apply to it up to its query or fragment:
 * `file:///docs/*` must not admit `file:///docs/..` or `file:///docs/%2e%2e`.
 * The query and fragment may hold no way out of the folder either
 * (traversalInQueryProblem): globs see the whole URI, and a server that
 * takes "?" or "#" as part of a file name would resolve
 * `file:///docs/a?/../..` (or `a?/..%2F..`, `a?\..\..`) above /docs.
 */
export function resourceUriProblem(uri: string): string | undefined {
  const end = beforeQueryOrFragment(uri);
  const problem = unsafePathProblem(uri.slice(0, end));
  if (problem !== undefined) return problem;
  return end === uri.length ? undefined : traversalInQueryProblem(uri, end);
}

/**
 * What the query and fragment of a resource URI may not hold: a way out of
 * the folder for a server that reads them as part of a file name. Segments
 * break at "/", "\", "?", "#" and an encoded slash or backslash; a segment
 * that decodes to "." or ".." is refused, as is a double-encoded dot, slash
 * or backslash ("%252e"), a "%" that starts no escape, and a control or
 * non-ASCII character. Other escapes ("caf%C3%A9", "next=%2Fhome") and ";"
 * are ordinary query text.
 */
function traversalInQueryProblem(uri: string, from: number): string | undefined {
  let segmentStart = from;
  for (let i = from; i <= uri.length; i++) {
    let separator = 0;
    if (i === uri.length) separator = 1;
    else {
      const c = uri.charCodeAt(i);
      if (c < 0x20 || c >= 0x7f) return "holds a control or non-ASCII character";
      if (c === SLASH || c === 0x5c || c === 0x3f || c === 0x23) separator = 1;
      else if (c === PERCENT) {
        const byte = escapedByte(uri, i);
        if (byte === -1) return 'holds a "%" that is not followed by two hex digits';
        if (byte === 0x2f || byte === 0x5c) separator = 3;
        else if (byte === PERCENT) {
          // What "%25" makes of the two characters after it, one decode later.
          const next = escapedByte(uri, i + 2);
          if (next === DOT || next === 0x2f || next === 0x5c) return "holds a double-encoded dot, slash or backslash";
        }
      }
    }
    if (separator > 0) {
      if (isDotSegment(uri, segmentStart, i)) return "holds a dot-segment";
      segmentStart = i + separator;
      i += separator - 1;
    }
  }
  return undefined;
}
