// serve with one process: the service, the admin API and the audit log all here.

import { startHopwarden } from "../../main.js";
import type { Logger } from "../../adapters/logging/logger.js";
import type { ServeSettings } from "./settings.js";
import { onReloadSignal, onShutdownSignal } from "./signals.js";
import { readyLine } from "./ready-line.js";
import { openAuditSink } from "./audit-wiring.js";
import { loadTlsFileSet } from "../../adapters/grpc/tls-file-set.js";
import { openReplayStore } from "./replay-wiring.js";
import { serviceOptions } from "./service-options.js";

export async function runSingleProcess(settings: ServeSettings, logger: Logger): Promise<number> {
  // Unusable TLS files stop the start before the audit log is opened.
  if (settings.tls !== undefined) await loadTlsFileSet(settings.tls);
  const audit = await openAuditSink(settings, logger);
  const replayStore = await openReplayStore(settings.replay, "single", logger);
  const hopwarden = await startHopwarden(serviceOptions(settings, { role: "single", logger, replayStore, audit })).catch(async (err: unknown) => {
    // Its connection would keep the process from exiting.
    await replayStore.close();
    throw err;
  });
  onReloadSignal(() => void hopwarden.reload("SIGHUP"));
  // Handlers first: a SIGTERM sent as soon as the ready line is read must drain, not kill.
  const stopped = onShutdownSignal(async (sig) => {
    logger.info("shutting down: draining in-flight Checks", { signal: sig });
    await hopwarden.shutdown();
    await audit?.close();
  });
  process.stdout.write(
    readyLine({ grpc: hopwarden.grpcAddress, admin: hopwarden.adminAddress, policy: settings.policyFile, version: hopwarden.policies.current()?.version ?? "", workers: 1, tls: settings.tls }),
  );
  const { signal, failure } = await stopped;
  if (failure !== undefined) {
    // A stop that could not flush the audit log (or another sink) is not a clean exit.
    logger.error("stopped, but the shutdown did not complete", { signal, error: failure });
    return 1;
  }
  logger.info("stopped", { signal });
  return 0;
}
