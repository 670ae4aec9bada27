// Delegation tokens end to end through real Envoy: the token service
// (in-process, mutual TLS, as in test/sts.test.ts) issues each hop's token,
// the agents obtain them with the client helper (hopwarden/client) and call
// the next agent through the front proxy presenting their own certificate,
// and a real hopwarden requires and verifies the token on every hop against
// the JWKS the service publishes. Then the attacks a token must stop, each
// denied by Envoy with the SPEC 4 status and x-authz-reason.

import { createHash } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { silentLogger } from "../src/adapters/logging/logger.js";
import { nestActors } from "../src/adapters/tokens/delegation-token-format.js";
import type { OutgoingDelegation } from "../src/client/index.js";
import type { Decision } from "../src/core/decision/decision.js";
import type { DecisionSink } from "../src/core/ports.js";
import { REASON_STATUS, type DenialReason } from "../src/core/reasons.js";
import { startHopwarden, type Hopwarden } from "../src/main.js";
import { createSigningKey, PERSON, signToken, type TestSigningKey } from "./support/delegation-tokens.js";
import { envoyBinary, mtlsRequest, startEchoUpstream, startFrontProxy, type EchoUpstream, type HttpResult, type RunningProxy } from "./support/envoy.js";
import { spiffe } from "./support/pki.js";
import { DB_VIA_RESEARCH, EXAMPLE_COM_PEOPLE, policyYaml } from "./support/policies.js";
import { decodeToken, STS_ISSUER, startTestSts, type TestSts } from "./support/sts.js";

const STS_KID = "sts-e2e-1";

/** Tokens required on every hop; research may only read db. */
const POLICY = policyYaml({
  version: "envoy-tokens-1",
  maxChainLength: 3,
  ...EXAMPLE_COM_PEOPLE,
  agents: ["orchestrator", "research", "db"],
  hops: [
    { from: "orchestrator", to: "research", scopes: ["research:search", "db:read"] },
    { from: "research", to: "db", methods: ["GET"], paths: ["/query"], scopes: ["db:read"] },
  ],
  requireVia: [DB_VIA_RESEARCH],
  tokens: { issuer: STS_ISSUER, jwks: "jwks.json", required: true, singleUse: false, clockSkew: "5s" },
});

type Agent = "orchestrator" | "research";

class RecordingSink implements DecisionSink {
  readonly decisions = new Map<string, Decision>();
  record(decision: Decision): void {
    this.decisions.set(decision.decisionId, decision);
  }
}

const payloadOf = (token: string) => decodeToken(token).payload;

let sts: TestSts | undefined;
/** The key the token service signs with: the test keeps it to model a compromised or buggy issuer. */
let stsKey: TestSigningKey;
let hopwarden: Hopwarden | undefined;
let proxy: RunningProxy | undefined;
let research: EchoUpstream | undefined;
let db: EchoUpstream | undefined;
const sink = new RecordingSink();

beforeAll(async () => {
  envoyBinary(); // a missing Envoy fails here with the install hint
  stsKey = await createSigningKey("ES256", STS_KID);
  sts = await startTestSts({ policy: POLICY, personScope: "research:search db:read db:write", settings: { tokenTtl: "60s", clockSkew: "5s" }, signingKey: stsKey, dirPrefix: "hopwarden-envoy-tokens-" });
  // tokens.jwks: the service's published key set, saved beside the policy.
  await sts.saveJwks();

  [hopwarden, research, db] = await Promise.all([
    startHopwarden({ policyFile: sts.policyFile, listen: "127.0.0.1:0", logger: silentLogger, tracing: false, sinks: [sink], watchPolicy: false }),
    startEchoUpstream(),
    startEchoUpstream(),
  ]);
  proxy = await startFrontProxy({ server: sts.files.server!, caFile: sts.files.ca.cert, hopwardenPort: hopwarden.grpcPort, researchPort: research.port, dbPort: db.port, dir: sts.dir });
}, 30_000);

afterAll(async () => {
  await proxy?.stop();
  await hopwarden?.shutdown(1_000);
  await Promise.all([research?.close(), db?.close()]);
  await sts?.close();
});

const clientFor = (agent: Agent) => sts!.clientFor(sts!.pki.agents[agent]);

/** An agent calls the next one through Envoy, presenting its own certificate. */
function callThroughEnvoy(as: Agent, to: "research" | "db", path: string, headers: Readonly<Record<string, string>>): Promise<HttpResult> {
  const files = sts!.files;
  return mtlsRequest({ port: proxy!.port, authority: to, path, ca: files.ca.cert, cert: files[as]!.cert, key: files[as]!.key, headers });
}

const upstreamHits = () => research!.requests.length + db!.requests.length;

/** SPEC 5's encoding of a token's hash (its next hop's prev). */
const sha256 = (token: string) => createHash("sha256").update(token).digest("base64url");

const personToken = () => sts!.idp.personToken();

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
    expect(payloadOf(hop2.token)).toMatchObject({ iss: STS_ISSUER, sub: PERSON, aud: spiffe("db"), act: nestActors([spiffe("orchestrator"), spiffe("research")]) });
  });

  it("orchestrator → research is allowed; research receives the verified headers and its inbound token", () => {
    expect(atResearch.status, atResearch.body).toBe(200);
    const seen = research!.requests.at(-1)!.headers;
    expect(seen["x-agent-verified-subject"]).toBe(spiffe("orchestrator"));
    expect(seen["x-agent-verified-on-behalf-of"]).toBe(PERSON);
    expect(seen["x-agent-verified-chain"]).toBe(spiffe("orchestrator"));
    expect(seen["x-agent-delegation-token"]).toBe(hop1.token);
    expect(sink.decisions.get(seen["x-authz-decision-id"] as string)).toMatchObject({
      allowed: true,
      callee: spiffe("research"),
      tokenId: payloadOf(hop1.token).jti,
      // The token as Envoy passed it on: its hash is what the next token's prev names.
      tokenSha256: sha256(hop1.token),
      tokenPrev: undefined,
    });
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
      // SPEC 5's hash chain, as the audit trail records it: this hop's prev is the previous hop's hash.
      tokenSha256: sha256(hop2.token),
      tokenPrev: sha256(hop1.token),
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
