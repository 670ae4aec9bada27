// The token service's configuration: a small YAML file and/or flags (flags
// win). Unknown keys are errors, every problem names its field (and, in the
// file, its line and column). Paths in the file are relative to the file's
// directory; paths given as flags are relative to the working directory.

import { dirname, resolve } from "node:path";
import { isScalar, LineCounter, parseDocument } from "yaml";
import { parseDuration } from "../config/duration.js";
import { child, mapFields, readNonEmptyString, SchemaContext, type SchemaProblem } from "../config/yaml-schema.js";

export interface PersonTokenConfig {
  /** The `iss` of the people's tokens (the identity provider). */
  readonly issuer: string;
  /** Where the IdP's keys are: a file path (absolute, already resolved) or an https:// URL. */
  readonly jwks: string;
  /** When set, the person token's `aud` must hold it. */
  readonly audience: string | undefined;
}

/** Minting a Transaction Token at the first hop (docs/transaction-tokens.md). */
export interface TxnTokenIssuance {
  /** Lifetime of the Txn-Token: the whole transaction, so longer than one hop's token. */
  readonly ttlSeconds: number;
  /** The `aud` (a trust domain name); undefined: the first agent's own trust domain. */
  readonly audience: string | undefined;
}

export interface StsConfig {
  readonly host: string;
  readonly port: number;
  /** The `iss` of issued tokens; the policy's `tokens.issuer` must name it. */
  readonly issuer: string;
  readonly policyFile: string;
  /** A key file or a directory of key files. */
  readonly signingKeys: string;
  readonly tokenTtlSeconds: number;
  readonly clockSkewSeconds: number;
  readonly tlsCert: string;
  readonly tlsKey: string;
  /** CA bundle that agents' client certificates must chain to. */
  readonly clientCa: string;
  readonly personTokens: PersonTokenConfig | undefined;
  /** How often the policy and keys are re-read (also on SIGHUP). */
  readonly reloadIntervalSeconds: number;
  /** Set when the service also mints Txn-Tokens at the first hop. */
  readonly txnTokens: TxnTokenIssuance | undefined;
}

/** Values as the file or the flags give them, all optional; durations still as text. */
export interface StsConfigInput {
  listen?: string;
  issuer?: string;
  policy?: string;
  signingKeys?: string;
  tokenTtl?: string;
  clockSkew?: string;
  reloadInterval?: string;
  tlsCert?: string;
  tlsKey?: string;
  clientCa?: string;
  personIssuer?: string;
  personJwks?: string;
  personAudience?: string;
  /** "true" when the file has a `txnTokens:` section; either flag below also turns minting on. */
  txnTokens?: string;
  txnTokenTtl?: string;
  txnAudience?: string;
}

export type StsConfigResult = { readonly ok: true; readonly config: StsConfig } | { readonly ok: false; readonly errors: readonly string[] };

const TOP_KEYS = ["listen", "issuer", "policy", "signingKeys", "tokenTtl", "clockSkew", "reloadInterval", "tls", "personTokens", "txnTokens"];
/** A SPIFFE trust domain name, as the policy's trustDomains spells it. */
const TRUST_DOMAIN = /^[a-z0-9._-]+$/;
export const DEFAULT_STS_LISTEN = "0.0.0.0:8443";

/** Reads the YAML config file's text; paths come back resolved against the file's directory. */
export function readStsConfigText(text: string, file: string): { ok: true; input: StsConfigInput } | { ok: false; errors: string[] } {
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: false, uniqueKeys: true, strict: true });
  const ctx = new SchemaContext(lines);
  for (const err of doc.errors) ctx.errorAtOffset(err.pos[0], "(yaml)", err.message.split("\n")[0] ?? err.message);
  const input: StsConfigInput = {};
  const dir = dirname(file);
  if (doc.errors.length === 0 && doc.contents !== null) {
    const fields = mapFields(ctx, doc.contents, "", TOP_KEYS);
    const str = (f: typeof fields, name: string, field: string): string | undefined => {
      const c = child(f, name);
      if (!c.present) return undefined;
      const node = c.node as { value?: unknown } | null;
      // Durations may be written as bare numbers of seconds.
      if (typeof node?.value === "number") return String(node.value);
      return readNonEmptyString(ctx, c.node, field, c.key);
    };
    const path = (value: string | undefined): string | undefined => (value === undefined ? undefined : resolve(dir, value));
    input.listen = str(fields, "listen", "listen");
    input.issuer = str(fields, "issuer", "issuer");
    input.policy = path(str(fields, "policy", "policy"));
    input.signingKeys = path(str(fields, "signingKeys", "signingKeys"));
    input.tokenTtl = str(fields, "tokenTtl", "tokenTtl");
    input.clockSkew = str(fields, "clockSkew", "clockSkew");
    input.reloadInterval = str(fields, "reloadInterval", "reloadInterval");
    const tls = child(fields, "tls");
    if (tls.present) {
      const t = mapFields(ctx, tls.node, "tls", ["cert", "key", "clientCa"], tls.key);
      input.tlsCert = path(str(t, "cert", "tls.cert"));
      input.tlsKey = path(str(t, "key", "tls.key"));
      input.clientCa = path(str(t, "clientCa", "tls.clientCa"));
    }
    const person = child(fields, "personTokens");
    if (person.present) {
      const p = mapFields(ctx, person.node, "personTokens", ["issuer", "jwks", "audience"], person.key);
      input.personIssuer = str(p, "issuer", "personTokens.issuer");
      const jwks = str(p, "jwks", "personTokens.jwks");
      input.personJwks = jwks === undefined || /^[a-z]+:\/\//i.test(jwks) ? jwks : resolve(dir, jwks);
      input.personAudience = str(p, "audience", "personTokens.audience");
    }
    const txn = child(fields, "txnTokens");
    if (txn.present) {
      input.txnTokens = "true";
      // An empty `txnTokens:` turns minting on with the defaults.
      const empty = txn.node === null || txn.node === undefined || (isScalar(txn.node) && txn.node.value === null);
      if (!empty) {
        const t = mapFields(ctx, txn.node, "txnTokens", ["tokenTtl", "audience"], txn.key);
        input.txnTokenTtl = str(t, "tokenTtl", "txnTokens.tokenTtl");
        input.txnAudience = str(t, "audience", "txnTokens.audience");
      }
    }
  }
  if (ctx.errors.length > 0) return { ok: false, errors: ctx.errors.map((e: SchemaProblem) => `${file}:${e.line}:${e.column}: ${e.field}: ${e.problem}`) };
  return { ok: true, input };
}

