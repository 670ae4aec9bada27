// `audit verify`'s engine: reads a set of audit log files, sorts them into
// chains (the main log, and with --workers one chain per worker), verifies
// each chain on its own and then all of them against the roster the main log
// keeps of the worker chains. It reports the first record that breaks each
// chain (edited, deleted, duplicated, reordered, badly signed or left
// unsigned) by file and line, a chain missing, cut back or not named by the
// roster, or else the lines no signature covers. What it can and cannot
// prove is spelled out in docs/audit-log.md.

import type { KeyObject } from "node:crypto";
import { basename } from "node:path";
import { ChainWalk, ChainWalkFailure, describeChain, isSignedType, parseLine, type ChainFinding, type CoverageGap } from "./audit-chain-walk.js";
import { AuditLogFileError, readFirstLine, readLogLines } from "./audit-log-files.js";
import { chainFromFileName, parseRosterRecord, type RosterRecord } from "./audit-roster.js";
import type { ChainHead } from "./audit-chain.js";

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

export interface LastSigned {
  readonly file: string;
  readonly line: number;
  readonly seq: number;
  readonly reason: string;
}

/** One chain: the main log ("") or a worker's ("w1", …). */
export interface ChainReport {
  readonly chain: string;
  /** Its files in the order they were verified. */
  readonly files: readonly string[];
  /** Its first bad record; undefined when intact. */
  readonly problem: VerifyFinding | undefined;
  readonly uncovered: readonly CoverageGap[];
  readonly records: number;
  readonly checkpoints: number;
  readonly recoveries: number;
  readonly lastSeq: number;
  readonly lastHash: string;
  readonly lastCheckpoint: LastSigned | undefined;
}

export interface VerifyReport {
  /** No tampering found in what is signed, in any chain, and the chains match the roster. */
  readonly ok: boolean;
  /** The first of `problems`; undefined when ok. */
  readonly problem: VerifyFinding | undefined;
  /** The first bad record of each chain that has one, then each way the chains do not match the roster. */
  readonly problems: readonly VerifyFinding[];
  /** When ok: the lines no signature covers, in every chain; empty means every line is covered. */
  readonly uncovered: readonly CoverageGap[];
  readonly warnings: readonly VerifyFinding[];
  /** Every file, chain by chain, in the order they were verified. */
  readonly files: readonly string[];
  /** Totals over all chains. */
  readonly records: number;
  readonly checkpoints: number;
  readonly recoveries: number;
  /** Of the main log (or of the only chain given). */
  readonly lastSeq: number;
  /** The running hash at the end: the hash of the last line of the chain. */
  readonly lastHash: string;
  readonly lastCheckpoint: LastSigned | undefined;
  /** The main log first, then the worker chains in order. */
  readonly chains: readonly ChainReport[];
}

interface RosterEntry {
  readonly record: RosterRecord;
  readonly file: string;
  readonly line: number;
}

/** A chain head the roster says a worker chain reached, and where the roster says so. */
interface Expected {
  readonly head: ChainHead;
  readonly roster: RosterEntry;
  readonly file: string;
  readonly when: string;
}

/**
 * Throws AuditLogFileError, naming the file, when a file is missing, cannot
 * be read or is not a regular file: that is no verdict on the log, and the
 * CLI exits with its input-error code (3), not "not intact" (1).
 */
export async function verifyAuditLog(files: readonly string[], publicKey: KeyObject, options: VerifyOptions = {}): Promise<VerifyReport> {
  const warnings: VerifyFinding[] = [];
  const groups = await sortIntoChains(files, warnings);
  // Files that are all empty: a log emptied is not intact.
  if (groups.size === 0) return nothingVerified({ file: files[0] ?? "(none)", line: 0, message: "no records to verify" }, warnings);

  const roster: RosterEntry[] = [];
  const chains: ChainReport[] = [];
  const expected = new Map<string, Expected[]>();
  const reached = new Map<string, Set<string>>();
  for (const chain of [...groups.keys()].sort(chainOrder)) {
    const walked = await walkChain(chain, groups.get(chain)!, publicKey, options, warnings, chain === "" ? roster : undefined, expected.get(chain));
    chains.push(walked.report);
    reached.set(chain, walked.reached);
    if (chain === "") for (const [c, list] of expectedHeads(roster)) expected.set(c, list);
  }
  // The main log sorts first: its roster is known before any worker chain is walked.
  const problems = [...chains.flatMap((c) => (c.problem === undefined ? [] : [c.problem])), ...rosterProblems(roster, chains, expected, reached)];
  const main = chains.find((c) => c.chain === "") ?? chains[0]!;
  const ok = problems.length === 0;
  return {
    ok,
    problem: problems[0],
    problems,
    uncovered: ok ? chains.flatMap((c) => c.uncovered) : [],
    warnings,
    files: chains.flatMap((c) => c.files),
    records: sum(chains, (c) => c.records),
    checkpoints: sum(chains, (c) => c.checkpoints),
    recoveries: sum(chains, (c) => c.recoveries),
    lastSeq: main.lastSeq,
    lastHash: main.lastHash,
    lastCheckpoint: main.lastCheckpoint,
    chains,
  };
}

