// The rules of the audit chain as one state machine fed line by line, so that
// `audit verify` and a writer that starts on an existing log judge the files
// the same way (docs/audit-log.md, "Verifying").
//
// Lines after the last signed line (checkpoint or recovery record) are not
// yet covered by a signature. A problem among them (a crash fragment, lines
// someone appended, a gap) is held back: a signed recovery record that
// resumes from that last signed line and names exactly those lines excuses
// them (they are reported as not covered); anything else signed that follows
// proves tampering, and the held-back problem is the first bad record.

import { basename } from "node:path";
import type { KeyObject } from "node:crypto";
import { auditKeyId, GENESIS_HASH, signedLineValid, type UnverifiedRange } from "./audit-chain.js";
import { LinesDigest, type LogLine } from "./audit-log-files.js";
import { HopwardenError } from "../../core/errors.js";

export interface ChainFinding {
  readonly file: string;
  /** 1-based; one past the last line when something is missing after it. */
  readonly line: number;
  readonly message: string;
}

/** Lines no signature covers (verify exits 2 for these). */
export interface CoverageGap {
  readonly file: string;
  readonly firstLine: number;
  readonly lastLine: number;
  readonly message: string;
}

export type LineType = "decision" | "roster" | "checkpoint" | "recovery";

/** Checkpoints and recovery records are signed; decision and roster records are chained and covered by the next signed line. */
export function isSignedType(type: LineType): type is "checkpoint" | "recovery" {
  return type === "checkpoint" || type === "recovery";
}

export interface ParsedLine {
  readonly type: LineType;
  readonly seq: number;
  readonly prev: string;
  readonly reason: string;
  readonly keyId: string;
  /** The chain a signed line belongs to: "" for the main log, "w1", "w2", … for a worker's chain (--workers). */
  readonly chain: string;
  /** A recovery record's declared ranges. */
  readonly unverified: readonly UnverifiedRange[];
  readonly problem: string | undefined;
}

/** Where the chain was last vouched for. */
export interface SignedPoint {
  readonly seq: number;
  readonly hash: string;
  readonly file: string | undefined;
  readonly line: number | undefined;
  /** genesis: before the first line of a log; anchor: a line the writer takes as given but that no signature covers. */
  readonly kind: "genesis" | "anchor" | "checkpoint" | "recovery";
  readonly reason: string;
}

export const GENESIS_POINT: SignedPoint = { seq: 0, hash: GENESIS_HASH, file: undefined, line: undefined, kind: "genesis", reason: "" };

/** Thrown by a strict (verify) walk at the first bad record. */
export class ChainWalkFailure extends HopwardenError {
  readonly code = "audit_chain_broken";
  constructor(readonly finding: ChainFinding) {
    super(`${finding.file}:${finding.line}: ${finding.message}`);
  }
}

/**
 * verify: every problem is final (thrown as ChainWalkFailure).
 * resume: the writer's view of the log's end; a genuine signed line found
 * after a break becomes the new resume point (the break is kept in
 * historyProblems for the log), because the writer must keep running.
 */
export type WalkMode = "verify" | "resume";

interface HeldProblem extends ChainFinding {
  /** The problem is only that this line has no newline. */
  readonly incomplete: boolean;
}

const HEX64 = /^[0-9a-f]{64}$/;

export class ChainWalk {
  readonly gaps: CoverageGap[] = [];
  readonly historyProblems: ChainFinding[] = [];
  records = 0;
  checkpoints = 0;
  recoveries = 0;
  lines = 0;

  private head: { seq: number; hash: string };
  private lastSigned: SignedPoint;
  private readonly region = new Region();
  private held: HeldProblem | undefined;
  private prev: { readonly file: string; readonly line: number; readonly signed: boolean } | undefined;
  private lastLine: LogLine | undefined;
  private readonly firstChainSeqs = new Map<string, number>();
  private readonly keyId: string;

  constructor(
    private readonly publicKey: KeyObject,
    private readonly mode: WalkMode,
    start: SignedPoint = GENESIS_POINT,
    /** The chain these files must hold: a signed line of another chain is not a signed line of this one. */
    private readonly chain: string = "",
  ) {
    this.keyId = auditKeyId(publicKey);
    this.lastSigned = start;
    this.head = { seq: start.seq, hash: start.hash };
  }

