// Minimal protobuf wire reading and writing, for the two hot paths that cannot
// afford protobuf-es's reflective codec: the Envoy Check codec (adapters/envoy:
// Check runs thousands of times a second, and a reflective decode of the whole
// CheckRequest and encode of the response cost more than deciding) and the
// OTLP span encoder (adapters/telemetry). Each user reads or writes only the
// fields it needs, and its tests hold it to a reference: the generated schemas
// for Envoy (envoy/*.properties.spec.ts), the SDK's serializer for OTLP
// (telemetry/otlp-span-encoder.spec.ts).

import { isUtf8 } from "node:buffer";
import { HopwardenError } from "../../core/errors.js";
import { isAscii, SHORT_TEXT_CHARS, writeLatin1 } from "../text/latin1-bytes.js";
import { hexDigitValue } from "../../core/input/hex-digit.js";

export const WireType = { VARINT: 0, I64: 1, LEN: 2, I32: 5 } as const;

/** Bytes that are not the protobuf message they claim to be (truncated, bad tags, invalid UTF-8). */
export class WireError extends HopwardenError {
  readonly code = "malformed_protobuf";
}

/** A cursor over protobuf bytes. Every read is bounds-checked and throws WireError. */
export class WireReader {
  buf: Buffer;
  pos: number;
  end: number;
  /** Where the bytes of the length-delimited field that `field()` last read end. */
  fieldEnd = 0;

  constructor(buf: Buffer, start = 0, end = buf.length) {
    this.buf = buf;
    this.pos = start;
    this.end = end;
  }

  /** Points this reader at other bytes: a hot decoder reuses one reader for its many small leaf messages instead of making one each. */
  reset(buf: Buffer, start: number, end: number): this {
    this.buf = buf;
    this.pos = start;
    this.end = end;
    this.fieldEnd = 0;
    return this;
  }

  done(): boolean {
    return this.pos >= this.end;
  }

  varint(): number {
    // Tags and lengths are mostly one byte: that case first, without the loop.
    if (this.pos < this.end) {
      const first = this.buf[this.pos]!;
      if (first < 0x80) {
        this.pos++;
        return first;
      }
    }
    let result = 0;
    let shift = 0;
    for (let i = 0; i < 10; i++) {
      if (this.pos >= this.end) throw new WireError("truncated varint");
      const byte = this.buf[this.pos++]!;
      if (shift < 49) result += (byte & 0x7f) * 2 ** shift;
      // Past 2^49 no tag or length fits any message: never wrap such a value to a small one (2^49 + 39 read as 39).
      else if ((byte & 0x7f) !== 0) result = Infinity;
      if ((byte & 0x80) === 0) return result;
      shift += 7;
    }
    throw new WireError("varint longer than 10 bytes");
  }

  /**
   * Reads a field tag (field number << 3 | wire type) and refuses the ones
   * protobuf refuses: wider than uint32, field number 0, wire type 6 or 7.
   */
  tag(): number {
    const start = this.pos;
    const tag = this.varint();
    if (this.pos - start > 5 || tag > 0xffffffff) throw new WireError("field tag wider than 32 bits");
    if (tag >>> 3 === 0) throw new WireError("field number 0");
    if ((tag & 7) > 5) throw new WireError(`invalid wire type ${tag & 7}`);
    return tag;
  }

  /**
   * A bool read as protobuf reads one: true when any of the varint's 64 bits
   * is set (a varint's value past 2^53 is not a safe number, so the bits are
   * tested, not the sum).
   */
  bool(): boolean {
    let set = false;
    for (let i = 0; i < 10; i++) {
      if (this.pos >= this.end) throw new WireError("truncated varint");
      const byte = this.buf[this.pos++]!;
      // The tenth byte holds the 64th bit only.
      if ((byte & (i === 9 ? 0x01 : 0x7f)) !== 0) set = true;
      if ((byte & 0x80) === 0) return set;
    }
    throw new WireError("varint longer than 10 bytes");
  }

  /** A double (wire type I64), little-endian. */
  double(): number {
    if (this.pos + 8 > this.end) throw new WireError("truncated fixed-width field");
    const value = this.buf.readDoubleLE(this.pos);
    this.pos += 8;
    return value;
  }

  /** Reads a length prefix and returns [start, end) of the bytes it covers. */
  lengthDelimited(): [number, number] {
    const start = this.field();
    return [start, this.fieldEnd];
  }

