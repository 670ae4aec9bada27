// hopwarden/client: what an agent needs to call the next agent. It reads the
// headers hopwarden verified on the inbound request, exchanges the inbound
// delegation token at the token service for one naming the next callee
// (over mutual TLS with the agent's own certificate: Node's global fetch
// cannot present one, so this uses node:https), and produces the outgoing
// headers: subject = this agent, on-behalf-of, chain = inbound chain + this
// agent, and the new token. A Transaction Token (the `txn-token` header) is
// carried along unmodified, as draft-ietf-oauth-transaction-tokens asks; at
// the first hop it comes from the token service, when that mints one.
//
//   const client = new DelegationClient({ tokenEndpoint: "https://sts:8443/token", cert, key, ca });
//   const out = await client.continueChain({ inbound: req.headers, audience: "spiffe://example.org/agent/db", scope: "db:read" });
//   await fetch(url, { headers: out.headers, ... });   // or applyDelegationHeaders(request, out.headers)

import { X509Certificate } from "node:crypto";
import { request as httpsRequest } from "node:https";

export interface DelegationHeaderNames {
  readonly subject: string;
  readonly onBehalfOf: string;
  readonly chain: string;
  readonly token: string;
  /** SPEC 8's Transaction Token header. */
  readonly txnToken: string;
}

/** The request headers of SPEC 1 and 8 (hopwarden's defaults). */
export const DEFAULT_DELEGATION_HEADERS: DelegationHeaderNames = {
  subject: "x-agent-subject",
  onBehalfOf: "x-agent-on-behalf-of",
  chain: "x-agent-delegation-chain",
  token: "x-agent-delegation-token",
  txnToken: "txn-token",
};

/** The headers hopwarden sets on an allowed request (SPEC 4). */
export const VERIFIED_HEADERS = {
  subject: "x-agent-verified-subject",
  onBehalfOf: "x-agent-verified-on-behalf-of",
  chain: "x-agent-verified-chain",
} as const;

const TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange";
const JWT_TYPE = "urn:ietf:params:oauth:token-type:jwt";
const MAX_RESPONSE_BYTES = 64 * 1024;

/** Headers as Node's IncomingMessage, a fetch Headers object, or a plain record hold them. */
export type HeaderSource = { get(name: string): string | null } | Readonly<Record<string, string | readonly string[] | undefined>>;

export interface InboundDelegation {
  /** The immediate caller, as hopwarden verified it. */
  readonly caller: string;
  readonly onBehalfOf: string;
  /** First agent first, the caller last. */
  readonly chain: readonly string[];
  /** The delegation token the caller presented (issued for this agent). */
  readonly token: string;
  /** The Transaction Token the caller forwarded, when there is one. */
  readonly txnToken?: string | undefined;
}

export class DelegationClientError extends Error {
  constructor(
    message: string,
    /** The OAuth error code when the token service refused, e.g. "invalid_target". */
    readonly code: string,
    readonly status: number | undefined,
  ) {
    super(message);
    this.name = "DelegationClientError";
  }
}

function headerValue(headers: HeaderSource, name: string): string | undefined {
  if (typeof (headers as { get?: unknown }).get === "function") return (headers as { get(n: string): string | null }).get(name) ?? undefined;
  const record = headers as Readonly<Record<string, string | readonly string[] | undefined>>;
  const value = record[name] ?? Object.entries(record).find(([k]) => k.toLowerCase() === name)?.[1];
  return Array.isArray(value) ? (value as readonly string[]).join(",") : (value as string | undefined);
}

/** Reads what hopwarden verified on the inbound request; throws DelegationClientError when a header is missing. */
export function readInboundDelegation(headers: HeaderSource, tokenHeader = DEFAULT_DELEGATION_HEADERS.token, txnTokenHeader = DEFAULT_DELEGATION_HEADERS.txnToken): InboundDelegation {
  const need = (name: string): string => {
    const v = headerValue(headers, name);
    if (v === undefined || v.length === 0) throw new DelegationClientError(`the inbound request has no ${name} header (is it routed through hopwarden?)`, "missing_header", undefined);
    return v;
  };
  const chain = need(VERIFIED_HEADERS.chain)
    .split(",")
    .map((s) => s.trim());
  const txnToken = headerValue(headers, txnTokenHeader);
  return {
    caller: need(VERIFIED_HEADERS.subject),
    onBehalfOf: need(VERIFIED_HEADERS.onBehalfOf),
    chain,
    token: need(tokenHeader),
    ...(txnToken !== undefined && txnToken.length > 0 && { txnToken }),
  };
}