function nothingVerified(finding: VerifyFinding, warnings: VerifyFinding[]): VerifyReport {
  return {
    ok: false,
    problem: finding,
    problems: [finding],
    uncovered: [],
    warnings,
    files: [],
    records: 0,
    checkpoints: 0,
    recoveries: 0,
    lastSeq: 0,
    lastHash: "",
    lastCheckpoint: undefined,
    chains: [],
  };
}

function sum(chains: readonly ChainReport[], value: (c: ChainReport) => number): number {
  return chains.reduce((total, c) => total + value(c), 0);
}

/** The main log first, then w1, w2, … by number. */
function chainOrder(a: string, b: string): number {
  return (a === "" ? 0 : Number(a.slice(1))) - (b === "" ? 0 : Number(b.slice(1)));
}

/**
 * Each file goes to the chain its signed lines name (a worker chain's
 * checkpoints carry `chain`; the main log's carry none), whatever it is
 * called; a file with no signed line near its start, by its name. Empty
 * files (an active file just rotated) are skipped.
 */
async function sortIntoChains(files: readonly string[], warnings: VerifyFinding[]): Promise<Map<string, string[]>> {
  const groups = new Map<string, string[]>();
  for (const file of files) {
    let first;
    try {
      first = await readFirstLine(file);
    } catch (error) {
      if (error instanceof AuditLogFileError) throw error;
      throw new AuditLogFileError(file, `cannot read (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`);
    }
    if (first === undefined) throw new AuditLogFileError(file, "no such file");
    if (first.size === 0) {
      warnings.push({ file, line: 0, message: "empty file, skipped" });
      continue;
    }
    const chain = (await chainOfSignedLines(file)) ?? chainFromFileName(file);
    groups.set(chain, [...(groups.get(chain) ?? []), file]);
  }
  return groups;
}

/** Lines read at most to find a file's first signed line (a rotated file ends with one; checkpoints come every N records). */
const CLASSIFY_MAX_LINES = 20_000;
const SIGNED_PREFIXES = [Buffer.from('{"type":"checkpoint"'), Buffer.from('{"type":"recovery"')];

async function chainOfSignedLines(file: string): Promise<string | undefined> {
  let seen = 0;
  for await (const entry of readLogLines([file])) {
    if (++seen > CLASSIFY_MAX_LINES) break;
    const raw = entry.raw;
    if (raw === undefined || !SIGNED_PREFIXES.some((p) => raw.subarray(0, p.length).equals(p))) continue;
    const parsed = parseLine(raw);
    if (typeof parsed !== "string" && isSignedType(parsed.type)) return parsed.chain;
  }
  return undefined;
}

const ROSTER_PREFIX = Buffer.from('{"type":"roster"');

/** Verifies one chain; the main log's roster records go to `roster`, and the heads `expected` of a worker chain are looked for on the way. */
async function walkChain(
  chain: string,
  files: readonly string[],
  publicKey: KeyObject,
  options: VerifyOptions,
  warnings: VerifyFinding[],
  roster: RosterEntry[] | undefined,
  expected: readonly Expected[] | undefined,
): Promise<{ report: ChainReport; reached: Set<string> }> {
  const walk = new ChainWalk(publicKey, "verify", undefined, chain);
  const wanted = new Set((expected ?? []).map((e) => headKey(e.head)));
  const reached = new Set<string>();
  const ordered = await chainFileOrder(files);
  let problem: VerifyFinding | undefined;
  const lines = readLogLines(ordered);
  try {
    let current = await lines.next();
    let lastSeq = -1;
    while (!current.done) {
      const next = await lines.next();
      const entry = current.value;
      walk.step(entry, next.done ? undefined : next.value);
      const head = walk.chainHead();
      // Accepted into the chain: the head moved onto this very line.
      if (head.seq !== lastSeq && head.hash === entry.hash) {
        lastSeq = head.seq;
        if (wanted.size > 0 && wanted.has(headKey(head))) reached.add(headKey(head));
        if (roster !== undefined && entry.raw !== undefined && entry.raw.subarray(0, ROSTER_PREFIX.length).equals(ROSTER_PREFIX)) {
          const record = parseRosterRecord(JSON.parse(entry.raw.toString("utf8")) as Record<string, unknown>);
          if (typeof record === "string") throw new ChainWalkFailure({ file: entry.file, line: entry.line, message: record });
          roster.push({ record, file: entry.file, line: entry.line });
        }
      }
      current = next;
    }
    walk.endVerify(options.allowOpenEnd === true, warnings);
  } catch (error) {
    if (error instanceof ChainWalkFailure) problem = error.finding;
    else throw error;
  } finally {
    // Closes the file being read when the walk stopped at a bad record.
    await lines.return(undefined);
  }
  const head = walk.chainHead();
  const signed = walk.lastSignedPoint();
  return {
    report: {
      chain,
      files: ordered,
      problem,
      uncovered: problem === undefined ? walk.gaps : [],
      records: walk.records,
      checkpoints: walk.checkpoints,
      recoveries: walk.recoveries,
      lastSeq: head.seq,
      lastHash: head.hash,
      lastCheckpoint:
        signed.file !== undefined && signed.line !== undefined ? { file: signed.file, line: signed.line, seq: signed.seq, reason: signed.kind === "recovery" ? "recovery" : signed.reason } : undefined,
    },
    reached,
  };
}

