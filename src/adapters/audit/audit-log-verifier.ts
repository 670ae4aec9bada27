// `audit verify`'s engine: reads a set of audit log files as one chain and
// reports the first record that breaks it (edited, deleted, duplicated,
// reordered, badly signed or left unsigned), by file and line. What it can and
// cannot prove is spelled out in docs/audit-log.md.

import { createReadStream } from "node:fs";
import type { KeyObject } from "node:crypto";
import { auditKeyId, checkpointSignatureValid, GENESIS_HASH, hashLine } from "./audit-chain.js";
import { readFileEnds } from "./audit-log-files.js";

export interface VerifyOptions {
  /**
   * Accept a log that is still being written or whose writer crashed: it may
   * end without a shutdown checkpoint, with records not yet signed, or with a
   * line being written. These are then warnings, not failures.
   */
  readonly allowOpenEnd?: boolean;
}

export interface VerifyFinding {
  readonly file: string;
  /** 1-based; one past the last line when something is missing after it. */
  readonly line: number;
  readonly message: string;
}

export interface VerifyReport {
  readonly ok: boolean;
  /** The first bad record; undefined when ok. */
  readonly problem: VerifyFinding | undefined;
  readonly warnings: readonly VerifyFinding[];
  /** The files in the order they were verified (by the seq of their first line). */
  readonly files: readonly string[];
  readonly records: number;
  readonly checkpoints: number;
  readonly lastSeq: number;
  /** The running hash at the end: the hash of the last line. */
  readonly lastHash: string;
  readonly lastCheckpoint: { readonly file: string; readonly line: number; readonly seq: number; readonly reason: string } | undefined;
}

interface Entry {
  readonly file: string;
  readonly line: number;
  readonly bytes: Buffer;
  /** False for a last line without its newline. */
  readonly complete: boolean;
  parsed?: ParsedLine | string;
}

interface ParsedLine {
  readonly type: "decision" | "checkpoint";
  readonly seq: number;
  readonly prev: string;
  readonly reason: string;
  readonly keyId: string;
}

interface Position {
  readonly file: string;
  readonly line: number;
}

const HEX64 = /^[0-9a-f]{64}$/;

class Failure extends Error {
  constructor(readonly finding: VerifyFinding) {
    super(finding.message);
  }
}

export async function verifyAuditLog(files: readonly string[], publicKey: KeyObject, options: VerifyOptions = {}): Promise<VerifyReport> {
  const verifier = new ChainVerifier(publicKey, options);
  let ordered: string[] = [];
  try {
    ordered = await orderBySeq(files, verifier.warnings);
    await verifier.run(ordered);
  } catch (error) {
    if (error instanceof Failure) return verifier.report(ordered, error.finding);
    throw error;
  }
  return verifier.report(ordered, undefined);
}

/** Files are verified in chain order, whatever order the shell's glob gave; empty files (an active file just rotated) are skipped. */
async function orderBySeq(files: readonly string[], warnings: VerifyFinding[]): Promise<string[]> {
  const keyed: { file: string; seq: number }[] = [];
  for (const file of files) {
    let ends;
    try {
      ends = await readFileEnds(file);
    } catch (error) {
      throw new Failure({ file, line: 0, message: `cannot read (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})` });
    }
    if (ends === undefined) throw new Failure({ file, line: 0, message: "no such file" });
    if (ends.size === 0) {
      warnings.push({ file, line: 0, message: "empty file, skipped" });
      continue;
    }
    const parsed = ends.firstLine === undefined ? "incomplete line (no newline)" : parseLine(ends.firstLine);
    if (typeof parsed === "string") throw new Failure({ file, line: 1, message: parsed });
    keyed.push({ file, seq: parsed.seq });
  }
  return keyed.sort((a, b) => a.seq - b.seq).map((k) => k.file);
}

class ChainVerifier {
  readonly warnings: VerifyFinding[] = [];
  private readonly keyId: string;
  private expectedSeq = 1;
  private prevHash = GENESIS_HASH;
  private prev: (Position & { readonly signed: boolean }) | undefined;
  private firstUnsigned: (Position & { readonly seq: number }) | undefined;
  private lastCheckpoint: VerifyReport["lastCheckpoint"];
  private records = 0;
  private checkpoints = 0;

  constructor(
    private readonly publicKey: KeyObject,
    private readonly options: VerifyOptions,
  ) {
    this.keyId = auditKeyId(publicKey);
  }