  /** Feeds one line; `next` is the line after it (in any file), for telling which of two lines was changed. */
  step(entry: LogLine, next: LogLine | undefined): void {
    this.lines++;
    this.lastLine = entry;
    const parsed = parsedOf(entry);
    const record = typeof parsed === "string" ? undefined : parsed;
    const signed =
      record !== undefined && isSignedType(record.type) && record.chain === this.chain && entry.complete && entry.raw !== undefined && signedLineValid(entry.raw, this.publicKey);

    if (signed && record.type === "recovery") {
      if (this.resumesFromLastSigned(record)) return this.excuse(entry, record, next);
      if (this.held === undefined) {
        return this.signedOutOfPlace(entry, record, this.at(entry, `recovery record seq ${record.seq} does not resume from the last signed line (${this.describeSigned()}): it was moved or copied here`));
      }
    }
    if (this.held !== undefined) {
      if (signed) return this.signedOutOfPlace(entry, record, this.held);
      this.region.add(entry, record);
      return;
    }
    const problem = this.chainProblem(entry, parsed, signed, next);
    if (problem !== undefined) {
      if (signed) return this.signedOutOfPlace(entry, record, problem);
      this.region.add(entry, record);
      this.held = problem;
      return;
    }
    const r = record!;
    this.accept(entry, r, signed);
    if (!signed) {
      this.region.add(entry, r);
      if (r.type === "decision") this.records++;
    }
    this.checkFileEnd(entry, r, signed, next);
  }

  /** verify: the end of the log; throws the first bad record, or records what is not covered (allowOpenEnd) and warnings. */
  endVerify(allowOpenEnd: boolean, warnings: ChainFinding[]): void {
    const last = this.lastLine;
    if (last === undefined) return;
    if (this.held !== undefined) {
      const openEnd = allowOpenEnd && this.held.incomplete && this.held.file === last.file && this.held.line === last.line;
      if (!openEnd) throw new ChainWalkFailure(this.held);
      this.openEndGaps();
      return;
    }
    if (!this.region.empty) {
      if (!allowOpenEnd) {
        const first = this.region.first()!;
        throw new ChainWalkFailure({
          file: first.file,
          line: first.line,
          message: `records seq ${this.region.firstSeq ?? "?"}..${this.head.seq} are not covered by a checkpoint signature: the writer crashed or is still writing, and these records could have been changed or removed without trace`,
        });
      }
      this.openEndGaps();
      return;
    }
    const end = this.lastSigned;
    if (end.kind === "checkpoint" && end.reason === "shutdown") return;
    const what = end.kind === "recovery" ? "a recovery record" : `${/^[aeiou]/.test(end.reason) ? "an" : "a"} ${end.reason} checkpoint`;
    const finding = {
      file: end.file ?? last.file,
      line: (end.line ?? last.line) + 1,
      message: `the log ends at ${what} (line ${end.line ?? last.line}), not a shutdown checkpoint: the writer crashed or is still writing, or records after line ${end.line ?? last.line} were removed`,
    };
    if (!allowOpenEnd) throw new ChainWalkFailure(finding);
    warnings.push(finding);
  }

  /** resume: where the writer may continue, and what lies after it. */
  endResume(): ResumeState {
    return {
      resumePoint: this.lastSigned,
      unverified: this.region.finish(),
      problem: this.held,
      firstLine: this.region.first(),
    };
  }

  /** The chain head: the last line that fitted the chain (or the last signed line). */
  chainHead(): { seq: number; hash: string } {
    return this.head;
  }

  lastSignedPoint(): SignedPoint {
    return this.lastSigned;
  }

  /** The seq of the first line of `file` that the chain accepted (a chained record or a signed line), if any. */
  firstChainSeq(file: string): number | undefined {
    return this.firstChainSeqs.get(file);
  }

  // --- the rules --------------------------------------------------------------

  private chainProblem(entry: LogLine, parsed: ParsedLine | string, signed: boolean, next: LogLine | undefined): HeldProblem | undefined {
    if (!entry.complete) return { ...this.at(entry, "incomplete line (no newline): a write was cut short or the file was truncated"), incomplete: true };
    if (typeof parsed === "string") return { ...this.at(entry, parsed), incomplete: false };
    if (parsed.seq !== this.head.seq + 1) return { ...this.at(entry, this.seqProblem(entry, parsed.seq)), incomplete: false };
    if (parsed.prev !== this.head.hash) return { ...this.blameBrokenLink(entry, parsed, signed, next), incomplete: false };
    if (isSignedType(parsed.type) && !signed) return { ...this.at(entry, this.signatureProblem(parsed)), incomplete: false };
    return undefined;
  }

