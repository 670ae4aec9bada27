// Prints a counterexample compactly: long strings are cut with their full
// length (a 60 KiB header would otherwise bury the report), control and
// non-ASCII characters stay visible as JSON escapes.

const MAX_STRING = 120;

export function describeValue(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) => {
    if (typeof v === "string" && v.length > MAX_STRING) return `${v.slice(0, 60)}...(${v.length} chars)...${v.slice(-20)}`;
    if (typeof v === "bigint") return `${v}n`;
    if (v instanceof Uint8Array) return `(${v.length} bytes) ${Buffer.from(v.subarray(0, 48)).toString("hex")}${v.length > 48 ? "…" : ""}`;
    return v;
  }).replace(/[\u007f-\uffff]/g, (ch) => `\\u${ch.charCodeAt(0).toString(16).padStart(4, "0")}`);
}
