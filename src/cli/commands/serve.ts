// `hopwarden serve`: runs the Check service. With --workers 1 (the default)
// one process serves everything; with more, a primary process supervises N
// workers on the same port (see serve/cluster.ts).

import cluster from "node:cluster";
import { createLogger } from "../../adapters/logging/logger.js";
import { reportFailure, runCommand } from "../exit.js";
import { parseCommandArgs } from "../options.js";
import { resolveServeSettings } from "../serve/settings.js";
import { runSingleProcess } from "../serve/single-process.js";
import { runPrimary, runWorker } from "../serve/cluster.js";
import type { Command } from "./index.js";

const HELP = `Usage: hopwarden serve --policy <file> [options]

Runs the Envoy ext_authz v3 gRPC service: envoy.service.auth.v3.Authorization
/Check, grpc.health.v1.Health and server reflection on --listen; the admin
API (Connect: Explain, GetPolicy, Reload) and Prometheus /metrics on
--admin-listen. Prints one line with the bound addresses when ready.

Options (each also settable as HOPWARDEN_<OPTION>, e.g. HOPWARDEN_ADMIN_LISTEN):
  --policy <file>          policy file (YAML); required. Hot-reloaded on change
                           and on SIGHUP; an invalid new file is refused and the
                           last good policy stays in force
  --config <file>          service config (YAML): headers, identity, caches...
  --listen <host:port>     gRPC address (default 0.0.0.0:9191)
  --admin-listen <h:p|off> admin API and metrics (default 127.0.0.1:9192). It
                           has no authentication: expose it (e.g. to a
                           Prometheus scraper) only on a trusted network
  --workers <N|auto>       processes serving the same port (default 1;
                           auto = the cores available)
  --audit-log <file>       append-only, hash-chained, signed audit log
  --audit-key <file>       Ed25519 private key (PEM, PKCS#8) that signs it
  --tls-cert <file>        serve the gRPC port over TLS with this certificate
                           (PEM: the leaf, then any intermediates)
  --tls-key <file>         its private key (PEM, unencrypted); goes with --tls-cert
  --tls-client-ca <file>   also require a client certificate issued by this CA
                           (PEM bundle): mutual TLS; needs --tls-cert/--tls-key
  --log-level <level>      debug (one line per decision), info, warn, error
  --replay-store <url>     redis://[user:password@]host:port[/db] (rediss:// for
                           TLS): the Redis or Valkey that every worker and
                           replica shares for tokens.singleUse; a store that
                           does not answer within replay.timeout (--config,
                           default 50ms) denies single-use tokens
                           (internal_error). Default: this host's memory
  -h, --help               show this help

What TLS protects: --tls-cert/--tls-key encrypt the gRPC port and prove
hopwarden's identity to Envoy, but anything that reaches --listen can still
ask for decisions under any source.principal, and its allows are written to
the audit log. --tls-client-ca closes that: a connection without a
certificate from that CA is refused in the TLS handshake, so no Check is
read and nothing is decided or recorded. Give it a CA that issues only to
your Envoys (not the agents' CA), and have Envoy's ext_authz cluster present
one (UpstreamTlsContext; envoy/README.md, HOPWARDEN_MTLS=true). Health and
reflection sit behind the same handshake:
  grpc-health-probe -addr <host:port> -tls -tls-ca-cert <ca> -tls-server-name <name> \\
    -tls-client-cert <envoy.crt> -tls-client-key <envoy.key>
The files are re-read when they change (cert-manager and SPIRE rotations:
renames, Kubernetes ..data symlink swaps, in-place writes): new handshakes get
the new certificate, open connections stay up. A new set that is not usable
(half written, key and certificate out of step) is refused and logged, and the
last good one stays in force. Unusable files at start: exit 1, naming the file.

Tracing: decision spans go to the OTLP endpoint the standard OTEL_* variables
name (OTEL_EXPORTER_OTLP_ENDPOINT, OTEL_EXPORTER_OTLP_PROTOCOL=grpc|http/protobuf,
OTEL_TRACES_EXPORTER=none to switch off); they are always sampled.

Signals: SIGTERM/SIGINT drain in-flight Checks and flush the audit log, then
exit; SIGHUP reloads the policy.

Example:
  hopwarden serve --policy examples/policy.yaml --listen 127.0.0.1:9191
`;

const FLAGS = {
  help: { type: "boolean", short: "h" },
  policy: { type: "string" },
  config: { type: "string" },
  listen: { type: "string" },
  "admin-listen": { type: "string" },
  workers: { type: "string" },
  "audit-log": { type: "string" },
  "audit-key": { type: "string" },
  "tls-cert": { type: "string" },
  "tls-key": { type: "string" },
  "tls-client-ca": { type: "string" },
  "log-level": { type: "string" },
  "replay-store": { type: "string" },
} as const;

export const serveCommand: Command = {
  // Everything that stops serve before it is ready is a start-up error: one line (or the policy's error lines), exit 1.
  run: (argv) =>
    runCommand(
      "serve",
      async () => {
        const { values } = parseCommandArgs(argv, FLAGS);
        if (values.help === true) {
          process.stdout.write(HELP);
          return 0;
        }
        const settings = await resolveServeSettings(values);
        const logger = createLogger(settings.logLevel, undefined, cluster.isWorker ? { worker: cluster.worker?.id } : {});
        if (cluster.isWorker) {
          // A worker that cannot start must exit: its IPC channel would keep it alive.
          const code = await runWorker(settings, logger).catch((err: unknown) => reportFailure(err, { command: "serve", prefix: "worker failed: " }));
          process.exit(code);
        }
        return settings.workers > 1 ? runPrimary(settings, logger) : runSingleProcess(settings, logger);
      },
      { prefix: "cannot start: " },
    ),
};
