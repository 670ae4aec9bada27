// Where an audit log's files live, and reading them with bounded memory
// whatever they hold: the active file is the configured path; a rotated file
// is `<path>.<seq of its first line, 12 digits>`, so names sort in chain order
// and never need renaming again. Only regular files are read: anything else
// found among them (a FIFO, a directory, a socket, a device) is refused,
// naming it.

import { createHash } from "node:crypto";
import { constants, type Stats } from "node:fs";
import { open, readdir, stat, type FileHandle } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { HopwardenError } from "../../core/errors.js";

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

/** A log file that is not a regular file (or, for verify, missing or unreadable): `audit verify` reports an input error, and serve does not start. */
export class AuditLogFileError extends HopwardenError {
  readonly code = "audit_file_unusable";
  constructor(
    readonly path: string,
    readonly problem: string,
  ) {
    super(`${path}: ${problem}`);
  }
}

async function openIfExists(path: string): Promise<FileHandle | undefined> {
  try {
    return await openLogFile(path);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw error;
  }
}

/**
 * Opens a log file for reading; anything but a regular file is an
 * AuditLogFileError. O_NONBLOCK because a plain open of a FIFO waits for a
 * writer, forever if none comes (on a regular file the flag changes nothing);
 * the type is then read from the open handle, which every read goes through,
 * so the path cannot be swapped in between.
 */
async function openLogFile(path: string): Promise<FileHandle> {
  let handle: FileHandle;
  try {
    handle = await open(path, constants.O_RDONLY | constants.O_NONBLOCK);
  } catch (error) {
    // open() itself refuses some kinds (a socket: ENXIO): say what the path is rather than the errno.
    const info = await stat(path).catch(() => undefined);
    if (info !== undefined && !info.isFile()) throw new AuditLogFileError(path, `is ${fileKind(info)}, not a regular file`);
    throw error;
  }
  try {
    const info = await handle.stat();
    if (!info.isFile()) throw new AuditLogFileError(path, `is ${fileKind(info)}, not a regular file`);
    return handle;
  } catch (error) {
    await handle.close();
    throw error;
  }
}

function fileKind(info: Stats): string {
  if (info.isFIFO()) return "a FIFO (named pipe)";
  if (info.isDirectory()) return "a directory";
  if (info.isSocket()) return "a socket";
  if (info.isCharacterDevice()) return "a character device";
  if (info.isBlockDevice()) return "a block device";
  return "something else";
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

const READ_CHUNK_BYTES = 64 * 1024;

/**
 * The lines of `files`, one file after the other, split on \n as raw bytes so
 * the hash covers exactly what is on disk. Streams: memory stays bounded by
 * `maxLineBytes` whatever the files hold (a crash tail of gigabytes without a
 * newline is hashed, not kept).
 */
export async function* readLogLines(files: readonly string[], maxLineBytes: number = MAX_RECORD_LINE_BYTES): AsyncGenerator<LogLine> {
  // Reused for every read: what a line keeps is copied out of it (take()).
  const chunk = Buffer.alloc(READ_CHUNK_BYTES);
  for (const file of files) {
    const handle = await openLogFile(file);
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
    try {
      for (let position = 0; ; ) {
        const { bytesRead } = await handle.read(chunk, 0, chunk.length, position);
        if (bytesRead === 0) break;
        position += bytesRead;
        const buf = chunk.subarray(0, bytesRead);
        let start = 0;
        for (let nl = buf.indexOf(0x0a, start); nl !== -1; nl = buf.indexOf(0x0a, start)) {
          take(buf.subarray(start, nl));
          start = nl + 1;
          yield finish(true);
        }
        if (start < buf.length) take(buf.subarray(start));
      }
      if (bytes > 0) yield finish(false);
    } finally {
      // Also when the caller stops early (a for-await that breaks).
      await handle.close();
    }
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
