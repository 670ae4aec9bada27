// The audit record of a decision written straight as its JSON's UTF-8 bytes,
// off the Check path (the writer's drain calls it): byte for byte what
// `JSON.stringify(buildAuditRecord(decision, context))` encodes to, without
// building the record object, its hop objects, its lists or its text first.
// Lists that need no bounding (the usual case) are written directly;
// anything longer goes through the same bounding helpers as
// buildAuditRecord, so a large request still makes a bounded record (SPEC 6).
// A property test holds the two equal.
//
// Also the cheap size estimate the Check path makes when it queues a
// decision, before the record exists.
//
// The stretch of a record that a decision's shape fixes (policy version,
// agents, person, chain and hops; see decision-shape-cache.ts) is kept as
// bytes per shape and copied.

import { reasonOf, type CallerBinding, type Decision } from "../../core/decision/decision.js";
import { DecisionShapeCache } from "../cache/decision-shape-cache.js";
import type { DecisionContext } from "../../core/ports.js";
import { boundText, boundTextList, DEFAULT_TEXT_LIMIT_BYTES } from "../text/bounded-text.js";
import { SHORT_TEXT_CHARS, writeLatin1 } from "../text/latin1-bytes.js";
import { AUDIT_CHAIN_BOUNDS, AUDIT_HOPS_BOUNDS, boundHops, type AuditHop } from "./audit-record.js";

/** A UTF-16 code unit never takes more than 3 UTF-8 bytes: a string whose length × 3 fits a bound fits it in bytes. */
const MAX_UTF8_PER_UNIT = 3;
const ITEM_FAST_UNITS = Math.floor(DEFAULT_TEXT_LIMIT_BYTES / MAX_UTF8_PER_UNIT);

/**
 * Writes audit records' JSON as UTF-8 bytes into a slab shared by many
 * records, one after the other: no string is built for a record, and no
 * buffer allocated for it. Strings that JSON.stringify would leave as they
 * are (no quote, backslash, control character or surrogate: nearly all) are
 * copied as they are; others go through JSON.stringify, so escapes and lone
 * surrogates come out as it writes them. A record is a view into the slab,
 * which lives while any of its records is queued.
 */
export class AuditRecordEncoder {
  private slab: Buffer;
  private pos = 0;
  private start = 0;

  constructor(private readonly slabBytes = 64 * 1024) {
    this.slab = Buffer.allocUnsafe(slabBytes);
  }

  /** The JSON line payload of one decision (no `type`, `seq` or `prev`: the writer chains it). */
  encode(decision: Decision, context: DecisionContext): Buffer {
    this.start = this.pos;
    // Constant pieces and the values are written one after the other: joining them first would build a string per record.
    try {
      this.ascii('{"decision_id":');
      this.string(decision.decisionId);
      this.ascii(',"time":"');
      // An invalid time throws a RangeError, as buildAuditRecord does.
      this.time(decision.decidedAtMs);
      this.ascii(decision.allowed ? '","decision":"allow","reason":' : '","decision":"deny","reason":');
      this.string(reasonOf(decision));
      this.ascii(',"message":');
      this.text(decision.message);
      this.bytes(shapeBytes(decision));
      this.ascii(',"tls_client_hash_sha256":');
      this.nullableString(decision.peerCertificateSha256);
      this.ascii(',"method":');
      this.text(decision.method);
      this.ascii(',"path":');
      this.text(decision.path);
      this.ascii(',"trace_id":');
      this.nullableText(context.traceId);
      this.ascii(',"span_id":');
      this.nullableText(context.spanId);
      this.ascii(',"latency_ms":');
      this.ascii(latencyJson(context.latencyMs));
      this.ascii(',"token_id":');
      this.nullableText(decision.tokenId);
      this.ascii(',"token_sha256":');
      this.nullableString(decision.tokenSha256);
      this.ascii(',"token_prev":');
      this.nullableText(decision.tokenPrev);
      this.ascii(decision.callerBinding === undefined ? ',"caller_binding":null' : CALLER_BINDING_JSON[decision.callerBinding]);
      this.ascii(',"mcp_method":');
      this.nullableText(decision.mcp?.method);
      this.ascii(',"mcp_tool":');
      this.nullableText(decision.mcp?.tool);
      this.ascii(',"mcp_resource":');
      this.nullableText(decision.mcp?.resource);
      this.ascii(',"txn":');
      this.nullableText(decision.txn);
      this.ascii("}");
    } catch (error) {
      this.pos = this.start;
      throw error;
    }
    return this.slab.subarray(this.start, this.pos);
  }

