// Where an audit log's files live, and reading them with bounded memory
// whatever they hold: the active file is the configured path; a rotated file
// is `<path>.<seq of its first line, 12 digits>`, so names sort in chain order
// and never need renaming again.

import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import { open, readdir } from "node:fs/promises";
import { basename, dirname, join } from "node:path";

const SEQ_DIGITS = 12;

export function rotatedFileName(activePath: string, firstSeq: number): string {
  return `${activePath}.${String(firstSeq).padStart(SEQ_DIGITS, "0")}`;
}

export interface RotatedFile {
  readonly path: string;
  readonly firstSeq: number;
}

/** The rotated files of `activePath`, oldest first. */
export async function listRotatedFiles(activePath: string): Promise<RotatedFile[]> {
  const dir = dirname(activePath);
  const prefix = `${basename(activePath)}.`;
  const pattern = new RegExp(`^\\d{${SEQ_DIGITS},}$`);
  let names: string[];
  try {
    names = await readdir(dir);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return [];
    throw error;
  }
  return names
    .filter((name) => name.startsWith(prefix) && pattern.test(name.slice(prefix.length)))
    .map((name) => ({ path: join(dir, name), firstSeq: Number(name.slice(prefix.length)) }))
    .sort((a, b) => a.firstSeq - b.firstSeq);
}

/** The longest line the writer ever writes is far below this; a longer line cannot be one of its records, and is hashed but not kept. */
export const MAX_RECORD_LINE_BYTES = 1024 * 1024;

export interface FirstLine {
  readonly size: number;
  /** The first complete line without its newline; undefined when the file has no newline within `maxBytes`. */
  readonly line: Buffer | undefined;
}

/** Reads at most `maxBytes` (+1) from the start of a file: undefined when the file does not exist. */
export async function readFirstLine(path: string, maxBytes: number = MAX_RECORD_LINE_BYTES): Promise<FirstLine | undefined> {
  const handle = await openIfExists(path);
  if (handle === undefined) return undefined;
  try {
    const { size } = await handle.stat();
    const buf = Buffer.alloc(Math.min(size, maxBytes + 1));
    const { bytesRead } = await handle.read(buf, 0, buf.length, 0);
    const newline = buf.subarray(0, bytesRead).indexOf(0x0a);
    return { size, line: newline === -1 ? undefined : Buffer.from(buf.subarray(0, newline)) };
  } finally {
    await handle.close();
  }
}

/** The last complete line of a file (without its newline), when it ends in a newline and that line is at most `maxBytes` long. */
export async function readLastLine(path: string, maxBytes: number = MAX_RECORD_LINE_BYTES): Promise<Buffer | undefined> {
  const handle = await openIfExists(path);
  if (handle === undefined) return undefined;
  try {
    const { size } = await handle.stat();
    const length = Math.min(size, maxBytes + 1);
    const buf = Buffer.alloc(length);
    const { bytesRead } = await handle.read(buf, 0, length, size - length);
    const tail = buf.subarray(0, bytesRead);
    if (tail.length === 0 || tail[tail.length - 1] !== 0x0a) return undefined;
    const before = tail.lastIndexOf(0x0a, tail.length - 2);
    if (before === -1 && size > length) return undefined;
    return Buffer.from(tail.subarray(before + 1, tail.length - 1));
  } finally {
    await handle.close();
  }
}

async function openIfExists(path: string) {
  try {
    return await open(path, "r");
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw error;
  }
}

/** One line of a log file as it is on disk. */
export interface LogLine {
  readonly file: string;
  /** 1-based. */
  readonly line: number;
  /** The line's bytes without its newline; undefined when longer than the reader's maxLineBytes (it cannot be a record). */
  readonly raw: Buffer | undefined;
  /** Hex SHA-256 of the line's exact bytes, without its newline (whatever its length). */
  readonly hash: string;
  /** Its length in bytes, without its newline. */
  readonly bytes: number;
  /** False for a last line without its newline (a write cut short, or still in progress). */
  readonly complete: boolean;
}

/**
 * The lines of `files`, one file after the other, split on \n as raw bytes so
 * the hash covers exactly what is on disk. Streams: memory stays bounded by
 * `maxLineBytes` whatever the files hold (a crash tail of gigabytes without a
 * newline is hashed, not kept).
 */
export async function* readLogLines(files: readonly string[], maxLineBytes: number = MAX_RECORD_LINE_BYTES): AsyncGenerator<LogLine> {
  for (const file of files) {
    let line = 0;
    let hasher = createHash("sha256");
    let parts: Buffer[] = [];
    let kept = 0;
    let bytes = 0;
    const take = (segment: Buffer): void => {
      hasher.update(segment);
      bytes += segment.length;
      if (kept <= maxLineBytes) {
        parts.push(Buffer.from(segment));
        kept += segment.length;
      }
    };
    const finish = (complete: boolean): LogLine => {
      const done: LogLine = { file, line: ++line, raw: kept <= maxLineBytes ? Buffer.concat(parts) : undefined, hash: hasher.digest("hex"), bytes, complete };
      hasher = createHash("sha256");
      parts = [];
      kept = 0;
      bytes = 0;
      return done;
    };
    for await (const chunk of createReadStream(file, { highWaterMark: 64 * 1024 })) {
      const buf = chunk as Buffer;
      let start = 0;
      for (let nl = buf.indexOf(0x0a, start); nl !== -1; nl = buf.indexOf(0x0a, start)) {
        take(buf.subarray(start, nl));
        start = nl + 1;
        yield finish(true);
      }
      if (start < buf.length) take(buf.subarray(start));
    }
    if (bytes > 0) yield finish(false);
  }
}

/** A range's `lines_sha256`: SHA-256 over each line's hex hash followed by "\n", so a range of any size is digested in one pass. */
export class LinesDigest {
  private readonly hasher = createHash("sha256");
  lines = 0;
  bytes = 0;

  add(line: Pick<LogLine, "hash" | "bytes">): void {
    this.hasher.update(`${line.hash}\n`);
    this.lines++;
    this.bytes += line.bytes + 1;
  }

  digest(): string {
    return this.hasher.digest("hex");
  }
}
