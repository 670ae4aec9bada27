// A small schema walker over the `yaml` AST, so every problem is reported
// with the line and column of the node at fault and the dotted field path.
// Unknown keys are errors: a misspelt key must never silently widen a rule.

import { isAlias, isMap, isScalar, isSeq, type Document, type LineCounter, type Node, type Pair } from "yaml";
import { quotedValue } from "../../core/input/untrusted-bounds.js";
import { parseDuration } from "./duration.js";

export interface SchemaProblem {
  readonly line: number;
  readonly column: number;
  readonly field: string;
  readonly problem: string;
}

export class SchemaContext {
  readonly errors: SchemaProblem[] = [];
  readonly warnings: SchemaProblem[] = [];

  constructor(private readonly lines: LineCounter) {}

  private at(node: unknown, field: string, problem: string): SchemaProblem {
    const range = (node as { range?: [number, number, number] } | null | undefined)?.range;
    const { line, col } = range ? this.lines.linePos(range[0]) : { line: 1, col: 1 };
    return { line, column: col, field, problem };
  }

  error(node: unknown, field: string, problem: string): void {
    this.errors.push(this.at(node, field, problem));
  }

  warn(node: unknown, field: string, problem: string): void {
    this.warnings.push(this.at(node, field, problem));
  }

  errorAtOffset(offset: number, field: string, problem: string): void {
    const { line, col } = this.lines.linePos(offset);
    this.errors.push({ line, column: col, field, problem });
  }

  /**
   * The parser's own errors, and what it would let pass quietly, as errors:
   * a warning (a tag it does not know, such as `!foo` or `!!js/function`,
   * read as a plain string) and a `%YAML` directive for another version
   * (`%YAML 1.1` reads `no` as false, `010` as 8 and `y` as true).
   * True when there was none.
   */
  yamlProblems(doc: Document.Parsed): boolean {
    const before = this.errors.length;
    for (const err of doc.errors) this.errorAtOffset(err.pos[0], "(yaml)", firstLine(err.message));
    for (const warning of doc.warnings) this.errorAtOffset(warning.pos[0], "(yaml)", firstLine(warning.message));
    const directive = doc.directives?.yaml;
    if (directive?.explicit === true && directive.version !== "1.2") {
      this.errorAtOffset(0, "(yaml)", `a %YAML ${directive.version} directive: the file is read as YAML 1.2 only, whose booleans and numbers 1.1 reads otherwise`);
    }
    return this.errors.length === before;
  }
}

export function describeNode(node: unknown): string {
  if (node === null || node === undefined) return "empty";
  if (isMap(node)) return "a map";
  if (isSeq(node)) return "a list";
  if (isScalar(node)) {
    const v = node.value;
    if (v === null) return "empty";
    return `${typeof v === "string" ? "the string" : `the ${typeof v}`} ${quotedValue(v)}`;
  }
  // Not resolved on purpose: a value read in one place and used in another is one more way to misread a rule.
  if (isAlias(node)) return `a YAML alias (*${node.source}), which policy files do not resolve: write the value out`;
  return "an unsupported YAML node";
}

/** Returns the map's pairs by key, reporting non-string keys and unknown keys. */
export function mapFields(
  ctx: SchemaContext,
  node: unknown,
  field: string,
  allowed: readonly string[],
  keyNode?: unknown,
): Map<string, Pair<unknown, unknown>> | undefined {
  // The root map has no field name; "(file)" keeps `file:line:column: field: problem` whole.
  const label = field === "" ? "(file)" : field;
  if (!isMap(node)) {
    ctx.error(node ?? keyNode, label, `must be a map, not ${describeNode(node)}`);
    return undefined;
  }
  const fields = new Map<string, Pair<unknown, unknown>>();
  for (const pair of node.items) {
    const key = pair.key;
    if (!isScalar(key) || typeof key.value !== "string") {
      ctx.error(key ?? node, label, `has a key that is not a string: ${describeNode(key)}`);
      continue;
    }
    const name = key.value;
    const path = field === "" ? name : `${field}.${name}`;
    if (!allowed.includes(name)) {
      ctx.error(key, path, `unknown key "${name}" (known keys: ${allowed.join(", ")})`);
      continue;
    }
    fields.set(name, pair);
  }
  return fields;
}