  /** toISOString of `ms`, with the part up to the second reused: decisions come many to a second. */
  private time(ms: number): void {
    const second = Math.floor(ms / 1000);
    if (second !== cachedSecond) {
      // Throws a RangeError for an invalid time.
      const iso = new Date(second * 1000).toISOString();
      cachedPrefix = iso.slice(0, -4);
      cachedSecond = second;
    }
    const millis = ms - second * 1000;
    if (!Number.isInteger(millis)) {
      this.ascii(new Date(ms).toISOString());
      return;
    }
    this.ascii(cachedPrefix);
    this.room(4);
    const slab = this.slab;
    slab[this.pos++] = DIGIT_0 + Math.floor(millis / 100);
    slab[this.pos++] = DIGIT_0 + (Math.floor(millis / 10) % 10);
    slab[this.pos++] = DIGIT_0 + (millis % 10);
    slab[this.pos++] = LETTER_Z;
  }

  /** A string the record keeps up to SPEC 6's bound. */
  private text(value: string): void {
    this.string(keptText(value));
  }

  private nullableText(value: string | undefined): void {
    if (value === undefined) this.ascii("null");
    else this.text(value);
  }

  private nullableString(value: string | undefined): void {
    if (value === undefined) this.ascii("null");
    else this.string(value);
  }

  /** A JSON string literal. */
  private string(value: string): void {
    const n = value.length;
    if (n <= SHORT_TEXT_CHARS) {
      // Checked and copied in one pass; pos moves only if every character is plain.
      this.room(n + 2);
      const slab = this.slab;
      let p = this.pos;
      slab[p++] = QUOTE;
      let i = 0;
      for (; i < n; i++) {
        const c = value.charCodeAt(i);
        if (c < 0x20 || c > 0x7e || c === QUOTE || c === BACKSLASH) break;
        slab[p++] = c;
      }
      if (i === n) {
        slab[p++] = QUOTE;
        this.pos = p;
        return;
      }
      // Not plain: the loop has shown what PLAIN_JSON_TEXT would, so on to the escapes.
    } else if (PLAIN_JSON_TEXT.test(value)) {
      this.room(value.length + 2);
      const slab = this.slab;
      slab[this.pos++] = QUOTE;
      this.pos += slab.write(value, this.pos, "latin1");
      slab[this.pos++] = QUOTE;
      return;
    }
    if (UNESCAPED_JSON_TEXT.test(value)) {
      this.room(value.length * MAX_UTF8_PER_UNIT + 2);
      const slab = this.slab;
      slab[this.pos++] = QUOTE;
      this.pos += slab.write(value, this.pos, "utf8");
      slab[this.pos++] = QUOTE;
      return;
    }
    const json = JSON.stringify(value);
    this.room(json.length * MAX_UTF8_PER_UNIT);
    this.pos += this.slab.write(json, this.pos, "utf8");
  }

  /** Text known to be ASCII: keys, punctuation, numbers, ids this service made. */
  private ascii(value: string): void {
    this.room(value.length);
    this.pos += writeLatin1(this.slab, this.pos, value);
  }

  private bytes(value: Buffer): void {
    this.room(value.length);
    this.pos += value.copy(this.slab, this.pos);
  }

  /** Makes room for `more` bytes; a record that outgrows the slab moves, with what it has so far, to a new one. */
  private room(more: number): void {
    if (this.pos + more <= this.slab.length) return;
    const sofar = this.pos - this.start;
    const next = Buffer.allocUnsafe(Math.max(this.slabBytes, 2 * (sofar + more)));
    this.slab.copy(next, 0, this.start, this.pos);
    this.slab = next;
    this.start = 0;
    this.pos = sofar;
  }
}