  private seqProblem(entry: LogLine, seq: number): string {
    const expected = this.head.seq + 1;
    if (this.prev === undefined && this.head.seq === 0) {
      return `seq: the log starts at seq ${seq}, not 1: earlier records or files are missing (pass every file of the log)`;
    }
    if (seq > expected) {
      const missing = seq - 1 === expected ? `record seq ${expected} is` : `records seq ${expected}..${seq - 1} are`;
      const where = entry.line === 1 ? " (a file before this one, or records at its end, were deleted)" : "";
      return `seq: ${seq} where ${expected} was expected: ${missing} missing, deleted or moved${where}`;
    }
    if (this.prev !== undefined && seq === expected - 1 && entry.hash === this.head.hash) {
      return `seq: ${seq} again: this line duplicates ${this.prev.file}:${this.prev.line}`;
    }
    return `seq: ${seq} where ${expected} was expected: the record was duplicated or moved`;
  }

  /**
   * seq is right but prev is not the previous line's hash: either the previous
   * line or this one was changed. The neighbours tell which: a verified
   * signed line cannot have been changed, and a line whose hash the next line
   * still records was not.
   */
  private blameBrokenLink(entry: LogLine, r: ParsedLine, signed: boolean, next: LogLine | undefined): ChainFinding {
    const p = this.prev;
    if (p === undefined) {
      return this.at(entry, this.head.seq === 0 ? "prev: must be the genesis hash (64 zeros) on the first record of the log" : `prev: does not match the hash of seq ${this.head.seq}, the line before`);
    }
    const previousAltered = { file: p.file, line: p.line, message: `record was altered: its hash does not match the prev held by the next record (${entry.file}:${entry.line})` };
    if (p.signed) return this.at(entry, `record was altered: prev does not match the hash of the signed checkpoint at ${p.file}:${p.line}`);
    if (isSignedType(r.type)) return signed ? previousAltered : this.at(entry, this.signatureProblem(r));
    if (next === undefined) return previousAltered;
    const following = parsedOf(next);
    if (typeof following !== "string" && following.seq === r.seq + 1 && following.prev === entry.hash) return previousAltered;
    return this.at(entry, `record was altered: prev does not match the hash of ${p.file}:${p.line}, and its own hash does not match what the next record holds`);
  }

  private signatureProblem(r: ParsedLine): string {
    const what = r.type === "recovery" ? "recovery record" : "checkpoint";
    if (r.keyId !== this.keyId) {
      return `signature: ${what} seq ${r.seq} was signed by key id ${r.keyId || "(none)"}, not by the public key given (key id ${this.keyId})`;
    }
    if (r.chain !== this.chain) {
      return `chain: ${what} seq ${r.seq} belongs to ${describeChain(r.chain)}, not to ${describeChain(this.chain)}: lines or files of two chains were mixed`;
    }
    if (r.type === "recovery") return `signature: recovery record seq ${r.seq} does not verify: it was forged or altered`;
    const since = this.lastSigned.line !== undefined ? `since the checkpoint at ${this.lastSigned.file}:${this.lastSigned.line}` : "since the start";
    return `signature: checkpoint seq ${r.seq} does not verify: the checkpoint, or the records ${since} (re-chained after an edit), were altered`;
  }

  private resumesFromLastSigned(r: ParsedLine): boolean {
    return this.lastSigned.kind !== "anchor" && r.seq === this.lastSigned.seq + 1 && r.prev === this.lastSigned.hash;
  }

  /** A valid recovery record that resumes from the last signed line: the lines in between are not covered, and must be exactly the ones it names. */
  private excuse(entry: LogLine, r: ParsedLine, next: LogLine | undefined): void {
    const found = this.region.finish();
    if (!sameRanges(found, r.unverified)) {
      const problem = this.at(
        entry,
        `recovery record seq ${r.seq} names ${describeRanges(r.unverified)} as unverified, but ${describeRanges(found)} lie between ${this.describeSigned()} and it: lines were added, removed or changed after it was signed`,
      );
      if (this.mode === "verify") throw new ChainWalkFailure(problem);
      this.historyProblems.push(problem);
    }
    const why = r.problem === undefined ? "" : `: ${r.problem}`;
    for (const range of found) {
      this.gaps.push({
        file: range.file,
        firstLine: range.firstLine,
        lastLine: range.lastLine,
        message: `not covered by any signature: the writer could not verify these lines when it restarted (recovery record at ${entry.file}:${entry.line}${why})`,
      });
    }
    if (found.length === 0) {
      this.gaps.push({
        file: entry.file,
        firstLine: entry.line,
        lastLine: entry.line,
        message: `recovery record: the writer restarted after ${this.describeSigned()}, which is not a shutdown checkpoint: records written after it may be missing`,
      });
    }
    this.held = undefined;
    this.accept(entry, r, true);
    this.checkFileEnd(entry, r, true, next);
  }

