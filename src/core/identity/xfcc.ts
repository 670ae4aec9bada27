// Parses Envoy's x-forwarded-client-cert header and returns the LAST element
// (the immediate hop). Elements are separated by ",", key=value pairs by ";";
// a value may be double-quoted, and inside quotes "," ";" "=" are literal and
// \" and \\ are escapes. Anything else that does not fit is malformed: a
// header we cannot read must never become an identity.

export interface XfccElement {
  /** URL-encoded PEM of the client certificate (Cert=). */
  readonly cert?: string;
  /** URI SAN(s) of the client certificate (URI=); Envoy repeats the key for several. */
  readonly uris: readonly string[];
  readonly hash?: string;
  readonly by?: string;
  readonly subject?: string;
}

export type XfccResult = { readonly ok: true; readonly last: XfccElement } | { readonly ok: false; readonly problem: string };

interface Pair {
  key: string;
  value: string;
}

/** Splits the header into elements of key/value pairs, honouring quotes. */
function tokenize(header: string): Pair[][] | string {
  const elements: Pair[][] = [];
  let pairs: Pair[] = [];
  let i = 0;
  const n = header.length;
  while (i <= n) {
    // key
    let keyStart = i;
    while (i < n && header[i] !== "=" && header[i] !== ";" && header[i] !== ",") i++;
    if (i >= n || header[i] !== "=") {
      const stray = header.slice(keyStart, i).trim();
      if (stray.length === 0 && i >= n && pairs.length === 0 && elements.length === 0) return "is empty";
      return `has a field without "=" near position ${keyStart + 1}`;
    }
    while (keyStart < i && (header[keyStart] === " " || header[keyStart] === "\t")) keyStart++;
    const key = header.slice(keyStart, i).trim();
    if (key.length === 0) return `has an empty key near position ${i + 1}`;
    i++; // '='
    let value = "";
    if (header[i] === '"') {
      i++;
      let closed = false;
      while (i < n) {
        const c = header[i];
        if (c === "\\") {
          const next = header[i + 1];
          if (next !== '"' && next !== "\\") return `has an invalid escape near position ${i + 1}`;
          value += next;
          i += 2;
        } else if (c === '"') {
          closed = true;
          i++;
          break;
        } else {
          value += c;
          i++;
        }
      }
      if (!closed) return "has an unterminated quoted value";
    } else {
      const start = i;
      while (i < n && header[i] !== ";" && header[i] !== ",") {
        if (header[i] === '"' || header[i] === "=") return `has an unquoted ${header[i]} near position ${i + 1}`;
        i++;
      }
      value = header.slice(start, i);
    }
    pairs.push({ key, value });
    if (i >= n) {
      elements.push(pairs);
      break;
    }
    const sep = header[i];
    i++;
    if (sep === ",") {
      elements.push(pairs);
      pairs = [];
    } else if (sep !== ";") {
      return `has an unexpected character after a quoted value near position ${i}`;
    }
  }
  return elements;
}

export function parseXfccLastElement(header: string): XfccResult {
  if (header.trim().length === 0) return { ok: false, problem: "is empty" };
  const tokens = tokenize(header);
  if (typeof tokens === "string") return { ok: false, problem: tokens };
  const last = tokens[tokens.length - 1];
  if (last === undefined || last.length === 0) return { ok: false, problem: "has no element" };
  const uris: string[] = [];
  let cert: string | undefined;
  let hash: string | undefined;
  let by: string | undefined;
  let subject: string | undefined;
  for (const { key, value } of last) {
    switch (key.toLowerCase()) {
      case "uri":
        uris.push(value);
        break;
      case "cert":
        if (cert !== undefined) return { ok: false, problem: "has Cert twice in its last element" };
        cert = value;
        break;
      case "hash":
        hash = value;
        break;
      case "by":
        by = value;
        break;
      case "subject":
        subject = value;
        break;
      default:
        break; // Chain=, DNS= and future keys carry nothing we decide on.
    }
  }
  const element: XfccElement = { uris, ...(cert !== undefined && { cert }), ...(hash !== undefined && { hash }), ...(by !== undefined && { by }), ...(subject !== undefined && { subject }) };
  return { ok: true, last: element };
}
