// serve with --workers N: the primary validates the policy, serves the admin
// API, watches the policy file and tells every worker to reload; the workers
// (node:cluster, one port shared) serve Check. Decisions are the same as with
// one process because every worker compiles the same file.

import cluster, { type Worker } from "node:cluster";
import { dirname } from "node:path";
import { CheckPipeline } from "../../core/decision/check-pipeline.js";
import { JwksDelegationTokenVerifier } from "../../adapters/tokens/delegation-token-verifier.js";
import { PolicyStore } from "../../adapters/config/policy-store.js";
import { startAdminServer } from "../../adapters/admin/admin-server.js";
import { CachingCertificateParser } from "../../adapters/x509/certificate-parser.js";
import { UlidGenerator } from "../../adapters/ids/ulid.js";
import type { Logger } from "../../adapters/logging/logger.js";
import { startHopwarden } from "../../main.js";
import type { ServeSettings } from "./settings.js";
import { onReloadSignal, onShutdownSignal } from "./signals.js";
import { readyLine } from "./ready-line.js";
import { openAuditWriter, relayWorker, workerAuditSink } from "./audit-wiring.js";

type PrimaryMessage = { type: "reload"; trigger: string } | { type: "shutdown" };
type WorkerMessage = { type: "ready"; address: string } | { type: "reloaded"; ok: boolean; version: string | undefined; errors: readonly string[] };

export async function runPrimary(settings: ServeSettings, logger: Logger): Promise<number> {
  const broadcast = (message: PrimaryMessage) => {
    for (const worker of Object.values(cluster.workers ?? {})) worker?.send(message);
  };
  const policies = new PolicyStore(settings.policyFile, logger, {
    onReload: (outcome) => {
      if (outcome.ok && outcome.changed) broadcast({ type: "reload", trigger: "primary" });
    },
  });
  for (const warning of await policies.loadInitial()) logger.warn("policy warning", { warning });

  // One writer in the primary keeps the audit log a single chain.
  const auditWriter = await openAuditWriter(settings, logger);
  let stopping = false;
  const readyAddresses = new Map<number, string>();
  let resolveReady: () => void = () => undefined;
  const allReady = new Promise<void>((resolve) => (resolveReady = resolve));
  const fork = (): Worker => {
    const worker = cluster.fork();
    if (auditWriter !== undefined) relayWorker(worker, auditWriter, logger);
    worker.on("message", (message: WorkerMessage) => {
      if (message.type === "ready") {
        readyAddresses.set(worker.id, message.address);
        if (readyAddresses.size >= settings.workers) resolveReady();
      }
    });
    return worker;
  };
  cluster.on("exit", (worker, code, signal) => {
    readyAddresses.delete(worker.id);
    if (stopping) return;
    logger.error("worker exited; starting a new one", { worker: worker.id, code, signal });
    fork();
  });
  for (let i = 0; i < settings.workers; i++) fork();
  await allReady;

  const explainPipeline = new CheckPipeline({
    policies,
    certificates: new CachingCertificateParser(),
    clock: { nowMs: () => Date.now() },
    ids: new UlidGenerator(),
    tokens: new JwksDelegationTokenVerifier({ baseDir: dirname(policies.file) }),
    headerNames: settings.config.headers,
    trustForwardedClientCert: settings.config.trustForwardedClientCert,
  });
  const admin =
    settings.adminListen === undefined
      ? undefined
      : await startAdminServer({ listen: settings.adminListen, explainPipeline, policies, reload: () => policies.reload("admin") });
  policies.watch();
  onReloadSignal(() => void policies.reload("SIGHUP"));
  const grpc = [...readyAddresses.values()][0] ?? settings.listen;
  process.stdout.write(readyLine({ grpc, admin: admin?.address, policy: settings.policyFile, version: policies.current()?.version ?? "", workers: settings.workers }));

  await onShutdownSignal(async (signal) => {
    stopping = true;
    logger.info("shutting down workers: draining in-flight Checks", { signal });
    const exits = Object.values(cluster.workers ?? {}).map((w) => (w === undefined || w.isDead() ? Promise.resolve() : new Promise<void>((resolve) => w.once("exit", () => resolve()))));
    broadcast({ type: "shutdown" });
    await Promise.all(exits);
    policies.close();
    await admin?.close();
    await auditWriter?.close();
  });
  return 0;
}

export async function runWorker(settings: ServeSettings, logger: Logger): Promise<number> {
  const audit = workerAuditSink(settings, logger);
  const hopwarden = await startHopwarden({
    ...(audit !== undefined && { sinks: [audit], admit: () => audit.admit(), auditStats: () => audit.stats() }),
    policyFile: settings.policyFile,
    listen: settings.listen,
    adminListen: undefined,
    logger,
    headerNames: settings.config.headers,
    trustForwardedClientCert: settings.config.trustForwardedClientCert,
    watchPolicy: false,
  });
  const stop = async () => {
    await hopwarden.shutdown();
    await audit?.close();
  };
  process.on("message", (message: PrimaryMessage) => {
    if (message.type === "reload") {
      void hopwarden.reload(message.trigger).then((o) => process.send?.({ type: "reloaded", ok: o.ok, version: o.version, errors: o.errors } satisfies WorkerMessage));
    } else if (message.type === "shutdown") {
      void stop().finally(() => process.exit(0));
    }
  });
  // The primary forwards signals as messages; a signal sent to the whole
  // process group (Ctrl-C) reaches workers directly and drains them too.
  const stopped = onShutdownSignal(stop);
  process.send?.({ type: "ready", address: hopwarden.grpcAddress } satisfies WorkerMessage);
  await stopped;
  // The IPC channel to the primary would keep this worker alive.
  process.exit(0);
}
