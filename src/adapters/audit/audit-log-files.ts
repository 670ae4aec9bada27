// Where an audit log's files live and how the writer finds the end of the
// chain when it starts: the active file is the configured path; a rotated file
// is `<path>.<seq of its first line, 12 digits>`, so names sort in chain order
// and never need renaming again.

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

export interface FileEnds {
  readonly size: number;
  /** The first complete line, without its newline. */
  readonly firstLine: Buffer | undefined;
  /** The last complete (newline-terminated) line, without its newline. */
  readonly lastLine: Buffer | undefined;
  /** False when a write was cut short: the file ends in a fragment without a newline. */
  readonly endsWithNewline: boolean;
}

/** Reads the first and last complete lines of a file without reading all of it; undefined when the file does not exist. */
export async function readFileEnds(path: string): Promise<FileEnds | undefined> {
  let handle;
  try {
    handle = await open(path, "r");
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw error;
  }
  try {
    const { size } = await handle.stat();
    if (size === 0) return { size, firstLine: undefined, lastLine: undefined, endsWithNewline: true };
    const read = async (start: number, length: number): Promise<Buffer> => {
      const buf = Buffer.alloc(length);
      const { bytesRead } = await handle.read(buf, 0, length, start);
      return buf.subarray(0, bytesRead);
    };
    const last = await read(size - 1, 1);
    return {
      size,
      firstLine: await firstLine(read, size),
      lastLine: await lastCompleteLine(read, size),
      endsWithNewline: last[0] === 0x0a,
    };
  } finally {
    await handle.close();
  }
}

type RangeReader = (start: number, length: number) => Promise<Buffer>;

// Records are a few hundred bytes; the window only grows for unusual lines.
const INITIAL_WINDOW = 64 * 1024;

async function firstLine(read: RangeReader, size: number): Promise<Buffer | undefined> {
  for (let window = INITIAL_WINDOW; ; window *= 2) {
    const buf = await read(0, Math.min(window, size));
    const newline = buf.indexOf(0x0a);
    if (newline !== -1) return buf.subarray(0, newline);
    if (buf.length >= size) return undefined;
  }
}

async function lastCompleteLine(read: RangeReader, size: number): Promise<Buffer | undefined> {
  for (let window = INITIAL_WINDOW; ; window *= 2) {
    const start = Math.max(0, size - window);
    const buf = await read(start, size - start);
    const end = buf.lastIndexOf(0x0a);
    if (end === -1) {
      if (start === 0) return undefined;
      continue;
    }
    const before = end === 0 ? -1 : buf.lastIndexOf(0x0a, end - 1);
    if (before === -1 && start > 0) continue;
    return buf.subarray(before + 1, end);
  }
}
