// SPIFFE ID parsing by the SPIFFE ID specification: `spiffe://` + a trust
// domain of [a-z0-9._-] + an optional path of non-empty segments of
// [a-zA-Z0-9._-], none of them "." or "..", no trailing slash, no query,
// fragment, port or userinfo. Nothing is normalized: an ID that is not
// already in canonical form is rejected, so no two spellings name one agent.

export interface SpiffeId {
  /** The whole ID, exactly as given (it is canonical, or it was rejected). */
  readonly id: string;
  readonly trustDomain: string;
  /** "" or "/seg/seg". */
  readonly path: string;
}

export type SpiffeIdResult =
  | { readonly ok: true; readonly value: SpiffeId }
  | { readonly ok: false; readonly problem: string };

const SCHEME = "spiffe://";
const MAX_ID_BYTES = 2048;
const MAX_TRUST_DOMAIN = 255;

function isTrustDomainChar(c: number): boolean {
  return (c >= 0x61 && c <= 0x7a) || (c >= 0x30 && c <= 0x39) || c === 0x2e || c === 0x2d || c === 0x5f;
}

function isPathChar(c: number): boolean {
  return (
    (c >= 0x61 && c <= 0x7a) || (c >= 0x41 && c <= 0x5a) || (c >= 0x30 && c <= 0x39) || c === 0x2e || c === 0x2d || c === 0x5f
  );
}

function fail(problem: string): SpiffeIdResult {
  return { ok: false, problem };
}

export function parseSpiffeId(input: string): SpiffeIdResult {
  if (input.length === 0) return fail("is empty");
  if (input.length > MAX_ID_BYTES) return fail(`is longer than ${MAX_ID_BYTES} characters`);
  if (!input.startsWith(SCHEME)) return fail('does not start with "spiffe://" (lower case)');
  const rest = input.slice(SCHEME.length);
  const slash = rest.indexOf("/");
  const trustDomain = slash === -1 ? rest : rest.slice(0, slash);
  const path = slash === -1 ? "" : rest.slice(slash);
  if (trustDomain.length === 0) return fail("has an empty trust domain");
  if (trustDomain.length > MAX_TRUST_DOMAIN) return fail(`has a trust domain longer than ${MAX_TRUST_DOMAIN} characters`);
  for (let i = 0; i < trustDomain.length; i++) {
    if (!isTrustDomainChar(trustDomain.charCodeAt(i))) {
      return fail(`has the character ${JSON.stringify(trustDomain[i])} in its trust domain (allowed: a-z 0-9 . - _)`);
    }
  }
  if (path.length > 0) {
    const problem = pathProblem(path);
    if (problem !== undefined) return fail(problem);
  }
  return { ok: true, value: { id: input, trustDomain, path } };
}

function pathProblem(path: string): string | undefined {
  if (path === "/") return "has a trailing slash";
  let segmentStart = 1;
  for (let i = 1; i <= path.length; i++) {
    const atEnd = i === path.length;
    const c = atEnd ? 0x2f : path.charCodeAt(i);
    if (c === 0x2f) {
      const segment = path.slice(segmentStart, i);
      if (segment.length === 0) return atEnd ? "has a trailing slash" : "has an empty path segment";
      if (segment === "." || segment === "..") return 'has a "." or ".." path segment';
      segmentStart = i + 1;
    } else if (!isPathChar(c)) {
      return `has the character ${JSON.stringify(path[i])} in its path (allowed: a-z A-Z 0-9 . - _)`;
    }
  }
  return undefined;
}

export function isSpiffeId(input: string): boolean {
  return parseSpiffeId(input).ok;
}
