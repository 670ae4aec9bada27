// serve with --workers N: the primary validates the policy, serves the admin
// API, watches the policy file and tells every worker to reload; the workers
// (node:cluster, one port shared) serve Check. Decisions are the same as with
// one process because every worker compiles the same file.
//
// Lifecycle rules: a worker that cannot start exits non-zero (the IPC channel
// would otherwise keep it alive); a worker lost during start-up fails the
// start-up; a worker lost later is replaced after a growing delay (so a broken
// file cannot cause a tight restart loop); shutdown waits for workers only up
// to a deadline, then kills what is left.

import cluster, { type Worker } from "node:cluster";
import { PolicyStore } from "../../adapters/config/policy-store.js";
import { startAdminServer } from "../../adapters/admin/admin-server.js";
import type { Logger } from "../../adapters/logging/logger.js";
import { startHopwarden, type Hopwarden } from "../../main.js";
import { createExplainPipeline } from "../../adapters/admin/explain-pipeline.js";
import type { ServeSettings } from "./settings.js";
import { onReloadSignal, onShutdownSignal } from "./signals.js";
import { readyLine } from "./ready-line.js";
import { AUDIT_CHAIN_ENV, isAuditChainMessage, openAuditWriter, openWorkerAuditSink, WorkerChainRoster, type AuditChainMessage } from "./audit-wiring.js";
import { workerChainId } from "../../adapters/audit/audit-roster.js";
import { loadTlsFileSet } from "../../adapters/grpc/tls-file-set.js";
import { mergePrometheusTexts } from "../../adapters/telemetry/prometheus-merge.js";
import { openReplayStore, primaryReplayMemory, replayMemoryMetrics, serveReplayQuestions } from "./replay-wiring.js";
import { checkReadingOptions, serviceOptions } from "./service-options.js";
import { HopwardenError } from "../../core/errors.js";

type PrimaryMessage = { type: "reload"; trigger: string } | { type: "shutdown" } | { type: "metrics"; id: number };
type WorkerMessage =
  | { type: "ready"; address: string; sha256: string | undefined }
  | { type: "reloaded"; ok: boolean; version: string | undefined; sha256: string | undefined; errors: readonly string[] }
  | { type: "metrics"; id: number; text: string };

/** How long shutdown waits for workers to drain before killing them. */
const WORKER_SHUTDOWN_DEADLINE_MS = 15_000;
const RESTART_DELAY_MIN_MS = 500;
const RESTART_DELAY_MAX_MS = 30_000;
/** How long /metrics waits for each worker's numbers. */
const METRICS_TIMEOUT_MS = 2_000;
/** How long an admin Reload waits for every worker to serve the policy the primary loaded. */
const WORKER_RELOAD_TIMEOUT_MS = 5_000;

/** A --workers worker exited before it was ready (its own error is on stderr above). */
export class WorkerStartError extends HopwardenError {
  readonly code = "worker_start_failed";
}

function isWorkerMessage(message: unknown): message is WorkerMessage {
  return typeof message === "object" && message !== null && "type" in message;
}

