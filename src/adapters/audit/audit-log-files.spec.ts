import { execFileSync } from "node:child_process";
import { constants } from "node:fs";
import { mkdir, open, writeFile } from "node:fs/promises";
import { createServer, type Server } from "node:net";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { tempDir, type TempDir } from "../../../test/support/audit-fixtures.js";
import { AuditLogFileError, readFirstLine, readLastLine, readLogLines } from "./audit-log-files.js";

let dir: TempDir;
let fifo: string;
let server: Server | undefined;
beforeEach(async () => {
  dir = await tempDir();
  fifo = join(dir.path, "audit.log.000000000001");
  execFileSync("mkfifo", [fifo]);
});
afterEach(async () => {
  // A reader stuck in a blocking open of the FIFO (the bug) is let go by a
  // writer appearing; O_RDWR opens a FIFO at once on Linux.
  await (await open(fifo, constants.O_RDWR | constants.O_NONBLOCK)).close();
  server?.close();
  server = undefined;
  await dir.remove();
});

/** Fails instead of hanging the suite when a read blocks. */
function within<T>(promise: Promise<T>, ms = 2_000): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_resolve, reject) => (timer = setTimeout(() => reject(new Error(`still waiting after ${ms} ms: blocked`)), ms)));
  return Promise.race([promise, late]).finally(() => clearTimeout(timer));
}

async function allLines(files: readonly string[]): Promise<number> {
  let count = 0;
  for await (const _line of readLogLines(files)) count++;
  return count;
}

describe("reading log files refuses anything but a regular file, naming it", () => {
  it("a FIFO, at once instead of waiting forever for a writer", async () => {
    const refusal = `${fifo}: is a FIFO (named pipe), not a regular file`;
    await expect(within(readFirstLine(fifo))).rejects.toThrow(refusal);
    await expect(within(readLastLine(fifo))).rejects.toThrow(refusal);
    await expect(within(allLines([fifo]))).rejects.toThrow(refusal);
    await expect(within(readFirstLine(fifo))).rejects.toBeInstanceOf(AuditLogFileError);
  });

  it("a FIFO after a regular file: the regular file's lines, then the refusal", async () => {
    const regular = join(dir.path, "audit.log.000000000000");
    await writeFile(regular, "a\nb\n");
    const seen: number[] = [];
    const read = (async () => {
      for await (const line of readLogLines([regular, fifo])) seen.push(line.line);
    })();
    await expect(within(read)).rejects.toThrow(`${fifo}: is a FIFO`);
    expect(seen).toEqual([1, 2]);
  });

  it("a directory", async () => {
    const directory = join(dir.path, "audit.log");
    await mkdir(directory);
    await expect(readFirstLine(directory)).rejects.toThrow(`${directory}: is a directory, not a regular file`);
    await expect(allLines([directory])).rejects.toThrow(`${directory}: is a directory, not a regular file`);
  });

  it("a socket (which open() itself refuses)", async () => {
    const socket = join(dir.path, "audit.sock");
    server = createServer();
    await new Promise<void>((resolve) => server!.listen(socket, resolve));
    await expect(readFirstLine(socket)).rejects.toThrow(`${socket}: is a socket, not a regular file`);
  });

  it("a device", async () => {
    await expect(readFirstLine("/dev/null")).rejects.toThrow("/dev/null: is a character device, not a regular file");
  });

  it("still reads a regular file, and a missing one is undefined where the readers say so", async () => {
    const regular = join(dir.path, "audit.log");
    await writeFile(regular, "first\nsecond\nfrag");
    expect((await readFirstLine(regular))?.line?.toString()).toBe("first");
    expect(await readLastLine(regular)).toBeUndefined();
    expect(await readFirstLine(join(dir.path, "absent"))).toBeUndefined();
    const lines = [];
    for await (const line of readLogLines([regular])) lines.push([line.raw?.toString(), line.complete]);
    expect(lines).toEqual([
      ["first", true],
      ["second", true],
      ["frag", false],
    ]);
  });
});