  /** Reads a length prefix, moves past the bytes it covers and returns where they start; they end at `fieldEnd` (no tuple to allocate on a hot path). */
  field(): number {
    const length = this.varint();
    const start = this.pos;
    const end = start + length;
    if (end > this.end) throw new WireError("length-delimited field runs past its message");
    this.pos = end;
    this.fieldEnd = end;
    return start;
  }

  /**
   * A string field: UTF-8, validated as protobuf requires of proto3 strings
   * (invalid bytes are a WireError naming `what`, never U+FFFD). Every byte is
   * kept, a leading U+FEFF too.
   */
  string(what = "string field"): string {
    const start = this.field();
    return utf8Text(this.buf, start, this.fieldEnd, what);
  }

  skip(wireType: number): void {
    switch (wireType) {
      case WireType.VARINT:
        this.varint();
        return;
      case WireType.I64:
        this.advance(8);
        return;
      case WireType.LEN:
        this.field();
        return;
      case WireType.I32:
        this.advance(4);
        return;
      default:
        throw new WireError(`unsupported wire type ${wireType}`);
    }
  }

  private advance(n: number): void {
    if (this.pos + n > this.end) throw new WireError("truncated fixed-width field");
    this.pos += n;
  }
}

/**
 * The UTF-8 text of buf[start, end), or a WireError naming `what` (and the
 * map key or header name `of`, when given) when the bytes are not UTF-8.
 */
export function utf8Text(buf: Buffer, start: number, end: number, what: string, of?: string): string {
  const text = buf.toString("utf8", start, end);
  if (!decodedWhole(text, buf, start, end)) {
    throw new WireError(`${what}${of === undefined ? "" : ` of ${JSON.stringify(of)}`} is not valid UTF-8`);
  }
  return text;
}

/** Whether `text`, decoded from buf[start, end), is those bytes with no invalid sequence replaced by U+FFFD. */
export function decodedWhole(text: string, buf: Buffer, start: number, end: number): boolean {
  // Decoding replaces every invalid sequence with U+FFFD: only then is the slower exact check needed.
  return !text.includes("\uFFFD") || isUtf8(buf.subarray(start, end));
}

/** A growable writer with fork/join for nested messages (length prefixes written after the content). */
export class WireWriter {
  private buf: Buffer;
  private len = 0;
  private readonly forks: number[] = [];

  constructor(initial = 512) {
    this.buf = Buffer.allocUnsafe(initial);
  }

  private ensure(extra: number): void {
    if (this.len + extra <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.len + extra) size *= 2;
    const next = Buffer.allocUnsafe(size);
    this.buf.copy(next, 0, 0, this.len);
    this.buf = next;
  }

  private rawVarint(value: number): void {
    this.ensure(10);
    let v = value;
    while (v > 0x7f) {
      this.buf[this.len++] = (v & 0x7f) | 0x80;
      v = Math.floor(v / 128);
    }
    this.buf[this.len++] = v;
  }

  tag(field: number, wireType: number): this {
    this.rawVarint(field * 8 + wireType);
    return this;
  }

  /** The tag and length of a length-delimited field whose content is written elsewhere (sent after these bytes). */
  lengthPrefix(field: number, length: number): this {
    this.tag(field, WireType.LEN);
    this.rawVarint(length);
    return this;
  }

  /** Bytes written so far. */
  get length(): number {
    return this.len;
  }

  varint(field: number, value: number): this {
    this.tag(field, WireType.VARINT);
    this.rawVarint(value);
    return this;
  }

  string(field: number, value: string): this {
    const n = value.length;
    if (n <= SHORT_TEXT_CHARS && isAscii(value)) {
      // Byte by byte (latin1-bytes.ts): ids, keys, methods, short paths.
      this.tag(field, WireType.LEN);
      this.rawVarint(n);
      this.ensure(n);
      this.len += writeLatin1(this.buf, this.len, value);
      return this;
    }
    const bytes = Buffer.byteLength(value);
    this.tag(field, WireType.LEN);
    this.rawVarint(bytes);
    this.ensure(bytes);
    this.len += this.buf.write(value, this.len, "utf8");
    return this;
  }

  double(field: number, value: number): this {
    this.tag(field, WireType.I64);
    this.ensure(8);
    this.buf.writeDoubleLE(value, this.len);
    this.len += 8;
    return this;
  }

