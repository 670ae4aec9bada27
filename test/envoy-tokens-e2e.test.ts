// Delegation tokens end to end through real Envoy: the token service
// (in-process, mutual TLS, as in test/sts.test.ts) issues each hop's token,
// the agents obtain them with the client helper (hopwarden/client) and call
// the next agent through the front proxy presenting their own certificate,
// and a real hopwarden requires and verifies the token on every hop against
// the JWKS the service publishes. Then the attacks a token must stop, each
// denied by Envoy with the SPEC 4 status and x-authz-reason.

import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { request as httpsRequest } from "node:https";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { exportJWK } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { silentLogger } from "../src/adapters/logging/logger.js";
import { resolveStsConfig } from "../src/adapters/sts/sts-config.js";
import { startStsService, type StsService } from "../src/adapters/sts/sts-service.js";
import { nestActors } from "../src/adapters/tokens/delegation-token-format.js";
import { DelegationClient, type OutgoingDelegation } from "../src/client/index.js";
import type { Decision } from "../src/core/decision/decision.js";
import type { DecisionSink } from "../src/core/ports.js";
import { REASON_STATUS, type DenialReason } from "../src/core/reasons.js";
import { startHopwarden, type Hopwarden } from "../src/main.js";
import { createSigningKey, signToken, type TestSigningKey } from "./support/delegation-tokens.js";
import { envoyBinary, mtlsRequest, startEchoUpstream, startFrontProxy, type EchoUpstream, type HttpResult, type RunningProxy } from "./support/envoy.js";
import { createTestPki, spiffe, writePki, type TestPki } from "./support/pki.js";

const ISSUER = "https://sts.test";
const IDP = "https://idp.example.com";
const PERSON = "alice@example.com";
const STS_KID = "sts-e2e-1";

// Tokens required on every hop; research may only read db.
const POLICY = `version: "envoy-tokens-1"
trustDomains: [example.org]
maxChainLength: 3
requireOnBehalfOf: true
onBehalfOf: ["*@example.com"]
agents:
  orchestrator: ${spiffe("orchestrator")}
  research: ${spiffe("research")}
  db: ${spiffe("db")}
hops:
  - from: orchestrator
    to: research
    scopes: [research:search, db:read]
  - from: research
    to: db
    methods: [GET]
    paths: ["/query"]
    scopes: [db:read]
requireVia:
  - to: db
    via: [research]
tokens:
  issuer: ${ISSUER}
  jwks: jwks.json
  required: true
  singleUse: false
  clockSkew: 5s
`;

type Agent = "orchestrator" | "research";

class RecordingSink implements DecisionSink {
  readonly decisions = new Map<string, Decision>();
  record(decision: Decision): void {
    this.decisions.set(decision.decisionId, decision);
  }
}

function payloadOf(token: string): Record<string, unknown> {
  return JSON.parse(Buffer.from(token.split(".")[1]!, "base64url").toString("utf8")) as Record<string, unknown>;
}

/** GET over TLS without a client certificate (the JWKS route needs none). */
function getJson(url: string, ca: string): Promise<unknown> {
  return new Promise((ok, fail) => {
    const req = httpsRequest(url, { ca, servername: "localhost", agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => (res.statusCode === 200 ? ok(JSON.parse(Buffer.concat(chunks).toString("utf8"))) : fail(new Error(`GET ${url}: HTTP ${res.statusCode}`))));
    });
    req.on("error", fail);
    req.end();
  });
}

let dir: string;
let pki: TestPki;
let files: Awaited<ReturnType<typeof writePki>>;
let idpKey: TestSigningKey;
let stsKey: TestSigningKey;
let sts: StsService | undefined;
let hopwarden: Hopwarden | undefined;
let proxy: RunningProxy | undefined;
let research: EchoUpstream | undefined;
let db: EchoUpstream | undefined;
const sink = new RecordingSink();