/** Printable ASCII but `"` and `\`: JSON.stringify would write such a string between quotes as it is. */
const PLAIN_JSON_TEXT = /^[\x20\x21\x23-\x5b\x5d-\x7e]*$/;
/** Beyond ASCII (an allow's message has arrows), but no control character, `"`, `\` or surrogate: JSON.stringify leaves it as it is, and UTF-8 encodes it as it is. */
// eslint-disable-next-line no-control-regex -- control characters are exactly what JSON must escape
const UNESCAPED_JSON_TEXT = /^[^\x00-\x1f"\\\ud800-\udfff]*$/;
const QUOTE = 0x22;
const BACKSLASH = 0x5c;
/** The part of toISOString up to the second, for the second last written (see AuditRecordEncoder.time). */
let cachedSecond = Number.NaN;
let cachedPrefix = "";
const DIGIT_0 = 0x30;
const LETTER_Z = 0x5a;
const CALLER_BINDING_JSON: Readonly<Record<CallerBinding, string>> = {
  certificate: ',"caller_binding":"certificate"',
  xfcc: ',"caller_binding":"xfcc"',
  principal: ',"caller_binding":"principal"',
};

/** Longer stretches are written every time rather than kept. */
const MAX_SHAPE_JSON_LENGTH = 8192;
const shapes = new DecisionShapeCache<Buffer>();

/** From `,"policy_version"` to the end of `"hops"`: what the decision's shape fixes, kept as bytes per shape. */
function shapeBytes(decision: Decision): Buffer {
  const kept = shapes.get(decision);
  if (kept !== undefined) return kept;
  const json =
    `,"policy_version":${JSON.stringify(decision.policyVersion)}` +
    `,"caller":${nullableText(decision.caller)}` +
    `,"callee":${nullableText(decision.callee)}` +
    `,"on_behalf_of":${nullableText(decision.onBehalfOf)}` +
    `,"chain":${chainJson(decision.chain)}` +
    `,"chain_depth":${decision.chain.length}` +
    `,"hops":${hopsJson(decision)}`;
  const bytes = Buffer.from(json, "utf8");
  if (json.length <= MAX_SHAPE_JSON_LENGTH) shapes.set(decision, bytes);
  return bytes;
}

/** A record whose strings are all empty: keys, punctuation, the id, the time, a long reason and the numbers; caller_binding null. 34: the token_sha256 and token_prev keys with "". */
const RECORD_FIXED_BYTES = 376 + 79 + 34;
/** `{"from":"","to":"","rule":"","result":"allow"},` */
const HOP_FIXED_BYTES = 47;
/** Quotes and comma of a list item. */
const ITEM_FIXED_BYTES = 3;
/** A truncation marker, at most: `…[truncated: <10 digits> bytes, sha256=<64 hex>]`. */
const MARKER_BYTES = 110;

/**
 * What a decision's record will take, estimated on the Check path with a few
 * additions (no encoding, no copy): the fixed part of a record plus the
 * length of every string, each counted up to what the record keeps of it.
 * Exact within a few bytes for ASCII without escapes (the usual record);
 * the writer replaces it with the exact size when it formats the record, on
 * the next turn of the event loop.
 */
export function estimateAuditRecordBytes(decision: Decision, context: DecisionContext): number {
  let bytes =
    RECORD_FIXED_BYTES +
    kept(decision.message) +
    decision.policyVersion.length +
    keptOrNull(decision.caller) +
    keptOrNull(decision.callee) +
    keptOrNull(decision.onBehalfOf) +
    kept(decision.method) +
    kept(decision.path) +
    keptOrNull(decision.tokenId) +
    keptOrNull(decision.tokenSha256) +
    keptOrNull(decision.tokenPrev) +
    keptOrNull(decision.peerCertificateSha256) +
    keptOrNull(context.traceId) +
    keptOrNull(context.spanId) +
    keptOrNull(decision.mcp?.method) +
    keptOrNull(decision.mcp?.tool) +
    keptOrNull(decision.mcp?.resource) +
    keptOrNull(decision.txn) +
    // "certificate" in place of null
    (decision.callerBinding === undefined ? 0 : decision.callerBinding.length - 2);
  const chain = decision.chain;
  let chainBytes = 0;
  for (let i = 0; i < chain.length && i < AUDIT_CHAIN_BOUNDS.maxItems; i++) chainBytes += ITEM_FIXED_BYTES + kept(chain[i]!);
  bytes += Math.min(chainBytes, AUDIT_CHAIN_BOUNDS.maxBytes + AUDIT_CHAIN_BOUNDS.maxItems * ITEM_FIXED_BYTES + MARKER_BYTES);
  const hops = decision.hops;
  let hopBytes = 0;
  for (let i = 0; i < hops.length && i < AUDIT_HOPS_BOUNDS.maxItems; i++) {
    const hop = hops[i]!;
    hopBytes += HOP_FIXED_BYTES + kept(hop.from) + kept(hop.to) + kept(hop.rule);
  }
  return bytes + Math.min(hopBytes, AUDIT_HOPS_BOUNDS.maxBytes + AUDIT_HOPS_BOUNDS.maxItems * HOP_FIXED_BYTES + MARKER_BYTES);
}

/** A string's part of the record beyond its quotes. */
function kept(value: string): number {
  return value.length <= DEFAULT_TEXT_LIMIT_BYTES ? value.length : DEFAULT_TEXT_LIMIT_BYTES + MARKER_BYTES;
}

/** null takes two bytes more than "". */
function keptOrNull(value: string | undefined): number {
  return value === undefined ? 2 : kept(value);
}

/** What a record keeps of a request string (SPEC 6): short ones as they are, without measuring their bytes. */
function keptText(value: string): string {
  return value.length <= ITEM_FAST_UNITS ? value : boundText(value);
}

function text(value: string): string {
  return JSON.stringify(keptText(value));
}

function nullableText(value: string | undefined): string {
  return value === undefined ? "null" : text(value);
}

function chainJson(chain: readonly string[]): string {
  if (chain.length === 0) return "[]";
  if (!listFits(chain, AUDIT_CHAIN_BOUNDS.maxItems, AUDIT_CHAIN_BOUNDS.maxBytes)) return JSON.stringify(boundTextList(chain, AUDIT_CHAIN_BOUNDS));
  let out = `[${JSON.stringify(chain[0])}`;
  for (let i = 1; i < chain.length; i++) out += `,${JSON.stringify(chain[i])}`;
  return `${out}]`;
}

/** True when no item and not the list needs bounding: boundTextList would return the list as it is. */
function listFits(items: readonly string[], maxItems: number, maxBytes: number): boolean {
  if (items.length > maxItems) return false;
  let units = 0;
  for (const item of items) {
    if (item.length > ITEM_FAST_UNITS) return false;
    units += item.length;
  }
  return units * MAX_UTF8_PER_UNIT <= maxBytes;
}

function hopsJson(decision: Decision): string {
  const hops = decision.hops;
  if (hops.length === 0) return "[]";
  let fits = hops.length <= AUDIT_HOPS_BOUNDS.maxItems;
  let units = 0;
  for (let i = 0; fits && i < hops.length; i++) {
    const hop = hops[i]!;
    if (hop.from.length > ITEM_FAST_UNITS || hop.to.length > ITEM_FAST_UNITS || hop.rule.length > ITEM_FAST_UNITS) fits = false;
    units += hop.from.length + hop.to.length + hop.rule.length;
  }
  if (!fits || units * MAX_UTF8_PER_UNIT > AUDIT_HOPS_BOUNDS.maxBytes) return JSON.stringify(boundHops(hops));
  let out = "[";
  for (let i = 0; i < hops.length; i++) out += (i === 0 ? "" : ",") + hopJson(hops[i]!);
  return `${out}]`;
}

function hopJson(hop: AuditHop): string {
  return `{"from":${JSON.stringify(hop.from)},"to":${JSON.stringify(hop.to)},"rule":${JSON.stringify(hop.rule)},"result":${hop.result === "allow" ? '"allow"' : '"deny"'}}`;
}

function latencyJson(latencyMs: number): string {
  const rounded = Math.round(latencyMs * 1000) / 1000;
  // JSON.stringify writes a finite number as String does, and anything else as null.
  return Number.isFinite(rounded) ? String(rounded) : "null";
}
