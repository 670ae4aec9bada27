// The token service minting Transaction Tokens (SPEC 8, docs/transaction-tokens.md):
// real mutual TLS on 127.0.0.1, the test PKI's agents, a first hop that gets
// a Txn-Token beside its delegation token, later hops that carry it along
// unmodified, and Check's Txn-Token verifier reading the JWKS the service
// publishes.

import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { generateKeyPairSync } from "node:crypto";
import { request as httpsRequest } from "node:https";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { silentLogger } from "../src/adapters/logging/logger.js";
import { resolveStsConfig } from "../src/adapters/sts/sts-config.js";
import { startStsService, type StsService } from "../src/adapters/sts/sts-service.js";
import { JwksDelegationTokenVerifier } from "../src/adapters/tokens/delegation-token-verifier.js";
import { KeySourceRegistry } from "../src/adapters/tokens/key-source-registry.js";
import { JwksTxnTokenVerifier } from "../src/adapters/tokens/txn-token-verifier.js";
import { DelegationClient, type OutgoingDelegation } from "../src/client/index.js";
import { checkTxnTokenSubject } from "../src/core/decision/txn-token-check.js";
import type { TxnTokenPolicy } from "../src/core/policy/model.js";
import { createSigningKey, signToken } from "./support/delegation-tokens.js";
import { createTestPki, spiffe, writePki, type IssuedCertificate, type TestPki } from "./support/pki.js";

const ISSUER = "https://sts.test";
const IDP = "https://idp.example.com";
const PERSON = "alice@example.com";

const POLICY = `
version: "sts-txn-1"
trustDomains: [example.org]
onBehalfOf: ["*@example.com"]
agents:
  orchestrator: ${spiffe("orchestrator")}
  planner: ${spiffe("planner")}
  worker: ${spiffe("worker")}
hops:
  - from: orchestrator
    to: planner
    scopes: [plan, db:read]
  - from: planner
    to: worker
    scopes: [db:read]
`;

let dir: string;
let pki: TestPki;
let service: StsService;
let idpKey: Awaited<ReturnType<typeof createSigningKey>>;
let txnPolicy: TxnTokenPolicy;
let registry: KeySourceRegistry;

function clientFor(agent: IssuedCertificate): DelegationClient {
  return new DelegationClient({ tokenEndpoint: `${service.url}/token`, cert: agent.certPem, key: agent.keyPem, ca: pki.ca.certPem, servername: "localhost" });
}

async function personToken(): Promise<string> {
  const iat = Math.floor(Date.now() / 1000);
  return signToken(idpKey, { iss: IDP, sub: PERSON, aud: "hopwarden-sts", iat, exp: iat + 300, scope: "plan db:read" }, { typ: "at+jwt" });
}

function decode(token: string): { header: Record<string, unknown>; payload: Record<string, unknown> } {
  const [h, p] = token.split(".");
  return {
    header: JSON.parse(Buffer.from(h!, "base64url").toString("utf8")) as Record<string, unknown>,
    payload: JSON.parse(Buffer.from(p!, "base64url").toString("utf8")) as Record<string, unknown>,
  };
}

/** Raw HTTPS call to the service with an agent's certificate. */
function call(method: string, path: string, agent: IssuedCertificate | undefined, form?: Record<string, string>): Promise<{ status: number; body: Record<string, unknown> }> {
  const body = form === undefined ? undefined : new URLSearchParams(form).toString();
  return new Promise((resolve, reject) => {
    const req = httpsRequest(
      `${service.url}${path}`,
      {
        method,
        ca: pki.ca.certPem,
        servername: "localhost",
        ...(agent !== undefined && { cert: agent.certPem, key: agent.keyPem }),
        headers: body === undefined ? {} : { "content-type": "application/x-www-form-urlencoded" },
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
}

const exchangeForm = (subjectToken: string, audience: string) => ({
  grant_type: "urn:ietf:params:oauth:grant-type:token-exchange",
  subject_token: subjectToken,
  subject_token_type: "urn:ietf:params:oauth:token-type:jwt",
  audience,
});

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "hopwarden-sts-txn-"));
  [pki, idpKey] = await Promise.all([createTestPki(), createSigningKey("ES256", "idp-1")]);
  const paths = await writePki(pki, join(dir, "pki"));
  await writeFile(join(dir, "policy.yaml"), POLICY);
  await writeFile(join(dir, "idp-jwks.json"), JSON.stringify({ keys: [idpKey.publicJwk] }));
  await mkdir(join(dir, "keys"));
  await writeFile(join(dir, "keys", "k1.pem"), generateKeyPairSync("ec", { namedCurve: "P-256" }).privateKey.export({ format: "pem", type: "pkcs8" }));
  const config = resolveStsConfig(
    {},
    {
      listen: "127.0.0.1:0",
      issuer: ISSUER,
      policy: join(dir, "policy.yaml"),
      signingKeys: join(dir, "keys"),
      tlsCert: paths.server!.cert,
      tlsKey: paths.server!.key,
      clientCa: paths.ca.cert,
      personIssuer: IDP,
      personJwks: join(dir, "idp-jwks.json"),
      personAudience: "hopwarden-sts",
      txnTokenTtl: "5m",
    },
  );
  if (!config.ok) throw new Error(config.errors.join("\n"));
  service = await startStsService(config.config, silentLogger);
  // Check's side: the published JWKS beside the policy, as txnTokens.jwks names it.
  const jwks = await call("GET", "/.well-known/jwks.json", undefined);
  await writeFile(join(dir, "jwks.json"), JSON.stringify(jwks.body));
  txnPolicy = { issuer: ISSUER, jwks: "jwks.json", required: true, clockSkewSeconds: 5 };
  registry = new KeySourceRegistry({ baseDir: dir });
});