beforeAll(async () => {
  envoyBinary(); // a missing Envoy fails here with the install hint
  dir = await mkdtemp(join(tmpdir(), "hopwarden-envoy-tokens-"));
  [pki, idpKey, stsKey] = await Promise.all([createTestPki(), createSigningKey("ES256", "idp-1"), createSigningKey("ES256", STS_KID)]);
  files = await writePki(pki, join(dir, "pki"));
  await mkdir(join(dir, "sts-keys"));
  await Promise.all([
    writeFile(join(dir, "policy.yaml"), POLICY),
    writeFile(join(dir, "idp-jwks.json"), JSON.stringify({ keys: [idpKey.publicJwk] })),
    // The service signs with this key; the test keeps it to model a compromised or buggy issuer.
    writeFile(join(dir, "sts-keys", "sts.jwk"), JSON.stringify({ ...(await exportJWK(stsKey.privateKey)), kid: STS_KID, alg: "ES256" }), { mode: 0o600 }),
  ]);
  const config = resolveStsConfig(
    {},
    {
      listen: "127.0.0.1:0",
      issuer: ISSUER,
      policy: join(dir, "policy.yaml"),
      signingKeys: join(dir, "sts-keys"),
      tokenTtl: "60s",
      clockSkew: "5s",
      tlsCert: files.server!.cert,
      tlsKey: files.server!.key,
      clientCa: files.ca.cert,
      personIssuer: IDP,
      personJwks: join(dir, "idp-jwks.json"),
      personAudience: "hopwarden-sts",
    },
  );
  if (!config.ok) throw new Error(config.errors.join("\n"));
  sts = await startStsService(config.config, silentLogger);
  // tokens.jwks: the service's published key set, saved beside the policy.
  await writeFile(join(dir, "jwks.json"), JSON.stringify(await getJson(`${sts.url}/.well-known/jwks.json`, pki.ca.certPem)));

  [hopwarden, research, db] = await Promise.all([
    startHopwarden({ policyFile: join(dir, "policy.yaml"), listen: "127.0.0.1:0", logger: silentLogger, tracing: false, sinks: [sink], watchPolicy: false }),
    startEchoUpstream(),
    startEchoUpstream(),
  ]);
  proxy = await startFrontProxy({ server: files.server!, caFile: files.ca.cert, hopwardenPort: hopwarden.grpcPort, researchPort: research.port, dbPort: db.port, dir });
}, 30_000);

afterAll(async () => {
  await proxy?.stop();
  await hopwarden?.shutdown(1_000);
  await Promise.all([research?.close(), db?.close(), sts?.close()]);
  if (dir !== undefined) await rm(dir, { recursive: true, force: true });
});

function clientFor(agent: Agent): DelegationClient {
  // The test server certificate names localhost, not 127.0.0.1.
  return new DelegationClient({ tokenEndpoint: `${sts!.url}/token`, cert: pki.agents[agent].certPem, key: pki.agents[agent].keyPem, ca: pki.ca.certPem, servername: "localhost" });
}

/** An agent calls the next one through Envoy, presenting its own certificate. */
function callThroughEnvoy(as: Agent, to: "research" | "db", path: string, headers: Readonly<Record<string, string>>): Promise<HttpResult> {
  return mtlsRequest({ port: proxy!.port, authority: to, path, ca: files.ca.cert, cert: files[as]!.cert, key: files[as]!.key, headers });
}

const upstreamHits = () => research!.requests.length + db!.requests.length;

async function personToken(): Promise<string> {
  const iat = Math.floor(Date.now() / 1000);
  return signToken(idpKey, { iss: IDP, sub: PERSON, aud: "hopwarden-sts", iat, exp: iat + 300, scope: "research:search db:read db:write" }, { typ: "at+jwt" });
}

