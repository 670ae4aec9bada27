// Where a writer that starts on an existing log continues the chain (SPEC 6:
// a restart never signs what it did not write). It re-reads the end of the
// log (the newest rotated file and the active file), recomputes the hash
// chain and checks every signature on the way, and resumes only from the
// last line signed by its own key. Whatever follows that line (a crash tail,
// lines someone appended, a file swapped in) is never chained into a new
// signature: the plan says which lines they are, and the writer's first line
// is a signed recovery record naming them.

import { createPublicKey, type KeyObject } from "node:crypto";
import { basename } from "node:path";
import { GENESIS_HASH, hashLine, signedLineValid, type ChainHead, type RecoveryFields } from "./audit-chain.js";
import { ChainWalk, GENESIS_POINT, isSignedType, parseLine, type ChainFinding, type SignedPoint } from "./audit-chain-walk.js";
import { listRotatedFiles, readFirstLine, readLastLine, readLogLines, type LogLine } from "./audit-log-files.js";
import { boundText } from "../text/bounded-text.js";

export interface ResumePlan {
  /** The line new lines chain from: the last line signed by this key, or genesis. */
  readonly head: ChainHead;
  /** Bytes already in the active file. */
  readonly size: number;
  /** The seq the active file's first chained line has (or will have): it names the file when it is rotated. */
  readonly fileFirstSeq: number;
  /** The active file ends in a fragment without a newline. */
  readonly endsInFragment: boolean;
  /** Set when the log did not end with a shutdown checkpoint of this key: the first line to write. */
  readonly recovery: Omit<RecoveryFields, "time" | "keyId"> | undefined;
  /** Tampering found before the resume point (verify will report it; the writer logs it and goes on). */
  readonly historyProblems: readonly ChainFinding[];
  /** Set when the log cannot be continued: no line signed by this key at its end, and earlier files exist. */
  readonly refusal: string | undefined;
}

/** `chain`: "" for the main log, "w1", "w2", … for a worker's chain; only signed lines of that chain count as signed. */
export async function planResume(path: string, privateKey: KeyObject, chain = ""): Promise<ResumePlan> {
  const publicKey = createPublicKey(privateKey);
  const rotated = await listRotatedFiles(path);
  const newest = rotated.at(-1);
  const active = await readFirstLine(path);
  const files = [...(newest === undefined ? [] : [newest.path]), ...(active !== undefined && active.size > 0 ? [path] : [])];
  const start = await startingPoint(rotated.at(-2)?.path, files[0], publicKey, chain);

  const walk = new ChainWalk(publicKey, "resume", start, chain);
  let last: LogLine | undefined;
  const lines = readLogLines(files);
  try {
    let current = await lines.next();
    while (!current.done) {
      const next = await lines.next();
      walk.step(current.value, next.done ? undefined : next.value);
      last = current.value;
      current = next;
    }
  } finally {
    // Closes the file the reader holds open when a step or a read throws; an error closing it must not hide that one.
    await lines.return(undefined).catch(() => undefined);
  }
  const end = walk.endResume();
  const point = end.resumePoint;
  const base = {
    size: active?.size ?? 0,
    endsInFragment: last !== undefined && last.file === path && !last.complete,
    historyProblems: walk.historyProblems,
  };
  if (point.kind === "anchor") {
    const why = end.problem ?? walk.historyProblems[0];
    return {
      ...base,
      head: { seq: point.seq, hash: point.hash },
      fileFirstSeq: point.seq + 1,
      recovery: undefined,
      refusal:
        `${files.length === 0 ? path : files.join(" and ")}: no line signed by this key (a checkpoint of the --audit-key given) continues the chain at the end of the log` +
        (why === undefined ? "" : ` (first problem: ${why.file}:${why.line}: ${why.message})`) +
        ", so it cannot be continued without signing what this writer did not write. If the key was changed, start a new log; otherwise the files were replaced or damaged: keep them as evidence, and move them aside to start a new log",
    };
  }
  const head = { seq: point.seq, hash: point.hash };
  const fileFirstSeq = walk.firstChainSeq(path) ?? point.seq + 1;
  const clean = end.unverified.length === 0 && (point.kind === "genesis" || (point.kind === "checkpoint" && point.reason === "shutdown"));
  if (clean) return { ...base, head, fileFirstSeq, recovery: undefined, refusal: undefined };
  return {
    ...base,
    head,
    fileFirstSeq,
    refusal: undefined,
    recovery: {
      reason: end.unverified.length > 0 ? "unverified_lines" : "no_shutdown_checkpoint",
      resumedAfter: describePoint(point),
      unverified: end.unverified.map((r) => ({ ...r, file: basename(r.file) })),
      problem:
        end.unverified.length === 0
          ? null
          : end.problem !== undefined
            ? boundText(`${basename(end.problem.file)}:${end.problem.line}: ${end.problem.message}`)
            : "no signature of this key covers them: the writer stopped before signing them, or they were added later",
    },
  };
}

/**
 * Where the walk over the log's end starts: the last line of the rotated file
 * before the newest, when it is signed by this key (it holds the chain's
 * state, and a recovery record in the newest file may resume from it); else
 * the first line of the log's end, taken as given (older files are verify's
 * business), or genesis when that is the log's first line or not a record.
 */
async function startingPoint(beforeNewest: string | undefined, firstFile: string | undefined, publicKey: KeyObject, chain: string): Promise<SignedPoint> {
  if (beforeNewest !== undefined) {
    const line = await readLastLine(beforeNewest);
    const parsed = line === undefined ? undefined : parseLine(line);
    if (line !== undefined && typeof parsed === "object" && isSignedType(parsed.type) && parsed.chain === chain && signedLineValid(line, publicKey)) {
      return { seq: parsed.seq, hash: hashLine(line), file: beforeNewest, line: undefined, kind: parsed.type, reason: parsed.reason };
    }
  }
  const first = firstFile === undefined ? undefined : (await readFirstLine(firstFile))?.line;
  const parsed = first === undefined ? undefined : parseLine(first);
  if (typeof parsed === "object") {
    if (parsed.seq === 1 && parsed.prev === GENESIS_HASH && beforeNewest === undefined) return GENESIS_POINT;
    return { seq: parsed.seq - 1, hash: parsed.prev, file: firstFile, line: 0, kind: "anchor", reason: "" };
  }
  // A first line that is not a record (a write cut short): the first file of a log starts from genesis; a later one has nothing to anchor it.
  return beforeNewest === undefined ? GENESIS_POINT : { ...GENESIS_POINT, kind: "anchor" };
}

function describePoint(point: SignedPoint): RecoveryFields["resumedAfter"] {
  if (point.kind === "genesis") return null;
  return { seq: point.seq, file: basename(point.file ?? ""), line: point.line ?? null };
}
