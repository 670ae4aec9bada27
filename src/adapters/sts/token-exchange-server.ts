// The token service's HTTPS endpoint, mutual TLS only: the agent's client
// certificate (one spiffe:// URI SAN, chaining to the configured CA) is its
// identity, RFC 8705 style. Routes:
//   POST /token                   RFC 8693 token exchange (form-encoded)
//   GET  /.well-known/jwks.json   the public keys Check verifies with
//   GET  /healthz                 liveness
// Every answer is JSON; a refusal is an RFC 6749 5.2 error object.

import { X509Certificate } from "node:crypto";
import { createServer, type Server } from "node:https";
import type { IncomingMessage, ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import type { TLSSocket } from "node:tls";
import { svidIdentity } from "../../core/identity/peer-certificate.js";
import type { Clock } from "../../core/ports.js";
import { systemClock } from "../clock/system-clock.js";
import type { Logger } from "../logging/logger.js";
import { ListenError } from "../net/listen-error.js";
import { parsePeerCertificate } from "../x509/certificate-parser.js";
import type { SigningKeyRing } from "./signing-key-ring.js";
import type { ExchangeCaller, TokenExchange } from "./token-exchange.js";

export interface TokenExchangeServerOptions {
  readonly host: string;
  readonly port: number;
  readonly tls: { readonly cert: string | Buffer; readonly key: string | Buffer; readonly clientCa: string | Buffer };
  readonly exchange: TokenExchange;
  readonly keys: SigningKeyRing;
  readonly logger: Logger;
  /** Default: the system clock. */
  readonly clock?: Clock;
}

export interface RunningTokenExchangeServer {
  /** https://host:port, with the bound port. */
  readonly url: string;
  readonly port: number;
  close(): Promise<void>;
}

const MAX_BODY_BYTES = 64 * 1024;
const JSON_HEADERS = { "content-type": "application/json", "cache-control": "no-store", pragma: "no-cache" } as const;

function send(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { ...JSON_HEADERS, ...headers, "content-length": Buffer.byteLength(text) });
  res.end(text);
}

function oauthError(res: ServerResponse, status: number, error: string, description: string): void {
  send(res, status, { error, error_description: description });
}

/** The caller's SVID, or why it is not one. TLS has already checked the chain to the CA. */
function callerOf(req: IncomingMessage, nowMs: number): ExchangeCaller | string {
  const socket = req.socket as TLSSocket;
  if (!socket.authorized) return `client certificate not accepted (${String(socket.authorizationError ?? "none presented")})`;
  const raw = socket.getPeerCertificate(false)?.raw;
  if (raw === undefined || raw.length === 0) return "no client certificate";
  const parsed = parsePeerCertificate(new X509Certificate(raw).toString());
  if (!parsed.ok) return `client certificate ${parsed.problem}`;
  const svid = svidIdentity(parsed.certificate, nowMs);
  if (!svid.ok) return `client certificate ${svid.problem}`;
  return { id: svid.id, certificate: parsed.certificate };
}

function readBody(req: IncomingMessage): Promise<string | undefined> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on("data", (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_BODY_BYTES) {
        resolve(undefined);
        req.destroy();
        return;
      }
      chunks.push(chunk);
    });
    req.on("end", () => resolve(Buffer.concat(chunks).toString("utf8")));
    req.on("error", reject);
  });
}

export async function startTokenExchangeServer(options: TokenExchangeServerOptions): Promise<RunningTokenExchangeServer> {
  const clock = options.clock ?? systemClock;
  const log = options.logger;

  const handleToken = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const nowMs = clock.nowMs();
    const caller = callerOf(req, nowMs);
    if (typeof caller === "string") return oauthError(res, 401, "invalid_client", caller);
    const type = (req.headers["content-type"] ?? "").split(";")[0]!.trim().toLowerCase();
    if (type !== "application/x-www-form-urlencoded") return oauthError(res, 400, "invalid_request", "the body must be application/x-www-form-urlencoded");
    const body = await readBody(req);
    if (body === undefined) return oauthError(res, 400, "invalid_request", `the body is larger than ${MAX_BODY_BYTES} bytes`);
    const outcome = await options.exchange.exchange(new URLSearchParams(body), caller, nowMs);
    if (!outcome.ok) {
      log.info("token exchange refused", { agent: caller.id.id, error: outcome.error, description: outcome.description });
      return oauthError(res, outcome.status, outcome.error, outcome.description);
    }
    // token_sha256 and token_prev (the audit record's names) put the issuer's log in SPEC 5's hash chain: Check's audit record of this token has the same token_sha256.
    log.info("token issued", {
      agent: caller.id.id,
      audience: outcome.audience,
      on_behalf_of: outcome.person,
      chain: outcome.chain,
      jti: outcome.jti,
      token_sha256: outcome.tokenSha256,
      ...(outcome.prev !== undefined && { token_prev: outcome.prev }),
      scope: outcome.response.scope,
      ...(outcome.txn !== undefined && { txn: outcome.txn }),
    });
    send(res, 200, outcome.response);
  };

  const server: Server = createServer(
    {
      cert: options.tls.cert,
      key: options.tls.key,
      ca: options.tls.clientCa,
      requestCert: true,
      // The handshake lets unauthorized clients in so that /healthz and the
      // JWKS stay reachable and /token can answer with an OAuth error, not a reset.
      rejectUnauthorized: false,
      minVersion: "TLSv1.2",
    },
    (req, res) => {
      const path = (req.url ?? "/").split("?")[0];
      const route = async (): Promise<void> => {
        if (path === "/token") {
          if (req.method !== "POST") return send(res, 405, { error: "invalid_request", error_description: "use POST" }, { allow: "POST" });
          return handleToken(req, res);
        }
        if (path === "/.well-known/jwks.json" && (req.method === "GET" || req.method === "HEAD")) {
          return send(res, 200, options.keys.jwks(clock.nowMs()), { "content-type": "application/jwk-set+json", "cache-control": "public, max-age=60" });
        }
        if (path === "/healthz" && req.method === "GET") return send(res, 200, { status: "ok" });
        send(res, 404, { error: "not_found", error_description: "routes: POST /token, GET /.well-known/jwks.json, GET /healthz" });
      };
      route().catch((err: unknown) => {
        log.error("token service request failed", { err });
        if (!res.headersSent) oauthError(res, 500, "server_error", "internal error");
        else res.destroy();
      });
    },
  );
  server.requestTimeout = 10_000;
  server.headersTimeout = 5_000;
  await new Promise<void>((resolve, reject) => {
    const refused = (err: Error) => reject(new ListenError("the token service", `${options.host}:${options.port}`, err));
    server.once("error", refused);
    server.listen(options.port, options.host, () => {
      server.off("error", refused);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  const host = options.host.includes(":") ? `[${options.host}]` : options.host;
  return {
    url: `https://${host}:${port}`,
    port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeIdleConnections();
      }),
  };
}