/** Sets the headers on a fetch Headers object, a Node ClientRequest/OutgoingMessage, or a plain record. */
export function applyDelegationHeaders(
  target: { set(name: string, value: string): unknown } | { setHeader(name: string, value: string): unknown } | Record<string, string>,
  headers: Readonly<Record<string, string>>,
): void {
  for (const [name, value] of Object.entries(headers)) {
    if (typeof (target as { setHeader?: unknown }).setHeader === "function") (target as { setHeader(n: string, v: string): unknown }).setHeader(name, value);
    else if (typeof (target as { set?: unknown }).set === "function") (target as { set(n: string, v: string): unknown }).set(name, value);
    else (target as Record<string, string>)[name] = value;
  }
}

export interface DelegationClientOptions {
  /** The token service's token endpoint, e.g. https://sts.example.org:8443/token. */
  readonly tokenEndpoint: string | URL;
  /** This agent's certificate and key (PEM): its identity at the token service. */
  readonly cert: string | Buffer;
  readonly key: string | Buffer;
  /** CA bundle that the token service's certificate chains to. */
  readonly ca: string | Buffer;
  /** This agent's SPIFFE ID; read from the certificate's URI SAN when omitted. */
  readonly selfId?: string;
  readonly headerNames?: Partial<DelegationHeaderNames>;
  /** The name the token service's certificate must hold, when it differs from the endpoint's host. */
  readonly servername?: string;
  /** Deadline for one exchange. Default 5 s. */
  readonly timeoutMs?: number;
}

export interface OutgoingDelegation {
  /** Header name → value, ready for the outgoing request. */
  readonly headers: Readonly<Record<string, string>>;
  readonly token: string;
  readonly scope: readonly string[];
  readonly expiresIn: number;
  /** The Transaction Token sent along (minted at the first hop, or forwarded as received). */
  readonly txnToken?: string | undefined;
}

/** What one exchange returns. */
export interface ExchangedToken {
  readonly token: string;
  readonly scope: string[];
  readonly expiresIn: number;
  /** The token service's `txn_token`, at the first hop when it mints Transaction Tokens. */
  readonly txnToken?: string | undefined;
}

function spiffeIdOf(certPem: string | Buffer): string {
  const sans = (new X509Certificate(certPem).subjectAltName ?? "").split(", ").filter((s) => s.startsWith("URI:spiffe://"));
  if (sans.length !== 1) throw new DelegationClientError("the certificate must hold exactly one spiffe:// URI SAN (pass selfId otherwise)", "bad_certificate", undefined);
  return sans[0]!.slice(4);
}

function tokenSubject(token: string): string | undefined {
  try {
    const payload = JSON.parse(Buffer.from(token.split(".")[1] ?? "", "base64url").toString("utf8")) as { sub?: unknown };
    return typeof payload.sub === "string" ? payload.sub : undefined;
  } catch {
    return undefined;
  }
}

export class DelegationClient {
  readonly selfId: string;
  private readonly names: DelegationHeaderNames;
  private readonly endpoint: URL;

  constructor(private readonly options: DelegationClientOptions) {
    this.selfId = options.selfId ?? spiffeIdOf(options.cert);
    this.names = { ...DEFAULT_DELEGATION_HEADERS, ...options.headerNames };
    this.endpoint = new URL(options.tokenEndpoint);
    if (this.endpoint.protocol !== "https:") throw new DelegationClientError("tokenEndpoint must be an https:// URL (the token service requires mutual TLS)", "bad_endpoint", undefined);
  }

  /** First hop: this agent was called by the person (their token in hand) and calls `audience`. */
  async startChain(request: { personToken: string; audience: string; scope?: string }): Promise<OutgoingDelegation> {
    const issued = await this.exchange(request.personToken, request.audience, request.scope);
    const person = tokenSubject(issued.token);
    if (person === undefined) throw new DelegationClientError("the issued token has no sub", "bad_response", undefined);
    return this.outgoing(issued, person, [this.selfId], issued.txnToken);
  }

