// The token service minting Transaction Tokens (SPEC 8, docs/transaction-tokens.md):
// real mutual TLS on 127.0.0.1, the test PKI's agents, a first hop that gets
// a Txn-Token beside its delegation token, later hops that carry it along
// unmodified, and Check's Txn-Token verifier reading the JWKS the service
// publishes.

import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { JwksDelegationTokenVerifier } from "../src/adapters/tokens/delegation-token-verifier.js";
import { KeySourceRegistry } from "../src/adapters/tokens/key-source-registry.js";
import { JwksTxnTokenVerifier } from "../src/adapters/tokens/txn-token-verifier.js";
import type { OutgoingDelegation } from "../src/client/index.js";
import { checkTxnTokenSubject } from "../src/core/decision/txn-token-check.js";
import type { TxnTokenPolicy } from "../src/core/policy/model.js";
import { PERSON } from "./support/delegation-tokens.js";
import { spiffe, type IssuedCertificate, type TestPki } from "./support/pki.js";
import { policyYaml } from "./support/policies.js";
import { decodeToken, exchangeForm, STS_ISSUER, startTestSts, type TestSts } from "./support/sts.js";

/** orchestrator → planner → worker, with the scopes each hop may carry. */
const POLICY = policyYaml({
  version: "sts-txn-1",
  onBehalfOf: ["*@example.com"],
  agents: ["orchestrator", "planner", "worker"],
  hops: [
    { from: "orchestrator", to: "planner", scopes: ["plan", "db:read"] },
    { from: "planner", to: "worker", scopes: ["db:read"] },
  ],
});

let sts: TestSts;
let pki: TestPki;
let txnPolicy: TxnTokenPolicy;
let registry: KeySourceRegistry;

const clientFor = (agent: IssuedCertificate) => sts.clientFor(agent);
const personToken = () => sts.idp.personToken();
const call = (...args: Parameters<TestSts["call"]>) => sts.call(...args);

beforeAll(async () => {
  sts = await startTestSts({ policy: POLICY, personScope: "plan db:read", settings: { txnTokenTtl: "5m" }, dirPrefix: "hopwarden-sts-txn-" });
  pki = sts.pki;
  // Check's side: the published JWKS beside the policy, as txnTokens.jwks names it.
  await sts.saveJwks();
  txnPolicy = { issuer: STS_ISSUER, jwks: "jwks.json", required: true, clockSkewSeconds: 5 };
  registry = new KeySourceRegistry({ baseDir: sts.dir });
});

afterAll(async () => {
  await sts?.close();
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
    const { header, payload } = decodeToken(hop1.txnToken!);
    expect(header).toMatchObject({ typ: "txntoken+jwt", alg: "ES256" });
    expect(payload).toMatchObject({ iss: STS_ISSUER, sub: PERSON, aud: "example.org", scope: "plan db:read", req_wl: spiffe("orchestrator") });
    expect(payload.txn).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
    expect((payload.exp as number) - (payload.iat as number)).toBe(300);
    expect(decodeToken(hop1.token).header).toMatchObject({ typ: "agent-delegation+jwt" });
  });

  it("passes Check's Txn-Token verifier with the published keys, and its sub is the on-behalf-of", async () => {
    const result = await new JwksTxnTokenVerifier({ keySources: registry }).verify({ token: hop1.txnToken!, policy: txnPolicy, trustDomains: new Set(["example.org"]), nowMs: Date.now() });
    expect(result).toMatchObject({ ok: true, sub: PERSON, issuer: STS_ISSUER, audience: "example.org", txn: decodeToken(hop1.txnToken!).payload.txn });
    if (result.ok) expect(checkTxnTokenSubject(result.sub, hop1.headers["x-agent-on-behalf-of"])).toBeUndefined();
  });

  it("keeps the two token types apart although one key signs both (explicit typing)", async () => {
    const txnVerifier = new JwksTxnTokenVerifier({ keySources: registry });
    expect(await txnVerifier.verify({ token: hop1.token, policy: txnPolicy, trustDomains: new Set(["example.org"]), nowMs: Date.now() })).toMatchObject({ ok: false, reason: "token_invalid" });
    const delegation = new JwksDelegationTokenVerifier({ baseDir: sts.dir, keySources: registry });
    const asDelegation = await delegation.verify({
      token: hop1.txnToken!,
      policy: { issuer: STS_ISSUER, jwks: "jwks.json", required: true, singleUse: false, clockSkewSeconds: 5 },
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
