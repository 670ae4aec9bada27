// The admin port: the Connect-protocol AdminService (explain, policy, reload)
// via connect-node, and Prometheus metrics at /metrics, on one HTTP server.

import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import type { ConnectRouter } from "@connectrpc/connect";
import { AdminService } from "../../gen/hopwarden/admin/v1/admin_pb.js";
import type { CheckPipeline } from "../../core/decision/check-pipeline.js";
import type { PolicyStore } from "../config/policy-store.js";
import { splitHostPort } from "../grpc/check-server.js";
import { explainDecision, explainInput } from "./explain.js";

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
        const input = explainInput({ ...request, checkRequest: request.checkRequest });
        const e = explainDecision(await options.explainPipeline.decide(input));
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

export async function startAdminServer(options: AdminServerOptions): Promise<RunningAdminServer> {
  const connect = connectNodeAdapter({ routes: routes(options) });
  const server: Server = createServer((req, res) => {
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
  const { host, port } = splitHostPort(options.listen);
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
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