  private signedOutOfPlace(entry: LogLine, r: ParsedLine | undefined, problem: ChainFinding): void {
    if (this.mode === "verify") throw new ChainWalkFailure(problem);
    // A genuine signed line after a break: the history before it was tampered
    // with, but this line was written by a writer with this key, so it is where
    // the writer resumes. A copied older signed line is not progress: it stays
    // among the lines after the resume point.
    if (r !== undefined && r.seq > this.lastSigned.seq) {
      this.historyProblems.push(problem);
      this.region.finish();
      this.held = undefined;
      this.accept(entry, r, true);
      return;
    }
    this.region.add(entry, r);
    this.held ??= { ...problem, incomplete: false };
  }

  private accept(entry: LogLine, r: ParsedLine, signed: boolean): void {
    if (!this.firstChainSeqs.has(entry.file)) this.firstChainSeqs.set(entry.file, r.seq);
    this.head = { seq: r.seq, hash: entry.hash };
    this.prev = { file: entry.file, line: entry.line, signed };
    if (!signed) return;
    this.lastSigned = { seq: r.seq, hash: entry.hash, file: entry.file, line: entry.line, kind: r.type === "recovery" ? "recovery" : "checkpoint", reason: r.reason };
    this.region.finish();
    if (r.type === "recovery") this.recoveries++;
    else this.checkpoints++;
  }

  /** The writer closes every rotated file with a rotation checkpoint; a file that ends otherwise lost its end. */
  private checkFileEnd(entry: LogLine, r: ParsedLine, signed: boolean, next: LogLine | undefined): void {
    if (next === undefined || next.file === entry.file) return;
    if (signed && r.type === "checkpoint" && r.reason === "rotation") return;
    this.held = {
      file: entry.file,
      line: entry.line + 1,
      message: `file ends after line ${entry.line} without a rotation checkpoint: records at its end were removed (or the files are not one log)`,
      incomplete: false,
    };
  }

  private openEndGaps(): void {
    const after = this.describeSigned();
    for (const range of this.region.finish()) {
      this.gaps.push({
        file: range.file,
        firstLine: range.firstLine,
        lastLine: range.lastLine,
        message: `not covered by any signature: written after ${after} (the writer crashed or is still writing)`,
      });
    }
  }

  private describeSigned(): string {
    const s = this.lastSigned;
    if (s.kind === "genesis") return "the start of the log";
    const where = s.line === undefined ? (s.file ?? "?") : `${s.file}:${s.line}`;
    return `the ${s.kind === "recovery" ? "recovery record" : `${s.reason} checkpoint`} seq ${s.seq} at ${where}`;
  }

  private at(entry: LogLine, message: string): ChainFinding {
    return { file: entry.file, line: entry.line, message };
  }
}

export interface ResumeState {
  /** The last signed line the chain reached (or the walk's start). */
  readonly resumePoint: SignedPoint;
  /** The lines after it, per file (full paths as given). */
  readonly unverified: readonly UnverifiedRange[];
  /** The first problem among them, if any (none: they chain, but nothing signs them). */
  readonly problem: ChainFinding | undefined;
  readonly firstLine: { readonly file: string; readonly line: number } | undefined;
}

/** The lines since the last signed line, as per-file ranges with their digest. */
class Region {
  private ranges: { file: string; firstLine: number; lastLine: number; digest: LinesDigest }[] = [];
  firstSeq: number | undefined;

  get empty(): boolean {
    return this.ranges.length === 0;
  }

  add(entry: LogLine, parsed: ParsedLine | undefined): void {
    let last = this.ranges.at(-1);
    if (last === undefined || last.file !== entry.file) {
      last = { file: entry.file, firstLine: entry.line, lastLine: entry.line, digest: new LinesDigest() };
      this.ranges.push(last);
    }
    if (this.firstSeq === undefined && this.ranges.length === 1 && last.digest.lines === 0) this.firstSeq = parsed?.seq;
    last.lastLine = entry.line;
    last.digest.add(entry);
  }

