// The token service as the suites run it, set up once here: in-process
// (startStsService) on 127.0.0.1, mutual TLS from a fresh test PKI (its
// server certificate names localhost), the identity provider whose person
// tokens start a chain, a signing key, and the policy the suite gives it.
// Then what an agent does with it: exchange tokens through the client
// helper or a raw HTTPS call, and read the JWKS it publishes (which Check
// verifies with, saved beside the policy as tokens.jwks: jwks.json).

import { generateKeyPairSync } from "node:crypto";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { request as httpsRequest } from "node:https";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { exportJWK } from "jose";
import { systemClock } from "../../src/adapters/clock/system-clock.js";
import { silentLogger, type Logger } from "../../src/adapters/logging/logger.js";
import { resolveStsConfig, type StsConfigInput } from "../../src/adapters/sts/sts-config.js";
import { startStsService, type StsService } from "../../src/adapters/sts/sts-service.js";
import { DelegationClient } from "../../src/client/index.js";
import type { Clock } from "../../src/core/ports.js";
import { createSigningKey, PERSON, signToken, type TestSigningKey } from "./delegation-tokens.js";
import { createTestPki, writePki, type IssuedCertificate, type TestPki } from "./pki.js";

/** The iss of the tokens the test token service issues. */
export const STS_ISSUER = "https://sts.test";
/** The identity provider whose person tokens start a chain. */
export const IDP_ISSUER = "https://idp.example.com";
/** The aud a person token must name for the token service. */
export const STS_AUDIENCE = "hopwarden-sts";

/** The identity provider: its key, its JWKS file (the token service's personTokens.jwks), and the person's tokens. */
export interface TestIdentityProvider {
  readonly key: TestSigningKey;
  readonly jwksFile: string;
  /** A person token for alice (typ at+jwt, 5 minutes from the clock's now); `claims` add or replace claims. */
  personToken(claims?: Record<string, unknown>): Promise<string>;
}

/** Writes `<dir>/idp-jwks.json`; person tokens carry `scope` unless a call says otherwise. */
export async function createIdentityProvider(dir: string, scope: string, clock: Clock = systemClock): Promise<TestIdentityProvider> {
  const key = await createSigningKey("ES256", "idp-1");
  const jwksFile = join(dir, "idp-jwks.json");
  await writeFile(jwksFile, JSON.stringify({ keys: [key.publicJwk] }));
  return {
    key,
    jwksFile,
    personToken(claims = {}) {
      const iat = Math.floor(clock.nowMs() / 1000);
      return signToken(key, { iss: IDP_ISSUER, sub: PERSON, aud: STS_AUDIENCE, iat, exp: iat + 300, scope, ...claims }, { typ: "at+jwt" });
    },
  };
}

/** GET a JSON document over TLS without a client certificate (the JWKS route needs none), bounded to 5 s. */
export function getJsonOverTls(url: string, ca: string | Buffer): Promise<unknown> {
  return new Promise((ok, fail) => {
    const req = httpsRequest(url, { ca, servername: "localhost", agent: false, timeout: 5_000 }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => (res.statusCode === 200 ? ok(JSON.parse(Buffer.concat(chunks).toString("utf8"))) : fail(new Error(`GET ${url}: HTTP ${res.statusCode}`))));
    });
    req.on("timeout", () => req.destroy(new Error(`GET ${url}: no answer within 5 s`)));
    req.on("error", fail);
    req.end();
  });
}

/** The form of an RFC 8693 token exchange. */
export function exchangeForm(subjectToken: string, audience: string, extra: Record<string, string> = {}): Record<string, string> {
  return {
    grant_type: "urn:ietf:params:oauth:grant-type:token-exchange",
    subject_token: subjectToken,
    subject_token_type: "urn:ietf:params:oauth:token-type:jwt",
    audience,
    ...extra,
  };
}

/** A compact JWS's header and payload, unverified. */
export function decodeToken(token: string): { header: Record<string, unknown>; payload: Record<string, unknown> } {
  const [h, p] = token.split(".");
  const part = (b64: string | undefined) => JSON.parse(Buffer.from(b64 ?? "", "base64url").toString("utf8")) as Record<string, unknown>;
  return { header: part(h), payload: part(p) };
}

export interface TestStsOptions {
  /** The policy file's text (policy.yaml in the service's directory). */
  readonly policy: string;
  /** Scope of the identity provider's person tokens. */
  readonly personScope: string;
  /** Settings beyond the defaults (listen 127.0.0.1:0, STS_ISSUER, the PKI, the identity provider), e.g. tokenTtl, clockSkew, txnTokenTtl. */
  readonly settings?: Omit<StsConfigInput, "policy" | "signingKeys" | "tlsCert" | "tlsKey" | "clientCa" | "personJwks">;
  /** The key the service signs with, written as a JWK with its kid (a suite that must forge its signatures keeps it); default a fresh P-256 PEM key. */
  readonly signingKey?: TestSigningKey;
  /** The service's clock, and the person tokens'. */
  readonly clock?: Clock;
  /** Where the service logs; default nowhere. */
  readonly logger?: Logger;
  readonly dirPrefix?: string;
}