describe("alice → orchestrator → research → db, every hop with a token from the STS", () => {
  let hop1: OutgoingDelegation;
  let hop2: OutgoingDelegation;
  let atResearch: HttpResult;
  let atDb: HttpResult;

  beforeAll(async () => {
    // orchestrator, called by alice with her token, starts the chain and calls research.
    hop1 = await clientFor("orchestrator").startChain({ personToken: await personToken(), audience: "research" });
    atResearch = await callThroughEnvoy("orchestrator", "research", "/search?q=q3", hop1.headers);
    // research carries on from what Envoy delivered to it and calls db.
    const inbound = research!.requests.at(-1)!.headers;
    hop2 = await clientFor("research").continueChain({ inbound, audience: "db", scope: "db:read" });
    atDb = await callThroughEnvoy("research", "db", "/query", hop2.headers);
  });

  it("the client helper produced the chain's headers and narrowed tokens", () => {
    expect(hop1.headers).toEqual({
      "x-agent-subject": spiffe("orchestrator"),
      "x-agent-on-behalf-of": PERSON,
      "x-agent-delegation-chain": spiffe("orchestrator"),
      "x-agent-delegation-token": hop1.token,
    });
    expect(hop2.headers).toEqual({
      "x-agent-subject": spiffe("research"),
      "x-agent-on-behalf-of": PERSON,
      "x-agent-delegation-chain": `${spiffe("orchestrator")},${spiffe("research")}`,
      "x-agent-delegation-token": hop2.token,
    });
    expect(hop1.scope).toEqual(["research:search", "db:read"]);
    expect(hop2.scope).toEqual(["db:read"]);
    expect(payloadOf(hop2.token)).toMatchObject({ iss: ISSUER, sub: PERSON, aud: spiffe("db"), act: nestActors([spiffe("orchestrator"), spiffe("research")]) });
  });

  it("orchestrator → research is allowed; research receives the verified headers and its inbound token", () => {
    expect(atResearch.status, atResearch.body).toBe(200);
    const seen = research!.requests.at(-1)!.headers;
    expect(seen["x-agent-verified-subject"]).toBe(spiffe("orchestrator"));
    expect(seen["x-agent-verified-on-behalf-of"]).toBe(PERSON);
    expect(seen["x-agent-verified-chain"]).toBe(spiffe("orchestrator"));
    expect(seen["x-agent-delegation-token"]).toBe(hop1.token);
    expect(sink.decisions.get(seen["x-authz-decision-id"] as string)).toMatchObject({ allowed: true, callee: spiffe("research"), tokenId: payloadOf(hop1.token).jti });
  });

  it("research → db is allowed; db receives the verified headers of the whole chain", () => {
    expect(atDb.status, atDb.body).toBe(200);
    expect(db!.requests).toHaveLength(1);
    const seen = db!.requests[0]!.headers;
    expect(seen["x-agent-verified-subject"]).toBe(spiffe("research"));
    expect(seen["x-agent-verified-on-behalf-of"]).toBe(PERSON);
    expect(seen["x-agent-verified-chain"]).toBe(`${spiffe("orchestrator")},${spiffe("research")}`);
    expect(seen["x-agent-delegation-token"]).toBe(hop2.token);
    expect(sink.decisions.get(seen["x-authz-decision-id"] as string)).toMatchObject({
      allowed: true,
      caller: spiffe("research"),
      callee: spiffe("db"),
      chain: [spiffe("orchestrator"), spiffe("research")],
      tokenId: payloadOf(hop2.token).jti,
    });
  });

  describe("attacks, each denied by Envoy with the SPEC 4 status and reason, forwarding nothing", () => {
    async function expectDenied(as: Agent, to: "research" | "db", path: string, headers: Readonly<Record<string, string>>, reason: DenialReason): Promise<void> {
      const before = upstreamHits();
      const response = await callThroughEnvoy(as, to, path, headers);
      expect(response.status, response.body).toBe(REASON_STATUS[reason].http);
      expect(response.headers["x-authz-reason"]).toBe(reason);
      const body = JSON.parse(response.body) as { error: string; decision_id: string };
      expect(body.error).toBe(reason);
      expect(sink.decisions.get(body.decision_id)).toMatchObject({ allowed: false, reason });
      expect(upstreamHits()).toBe(before);
    }

    it("research forges the chain header to hide orchestrator (token_chain_mismatch)", async () => {
      // The headers alone pass: research → db is allowed, and db is reached via research.
      await expectDenied("research", "db", "/query", { ...hop2.headers, "x-agent-delegation-chain": spiffe("research") }, "token_chain_mismatch");
    });

    it("orchestrator replays research's token with its own certificate (cnf mismatch: token_invalid)", async () => {
      await expectDenied("orchestrator", "research", "/search", { ...hop1.headers, "x-agent-delegation-token": hop2.token }, "token_invalid");
    });

    it("a token wider than the hop rule's scopes (token_scope_exceeded), which the STS refuses to issue", async () => {
      const inbound = research!.requests[0]!.headers;
      await expect(clientFor("research").continueChain({ inbound, audience: "db", scope: "db:read db:write" })).rejects.toMatchObject({ code: "invalid_scope" });
      // A compromised or buggy issuer signs it anyway, with the service's own key.
      const wide = await signToken(stsKey, { ...payloadOf(hop2.token), jti: "wide-scope-1", scope: "db:read db:write" });
      await expectDenied("research", "db", "/query", { ...hop2.headers, "x-agent-delegation-token": wide }, "token_scope_exceeded");
    });

    it("a call without a token (token_missing)", async () => {
      const { "x-agent-delegation-token": _dropped, ...headersOnly } = hop2.headers;
      await expectDenied("research", "db", "/query", headersOnly, "token_missing");
    });
  });
});