export async function runPrimary(settings: ServeSettings, logger: Logger): Promise<number> {
  const broadcast = (message: PrimaryMessage) => {
    for (const worker of Object.values(cluster.workers ?? {})) if (worker?.isConnected() === true) worker.send(message);
  };
  const policies = new PolicyStore(settings.policyFile, logger, {
    onReload: (outcome) => {
      if (outcome.ok && outcome.changed) broadcast({ type: "reload", trigger: "primary" });
    },
  });
  for (const warning of await policies.loadInitial()) logger.warn("policy warning", { warning });
  // Checked here too, so that unusable TLS files are one clear start-up error rather than N failed workers.
  if (settings.tls !== undefined) await loadTlsFileSet(settings.tls);

  // Each worker writes its own chain; the primary's main log names them (the roster), so verify checks them together.
  const auditWriter = await openAuditWriter(settings, logger);
  const roster = auditWriter === undefined || settings.auditLog === undefined ? undefined : new WorkerChainRoster(auditWriter, settings.auditLog, settings.workers);
  roster?.start();
  // Without a shared store, the workers' single-use memory is this one (asked over IPC).
  const replayMemory = primaryReplayMemory(settings.replay);
  let stopping = false;
  let started = false;
  const readyAddresses = new Map<number, string>();
  let startup: { resolve: () => void; reject: (err: Error) => void } | undefined;
  const allReady = new Promise<void>((resolve, reject) => (startup = { resolve, reject }));
  let restartDelayMs = RESTART_DELAY_MIN_MS;
  let lastRestartMs = 0;

  // The policy (content hash) each worker last reported in force, so that an admin Reload
  // answers only once every worker serves what the primary loaded: a Check sent after the
  // answer is never decided by a worker still on the previous policy.
  const workerPolicies = new Map<number, string | undefined>();
  const onWorkerPolicy = new Set<() => void>();
  const reportPolicy = (worker: Worker, sha256: string | undefined) => {
    workerPolicies.set(worker.id, sha256);
    for (const wake of onWorkerPolicy) wake();
  };
  const workersServe = (sha256: string | undefined, timeoutMs: number): Promise<boolean> =>
    new Promise((resolve) => {
      const check = () => {
        const live = Object.values(cluster.workers ?? {}).filter((w): w is Worker => w?.isConnected() === true);
        if (live.every((w) => workerPolicies.get(w.id) === sha256)) done(true);
      };
      const done = (ok: boolean) => {
        clearTimeout(timer);
        onWorkerPolicy.delete(check);
        resolve(ok);
      };
      const timer = setTimeout(() => done(false), timeoutMs);
      onWorkerPolicy.add(check);
      check();
    });

  // /metrics in the primary: ask every worker for its numbers and merge them.
  let metricsRequest = 0;
  const pendingMetrics = new Map<number, (text: string) => void>();
  /** The slot (1..N) of each live worker: its replacement after a crash takes the same slot, and so resumes the same audit chain. */
  const slots = new Map<number, number>();
  const fork = (slot: number): Worker => {
    const worker = cluster.fork({ [AUDIT_CHAIN_ENV]: workerChainId(slot) });
    slots.set(worker.id, slot);
    serveReplayQuestions(worker, replayMemory);
    worker.on("message", (message: unknown) => {
      if (isAuditChainMessage(message)) {
        roster?.note(message);
        return;
      }
      if (!isWorkerMessage(message)) return;
      if (message.type === "ready") {
        reportPolicy(worker, message.sha256);
        readyAddresses.set(worker.id, message.address);
        if (!started && readyAddresses.size >= settings.workers) startup?.resolve();
      } else if (message.type === "reloaded") {
        reportPolicy(worker, message.sha256);
      } else if (message.type === "metrics") {
        pendingMetrics.get(message.id)?.(message.text);
      }
    });
    return worker;
  };
  const workerMetrics = async (): Promise<string> => {
    const workers = Object.values(cluster.workers ?? {}).filter((w): w is Worker => w?.isConnected() === true);
    const texts = await Promise.all(
      workers.map(
        (worker) =>
          new Promise<string>((resolve) => {
            const id = ++metricsRequest;
            const timer = setTimeout(() => {
              pendingMetrics.delete(id);
              resolve("");
            }, METRICS_TIMEOUT_MS);
            pendingMetrics.set(id, (text) => {
              clearTimeout(timer);
              pendingMetrics.delete(id);
              resolve(text);
            });
            worker.send({ type: "metrics", id } satisfies PrimaryMessage);
          }),
      ),
    );
    return mergePrometheusTexts([...texts.filter((t) => t.length > 0), ...(replayMemory === undefined ? [] : [replayMemoryMetrics(replayMemory)])]);
  };
  cluster.on("exit", (worker, code, signal) => {
    readyAddresses.delete(worker.id);
    workerPolicies.delete(worker.id);
    for (const wake of onWorkerPolicy) wake();
    const slot = slots.get(worker.id) ?? 1;
    slots.delete(worker.id);
    if (stopping) return;
    if (!started) {
      startup?.reject(new WorkerStartError(`worker ${worker.id} exited during start-up (code ${code ?? "-"}, signal ${signal ?? "-"}); its error is above`));
      return;
    }
    // Back off when workers keep dying (e.g. the file went bad and a new worker cannot start).
    const now = Date.now();
    restartDelayMs = now - lastRestartMs > RESTART_DELAY_MAX_MS * 2 ? RESTART_DELAY_MIN_MS : Math.min(RESTART_DELAY_MAX_MS, restartDelayMs * 2);
    lastRestartMs = now;
    logger.error("worker exited; starting a new one", { worker: worker.id, code, signal, delay_ms: restartDelayMs });
    setTimeout(() => {
      if (!stopping) fork(slot);
    }, restartDelayMs).unref();
  });

  const stopWorkers = async (): Promise<void> => {
    const alive = Object.values(cluster.workers ?? {}).filter((w): w is Worker => w !== undefined && !w.isDead());
    // Exited, and its IPC channel drained (a worker's last messages, such as where its audit chain ended, are read before 'disconnect').
    const exits = alive.map((w) => Promise.all([new Promise<void>((resolve) => w.once("exit", () => resolve())), disconnected(w)]).then(() => undefined));
    broadcast({ type: "shutdown" });
    const deadline = new Promise<"timeout">((resolve) => setTimeout(() => resolve("timeout"), WORKER_SHUTDOWN_DEADLINE_MS).unref());
    if ((await Promise.race([Promise.all(exits), deadline])) === "timeout") {
      for (const w of alive) if (!w.isDead()) w.process.kill("SIGKILL");
      logger.error("workers did not drain before the deadline; killed", { deadline_ms: WORKER_SHUTDOWN_DEADLINE_MS });
      await Promise.all(exits);
    }
  };

  for (let slot = 1; slot <= settings.workers; slot++) fork(slot);
  try {
    await allReady;
  } catch (err) {
    stopping = true;
    await stopWorkers();
    roster?.stop();
    await auditWriter?.close();
    policies.close();
    throw err;
  }
  started = true;

  const explainPipeline = createExplainPipeline(policies, { ...checkReadingOptions(settings), logger });
  const admin =
    settings.adminListen === undefined
      ? undefined
      : await startAdminServer({
          listen: settings.adminListen,
          explainPipeline,
          policies,
          reload: async () => {
            const outcome = await policies.reload("admin");
            if (!outcome.ok) return outcome;
            const want = policies.current();
            if (await workersServe(want?.sha256, WORKER_RELOAD_TIMEOUT_MS)) return { ...outcome, version: want?.version };
            return { ok: false, version: outcome.version, errors: [`not every worker serves policy version ${want?.version ?? "?"} after ${WORKER_RELOAD_TIMEOUT_MS} ms`] };
          },
          metrics: (_req, res) => {
            void workerMetrics().then(
              (text) => res.writeHead(200, { "content-type": "text/plain; version=0.0.4; charset=utf-8" }).end(text),
              () => res.writeHead(503).end(),
            );
          },
        });
  policies.watch();
  onReloadSignal(() => void policies.reload("SIGHUP"));
  const grpc = [...readyAddresses.values()][0] ?? settings.listen;
  // Handlers first: a SIGTERM sent as soon as the ready line is read must drain, not kill.
  const stopped = onShutdownSignal(async (signal) => {
    stopping = true;
    logger.info("shutting down workers: draining in-flight Checks", { signal });
    await stopWorkers();
    policies.close();
    await admin?.close();
    // The workers have closed their chains and reported where each ended.
    roster?.stop();
    await auditWriter?.close();
  });
  process.stdout.write(readyLine({ grpc, admin: admin?.address, policy: settings.policyFile, version: policies.current()?.version ?? "", workers: settings.workers, tls: settings.tls }));
  const { signal, failure } = await stopped;
  if (failure !== undefined) {
    logger.error("stopped, but the shutdown did not complete", { signal, error: failure });
    return 1;
  }
  return 0;
}