  async run(files: readonly string[]): Promise<void> {
    const lines = readAllLines(files);
    let current = await lines.next();
    if (current.done) throw new Failure({ file: files[0] ?? "(none)", line: 0, message: "no records to verify" });
    while (!current.done) {
      const next = await lines.next();
      this.check(current.value, next.done ? undefined : next.value);
      current = next;
    }
    this.checkEnd();
  }

  report(files: readonly string[], problem: VerifyFinding | undefined): VerifyReport {
    return {
      ok: problem === undefined,
      problem,
      warnings: this.warnings,
      files,
      records: this.records,
      checkpoints: this.checkpoints,
      lastSeq: this.expectedSeq - 1,
      lastHash: this.prevHash,
      lastCheckpoint: this.lastCheckpoint,
    };
  }

  private check(entry: Entry, next: Entry | undefined): void {
    const at = (message: string, where: Position = entry): never => {
      throw new Failure({ file: where.file, line: where.line, message });
    };
    if (!entry.complete) {
      if (next === undefined && this.options.allowOpenEnd) {
        this.warnings.push({ file: entry.file, line: entry.line, message: "incomplete last line (a write in progress or cut short), not verified" });
        return;
      }
      at("incomplete line (no newline): a write was cut short or the file was truncated");
    }
    const record = parsed(entry);
    if (typeof record === "string") at(record);
    const r = record as ParsedLine;

    if (r.seq !== this.expectedSeq) at(this.seqProblem(entry, r.seq));
    if (r.prev !== this.prevHash) this.blameBrokenLink(entry, r, next, at);

    const lineHash = hashLine(entry.bytes);
    let signed = false;
    if (r.type === "checkpoint") {
      if (!checkpointSignatureValid(entry.bytes.toString("utf8"), this.publicKey)) at(this.signatureProblem(r));
      signed = true;
      this.checkpoints++;
      this.firstUnsigned = undefined;
      this.lastCheckpoint = { file: entry.file, line: entry.line, seq: r.seq, reason: r.reason };
    } else {
      this.records++;
      this.firstUnsigned ??= { file: entry.file, line: entry.line, seq: r.seq };
    }

    const endOfFile = next === undefined || next.file !== entry.file;
    if (endOfFile && next !== undefined && !(r.type === "checkpoint" && r.reason === "rotation")) {
      // The writer closes every rotated file with a rotation checkpoint; anything else means its end was cut off.
      at(
        `file ends after line ${entry.line} without a rotation checkpoint: records at its end were removed (or the files are not one log)`,
        { file: entry.file, line: entry.line + 1 },
      );
    }
    this.expectedSeq = r.seq + 1;
    this.prevHash = lineHash;
    this.prev = { file: entry.file, line: entry.line, signed };
  }

  private seqProblem(entry: Entry, seq: number): string {
    const expected = this.expectedSeq;
    if (this.prev === undefined) {
      return `seq: the log starts at seq ${seq}, not 1: earlier records or files are missing (pass every file of the log)`;
    }
    if (seq > expected) {
      const missing = seq - 1 === expected ? `record seq ${expected} is` : `records seq ${expected}..${seq - 1} are`;
      const where = entry.line === 1 ? " (a file before this one, or records at its end, were deleted)" : "";
      return `seq: ${seq} where ${expected} was expected: ${missing} missing, deleted or moved${where}`;
    }
    if (seq === expected - 1 && hashLine(entry.bytes) === this.prevHash) {
      return `seq: ${seq} again: this line duplicates ${this.prev.file}:${this.prev.line}`;
    }
    return `seq: ${seq} where ${expected} was expected: the record was duplicated or moved`;
  }