  /** Later hops: this agent was called through hopwarden and calls `audience` next. */
  async continueChain(request: { inbound: HeaderSource | InboundDelegation; audience: string; scope?: string }): Promise<OutgoingDelegation> {
    const inbound = "token" in request.inbound && "chain" in request.inbound && Array.isArray(request.inbound.chain)
      ? (request.inbound as InboundDelegation)
      : readInboundDelegation(request.inbound as HeaderSource, this.names.token, this.names.txnToken);
    const issued = await this.exchange(inbound.token, request.audience, request.scope);
    return this.outgoing(issued, inbound.onBehalfOf, [...inbound.chain, this.selfId], inbound.txnToken);
  }

  private outgoing(issued: ExchangedToken, onBehalfOf: string, chain: readonly string[], txnToken: string | undefined): OutgoingDelegation {
    return {
      headers: {
        [this.names.subject]: this.selfId,
        [this.names.onBehalfOf]: onBehalfOf,
        [this.names.chain]: chain.join(","),
        [this.names.token]: issued.token,
        ...(txnToken !== undefined && { [this.names.txnToken]: txnToken }),
      },
      token: issued.token,
      scope: issued.scope,
      expiresIn: issued.expiresIn,
      ...(txnToken !== undefined && { txnToken }),
    };
  }

  /** One RFC 8693 exchange; rejects with DelegationClientError carrying the OAuth error code. */
  exchange(subjectToken: string, audience: string, scope?: string): Promise<ExchangedToken> {
    const form = new URLSearchParams({ grant_type: TOKEN_EXCHANGE, subject_token: subjectToken, subject_token_type: JWT_TYPE, audience });
    if (scope !== undefined) form.set("scope", scope);
    const body = form.toString();
    const timeoutMs = this.options.timeoutMs ?? 5_000;
    return new Promise((resolve, reject) => {
      const req = httpsRequest(
        this.endpoint,
        {
          method: "POST",
          cert: this.options.cert,
          key: this.options.key,
          ca: this.options.ca,
          ...(this.options.servername !== undefined && { servername: this.options.servername }),
          headers: { "content-type": "application/x-www-form-urlencoded", accept: "application/json", "content-length": Buffer.byteLength(body) },
          timeout: timeoutMs,
        },
        (res) => {
          const chunks: Buffer[] = [];
          let size = 0;
          res.on("data", (c: Buffer) => {
            size += c.length;
            if (size > MAX_RESPONSE_BYTES) req.destroy(new DelegationClientError("the token service's answer is too large", "bad_response", res.statusCode));
            else chunks.push(c);
          });
          res.on("end", () => {
            let json: Record<string, unknown>;
            try {
              json = JSON.parse(Buffer.concat(chunks).toString("utf8")) as Record<string, unknown>;
            } catch {
              reject(new DelegationClientError(`the token service answered HTTP ${res.statusCode ?? "?"} without JSON`, "bad_response", res.statusCode));
              return;
            }
            if (res.statusCode !== 200 || typeof json["access_token"] !== "string") {
              const code = typeof json["error"] === "string" ? json["error"] : "bad_response";
              const description = typeof json["error_description"] === "string" ? `: ${json["error_description"]}` : "";
              reject(new DelegationClientError(`token exchange refused (${code})${description}`, code, res.statusCode));
              return;
            }
            const granted = typeof json["scope"] === "string" && json["scope"].length > 0 ? json["scope"].split(" ") : [];
            const txnToken = typeof json["txn_token"] === "string" && json["txn_token"].length > 0 ? json["txn_token"] : undefined;
            resolve({
              token: json["access_token"],
              scope: granted,
              expiresIn: typeof json["expires_in"] === "number" ? json["expires_in"] : 0,
              ...(txnToken !== undefined && { txnToken }),
            });
          });
          res.on("error", reject);
        },
      );
      req.on("timeout", () => req.destroy(new DelegationClientError(`the token exchange timed out after ${timeoutMs} ms`, "timeout", undefined)));
      req.on("error", (err) => reject(err instanceof DelegationClientError ? err : new DelegationClientError(`the token service could not be reached: ${err.message}`, "unreachable", undefined)));
      req.end(body);
    });
  }
}
