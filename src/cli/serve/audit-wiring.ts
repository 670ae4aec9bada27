// Opens the tamper-evident audit log for serve (--audit-log, --audit-key and
// the config's `audit:` section). In one process the sink writes the file; with
// --workers N the primary owns the one writer (so the log stays one chain) and
// each worker forwards its records to it over the cluster IPC channel.

import type { Worker } from "node:cluster";
import { AuditLogSink } from "../../adapters/audit/audit-log-sink.js";
import { AuditLogWriter } from "../../adapters/audit/audit-log-writer.js";
import { loadAuditPrivateKey } from "../../adapters/audit/audit-keys.js";
import { relayWorkerAuditRecords, WorkerAuditForwarder } from "../../adapters/audit/cluster-forwarding.js";
import type { Logger } from "../../adapters/logging/logger.js";
import type { ServeSettings } from "./settings.js";

export async function openAuditWriter(settings: ServeSettings, logger: Logger): Promise<AuditLogWriter | undefined> {
  if (settings.auditLog === undefined || settings.auditKey === undefined) return undefined;
  const audit = settings.config.audit ?? {};
  return AuditLogWriter.open({
    path: settings.auditLog,
    privateKey: await loadAuditPrivateKey(settings.auditKey),
    logger,
    ...audit,
  });
}

/** The sink of a single-process serve, writing the file itself. */
export async function openAuditSink(settings: ServeSettings, logger: Logger): Promise<AuditLogSink | undefined> {
  const writer = await openAuditWriter(settings, logger);
  return writer === undefined ? undefined : new AuditLogSink(writer, logger);
}

/** The sink of a worker: records go to the primary's writer. */
export function workerAuditSink(settings: ServeSettings, logger: Logger): AuditLogSink | undefined {
  if (settings.auditLog === undefined) return undefined;
  const audit = settings.config.audit ?? {};
  const send = process.send?.bind(process);
  if (send === undefined) throw new Error("a worker's audit sink needs the cluster IPC channel");
  const channel = { send: (message: unknown, callback?: (error: Error | null) => void) => send(message, undefined, undefined, callback), on: process.on.bind(process), off: process.off.bind(process) };
  return new AuditLogSink(
    new WorkerAuditForwarder(channel, {
      logger,
      ...(audit.overflow !== undefined && { overflow: audit.overflow }),
      ...(audit.blockTimeoutMs !== undefined && { blockTimeoutMs: audit.blockTimeoutMs }),
    }),
    logger,
  );
}

/** In the primary: relays one worker's records into the writer until it exits. */
export function relayWorker(worker: Worker, writer: AuditLogWriter, logger: Logger): void {
  const detach = relayWorkerAuditRecords(worker, writer, logger);
  worker.once("exit", detach);
}