  /**
   * seq is right but prev is not the previous line's hash: either the previous
   * line or this one was changed. The neighbours tell which: a verified
   * checkpoint cannot have been changed, and a line whose hash the next line
   * still records was not.
   */
  private blameBrokenLink(entry: Entry, r: ParsedLine, next: Entry | undefined, at: (message: string, where?: Position) => never): void {
    const prev = this.prev;
    if (prev === undefined) at(`prev: must be the genesis hash (64 zeros) on the first record of the log`);
    const p = prev as NonNullable<typeof prev>;
    const thisAltered = (): never =>
      at(`record was altered: prev does not match the hash of ${p.file}:${p.line}, and its own hash does not match what the next record holds`);
    const previousAltered = (): never =>
      at(`record was altered: its hash does not match the prev held by the next record (${entry.file}:${entry.line})`, p);
    if (p.signed) at(`record was altered: prev does not match the hash of the signed checkpoint at ${p.file}:${p.line}`);
    if (r.type === "checkpoint") {
      if (checkpointSignatureValid(entry.bytes.toString("utf8"), this.publicKey)) previousAltered();
      at(this.signatureProblem(r));
    }
    if (next === undefined) previousAltered();
    const following = parsed(next!);
    if (typeof following !== "string" && following.seq === r.seq + 1 && following.prev === hashLine(entry.bytes)) previousAltered();
    thisAltered();
  }

  private signatureProblem(r: ParsedLine): string {
    if (r.keyId !== this.keyId) {
      return `signature: checkpoint seq ${r.seq} was signed by key id ${r.keyId || "(none)"}, not by the public key given (key id ${this.keyId})`;
    }
    const since = this.lastCheckpoint ? `since the checkpoint at ${this.lastCheckpoint.file}:${this.lastCheckpoint.line}` : "since the start";
    return `signature: checkpoint seq ${r.seq} does not verify: the checkpoint, or the records ${since} (re-chained after an edit), were altered`;
  }

  private checkEnd(): void {
    const open = this.options.allowOpenEnd === true;
    const note = (finding: VerifyFinding): void => {
      if (!open) throw new Failure(finding);
      this.warnings.push(finding);
    };
    if (this.firstUnsigned !== undefined) {
      const u = this.firstUnsigned;
      note({
        file: u.file,
        line: u.line,
        message: `records seq ${u.seq}..${this.expectedSeq - 1} are not covered by a checkpoint signature: the writer crashed or is still writing, and these records could have been changed or removed without trace`,
      });
      return;
    }
    const last = this.lastCheckpoint;
    if (last !== undefined && last.reason !== "shutdown") {
      note({
        file: last.file,
        line: last.line + 1,
        message: `the log ends at ${/^[aeiou]/.test(last.reason) ? "an" : "a"} ${last.reason} checkpoint (line ${last.line}), not a shutdown checkpoint: the writer crashed or is still writing, or records after line ${last.line} were removed`,
      });
    }
  }
}

function parsed(entry: Entry): ParsedLine | string {
  entry.parsed ??= parseLine(entry.bytes);
  return entry.parsed;
}

/** The chain fields of a line, or what is wrong with them. */
function parseLine(bytes: Buffer): ParsedLine | string {
  let value: unknown;
  try {
    value = JSON.parse(bytes.toString("utf8"));
  } catch {
    return "not a JSON record";
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) return "not a JSON object";
  const obj = value as Record<string, unknown>;
  const type = obj["type"];
  if (type !== "decision" && type !== "checkpoint") return `type: must be "decision" or "checkpoint", got ${JSON.stringify(type)}`;
  const seq = obj["seq"];
  if (typeof seq !== "number" || !Number.isSafeInteger(seq) || seq < 1) return "seq: missing or not a positive integer";
  const prev = obj["prev"];
  if (typeof prev !== "string" || !HEX64.test(prev)) return "prev: missing or not 64 lower-case hex digits";
  const reason = obj["reason"];
  const keyId = obj["key_id"];
  return {
    type,
    seq,
    prev,
    reason: typeof reason === "string" ? reason : "",
    keyId: type === "checkpoint" && typeof keyId === "string" ? keyId : "",
  };
}

/** Lines split on \n as raw bytes, so the hash covers exactly what is on disk (no \r or encoding is smoothed over). */
async function* readAllLines(files: readonly string[]): AsyncGenerator<Entry> {
  for (const file of files) {
    let carry = Buffer.alloc(0);
    let line = 0;
    for await (const chunk of createReadStream(file)) {
      const buf = carry.length === 0 ? (chunk as Buffer) : Buffer.concat([carry, chunk as Buffer]);
      let start = 0;
      for (let nl = buf.indexOf(0x0a, start); nl !== -1; nl = buf.indexOf(0x0a, start)) {
        yield { file, line: ++line, bytes: buf.subarray(start, nl), complete: true };
        start = nl + 1;
      }
      carry = Buffer.from(buf.subarray(start));
    }
    if (carry.length > 0) yield { file, line: ++line, bytes: carry, complete: false };
  }
}
