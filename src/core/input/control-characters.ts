// C0 and C1 control characters and DEL: in a value that ends up in a log
// line, a metric label, a header or a record, a line break or an escape
// sequence changes what a reader sees.

/** A UTF-16 code unit that is a C0 or C1 control character, or DEL. */
export function isControlCode(c: number): boolean {
  return c < 0x20 || (c >= 0x7f && c <= 0x9f);
}

/** Whether `value` holds a control character anywhere. */
export function holdsControlCharacter(value: string): boolean {
  for (let i = 0; i < value.length; i++) if (isControlCode(value.charCodeAt(i))) return true;
  return false;
}
