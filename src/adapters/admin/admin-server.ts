// The admin port: the Connect-protocol AdminService (explain, policy, reload)
// via connect-node, and Prometheus metrics at /metrics, on one HTTP server.
// It has no authentication, so it listens on loopback unless told otherwise,
// and no request can make it allocate much (SPEC 7): bodies are capped at
// 64 KiB, and compressed bodies are refused, since connect-node would
// otherwise inflate up to 4 GiB (finding 1: a 255 KiB gzip body made the
// process that answers Check allocate about 500 MB).

import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import type { ConnectRouter } from "@connectrpc/connect";
import { AdminService } from "../../gen/hopwarden/admin/v1/admin_pb.js";
import type { CheckPipeline } from "../../core/decision/check-pipeline.js";
import type { PolicyStore } from "../config/policy-store.js";
import { splitHostPort } from "../grpc/check-server.js";
import { ListenError } from "../net/listen-error.js";
import { decideExplainRequest, explainDecision } from "./explain.js";

export interface AdminServerOptions {
  readonly listen: string;
  /** A pipeline for dry-runs: it shares the policy but records nothing. */
  readonly explainPipeline: CheckPipeline;
  readonly policies: PolicyStore;
  /** Re-reads the policy (in every worker). */
  readonly reload: () => Promise<{ ok: boolean; version: string | undefined; errors: readonly string[] }>;
  readonly metrics?: (req: IncomingMessage, res: ServerResponse) => void;
}

export interface RunningAdminServer {
  readonly address: string;
  close(): Promise<void>;
}

function routes(options: AdminServerOptions) {
  return (router: ConnectRouter) => {
    router.service(AdminService, {
      async explain(request) {
        const e = explainDecision(await decideExplainRequest(options.explainPipeline, request));
        return { ...e, chain: [...e.chain], hops: e.hops.map((h) => ({ ...h })) };
      },
      getPolicy() {
        const policy = options.policies.current();
        return {
          version: policy?.version ?? "",
          source: options.policies.file,
          loadedAt: options.policies.loadedAt?.toISOString() ?? "",
          sha256: policy?.sha256 ?? "",
          agents: policy?.agents.size ?? 0,
          hopRules: policy?.hops.length ?? 0,
        };
      },
      async reload() {
        const outcome = await options.reload();
        return { ok: outcome.ok, version: outcome.version ?? "", errors: [...outcome.errors] };
      },
    });
  };
}

/** The largest request body the admin API reads, after any decompression (SPEC 7). */
export const ADMIN_MAX_REQUEST_BYTES = 64 * 1024;
/** Slow or idle clients are cut off rather than held open; the admin API has few, local users. */
const ADMIN_REQUEST_TIMEOUT_MS = 10_000;
const ADMIN_MAX_CONNECTIONS = 64;

export async function startAdminServer(options: AdminServerOptions): Promise<RunningAdminServer> {
  const connect = connectNodeAdapter({
    routes: routes(options),
    readMaxBytes: ADMIN_MAX_REQUEST_BYTES,
    // No compression is accepted: a compressed request is refused before it is inflated.
    acceptCompression: [],
  });
  const server: Server = createServer((req, res) => {
    // Only programs call the admin API (hopwarden's CLI, curl, Prometheus), and they send no Origin. A
    // browser sends one with every POST, also to a page's own origin: refusing it keeps a web page that
    // rebinds its DNS name to this address from calling Reload, Explain or GetPolicy from the browser.
    if (req.headers.origin !== undefined) {
      res.writeHead(403, { "content-type": "text/plain" }).end("the admin API does not answer browsers (a request with an Origin header)\n");
      return;
    }
    if (req.method === "GET" && (req.url === "/metrics" || req.url?.startsWith("/metrics?")) && options.metrics !== undefined) {
      options.metrics(req, res);
      return;
    }
    if (req.method === "GET" && req.url === "/healthz") {
      const ok = options.policies.current() !== undefined;
      res.writeHead(ok ? 200 : 503, { "content-type": "text/plain" }).end(ok ? "ok\n" : "no policy\n");
      return;
    }
    connect(req, res);
  });
  server.requestTimeout = ADMIN_REQUEST_TIMEOUT_MS;
  server.headersTimeout = ADMIN_REQUEST_TIMEOUT_MS;
  server.maxConnections = ADMIN_MAX_CONNECTIONS;
  const { host, port } = splitHostPort(options.listen);
  await new Promise<void>((resolve, reject) => {
    server.once("error", (err) => reject(new ListenError("the admin API", options.listen, err)));
    server.listen(port, host.replace(/^\[|\]$/g, ""), () => resolve());
  });
  const bound = (server.address() as AddressInfo).port;
  return {
    address: `${host}:${bound}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