/** Merges file values with flag values (flags win) and checks the result; `field (--flag)` names each problem. */
export function resolveStsConfig(fromFile: StsConfigInput, fromFlags: StsConfigInput): StsConfigResult {
  const v: StsConfigInput = { ...fromFile };
  for (const [k, value] of Object.entries(fromFlags) as [keyof StsConfigInput, string | undefined][]) if (value !== undefined) v[k] = value;
  const errors: string[] = [];
  const required = (value: string | undefined, field: string, flag: string): string => {
    if (value === undefined || value.length === 0) errors.push(`${field} (--${flag}): is required`);
    return value ?? "";
  };
  const listen = v.listen ?? DEFAULT_STS_LISTEN;
  const m = /^(.*):(\d{1,5})$/.exec(listen);
  const port = m ? Number(m[2]) : NaN;
  if (!m || m[1] === "" || port > 65535) errors.push(`listen (--listen): ${JSON.stringify(listen)} is not host:port`);
  const issuer = required(v.issuer, "issuer", "issuer");
  if (issuer !== "" && !URL.canParse(issuer)) errors.push(`issuer (--issuer): ${JSON.stringify(issuer)} is not a URL (the policy's tokens.issuer names the same string)`);
  const duration = (value: string | undefined, field: string, flag: string, fallback: number, min: number, max: number): number => {
    if (value === undefined) return fallback;
    const seconds = parseDuration(/^\d+(\.\d+)?$/.test(value) ? Number(value) : value);
    if (seconds === undefined || seconds < min || seconds > max) {
      errors.push(`${field} (--${flag}): must be a duration such as "60s" or "2m" between ${min}s and ${max}s, not ${JSON.stringify(value)}`);
      return fallback;
    }
    return seconds;
  };
  const personIssuer = v.personIssuer;
  const personJwks = v.personJwks;
  if ((personIssuer === undefined) !== (personJwks === undefined)) {
    errors.push("personTokens (--person-issuer, --person-jwks): issuer and jwks go together; give both or neither");
  }
  const txnOn = v.txnTokens !== undefined || v.txnTokenTtl !== undefined || v.txnAudience !== undefined;
  if (v.txnAudience !== undefined && !TRUST_DOMAIN.test(v.txnAudience)) {
    errors.push(`txnTokens.audience (--txn-audience): ${JSON.stringify(v.txnAudience)} is not a trust domain name (lower-case a-z 0-9 . - _, no scheme), as the policy's trustDomains spell it`);
  }
  const txnTtl = duration(v.txnTokenTtl, "txnTokens.tokenTtl", "txn-token-ttl", 300, 1, 3600);
  const config: StsConfig = {
    host: m?.[1]?.replace(/^\[(.*)\]$/, "$1") ?? "",
    port,
    issuer,
    policyFile: required(v.policy, "policy", "policy"),
    signingKeys: required(v.signingKeys, "signingKeys", "signing-keys"),
    tokenTtlSeconds: duration(v.tokenTtl, "tokenTtl", "token-ttl", 60, 1, 3600),
    clockSkewSeconds: duration(v.clockSkew, "clockSkew", "clock-skew", 30, 0, 300),
    reloadIntervalSeconds: duration(v.reloadInterval, "reloadInterval", "reload-interval", 30, 1, 86_400),
    tlsCert: required(v.tlsCert, "tls.cert", "tls-cert"),
    tlsKey: required(v.tlsKey, "tls.key", "tls-key"),
    clientCa: required(v.clientCa, "tls.clientCa", "client-ca"),
    personTokens:
      personIssuer !== undefined && personJwks !== undefined
        ? { issuer: personIssuer, jwks: /^[a-z]+:\/\//i.test(personJwks) ? personJwks : resolve(personJwks), audience: v.personAudience }
        : undefined,
    txnTokens: txnOn ? { ttlSeconds: txnTtl, audience: v.txnAudience } : undefined,
  };
  return errors.length > 0 ? { ok: false, errors } : { ok: true, config };
}
