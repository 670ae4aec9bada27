// The roster of a `--workers N` run: each worker writes its own signed chain
// (`audit.w1.log`, `audit.w2.log`, …), and the primary keeps, in the main log
// (the --audit-log file), which chains the run has, where each one stood when
// its worker opened it, and where each one ended. `audit verify` checks the
// chains together against it: a chain named here and missing, cut back or
// rewritten is detected, and so is a worker chain that no roster names
// (docs/audit-log.md, "Several workers").
//
// Roster lines are chained into the main log like decision records and
// covered by its next checkpoint; they carry no signature of their own.

import { basename, dirname, extname, join } from "node:path";
import type { ChainHead } from "./audit-chain.js";

export interface RosterChain {
  /** "w1", "w2", …: the worker's slot, kept by its replacement after a crash. */
  readonly chain: string;
  /** The chain's active file, without its directory. */
  readonly file: string;
}

export type RosterRecord =
  | { readonly event: "start"; readonly time: string; readonly run: string; readonly chains: readonly RosterChain[] }
  | { readonly event: "opened"; readonly time: string; readonly run: string; readonly chain: string; readonly file: string; readonly head: ChainHead }
  | { readonly event: "stop"; readonly time: string; readonly run: string; readonly chains: readonly (RosterChain & { readonly head: ChainHead | null })[] };

/** The chain of worker `slot` (1-based). */
export function workerChainId(slot: number): string {
  return `w${slot}`;
}

/** `audit.log` → `audit.w1.log`; a path without an extension gets it at the end (`audit` → `audit.w1`). Rotated files follow as `<that>.<seq>`. */
export function workerChainPath(activePath: string, chain: string): string {
  const name = basename(activePath);
  const ext = extname(name);
  return join(dirname(activePath), `${name.slice(0, name.length - ext.length)}.${chain}${ext}`);
}

/** The chain a file's name says it belongs to (a rotated file's too), or "" for the main log: used for files that hold no signed line to say so. */
export function chainFromFileName(file: string): string {
  const name = basename(file).replace(/\.\d{12,}$/, "");
  return /\.(w[1-9]\d{0,3})(\.[^.]*)?$/.exec(name)?.[1] ?? "";
}

/** Field order is the line's (the writer prefixes type, seq and prev). */
export function rosterRecordJson(record: RosterRecord): object {
  switch (record.event) {
    case "start":
      return { time: record.time, event: "start", run: record.run, worker_chains: record.chains.map((c) => ({ worker_chain: c.chain, file: c.file })) };
    case "opened":
      return { time: record.time, event: "opened", run: record.run, worker_chain: record.chain, file: record.file, head: { seq: record.head.seq, hash: record.head.hash } };
    case "stop":
      return {
        time: record.time,
        event: "stop",
        run: record.run,
        worker_chains: record.chains.map((c) => ({ worker_chain: c.chain, file: c.file, head: c.head === null ? null : { seq: c.head.seq, hash: c.head.hash } })),
      };
  }
}

const CHAIN = /^w[1-9]\d{0,3}$/;
const HEX64 = /^[0-9a-f]{64}$/;

/** A roster line as `audit verify` reads it, or what is wrong with it. */
export function parseRosterRecord(value: Record<string, unknown>): RosterRecord | string {
  const time = typeof value["time"] === "string" ? value["time"] : "";
  const run = value["run"];
  if (typeof run !== "string" || run === "") return "roster: run must be a non-empty string";
  const event = value["event"];
  if (event === "start" || event === "stop") {
    const chains = value["worker_chains"];
    if (!Array.isArray(chains)) return "roster: worker_chains must be an array";
    const parsed: (RosterChain & { head: ChainHead | null })[] = [];
    for (const [i, item] of chains.entries()) {
      const c = rosterChain(item);
      if (typeof c === "string") return `roster: worker_chains[${i}]: ${c}`;
      const head = event === "stop" ? chainHead((item as Record<string, unknown>)["head"], true) : null;
      if (typeof head === "string") return `roster: worker_chains[${i}].head: ${head}`;
      parsed.push({ ...c, head });
    }
    return event === "start" ? { event, time, run, chains: parsed.map(({ chain, file }) => ({ chain, file })) } : { event, time, run, chains: parsed };
  }
  if (event === "opened") {
    const c = rosterChain(value);
    if (typeof c === "string") return `roster: ${c}`;
    const head = chainHead(value["head"], false);
    if (typeof head === "string" || head === null) return `roster: head: ${head ?? "missing"}`;
    return { event, time, run, chain: c.chain, file: c.file, head };
  }
  return 'roster: event must be "start", "opened" or "stop"';
}

function rosterChain(value: unknown): RosterChain | string {
  if (typeof value !== "object" || value === null) return "must be an object";
  const v = value as Record<string, unknown>;
  if (typeof v["worker_chain"] !== "string" || !CHAIN.test(v["worker_chain"])) return 'worker_chain must be "w1" to "w9999"';
  if (typeof v["file"] !== "string" || v["file"] === "") return "file must be a non-empty string";
  return { chain: v["worker_chain"], file: v["file"] };
}

function chainHead(value: unknown, nullable: boolean): ChainHead | null | string {
  if (value === null && nullable) return null;
  if (typeof value !== "object" || value === null) return "must be { seq, hash }";
  const v = value as Record<string, unknown>;
  if (typeof v["seq"] !== "number" || !Number.isSafeInteger(v["seq"]) || v["seq"] < 1) return "seq must be a positive integer";
  if (typeof v["hash"] !== "string" || !HEX64.test(v["hash"])) return "hash must be 64 lower-case hex digits";
  return { seq: v["seq"], hash: v["hash"] };
}
