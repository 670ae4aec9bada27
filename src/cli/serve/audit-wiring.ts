// Opens the tamper-evident audit log for serve (--audit-log, --audit-key and
// the config's `audit:` section). In one process the sink writes the main
// log. With --workers N each worker writes its own signed chain
// (`audit.w1.log`, …: no record crosses to another process), and the primary
// keeps the roster of those chains in the main log, so `audit verify` can
// check them together (docs/audit-log.md, "Several workers").

import { randomUUID } from "node:crypto";
import { basename } from "node:path";
import { AuditLogSink } from "../../adapters/audit/audit-log-sink.js";
import { AuditLogWriter } from "../../adapters/audit/audit-log-writer.js";
import { loadAuditPrivateKey } from "../../adapters/audit/audit-keys.js";
import { rosterRecordJson, workerChainId, workerChainPath, type RosterChain } from "../../adapters/audit/audit-roster.js";
import type { ChainHead } from "../../adapters/audit/audit-chain.js";
import type { Logger } from "../../adapters/logging/logger.js";
import type { ServeSettings } from "./settings.js";

/** The environment variable that tells a forked worker which chain (its slot) it writes. */
export const AUDIT_CHAIN_ENV = "HOPWARDEN_AUDIT_CHAIN";

export async function openAuditWriter(settings: ServeSettings, logger: Logger, chain = ""): Promise<AuditLogWriter | undefined> {
  if (settings.auditLog === undefined || settings.auditKey === undefined) return undefined;
  const audit = settings.config.audit ?? {};
  return AuditLogWriter.open({
    path: chain === "" ? settings.auditLog : workerChainPath(settings.auditLog, chain),
    privateKey: await loadAuditPrivateKey(settings.auditKey),
    logger,
    ...audit,
    ...(chain !== "" && { chain }),
  });
}

/** The sink of a single-process serve, writing the main log itself. */
export async function openAuditSink(settings: ServeSettings, logger: Logger): Promise<AuditLogSink | undefined> {
  const writer = await openAuditWriter(settings, logger);
  return writer === undefined ? undefined : new AuditLogSink(writer, logger);
}

/** What a worker tells the primary about its chain: opened (its first line of the run is on disk) and closed (its shutdown checkpoint is). */
export interface AuditChainMessage {
  readonly type: "audit-chain";
  readonly event: "opened" | "closed";
  readonly chain: string;
  readonly head: ChainHead;
}

export function isAuditChainMessage(message: unknown): message is AuditChainMessage {
  const m = message as Partial<AuditChainMessage> | null;
  return typeof m === "object" && m !== null && m.type === "audit-chain" && (m.event === "opened" || m.event === "closed") && typeof m.chain === "string" && typeof m.head === "object";
}

/** A worker's sink: its own chain, named by its slot, so a replacement after a crash resumes it. */
export async function openWorkerAuditSink(settings: ServeSettings, logger: Logger): Promise<{ sink: AuditLogSink; chain: string; writer: AuditLogWriter } | undefined> {
  if (settings.auditLog === undefined) return undefined;
  const chain = process.env[AUDIT_CHAIN_ENV];
  if (chain === undefined) throw new Error(`a worker's audit log needs its chain in ${AUDIT_CHAIN_ENV} (set by the primary)`);
  const writer = (await openAuditWriter(settings, logger, chain))!;
  return { sink: new AuditLogSink(writer, logger), chain, writer };
}

/**
 * The primary's side: the main log holds the roster of the run's worker
 * chains. `start` names them before the workers are forked; `opened` records
 * where each chain stood once its first line of the run was on disk; `stop`
 * records where each one ended (null for a worker that did not report:
 * killed, or crashed without a replacement).
 */
export class WorkerChainRoster {
  private readonly run = randomUUID();
  private readonly chains: RosterChain[];
  private readonly ends = new Map<string, ChainHead>();

  constructor(
    private readonly writer: AuditLogWriter,
    activePath: string,
    workers: number,
  ) {
    this.chains = Array.from({ length: workers }, (_, i) => {
      const chain = workerChainId(i + 1);
      return { chain, file: basename(workerChainPath(activePath, chain)) };
    });
  }

  start(): void {
    this.writer.appendRoster(rosterRecordJson({ event: "start", time: now(), run: this.run, chains: this.chains }));
  }

  /** A worker's report over IPC. */
  note(message: AuditChainMessage): void {
    const known = this.chains.find((c) => c.chain === message.chain);
    if (known === undefined) return;
    const head = { seq: message.head.seq, hash: message.head.hash };
    if (message.event === "opened") {
      this.ends.delete(message.chain);
      this.writer.appendRoster(rosterRecordJson({ event: "opened", time: now(), run: this.run, chain: known.chain, file: known.file, head }));
    } else {
      this.ends.set(message.chain, head);
    }
  }

  stop(): void {
    this.writer.appendRoster(rosterRecordJson({ event: "stop", time: now(), run: this.run, chains: this.chains.map((c) => ({ ...c, head: this.ends.get(c.chain) ?? null })) }));
  }
}

function now(): string {
  return new Date().toISOString();
}
