// Parses the delegation chain header: a comma-separated list (RFC 9110 5.6.1)
// with optional spaces or tabs around each entry, but stricter than RFC 9110:
// an empty entry, or a header that is present and empty, is malformed rather
// than ignored, so that "a,,b" can never be read as "a,b".

export type ChainHeaderResult =
  | { readonly ok: true; readonly entries: readonly string[] }
  | { readonly ok: false; readonly problem: string };

function isOptionalWhitespace(c: number): boolean {
  return c === 0x20 || c === 0x09;
}

export function parseChainHeader(value: string): ChainHeaderResult {
  const entries: string[] = [];
  let start = 0;
  for (let i = 0; i <= value.length; i++) {
    if (i < value.length && value.charCodeAt(i) !== 0x2c) continue;
    let from = start;
    let to = i;
    while (from < to && isOptionalWhitespace(value.charCodeAt(from))) from++;
    while (to > from && isOptionalWhitespace(value.charCodeAt(to - 1))) to--;
    if (from === to) {
      return {
        ok: false,
        problem: value.trim().length === 0 ? "the chain header is present but empty" : `entry ${entries.length + 1} is empty`,
      };
    }
    entries.push(value.slice(from, to));
    start = i + 1;
  }
  return { ok: true, entries };
}