afterAll(async () => {
  await service?.close();
  if (dir !== undefined) await rm(dir, { recursive: true, force: true });
});

describe("the first hop gets a Txn-Token beside its delegation token", () => {
  let hop1: OutgoingDelegation;

  beforeAll(async () => {
    hop1 = await clientFor(pki.agents.orchestrator).startChain({ personToken: await personToken(), audience: "planner" });
  });

  it("returns it as txn_token in the token response, and the client sends it as the txn-token header", async () => {
    expect(hop1.txnToken).toMatch(/^[\w-]+\.[\w-]+\.[\w-]+$/);
    expect(hop1.headers["txn-token"]).toBe(hop1.txnToken);
    const raw = await call("POST", "/token", pki.agents.orchestrator, exchangeForm(await personToken(), "planner"));
    expect(raw.status).toBe(200);
    expect(raw.body).toMatchObject({ issued_token_type: "urn:ietf:params:oauth:token-type:jwt", token_type: "N_A", txn_token_expires_in: 300 });
    expect(typeof raw.body.txn_token).toBe("string");
  });

  it("is a Txn-Token of the draft's format: typ txntoken+jwt, the person as sub, the trust domain as aud, a fresh txn", () => {
    const { header, payload } = decode(hop1.txnToken!);
    expect(header).toMatchObject({ typ: "txntoken+jwt", alg: "ES256" });
    expect(payload).toMatchObject({ iss: ISSUER, sub: PERSON, aud: "example.org", scope: "plan db:read", req_wl: spiffe("orchestrator") });
    expect(payload.txn).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
    expect((payload.exp as number) - (payload.iat as number)).toBe(300);
    expect(decode(hop1.token).header).toMatchObject({ typ: "agent-delegation+jwt" });
  });

  it("passes Check's Txn-Token verifier with the published keys, and its sub is the on-behalf-of", async () => {
    const result = await new JwksTxnTokenVerifier({ keySources: registry }).verify({ token: hop1.txnToken!, policy: txnPolicy, trustDomains: new Set(["example.org"]), nowMs: Date.now() });
    expect(result).toMatchObject({ ok: true, sub: PERSON, issuer: ISSUER, audience: "example.org", txn: decode(hop1.txnToken!).payload.txn });
    if (result.ok) expect(checkTxnTokenSubject(result.sub, hop1.headers["x-agent-on-behalf-of"])).toBeUndefined();
  });

  it("keeps the two token types apart although one key signs both (explicit typing)", async () => {
    const txnVerifier = new JwksTxnTokenVerifier({ keySources: registry });
    expect(await txnVerifier.verify({ token: hop1.token, policy: txnPolicy, trustDomains: new Set(["example.org"]), nowMs: Date.now() })).toMatchObject({ ok: false, reason: "token_invalid" });
    const delegation = new JwksDelegationTokenVerifier({ baseDir: dir, keySources: registry });
    const asDelegation = await delegation.verify({
      token: hop1.txnToken!,
      policy: { issuer: ISSUER, jwks: "jwks.json", required: true, singleUse: false, clockSkewSeconds: 5 },
      chain: [spiffe("orchestrator")],
      caller: spiffe("orchestrator"),
      callee: spiffe("planner"),
      onBehalfOf: PERSON,
      peerX5tS256: undefined,
      allowedScopes: undefined,
      nowMs: Date.now(),
    });
    expect(asDelegation).toMatchObject({ ok: false, reason: "token_invalid" });
  });

  it("refuses a Txn-Token offered as a subject token (invalid_grant): it names a transaction, not a grant", async () => {
    const res = await call("POST", "/token", pki.agents.orchestrator, exchangeForm(hop1.txnToken!, "planner"));
    expect(res).toMatchObject({ status: 400, body: { error: "invalid_grant" } });
  });

  describe("later hops", () => {
    it("mint no new Txn-Token: the agent forwards the one it received, unmodified", async () => {
      const inbound = {
        "x-agent-verified-subject": spiffe("orchestrator"),
        "x-agent-verified-on-behalf-of": PERSON,
        "x-agent-verified-chain": spiffe("orchestrator"),
        "x-agent-delegation-token": hop1.token,
        "txn-token": hop1.txnToken!,
      };
      const hop2 = await clientFor(pki.agents.planner).continueChain({ inbound, audience: "worker" });
      expect(hop2.headers["txn-token"]).toBe(hop1.txnToken);
      expect(hop2.txnToken).toBe(hop1.txnToken);
      const raw = await call("POST", "/token", pki.agents.planner, exchangeForm(hop1.token, "worker"));
      expect(raw.status).toBe(200);
      expect(raw.body).not.toHaveProperty("txn_token");
    });

    it("send no txn-token header when none came in", async () => {
      const inbound = {
        "x-agent-verified-subject": spiffe("orchestrator"),
        "x-agent-verified-on-behalf-of": PERSON,
        "x-agent-verified-chain": spiffe("orchestrator"),
        "x-agent-delegation-token": hop1.token,
      };
      const hop2 = await clientFor(pki.agents.planner).continueChain({ inbound, audience: "worker" });
      expect(hop2.headers).not.toHaveProperty("txn-token");
      expect(hop2.txnToken).toBeUndefined();
    });
  });
});
