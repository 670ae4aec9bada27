// The tamper-evident audit log end to end (SPEC 6): decisions go through the
// sink into a rotated, signed log; `hopwarden audit verify` accepts it intact
// and names the file and line of the first bad record for each kind of
// tampering.

import { generateKeyPairSync } from "node:crypto";
import { cp, mkdir, readdir, readFile, rm, truncate, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { formatCheckpointLine, formatRecoveryLine, hashLine } from "../src/adapters/audit/audit-chain.js";
import { loadAuditPrivateKey } from "../src/adapters/audit/audit-keys.js";
import { AuditLogSink } from "../src/adapters/audit/audit-log-sink.js";
import { AuditLogWriter } from "../src/adapters/audit/audit-log-writer.js";
import { runAudit } from "../src/cli/commands/audit.js";
import { readLines, sampleDecision, tempDir, type TempDir } from "./support/audit-fixtures.js";

const RECORDS = 40;

interface CliResult {
  readonly code: number;
  readonly out: string;
  readonly err: string;
}

async function cli(...argv: string[]): Promise<CliResult> {
  let out = "";
  let err = "";
  const code = await runAudit(argv, { out: (t) => (out += t), err: (t) => (err += t) });
  return { code, out, err };
}

let root: TempDir;
let keyPrefix: string;
let pristine: string;

beforeAll(async () => {
  root = await tempDir();
  keyPrefix = join(root.path, "audit");
  const keygen = await cli("keygen", "--out", keyPrefix);
  expect(keygen.code).toBe(0);
  pristine = join(root.path, "pristine");
  const writer = await AuditLogWriter.open({
    path: join(pristine, "audit.log"),
    privateKey: await loadAuditPrivateKey(`${keyPrefix}.key`),
    checkpointEveryRecords: 3,
    rotateBytes: 6000,
    flushDelayMs: 1,
  });
  const sink = new AuditLogSink(writer);
  for (let i = 0; i < RECORDS; i++) {
    sink.record(sampleDecision(i % 4 === 0 ? { reason: "hop_not_allowed", message: "no rule" } : {}), { latencyMs: 0.5, traceId: "a".repeat(32), spanId: "b".repeat(16) });
  }
  await sink.close();
});

afterAll(() => root.remove());

let dir: string;
/** The copy of the log under test, oldest file first. */
let files: string[];

beforeEach(async () => {
  dir = join(root.path, `case-${Math.random().toString(36).slice(2)}`);
  await cp(pristine, dir, { recursive: true });
  const names = (await readdir(dir)).filter((n) => n !== "audit.log").sort();
  files = [...names.map((n) => join(dir, n)), join(dir, "audit.log")];
});

const verify = (...extra: string[]) => cli("verify", "--public-key", `${keyPrefix}.pub`, ...extra, ...files);

async function edit(file: string, change: (lines: string[]) => string[]): Promise<void> {
  await writeFile(file, change(await readLines(file)).map((l) => `${l}\n`).join(""));
}

/** 1-based line numbers of the lines of `file` matching `test`. */
async function linesWhere(file: string, test: (record: { type: string; reason?: string }) => boolean): Promise<number[]> {
  return (await readLines(file)).flatMap((line, i) => (test(JSON.parse(line) as { type: string; reason?: string }) ? [i + 1] : []));
}

const isDecision = (r: { type: string }) => r.type === "decision";
const isInterval = (r: { type: string; reason?: string }) => r.type === "checkpoint" && r.reason === "interval";

describe("audit verify: an intact log", () => {
  it("is a rotated set of files, each closed by a rotation checkpoint", async () => {
    expect(files.length).toBeGreaterThanOrEqual(4);
    const last = await readLines(files.at(-1)!);
    expect(JSON.parse(last.at(-1)!)).toMatchObject({ type: "checkpoint", reason: "shutdown" });
  });

  it("exits 0 and states what it checked", async () => {
    const result = await verify();
    expect(result).toMatchObject({ code: 0, err: "" });
    expect(result.out).toContain(`audit log intact: ${files.length} file(s), ${RECORDS} record(s)`);
    expect(result.out).toMatch(/running hash [0-9a-f]{64}/);
  });

  it("verifies the files in chain order whatever order they are given in", async () => {
    files.reverse();
    expect((await verify()).code).toBe(0);
  });
});

describe("audit verify: tampering is detected at the first bad record (exit 1, file:line)", () => {
  it("an edited field", async () => {
    const file = files[1]!;
    const [line] = await linesWhere(file, isDecision);
    await edit(file, (lines) => lines.map((l, i) => (i === line! - 1 ? l.replace('"decision":"deny"', '"decision":"allow"').replace('"method":"GET"', '"method":"PUT"') : l)));
    const result = await verify();
    expect(result.code).toBe(1);
    expect(result.err).toContain(`${file}:${line}: record was altered`);
  });

  it("an edited record just before a checkpoint", async () => {
    const file = files[1]!;
    const checkpoint = (await linesWhere(file, isInterval))[0]!;
    await edit(file, (lines) => lines.map((l, i) => (i === checkpoint - 2 ? l.replace('"path":"/query"', '"path":"/admin"') : l)));
    expect((await verify()).err).toContain(`${file}:${checkpoint - 1}: record was altered`);
  });

  it("an edited checkpoint", async () => {
    const file = files[1]!;
    const checkpoint = (await linesWhere(file, isInterval))[0]!;
    await edit(file, (lines) => lines.map((l, i) => (i === checkpoint - 1 ? l.replace(/"time":"[^"]+"/, '"time":"2020-01-01T00:00:00.000Z"') : l)));
    const result = await verify();
    expect(result.code).toBe(1);
    expect(result.err).toContain(`${file}:${checkpoint}: signature: checkpoint seq`);
  });

  it("an edit hidden by recomputing the hash chain up to the next checkpoint", async () => {
    const file = files[1]!;
    const checkpoint = (await linesWhere(file, isInterval))[0]!;
    await edit(file, (lines) => {
      const out = [...lines];
      out[0] = out[0]!.replace('"on_behalf_of":"alice@example.com"', '"on_behalf_of":"mallory@example.com"');
      for (let i = 1; i < checkpoint; i++) out[i] = out[i]!.replace(/"prev":"[0-9a-f]{64}"/, `"prev":"${hashLine(out[i - 1]!)}"`);
      return out;
    });
    const result = await verify();
    expect(result.code).toBe(1);
    expect(result.err).toContain(`${file}:${checkpoint}: signature: checkpoint seq`);
    expect(result.err).toContain("were altered");
  });

  it("the last checkpoint's signature spelled another way (no padding): the running hash would change, so it is a bad signature", async () => {
    const file = files.at(-1)!;
    const last = (await readLines(file)).length;
    await edit(file, (lines) => lines.map((l, i) => (i === last - 1 ? l.replace(/=+"\}$/, '"}') : l)));
    const result = await verify();
    expect(result.code).toBe(1);
    expect(result.err).toContain(`${file}:${last}: signature: checkpoint seq`);
  });

  it("a deleted line", async () => {
    const file = files[2]!;
    await edit(file, (lines) => lines.filter((_l, i) => i !== 2));
    const result = await verify();
    expect(result.code).toBe(1);
    expect(result.err).toMatch(new RegExp(`^${escape(file)}:3: seq: \\d+ where \\d+ was expected: record seq \\d+ is missing`, "m"));
  });

  it("a duplicated line", async () => {
    const file = files[2]!;
    await edit(file, (lines) => [...lines.slice(0, 3), lines[2]!, ...lines.slice(3)]);
    const result = await verify();
    expect(result.code).toBe(1);
    expect(result.err).toMatch(new RegExp(`^${escape(file)}:4: seq: \\d+ again: this line duplicates ${escape(file)}:3`, "m"));
  });

  it("two swapped lines", async () => {
    const file = files[2]!;
    await edit(file, (lines) => [lines[0]!, lines[2]!, lines[1]!, ...lines.slice(3)]);
    const result = await verify();
    expect(result.code).toBe(1);
    expect(result.err).toMatch(new RegExp(`^${escape(file)}:2: seq: `, "m"));
  });

  it("a whole rotated file deleted from the middle", async () => {
    await rm(files[1]!);
    const [first, , third, ...rest] = files;
    files = [first!, third!, ...rest];
    const result = await verify();
    expect(result.code).toBe(1);
    expect(result.err).toContain(`${third}:1: seq:`);
    expect(result.err).toContain("a file before this one");
  });

  it("a rotated file truncated after one of its checkpoints", async () => {
    const file = files[1]!;
    const checkpoint = (await linesWhere(file, isInterval))[0]!;
    await edit(file, (lines) => lines.slice(0, checkpoint));
    const result = await verify();
    expect(result.code).toBe(1);
    expect(result.err).toContain(`${file}:${checkpoint + 1}: file ends after line ${checkpoint} without a rotation checkpoint`);
  });

  it("the active file truncated after one of its checkpoints", async () => {
    const file = files.at(-1)!;
    const checkpoint = (await linesWhere(file, isInterval))[0];
    expect(checkpoint).toBeDefined();
    await edit(file, (lines) => lines.slice(0, checkpoint));
    const result = await verify();
    expect(result.code).toBe(1);
    expect(result.err).toContain(`${file}:${checkpoint! + 1}: the log ends at an interval checkpoint (line ${checkpoint}), not a shutdown checkpoint`);
  });

  it("the first file deleted", async () => {
    files = files.slice(1);
    const result = await verify();
    expect(result.code).toBe(1);
    expect(result.err).toContain(`${files[0]}:1: seq: the log starts at seq`);
  });

  it("a different key", async () => {
    const other = join(root.path, `other-${Math.random().toString(36).slice(2)}`);
    expect((await cli("keygen", "--out", other)).code).toBe(0);
    const result = await cli("verify", "--public-key", `${other}.pub`, ...files);
    expect(result.code).toBe(1);
    const firstCheckpoint = (await linesWhere(files[0]!, (r) => r.type === "checkpoint"))[0]!;
    expect(result.err).toMatch(new RegExp(`^${escape(files[0]!)}:${firstCheckpoint}: signature: checkpoint seq \\d+ was signed by key id [0-9a-f]{16}, not by the public key given`, "m"));
  });
});

describe("audit verify: a log whose writer crashed or is still writing", () => {
  it("fails by default, naming the first record no signature covers", async () => {
    const file = files.at(-1)!;
    const lines = await readLines(file);
    await edit(file, () => lines.slice(0, -1));
    const lastSigned = (await linesWhere(file, (r) => r.type === "checkpoint")).at(-1)!;
    const result = await verify();
    expect(result.code).toBe(1);
    expect(result.err).toContain(`${file}:${lastSigned + 1}: records seq`);
    expect(result.err).toContain("are not covered by a checkpoint signature");
  });

  it("with --allow-open-end, exits 2 naming the records no signature covers (SPEC 6: 0 only when every line is covered)", async () => {
    const file = files.at(-1)!;
    await edit(file, (lines) => lines.slice(0, -1));
    const lastSigned = (await linesWhere(file, (r) => r.type === "checkpoint")).at(-1)!;
    const last = (await readLines(file)).length;
    const result = await verify("--allow-open-end");
    expect(result.code).toBe(2);
    const range = last === lastSigned + 1 ? `${last}` : `${lastSigned + 1}-${last}`;
    expect(result.err).toContain(`${file}:${range}: not covered by any signature`);
    expect(result.out).toContain("audit log intact in what is signed, not fully covered");
  });

  it("with --allow-open-end, a line still being written is not covered either (exit 2), and without it the log is not intact (exit 1)", async () => {
    const file = files.at(-1)!;
    const text = await readFile(file, "utf8");
    await writeFile(file, `${text}{"type":"decision","seq":9`);
    expect((await verify()).code).toBe(1);
    const open = await verify("--allow-open-end");
    expect(open.code).toBe(2);
    expect(open.err).toContain(`${file}:${(await readLines(file)).length}: not covered by any signature`);
  });

  it("with --allow-open-end, an end at an interval checkpoint is only a warning: every line is covered (exit 0)", async () => {
    const file = files.at(-1)!;
    const checkpoint = (await linesWhere(file, isInterval)).at(-1)!;
    await edit(file, (lines) => lines.slice(0, checkpoint));
    const result = await verify("--allow-open-end");
    expect(result.code).toBe(0);
    expect(result.err).toContain("not a shutdown checkpoint");
    expect(result.err).toContain("(warning)");
  });

  it("still fails with --allow-open-end when a rotated file was cut short", async () => {
    const file = files[1]!;
    await truncate(file, (await readFile(file)).length - 5);
    const result = await verify("--allow-open-end");
    expect(result.code).toBe(1);
  });
});

describe("audit verify after a restart (SPEC 6: exit 2 names what no signature covers)", () => {
  const active = () => files.at(-1)!;
  const restart = async (records: number) => {
    const writer = await AuditLogWriter.open({ path: active(), privateKey: await loadAuditPrivateKey(`${keyPrefix}.key`), flushDelayMs: 1 });
    for (let i = 0; i < records; i++) writer.enqueue(sampleDecision(), { latencyMs: 1 });
    await writer.close();
  };

  it("a crash tail: exit 2 naming the file and line range, and what was written after the restart is covered", async () => {
    await edit(active(), (lines) => lines.slice(0, -1)); // the shutdown checkpoint never made it to disk
    const lastSigned = (await linesWhere(active(), (r) => r.type === "checkpoint")).at(-1)!;
    const tailEnd = (await readLines(active())).length;
    await restart(2);
    const result = await verify();
    expect(result.code).toBe(2);
    const range = tailEnd === lastSigned + 1 ? `${tailEnd}` : `${lastSigned + 1}-${tailEnd}`;
    expect(result.err).toContain(`${active()}:${range}: not covered by any signature: the writer could not verify these lines when it restarted (recovery record at ${active()}:${tailEnd + 1}`);
    expect(result.err).toContain("audit log NOT fully covered");
    expect(result.out).toContain("1 recovery record(s)");
    expect(JSON.parse((await readLines(active())).at(-1)!)).toMatchObject({ type: "checkpoint", reason: "shutdown" });
  });

  it("an end without a shutdown checkpoint: exit 2, records after it may be missing", async () => {
    const checkpoint = (await linesWhere(active(), isInterval)).at(-1)!;
    await edit(active(), (lines) => lines.slice(0, checkpoint));
    await restart(1);
    const result = await verify();
    expect(result.code).toBe(2);
    expect(result.err).toContain(`${active()}:${checkpoint + 1}: recovery record: the writer restarted after the interval checkpoint`);
    expect(result.err).toContain("records written after it may be missing");
  });

  it("a recovery record forged without the key: exit 1 at that record", async () => {
    await edit(active(), (lines) => lines.slice(0, -1));
    const lines = await readLines(active());
    const last = lines.at(-1)!;
    const head = { seq: (JSON.parse(last) as { seq: number }).seq, hash: hashLine(last) };
    // Signed with a key of the forger's own, under the real key's id.
    const forger = generateKeyPairSync("ed25519").privateKey;
    const { key_id: keyId } = JSON.parse(lines.find((l) => l.includes('"type":"checkpoint"'))!) as { key_id: string };
    const time = new Date().toISOString();
    const forged = formatRecoveryLine(head, { time, reason: "no_shutdown_checkpoint", resumedAfter: null, unverified: [], problem: null, keyId }, forger);
    const shutdown = formatCheckpointLine({ seq: head.seq + 1, hash: hashLine(forged) }, { time, reason: "shutdown", keyId }, forger);
    await writeFile(active(), [...lines, forged, shutdown].map((l) => `${l}\n`).join(""));
    for (const extra of [[], ["--allow-open-end"]]) {
      const result = await verify(...extra);
      expect(result.code).toBe(1);
      expect(result.err).toContain(`${active()}:${lines.length + 1}: signature: recovery record seq ${head.seq + 1} does not verify: it was forged or altered`);
    }
  });

  it("a genuine recovery record copied to another place: exit 1", async () => {
    await edit(active(), (lines) => lines.slice(0, -1));
    await restart(1);
    const lines = await readLines(active());
    const recovery = lines.find((l) => l.startsWith('{"type":"recovery"'))!;
    await writeFile(active(), [...lines.slice(0, -1), recovery, lines.at(-1)!].map((l) => `${l}\n`).join(""));
    const result = await verify();
    expect(result.code).toBe(1);
    expect(result.err).toContain(`${active()}:${lines.length}:`);
  });

  it("an old file swapped in for the active file while stopped: the restart does not make it pass", async () => {
    await cp(files[0]!, active());
    await restart(1);
    const result = await verify();
    expect(result.code).toBe(1);
  });
});

describe("audit CLI usage (exit 3: never 2, which means a verified log with uncovered lines)", () => {
  it("exits 3 without --public-key, without files, or with an unknown flag", async () => {
    expect((await cli("verify", ...files)).code).toBe(3);
    expect((await cli("verify", "--public-key", `${keyPrefix}.pub`)).code).toBe(3);
    const unknown = await cli("verify", "--public-key", `${keyPrefix}.pub`, "--fast", ...files);
    expect(unknown.code).toBe(3);
    expect(unknown.err).toContain("--fast");
    expect((await cli("rotate")).code).toBe(3);
    expect((await cli()).code).toBe(3);
  });

  it("exits 3 when the public key is not an Ed25519 SPKI PEM, naming the file", async () => {
    const result = await cli("verify", "--public-key", `${keyPrefix}.key`, ...files);
    expect(result.code).toBe(3);
    expect(result.err).toContain(`${keyPrefix}.key: not a PEM SubjectPublicKeyInfo public key`);
  });

  it("exits 3 when a log file is a directory, naming it: an input error, not a log found NOT intact", async () => {
    const directory = join(dir, "audit.log.000000000999");
    await mkdir(directory);
    const result = await verify(directory);
    expect(result.code).toBe(3);
    expect(result.err).toBe(`hopwarden audit: ${directory}: is a directory, not a regular file\n`);
  });

  it("teaches with --help", async () => {
    const result = await cli("--help");
    expect(result.code).toBe(0);
    expect(result.out).toContain("hopwarden audit verify --public-key <file>");
    expect(result.out).toContain("--allow-open-end");
  });

  it("keygen prints the paths and never overwrites a key", async () => {
    const prefix = join(root.path, "fresh");
    const made = await cli("keygen", "--out", prefix);
    expect(made.out).toContain(`${prefix}.key`);
    expect(made.out).toContain(`${prefix}.pub`);
    const again = await cli("keygen", "--out", prefix);
    expect(again.code).toBe(3);
    expect(again.err).toContain("already exists");
  });
});

function escape(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}
