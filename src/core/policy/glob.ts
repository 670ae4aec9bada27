// Glob matching for identities, on-behalf-of values and paths. `*` matches any
// run of characters except "/", possibly none; everything else matches itself,
// case-sensitively. Nothing is trimmed or normalized (SPEC 3).

export interface Matcher {
  /** The pattern as written in the policy. */
  readonly source: string;
  matches(value: string): boolean;
}

function escapeRegExp(text: string): string {
  return text.replace(/[\\^$.*+?()[\]{}|/-]/g, "\\$&");
}

function globBody(pattern: string): string {
  return pattern.split("*").map(escapeRegExp).join("[^/]*");
}

/** An exact or `*`-glob matcher; a pattern without `*` is a plain string compare. */
export function compileGlob(pattern: string): Matcher {
  if (!pattern.includes("*")) {
    return { source: pattern, matches: (value) => value === pattern };
  }
  const re = new RegExp(`^${globBody(pattern)}$`, "s");
  return { source: pattern, matches: (value) => re.test(value) };
}

export function anyMatches(matchers: readonly Matcher[], value: string): boolean {
  for (const m of matchers) if (m.matches(value)) return true;
  return false;
}

/**
 * A path rule: `*` matches within one segment, a trailing `/**` any deeper
 * path (the prefix itself followed by "/" and anything).
 */
export function compilePathGlob(pattern: string): Matcher {
  const deep = pattern.endsWith("/**");
  const base = deep ? pattern.slice(0, -3) : pattern;
  if (!deep && !base.includes("*")) {
    return { source: pattern, matches: (value) => value === pattern };
  }
  const re = new RegExp(`^${globBody(base)}${deep ? "/.*" : ""}$`, "s");
  return { source: pattern, matches: (value) => re.test(value) };
}