/**
 * A worker. It never returns normally: it exits the process itself, because
 * the IPC channel to the primary would keep it alive after serving stops.
 */
export async function runWorker(settings: ServeSettings, logger: Logger): Promise<number> {
  const running: { hopwarden?: Hopwarden; audit?: Promise<WorkerAudit | undefined> } = {};
  let stopping: Promise<void> | undefined;
  const closeAudit = async (): Promise<void> => {
    const audit = await running.audit?.catch(() => undefined);
    if (audit === undefined) return;
    try {
      await audit.sink.close();
      // Where this chain ended, for the roster's stop record.
      await sendToPrimary({ type: "audit-chain", event: "closed", chain: audit.chain, head: audit.writer.head() });
    } catch (error) {
      logger.error("audit chain did not close cleanly", { event: "audit_close_failed", chain: audit.chain, error });
    }
  };
  const stop = (): Promise<void> => {
    stopping ??= (async () => {
      await running.hopwarden?.shutdown();
      await closeAudit();
    })();
    return stopping;
  };
  const exitAfterStop = () => void stop().finally(() => process.exit(0));
  // Listen before starting, so a shutdown that arrives during start-up is not lost.
  process.on("message", (message: PrimaryMessage) => {
    if (message.type === "reload") {
      void running.hopwarden
        ?.reload(message.trigger)
        .then((o) => process.send?.({ type: "reloaded", ok: o.ok, version: o.version, sha256: running.hopwarden?.policies.current()?.sha256, errors: o.errors } satisfies WorkerMessage));
    } else if (message.type === "shutdown") {
      exitAfterStop();
    } else if (message.type === "metrics") {
      void (running.hopwarden?.metrics.text() ?? Promise.resolve("")).then(
        (text) => process.send?.({ type: "metrics", id: message.id, text } satisfies WorkerMessage),
        () => process.send?.({ type: "metrics", id: message.id, text: "" } satisfies WorkerMessage),
      );
    }
  });
  // A signal sent to the whole process group (Ctrl-C) reaches workers directly and drains them too.
  void onShutdownSignal(stop).then(({ failure }) => process.exit(failure === undefined ? 0 : 1));
  // Its own chain: open (its first line of the run on disk) before the first Check, and reported to the primary's roster.
  running.audit = openWorkerAuditSink(settings, logger);
  const audit = await running.audit;
  if (audit !== undefined) await sendToPrimary({ type: "audit-chain", event: "opened", chain: audit.chain, head: audit.writer.head() });
  const replayStore = await openReplayStore(settings.replay, "worker", logger);
  const hopwarden = await startHopwarden(serviceOptions(settings, { role: "worker", logger, replayStore, audit: audit?.sink })).catch(async (err: unknown) => {
    // A worker that cannot serve still ends its chain cleanly, so the log does not look like a crash.
    await closeAudit();
    throw err;
  });
  running.hopwarden = hopwarden;
  if (stopping !== undefined) {
    // Shutdown arrived while starting: drain what was just started.
    await stop();
    process.exit(0);
  }
  process.send?.({ type: "ready", address: hopwarden.grpcAddress, sha256: hopwarden.policies.current()?.sha256 } satisfies WorkerMessage);
  return new Promise<number>(() => undefined);
}

type WorkerAudit = NonNullable<Awaited<ReturnType<typeof openWorkerAuditSink>>>;

/** Resolves once the message has left for the primary; a primary already gone is not an error here. */
function sendToPrimary(message: AuditChainMessage): Promise<void> {
  return new Promise<void>((resolve) => {
    if (process.send === undefined) return resolve();
    try {
      process.send(message, undefined, undefined, () => resolve());
    } catch {
      resolve();
    }
  });
}

function disconnected(worker: Worker): Promise<void> {
  return new Promise<void>((resolve) => {
    if (!worker.isConnected()) return resolve();
    worker.once("disconnect", () => resolve());
  });
}
