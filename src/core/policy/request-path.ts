// Reduces a request target to the path that path rules see, and refuses paths
// that an upstream might resolve differently from the rule: dot-segments
// ("/./", "/../", also percent-encoded) and encoded slashes or backslashes.
// A refused path matches no path rule (SPEC 3).

export type RulePath = { readonly ok: true; readonly path: string } | { readonly ok: false; readonly problem: string };

const ENCODED_SEPARATOR = /%2f|%5c/i;

function isDotSegment(segment: string): boolean {
  if (segment.length === 0 || segment.length > 6) return false;
  const decoded = segment.replace(/%2e/gi, ".");
  return decoded === "." || decoded === "..";
}

export function toRulePath(target: string): RulePath {
  let end = target.length;
  const q = target.indexOf("?");
  if (q !== -1) end = q;
  const hash = target.indexOf("#");
  if (hash !== -1 && hash < end) end = hash;
  const path = target.slice(0, end);
  if (ENCODED_SEPARATOR.test(path)) return { ok: false, problem: "holds an encoded slash or backslash" };
  if (path.includes("\\")) return { ok: false, problem: "holds a backslash" };
  for (const segment of path.split("/")) {
    if (isDotSegment(segment)) return { ok: false, problem: "holds a dot-segment" };
  }
  return { ok: true, path };
}