function headKey(head: ChainHead): string {
  return `${head.seq}:${head.hash}`;
}

/**
 * The files of one chain in chain order, whatever order the shell's glob
 * gave: by the seq of their first line; a file whose first line is not a
 * record (a write cut short at the start of a file) by the seq in its
 * rotated name, or last.
 */
async function chainFileOrder(files: readonly string[]): Promise<string[]> {
  const keyed: { file: string; seq: number; index: number }[] = [];
  for (const [index, file] of files.entries()) {
    const first = await readFirstLine(file);
    const parsed = first?.line === undefined ? undefined : parseLine(first.line);
    const named = /\.(\d{12,})$/.exec(basename(file));
    const seq = parsed !== undefined && typeof parsed !== "string" ? parsed.seq : named !== null ? Number(named[1]) : Number.POSITIVE_INFINITY;
    keyed.push({ file, seq, index });
  }
  return keyed.sort((a, b) => a.seq - b.seq || a.index - b.index).map((k) => k.file);
}

/** The heads the roster says each worker chain reached: when its worker opened it, and where it stood when the run stopped. */
function expectedHeads(roster: readonly RosterEntry[]): Map<string, Expected[]> {
  const out = new Map<string, Expected[]>();
  const add = (chain: string, e: Expected) => out.set(chain, [...(out.get(chain) ?? []), e]);
  for (const entry of roster) {
    const r = entry.record;
    if (r.event === "opened") add(r.chain, { head: r.head, roster: entry, file: r.file, when: `when its worker opened it in run ${r.run}` });
    if (r.event === "stop") {
      for (const c of r.chains) if (c.head !== null) add(c.chain, { head: c.head, roster: entry, file: c.file, when: `when run ${r.run} stopped` });
    }
  }
  return out;
}

function rosterProblems(roster: readonly RosterEntry[], chains: readonly ChainReport[], expected: Map<string, Expected[]>, reached: Map<string, Set<string>>): VerifyFinding[] {
  const problems: VerifyFinding[] = [];
  const named = new Set<string>();
  for (const { record } of roster) {
    if (record.event === "opened") named.add(record.chain);
    else for (const c of record.chains) named.add(c.chain);
  }
  const hasMain = chains.some((c) => c.chain === "");
  for (const c of chains) {
    if (c.chain === "" || named.has(c.chain)) continue;
    problems.push({
      file: c.files[0]!,
      line: 1,
      message: hasMain
        ? `${describeChain(c.chain)}: no roster record of the main log names it (pass every file of the main log, the --audit-log file and its rotated files), or the roster records naming it were removed`
        : `${describeChain(c.chain)}: the main log, whose roster names the worker chains, was not given: pass its files too (the --audit-log file and its rotated files), or it was deleted`,
    });
  }
  const given = new Set(chains.map((c) => c.chain));
  // A chain that already failed is not walked past its first bad record: the roster cannot be checked against the rest of it.
  const failed = new Set(chains.filter((c) => c.problem !== undefined).map((c) => c.chain));
  for (const [chain, list] of expected) {
    if (failed.has(chain)) continue;
    // The first head the chain does not reach is enough: the ones after it are missing for the same reason.
    for (const e of list) {
      if (reached.get(chain)?.has(headKey(e.head)) === true) continue;
      const where = `${describeChain(chain)} (${e.file}) stood at seq ${e.head.seq}, line hash ${e.head.hash.slice(0, 16)}…, ${e.when}`;
      problems.push({
        file: e.roster.file,
        line: e.roster.line,
        message: given.has(chain)
          ? `roster: ${where}, but that chain holds no such line: it was cut back or rewritten`
          : `roster: ${where}, but no file of that chain was given: it was deleted, or pass its files too`,
      });
      break;
    }
  }
  return problems;
}
