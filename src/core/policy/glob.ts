// The one glob matcher of the policy: identities, on-behalf-of values,
// methods, paths and MCP names all go through it. `*` matches any run of
// characters except "/", possibly none; everything else matches itself,
// case-sensitively. Nothing is trimmed or normalized (SPEC 3).
//
// Matching is linear in the value for every pattern (SPEC 3: no pattern and
// no input can stall Check). No RegExp is built from policy text: a
// backtracking engine takes quadratic time on `*@*.example.com` against a
// run of "@". Because `*` never crosses "/", the value's "/"-separated
// segments line up one to one with the pattern's, so a pattern compiles to a
// sequence of literal runs (which may hold "/") and starred segments; a
// starred segment is matched by anchoring its first and last literal piece
// and finding each middle piece at its leftmost place (which is optimal for
// `*` within one segment), with a Knuth–Morris–Pratt scan that never looks
// at a character twice.

export interface Matcher {
  /** The pattern as written in the policy. */
  readonly source: string;
  matches(value: string): boolean;
}

/** A literal piece with its KMP failure table, searched for between two `*`. */
interface MiddlePiece {
  readonly text: string;
  readonly failure: Int32Array;
}

/** One "/"-free segment holding at least one `*`: prefix * middle * … * suffix. */
interface StarredSegment {
  readonly prefix: string;
  readonly middles: readonly MiddlePiece[];
  readonly suffix: string;
  /** The fewest characters the segment can match. */
  readonly minLength: number;
}

/** A literal run (possibly spanning "/") or a starred segment. */
type Unit = string | StarredSegment;

function failureTable(text: string): Int32Array {
  const table = new Int32Array(text.length);
  let k = 0;
  for (let i = 1; i < text.length; i++) {
    while (k > 0 && text.charCodeAt(i) !== text.charCodeAt(k)) k = table[k - 1]!;
    if (text.charCodeAt(i) === text.charCodeAt(k)) k++;
    table[i] = k;
  }
  return table;
}

/** The leftmost occurrence of `piece` wholly inside value[from, to), or -1; each character is read once. */
function findPiece(value: string, piece: MiddlePiece, from: number, to: number): number {
  const { text, failure } = piece;
  const n = text.length;
  let k = 0;
  for (let i = from; i < to; i++) {
    const c = value.charCodeAt(i);
    while (k > 0 && c !== text.charCodeAt(k)) k = failure[k - 1]!;
    if (c === text.charCodeAt(k)) k++;
    if (k === n) return i - n + 1;
  }
  return -1;
}

function compileStarredSegment(segment: string): StarredSegment {
  const pieces = segment.split("*");
  const prefix = pieces[0]!;
  const suffix = pieces[pieces.length - 1]!;
  const middles = pieces
    .slice(1, -1)
    .filter((p) => p.length > 0)
    .map((text) => ({ text, failure: failureTable(text) }));
  const minLength = prefix.length + suffix.length + middles.reduce((n, p) => n + p.text.length, 0);
  return { prefix, middles, suffix, minLength };
}

function starredSegmentMatches(seg: StarredSegment, value: string, start: number, end: number): boolean {
  if (end - start < seg.minLength) return false;
  if (!value.startsWith(seg.prefix, start)) return false;
  const suffixAt = end - seg.suffix.length;
  if (!value.startsWith(seg.suffix, suffixAt)) return false;
  let from = start + seg.prefix.length;
  for (const piece of seg.middles) {
    const at = findPiece(value, piece, from, suffixAt);
    if (at === -1) return false;
    from = at + piece.text.length;
  }
  return true;
}

/** Splits a "/"-separated pattern into literal runs and starred segments. */
function compileUnits(pattern: string): Unit[] {
  const units: Unit[] = [];
  let literal = "";
  const segments = pattern.split("/");
  segments.forEach((segment, i) => {
    const slash = i < segments.length - 1 ? "/" : "";
    if (!segment.includes("*")) {
      literal += segment + slash;
      return;
    }
    if (literal.length > 0) units.push(literal);
    units.push(compileStarredSegment(segment));
    literal = slash;
  });
  if (literal.length > 0) units.push(literal);
  return units;
}

/** Walks the units over the value; `openEnded`: anything may follow the last unit. */
function unitsMatch(units: readonly Unit[], value: string, openEnded: boolean): boolean {
  let pos = 0;
  for (const unit of units) {
    if (typeof unit === "string") {
      if (!value.startsWith(unit, pos)) return false;
      pos += unit.length;
    } else {
      let end = value.indexOf("/", pos);
      if (end === -1) end = value.length;
      if (!starredSegmentMatches(unit, value, pos, end)) return false;
      pos = end;
    }
  }
  return openEnded || pos === value.length;
}

/** An exact or `*`-glob matcher; a pattern without `*` is a plain string compare. */
export function compileGlob(pattern: string): Matcher {
  if (!pattern.includes("*")) return { source: pattern, matches: (value) => value === pattern };
  const units = compileUnits(pattern);
  return { source: pattern, matches: (value) => unitsMatch(units, value, false) };
}

/**
 * A path rule: `*` matches within one segment, a trailing `/**` any deeper
 * path (the prefix itself followed by "/" and anything).
 */
export function compilePathGlob(pattern: string): Matcher {
  const deep = pattern.endsWith("/**");
  if (!deep) return compileGlob(pattern);
  // "/reports/**" is "/reports/" followed by anything.
  const units = compileUnits(pattern.slice(0, -2));
  return { source: pattern, matches: (value) => unitsMatch(units, value, true) };
}

export function anyMatches(matchers: readonly Matcher[], value: string): boolean {
  for (const m of matchers) if (m.matches(value)) return true;
  return false;
}

/**
 * A list of patterns matched as one: exact patterns by one set lookup, the
 * globs in turn. What a rule's `methods`, `paths`, `onBehalfOf` become.
 */
export interface MatcherList {
  readonly sources: readonly string[];
  matches(value: string): boolean;
}

export function compileMatcherList(patterns: readonly string[], compile: (pattern: string) => Matcher = compileGlob): MatcherList {
  const exact = new Set<string>();
  const globs: Matcher[] = [];
  for (const pattern of patterns) {
    if (pattern.includes("*")) globs.push(compile(pattern));
    else exact.add(pattern);
  }
  return {
    sources: [...patterns],
    matches: (value) => exact.has(value) || anyMatches(globs, value),
  };
}
