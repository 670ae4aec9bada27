// `audit verify`'s engine: reads a set of audit log files as one chain and
// reports the first record that breaks it (edited, deleted, duplicated,
// reordered, badly signed or left unsigned), by file and line, or else the
// lines no signature covers. What it can and cannot prove is spelled out in
// docs/audit-log.md.

import type { KeyObject } from "node:crypto";
import { basename } from "node:path";
import { ChainWalk, ChainWalkFailure, type ChainFinding, type CoverageGap } from "./audit-chain-walk.js";
import { parseLine } from "./audit-chain-walk.js";
import { readFirstLine, readLogLines } from "./audit-log-files.js";

export interface VerifyOptions {
  /**
   * Accept a log that is still being written or whose writer crashed: it may
   * end without a shutdown checkpoint, with records not yet signed, or with a
   * line being written. The first is then a warning; the others are lines not
   * covered by any signature.
   */
  readonly allowOpenEnd?: boolean;
}

export type VerifyFinding = ChainFinding;
export type { CoverageGap } from "./audit-chain-walk.js";

export interface VerifyReport {
  /** No tampering found in what is signed. */
  readonly ok: boolean;
  /** The first bad record; undefined when ok. */
  readonly problem: VerifyFinding | undefined;
  /** When ok: the lines no signature covers (a restart's recovery record names them, or an open end); empty means every line is covered. */
  readonly uncovered: readonly CoverageGap[];
  readonly warnings: readonly VerifyFinding[];
  /** The files in the order they were verified. */
  readonly files: readonly string[];
  readonly records: number;
  readonly checkpoints: number;
  readonly recoveries: number;
  readonly lastSeq: number;
  /** The running hash at the end: the hash of the last line of the chain. */
  readonly lastHash: string;
  readonly lastCheckpoint: { readonly file: string; readonly line: number; readonly seq: number; readonly reason: string } | undefined;
}

class InputFailure extends Error {
  constructor(readonly finding: VerifyFinding) {
    super(finding.message);
  }
}

export async function verifyAuditLog(files: readonly string[], publicKey: KeyObject, options: VerifyOptions = {}): Promise<VerifyReport> {
  const walk = new ChainWalk(publicKey, "verify");
  const warnings: VerifyFinding[] = [];
  let ordered: string[] = [];
  let problem: VerifyFinding | undefined;
  try {
    ordered = await chainOrder(files, warnings);
    const lines = readLogLines(ordered);
    let current = await lines.next();
    if (current.done) throw new InputFailure({ file: files[0] ?? "(none)", line: 0, message: "no records to verify" });
    while (!current.done) {
      const next = await lines.next();
      walk.step(current.value, next.done ? undefined : next.value);
      current = next;
    }
    walk.endVerify(options.allowOpenEnd === true, warnings);
  } catch (error) {
    if (error instanceof ChainWalkFailure || error instanceof InputFailure) problem = error.finding;
    else throw error;
  }
  const head = walk.chainHead();
  const signed = walk.lastSignedPoint();
  return {
    ok: problem === undefined,
    problem,
    uncovered: problem === undefined ? walk.gaps : [],
    warnings,
    files: ordered,
    records: walk.records,
    checkpoints: walk.checkpoints,
    recoveries: walk.recoveries,
    lastSeq: head.seq,
    lastHash: head.hash,
    lastCheckpoint: signed.file !== undefined && signed.line !== undefined ? { file: signed.file, line: signed.line, seq: signed.seq, reason: signed.kind === "recovery" ? "recovery" : signed.reason } : undefined,
  };
}

/**
 * Files are verified in chain order, whatever order the shell's glob gave: by
 * the seq of their first line; a file whose first line is not a record (a
 * write cut short at the start of a file) by the seq in its rotated name, or
 * last. Empty files (an active file just rotated) are skipped.
 */
async function chainOrder(files: readonly string[], warnings: VerifyFinding[]): Promise<string[]> {
  const keyed: { file: string; seq: number; index: number }[] = [];
  for (const [index, file] of files.entries()) {
    let first;
    try {
      first = await readFirstLine(file);
    } catch (error) {
      throw new InputFailure({ file, line: 0, message: `cannot read (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})` });
    }
    if (first === undefined) throw new InputFailure({ file, line: 0, message: "no such file" });
    if (first.size === 0) {
      warnings.push({ file, line: 0, message: "empty file, skipped" });
      continue;
    }
    const parsed = first.line === undefined ? undefined : parseLine(first.line);
    const named = /\.(\d{12,})$/.exec(basename(file));
    const seq = parsed !== undefined && typeof parsed !== "string" ? parsed.seq : named !== null ? Number(named[1]) : Number.POSITIVE_INFINITY;
    keyed.push({ file, seq, index });
  }
  return keyed.sort((a, b) => a.seq - b.seq || a.index - b.index).map((k) => k.file);
}