export interface TestSts {
  /** Holds policy.yaml, pki/, keys/, idp-jwks.json, and jwks.json once saveJwks() ran. */
  readonly dir: string;
  readonly policyFile: string;
  /** The signing keys' directory (the service reads every key file in it). */
  readonly keysDir: string;
  readonly pki: TestPki;
  readonly files: Awaited<ReturnType<typeof writePki>>;
  readonly idp: TestIdentityProvider;
  readonly service: StsService;
  /** https://127.0.0.1:port */
  readonly url: string;
  /** The agent's client helper, presenting its certificate. */
  clientFor(agent: IssuedCertificate): DelegationClient;
  /** A raw HTTPS call; `agent` undefined presents no client certificate. The body is form-encoded. */
  call(method: string, path: string, agent: IssuedCertificate | undefined, form?: Record<string, string>, contentType?: string): Promise<{ status: number; body: Record<string, unknown> }>;
  /** Saves the JWKS the service publishes as jwks.json beside the policy (tokens.jwks: jwks.json) and returns it. */
  saveJwks(): Promise<unknown>;
  /** Stops the service and removes its directory. */
  close(): Promise<void>;
}

export async function startTestSts(options: TestStsOptions): Promise<TestSts> {
  const clock = options.clock ?? systemClock;
  const dir = await mkdtemp(join(tmpdir(), options.dirPrefix ?? "hopwarden-sts-"));
  try {
    const pki = await createTestPki();
    const [files, idp] = await Promise.all([writePki(pki, join(dir, "pki")), createIdentityProvider(dir, options.personScope, clock)]);
    const policyFile = join(dir, "policy.yaml");
    const keysDir = join(dir, "keys");
    await mkdir(keysDir);
    await writeFile(policyFile, options.policy);
    const key = options.signingKey;
    if (key === undefined) {
      await writeFile(join(keysDir, "2026-01.pem"), generateKeyPairSync("ec", { namedCurve: "P-256" }).privateKey.export({ format: "pem", type: "pkcs8" }), { mode: 0o600 });
    } else {
      await writeFile(join(keysDir, `${key.kid}.jwk`), JSON.stringify({ ...(await exportJWK(key.privateKey)), kid: key.kid, alg: key.alg }), { mode: 0o600 });
    }
    const config = resolveStsConfig(
      {},
      {
        listen: "127.0.0.1:0",
        issuer: STS_ISSUER,
        personIssuer: IDP_ISSUER,
        personAudience: STS_AUDIENCE,
        ...options.settings,
        policy: policyFile,
        signingKeys: keysDir,
        tlsCert: files.server!.cert,
        tlsKey: files.server!.key,
        clientCa: files.ca.cert,
        personJwks: idp.jwksFile,
      },
    );
    if (!config.ok) throw new Error(config.errors.join("\n"));
    const service = await startStsService(config.config, options.logger ?? silentLogger, clock);
    const call: TestSts["call"] = (method, path, agent, form, contentType = "application/x-www-form-urlencoded") => {
      const body = form === undefined ? undefined : new URLSearchParams(form).toString();
      return new Promise((resolve, reject) => {
        const req = httpsRequest(
          `${service.url}${path}`,
          {
            method,
            ca: pki.ca.certPem,
            servername: "localhost",
            ...(agent !== undefined && { cert: agent.certPem, key: agent.keyPem }),
            headers: body === undefined ? {} : { "content-type": contentType },
            agent: false,
          },
          (res) => {
            const chunks: Buffer[] = [];
            res.on("data", (c: Buffer) => chunks.push(c));
            res.on("end", () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(Buffer.concat(chunks).toString("utf8")) as Record<string, unknown> }));
          },
        );
        req.on("error", reject);
        req.end(body);
      });
    };
    return {
      dir,
      policyFile,
      keysDir,
      pki,
      files,
      idp,
      service,
      url: service.url,
      // The test server certificate names localhost, not 127.0.0.1.
      clientFor: (agent) => new DelegationClient({ tokenEndpoint: `${service.url}/token`, cert: agent.certPem, key: agent.keyPem, ca: pki.ca.certPem, servername: "localhost" }),
      call,
      async saveJwks() {
        const jwks = await getJsonOverTls(`${service.url}/.well-known/jwks.json`, pki.ca.certPem);
        await writeFile(join(dir, "jwks.json"), JSON.stringify(jwks));
        return jwks;
      },
      async close() {
        await service.close();
        await rm(dir, { recursive: true, force: true });
      },
    };
  } catch (err) {
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
}
