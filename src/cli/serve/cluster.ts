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
import { openAuditWriter, relayWorker, workerAuditSink } from "./audit-wiring.js";
import { loadTlsFileSet } from "../../adapters/grpc/tls-file-set.js";
import { mergePrometheusTexts } from "../../adapters/telemetry/prometheus-merge.js";
import { openReplayStore, primaryReplayMemory, replayMemoryMetrics, serveReplayQuestions } from "./replay-wiring.js";

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

export class WorkerStartError extends Error {}

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

  // One writer in the primary keeps the audit log a single chain.
  const auditWriter = await openAuditWriter(settings, logger);
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
  const fork = (): Worker => {
    const worker = cluster.fork();
    if (auditWriter !== undefined) relayWorker(worker, auditWriter, logger);
    serveReplayQuestions(worker, replayMemory);
    worker.on("message", (message: unknown) => {
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
      if (!stopping) fork();
    }, restartDelayMs).unref();
  });

  const stopWorkers = async (): Promise<void> => {
    const alive = Object.values(cluster.workers ?? {}).filter((w): w is Worker => w !== undefined && !w.isDead());
    const exits = alive.map((w) => new Promise<void>((resolve) => w.once("exit", () => resolve())));
    broadcast({ type: "shutdown" });
    const deadline = new Promise<"timeout">((resolve) => setTimeout(() => resolve("timeout"), WORKER_SHUTDOWN_DEADLINE_MS).unref());
    if ((await Promise.race([Promise.all(exits), deadline])) === "timeout") {
      for (const w of alive) if (!w.isDead()) w.process.kill("SIGKILL");
      logger.error("workers did not drain before the deadline; killed", { deadline_ms: WORKER_SHUTDOWN_DEADLINE_MS });
      await Promise.all(exits);
    }
  };

  for (let i = 0; i < settings.workers; i++) fork();
  try {
    await allReady;
  } catch (err) {
    stopping = true;
    await stopWorkers();
    await auditWriter?.close();
    policies.close();
    throw err;
  }
  started = true;

  const explainPipeline = createExplainPipeline(policies, {
    headerNames: settings.config.headers,
    mcpKeys: settings.config.mcp,
    trustForwardedClientCert: settings.config.trustForwardedClientCert,
    logger,
  });
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
    await auditWriter?.close();
  });
  process.stdout.write(readyLine({ grpc, admin: admin?.address, policy: settings.policyFile, version: policies.current()?.version ?? "", workers: settings.workers, tls: settings.tls }));
  await stopped;
  return 0;
}

/**
 * A worker. It never returns normally: it exits the process itself, because
 * the IPC channel to the primary would keep it alive after serving stops.
 */
export async function runWorker(settings: ServeSettings, logger: Logger): Promise<number> {
  const running: { hopwarden?: Hopwarden } = {};
  let stopping: Promise<void> | undefined;
  const audit = workerAuditSink(settings, logger);
  const stop = (): Promise<void> => {
    stopping ??= (async () => {
      await running.hopwarden?.shutdown();
      await audit?.close();
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
  void onShutdownSignal(stop).then(() => process.exit(0));
  const replayStore = await openReplayStore(settings.replay, "worker", logger);
  const hopwarden = await startHopwarden({
    replayStore,
    ...(audit !== undefined && { sinks: [audit], admit: () => audit.admit(), auditStats: () => audit.stats() }),
    policyFile: settings.policyFile,
    listen: settings.listen,
    adminListen: undefined,
    logger,
    headerNames: settings.config.headers,
    mcpKeys: settings.config.mcp,
    trustForwardedClientCert: settings.config.trustForwardedClientCert,
    watchPolicy: false,
    // Each worker serves TLS itself, and watches the files itself.
    tls: settings.tls,
    // Each worker holds its own caches, each bounded as configured (`--config` `cache:`).
    ...(settings.config.hopCacheSize !== undefined && { hopCacheSize: settings.config.hopCacheSize }),
    ...(settings.config.hopCacheBytes !== undefined && { hopCacheBytes: settings.config.hopCacheBytes }),
    ...(settings.config.certificateCacheSize !== undefined && { certificateCacheSize: settings.config.certificateCacheSize }),
    ...(settings.config.certificateCacheBytes !== undefined && { certificateCacheBytes: settings.config.certificateCacheBytes }),
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