  /** A signed 64-bit integer (int64) as a varint: negative values take ten bytes (two's complement). */
  int64(field: number, value: number): this {
    this.tag(field, WireType.VARINT);
    if (value >= 0 && value <= 0xffffffff) {
      this.rawVarint(value);
      return this;
    }
    // Split into 32-bit halves; exact for every integer a double holds in int64 range.
    const magnitude = Math.abs(value);
    let low = magnitude >>> 0;
    let high = Math.floor(magnitude / 0x100000000) >>> 0;
    if (value < 0) {
      low = ~low >>> 0;
      high = ~high >>> 0;
      low = (low + 1) >>> 0;
      if (low === 0) high = (high + 1) >>> 0;
    }
    this.ensure(10);
    while (high !== 0 || low > 0x7f) {
      this.buf[this.len++] = (low & 0x7f) | 0x80;
      low = ((low >>> 7) | (high << 25)) >>> 0;
      high >>>= 7;
    }
    this.buf[this.len++] = low;
    return this;
  }

  /** A fixed64 from its two 32-bit halves, little-endian. */
  fixed64(field: number, low: number, high: number): this {
    this.tag(field, WireType.I64);
    this.ensure(8);
    this.buf.writeUInt32LE(low >>> 0, this.len);
    this.buf.writeUInt32LE(high >>> 0, this.len + 4);
    this.len += 8;
    return this;
  }

  fixed32(field: number, value: number): this {
    this.tag(field, WireType.I32);
    this.ensure(4);
    this.buf.writeUInt32LE(value >>> 0, this.len);
    this.len += 4;
    return this;
  }

  bytes(field: number, value: Uint8Array): this {
    this.tag(field, WireType.LEN);
    this.rawVarint(value.length);
    this.ensure(value.length);
    this.buf.set(value, this.len);
    this.len += value.length;
    return this;
  }

  /**
   * A bytes field given as an even-length hex string (trace and span ids).
   * Decoded here rather than by Buffer.write(hex): for 8 or 16 bytes the call
   * into C++ costs more than the decoding. A non-hex digit ends the bytes, as
   * Buffer's decoder does, and the rest of the declared length is zeros.
   */
  hexBytes(field: number, hex: string): this {
    const length = hex.length >>> 1;
    this.tag(field, WireType.LEN);
    this.rawVarint(length);
    this.ensure(length);
    const buf = this.buf;
    const start = this.len;
    let i = 0;
    for (; i < length; i++) {
      const high = hexDigitValue(hex.charCodeAt(2 * i));
      const low = hexDigitValue(hex.charCodeAt(2 * i + 1));
      if (high < 0 || low < 0) break;
      buf[start + i] = (high << 4) | low;
    }
    if (i < length) buf.fill(0, start + i, start + length);
    this.len += length;
    return this;
  }

  /** Bytes that already are a complete encoding of fields (a cached sub-message, say). */
  raw(value: Uint8Array): this {
    this.ensure(value.length);
    this.buf.set(value, this.len);
    this.len += value.length;
    return this;
  }

  /** Starts a nested message in `field`; close it with join(). */
  fork(field: number): this {
    this.tag(field, WireType.LEN);
    this.ensure(1);
    this.forks.push(this.len);
    this.len += 1; // one byte reserved for the length; widened in join() if needed
    return this;
  }

  join(): this {
    const at = this.forks.pop();
    if (at === undefined) throw new Error("join() without fork()");
    const contentStart = at + 1;
    const length = this.len - contentStart;
    if (length < 0x80) {
      this.buf[at] = length;
      return this;
    }
    let prefix = 0;
    for (let v = length; v > 0; v = Math.floor(v / 128)) prefix++;
    this.ensure(prefix - 1);
    this.buf.copy(this.buf, at + prefix, contentStart, this.len);
    let v = length;
    let p = at;
    while (v > 0x7f) {
      this.buf[p++] = (v & 0x7f) | 0x80;
      v = Math.floor(v / 128);
    }
    this.buf[p] = v;
    this.len += prefix - 1;
    return this;
  }

  /** Empties the writer to reuse its buffer; earlier finish() results then see the new bytes. */
  reset(): this {
    this.len = 0;
    this.forks.length = 0;
    return this;
  }

  finish(): Buffer {
    return this.buf.subarray(0, this.len);
  }
}