export function child(fields: Map<string, Pair<unknown, unknown>> | undefined, name: string): { node: Node | null | undefined; key: unknown; present: boolean } {
  const pair = fields?.get(name);
  if (pair === undefined) return { node: undefined, key: undefined, present: false };
  return { node: pair.value as Node | null, key: pair.key, present: true };
}

export function readString(ctx: SchemaContext, node: unknown, field: string, keyNode?: unknown): string | undefined {
  if (!isScalar(node) || typeof node.value !== "string") {
    ctx.error(node ?? keyNode, field, `must be a string, not ${describeNode(node)}${isScalar(node) && typeof node.value === "number" ? " (quote it)" : ""}`);
    return undefined;
  }
  return node.value;
}

export function readNonEmptyString(ctx: SchemaContext, node: unknown, field: string, keyNode?: unknown): string | undefined {
  const value = readString(ctx, node, field, keyNode);
  if (value !== undefined && value.length === 0) {
    ctx.error(node, field, "must not be empty");
    return undefined;
  }
  return value;
}

export function readBoolean(ctx: SchemaContext, node: unknown, field: string, keyNode?: unknown): boolean | undefined {
  if (!isScalar(node) || typeof node.value !== "boolean") {
    ctx.error(node ?? keyNode, field, `must be true or false, not ${describeNode(node)}`);
    return undefined;
  }
  return node.value;
}

export function readInteger(ctx: SchemaContext, node: unknown, field: string, min: number, max: number, keyNode?: unknown): number | undefined {
  if (!isScalar(node) || typeof node.value !== "number" || !Number.isInteger(node.value)) {
    ctx.error(node ?? keyNode, field, `must be a whole number, not ${describeNode(node)}`);
    return undefined;
  }
  if (node.value < min || node.value > max) {
    ctx.error(node, field, `must be between ${min} and ${max}, not ${node.value}`);
    return undefined;
  }
  return node.value;
}

/** A list of strings; each element is passed to `check`, which may report and return undefined to drop it. */
export function readStringList(
  ctx: SchemaContext,
  node: unknown,
  field: string,
  check: (value: string, itemNode: unknown, itemField: string) => string | undefined = (v) => v,
  keyNode?: unknown,
): string[] | undefined {
  if (!isSeq(node)) {
    ctx.error(node ?? keyNode, field, `must be a list, not ${describeNode(node)}`);
    return undefined;
  }
  const out: string[] = [];
  node.items.forEach((item, i) => {
    const itemField = `${field}[${i}]`;
    const value = readNonEmptyString(ctx, item, itemField);
    if (value === undefined) return;
    const checked = check(value, item, itemField);
    if (checked !== undefined) out.push(checked);
  });
  return out;
}

export function readList(ctx: SchemaContext, node: unknown, field: string, keyNode?: unknown): unknown[] | undefined {
  if (!isSeq(node)) {
    ctx.error(node ?? keyNode, field, `must be a list, not ${describeNode(node)}`);
    return undefined;
  }
  return node.items;
}

/** A duration ("30s", "250ms", "2m", or a number of seconds) in milliseconds, within (0, maxMs]. */
export function readDurationMs(ctx: SchemaContext, node: unknown, field: string, maxMs: number, keyNode?: unknown): number | undefined {
  const raw = (node as { value?: unknown } | null)?.value;
  const seconds = typeof raw === "string" || typeof raw === "number" ? parseDuration(raw) : undefined;
  if (seconds === undefined || seconds <= 0 || seconds * 1000 > maxMs) {
    ctx.error(node ?? keyNode, field, `must be a duration such as "30s" or "250ms", more than 0 and at most ${maxMs / 1000}s, not ${JSON.stringify(raw ?? null)}`);
    return undefined;
  }
  return Math.round(seconds * 1000);
}

function firstLine(message: string): string {
  return message.split("\n")[0] ?? message;
}