  first(): { file: string; line: number } | undefined {
    const r = this.ranges[0];
    return r === undefined ? undefined : { file: r.file, line: r.firstLine };
  }

  /** The ranges with their digests; empties the region. */
  finish(): UnverifiedRange[] {
    const done = this.ranges.map((r) => ({ file: r.file, firstLine: r.firstLine, lastLine: r.lastLine, bytes: r.digest.bytes, linesSha256: r.digest.digest() }));
    this.ranges = [];
    this.firstSeq = undefined;
    return done;
  }
}

/** For people: the main log, or a worker's chain. */
export function describeChain(chain: string): string {
  return chain === "" ? "the main log" : `worker chain ${chain}`;
}

function sameRanges(found: readonly UnverifiedRange[], declared: readonly UnverifiedRange[]): boolean {
  return (
    found.length === declared.length &&
    found.every((f, i) => {
      const d = declared[i]!;
      return f.firstLine === d.firstLine && f.lastLine === d.lastLine && f.bytes === d.bytes && f.linesSha256 === d.linesSha256;
    })
  );
}

function describeRanges(ranges: readonly UnverifiedRange[]): string {
  if (ranges.length === 0) return "no lines";
  return ranges.map((r) => `${basename(r.file)} lines ${r.firstLine}..${r.lastLine} (${r.bytes} bytes)`).join(" and ");
}

const parsedLines = new WeakMap<LogLine, ParsedLine | string>();

function parsedOf(entry: LogLine): ParsedLine | string {
  let parsed = parsedLines.get(entry);
  if (parsed === undefined) {
    parsed = entry.raw === undefined ? `line of ${entry.bytes} bytes: too long to be a record of this log` : parseLine(entry.raw);
    parsedLines.set(entry, parsed);
  }
  return parsed;
}

/** The chain fields of a line, or what is wrong with them. */
export function parseLine(bytes: Buffer): ParsedLine | string {
  let value: unknown;
  try {
    value = JSON.parse(bytes.toString("utf8"));
  } catch {
    return "not a JSON record";
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) return "not a JSON object";
  const obj = value as Record<string, unknown>;
  const type = obj["type"];
  if (type !== "decision" && type !== "roster" && type !== "checkpoint" && type !== "recovery") {
    return `type: must be "decision", "roster", "checkpoint" or "recovery", got ${JSON.stringify(type)?.slice(0, 64) ?? "nothing"}`;
  }
  const seq = obj["seq"];
  if (typeof seq !== "number" || !Number.isSafeInteger(seq) || seq < 1) return "seq: missing or not a positive integer";
  const prev = obj["prev"];
  if (typeof prev !== "string" || !HEX64.test(prev)) return "prev: missing or not 64 lower-case hex digits";
  const reason = obj["reason"];
  const keyId = obj["key_id"];
  let unverified: UnverifiedRange[] = [];
  let problem: string | undefined;
  if (type === "recovery") {
    const ranges = parseDeclaredRanges(obj["unverified"]);
    if (typeof ranges === "string") return ranges;
    unverified = ranges;
    const p = obj["problem"];
    if (typeof p === "string") problem = p;
  }
  return {
    type,
    seq,
    prev,
    reason: typeof reason === "string" ? reason : "",
    keyId: isSignedType(type) && typeof keyId === "string" ? keyId : "",
    chain: isSignedType(type) && typeof obj["worker_chain"] === "string" ? obj["worker_chain"] : "",
    unverified,
    problem,
  };
}

function parseDeclaredRanges(value: unknown): UnverifiedRange[] | string {
  if (!Array.isArray(value)) return "unverified: must be an array";
  const ranges: UnverifiedRange[] = [];
  for (const [i, item] of value.entries()) {
    const r = item as Record<string, unknown> | null;
    const int = (v: unknown, min: number) => typeof v === "number" && Number.isSafeInteger(v) && v >= min;
    if (
      typeof r !== "object" ||
      r === null ||
      typeof r["file"] !== "string" ||
      !int(r["first_line"], 1) ||
      !int(r["last_line"], 1) ||
      !int(r["bytes"], 0) ||
      typeof r["lines_sha256"] !== "string" ||
      !HEX64.test(r["lines_sha256"])
    ) {
      return `unverified[${i}]: must be { file, first_line, last_line, bytes, lines_sha256 }`;
    }
    ranges.push({ file: r["file"], firstLine: r["first_line"] as number, lastLine: r["last_line"] as number, bytes: r["bytes"] as number, linesSha256: r["lines_sha256"] });
  }
  return ranges;
}
