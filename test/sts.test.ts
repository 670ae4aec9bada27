// The token service end to end: real mutual TLS on 127.0.0.1, the test PKI's
// agent certificates, a three-hop chain issued through the agent client
// helper, every token checked by Check's verifier against the JWKS the
// service publishes; then the attacks the chain must stop.

import { createHash, generateKeyPairSync, X509Certificate } from "node:crypto";
import { unlink, utimes, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadPolicyText } from "../src/adapters/config/policy-file.js";
import { createLogger } from "../src/adapters/logging/logger.js";
import { JwksDelegationTokenVerifier } from "../src/adapters/tokens/delegation-token-verifier.js";
import { nestActors } from "../src/adapters/tokens/delegation-token-format.js";
import { DelegationClientError, type OutgoingDelegation } from "../src/client/index.js";
import type { TokenPolicy } from "../src/core/policy/model.js";
import { createSigningKey, PERSON, signToken } from "./support/delegation-tokens.js";
import { spiffe, type IssuedCertificate, type TestPki } from "./support/pki.js";
import { EXAMPLE_COM_PEOPLE, policyYaml } from "./support/policies.js";
import { decodeToken, exchangeForm, IDP_ISSUER, STS_AUDIENCE, STS_ISSUER, startTestSts, type TestSts } from "./support/sts.js";

/** orchestrator → planner → worker → db, each hop with its scopes, a token required on every hop. */
const POLICY = policyYaml({
  version: "sts-test-1",
  maxChainLength: 4,
  ...EXAMPLE_COM_PEOPLE,
  agents: ["orchestrator", "planner", "worker", "db", "research"],
  hops: [
    { from: "orchestrator", to: "planner", scopes: ["db:read", "db:write", "plan"] },
    { from: "planner", to: "worker", scopes: ["db:read", "db:write"] },
    { from: "worker", to: "db", methods: ["GET"], scopes: ["db:read", "db:write"] },
  ],
  revoked: { identities: [spiffe("retired")] },
  tokens: { issuer: STS_ISSUER, jwks: "jwks.json", required: true, clockSkew: "5s" },
});

let sts: TestSts;
let pki: TestPki;
let tokenPolicy: TokenPolicy;
let clockOffsetMs = 0;
/** What the service logged, one object a line. */
const logLines: Record<string, unknown>[] = [];
const now = () => Date.now() + clockOffsetMs;

const clientFor = (agent: IssuedCertificate) => sts.clientFor(agent);
const personToken = (claims: Record<string, unknown> = {}) => sts.idp.personToken(claims);
const call = (...args: Parameters<TestSts["call"]>) => sts.call(...args);
const payloadOf = (token: string) => decodeToken(token).payload;

function x5t(agent: IssuedCertificate): string {
  return createHash("sha256").update(new X509Certificate(agent.certPem).raw).digest("base64url");
}

/** Check's verifier, reading the JWKS the service publishes (saved beside the policy, as tokens.jwks says). */
async function verifierWithPublishedKeys(): Promise<JwksDelegationTokenVerifier> {
  await sts.saveJwks();
  return new JwksDelegationTokenVerifier({ baseDir: sts.dir });
}

async function check(verifier: JwksDelegationTokenVerifier, out: OutgoingDelegation, presenter: IssuedCertificate, callee: string, allowedScopes: string[] | undefined, chain?: string[]) {
  const headerChain = chain ?? out.headers["x-agent-delegation-chain"]!.split(",");
  return verifier.verify({
    token: out.token,
    policy: tokenPolicy,
    chain: headerChain,
    caller: headerChain[headerChain.length - 1]!,
    callee,
    onBehalfOf: out.headers["x-agent-on-behalf-of"],
    peerX5tS256: x5t(presenter),
    allowedScopes,
    nowMs: now(),
  });
}

beforeAll(async () => {
  const loaded = loadPolicyText(POLICY, "policy.yaml");
  if (!loaded.ok) throw new Error(loaded.errors.join("\n"));
  tokenPolicy = loaded.policy.tokens!;
  sts = await startTestSts({
    policy: POLICY,
    personScope: "db:read db:write plan openid",
    settings: { tokenTtl: "60s", clockSkew: "5s" },
    clock: { nowMs: now },
    logger: createLogger("info", (line) => logLines.push(JSON.parse(line) as Record<string, unknown>)),
  });
  pki = sts.pki;
});

afterAll(async () => {
  await sts?.close();
});

describe("a three-hop chain: alice → orchestrator → planner → worker → db", () => {
  let hop1: OutgoingDelegation;
  let hop2: OutgoingDelegation;
  let hop3: OutgoingDelegation;
  let verifier: JwksDelegationTokenVerifier;

  beforeAll(async () => {
    const orchestrator = clientFor(pki.agents.orchestrator);
    hop1 = await orchestrator.startChain({ personToken: await personToken(), audience: "planner" });
    // Each agent hands on what hopwarden verified on its inbound request.
    const inboundAtPlanner = {
      "x-agent-verified-subject": spiffe("orchestrator"),
      "x-agent-verified-on-behalf-of": PERSON,
      "x-agent-verified-chain": hop1.headers["x-agent-delegation-chain"]!,
      "x-agent-delegation-token": hop1.token,
    };
    hop2 = await clientFor(pki.agents.planner).continueChain({ inbound: inboundAtPlanner, audience: spiffe("worker"), scope: "db:read" });
    const inboundAtWorker = new Headers({
      "x-agent-verified-subject": spiffe("planner"),
      "x-agent-verified-on-behalf-of": PERSON,
      "x-agent-verified-chain": hop2.headers["x-agent-delegation-chain"]!,
      "x-agent-delegation-token": hop2.token,
    });
    hop3 = await clientFor(pki.agents.worker).continueChain({ inbound: inboundAtWorker, audience: "db" });
    verifier = await verifierWithPublishedKeys();
  });

  it("sets the outgoing headers: subject = self, on-behalf-of, chain = inbound chain + self, token", () => {
    expect(hop3.headers).toEqual({
      "x-agent-subject": spiffe("worker"),
      "x-agent-on-behalf-of": PERSON,
      "x-agent-delegation-chain": [spiffe("orchestrator"), spiffe("planner"), spiffe("worker")].join(","),
      "x-agent-delegation-token": hop3.token,
    });
  });

  it("issues tokens in the SPEC 5 format, act nested with the current actor outermost, prev hash-chained", () => {
    const [h, p] = hop3.token.split(".");
    expect(JSON.parse(Buffer.from(h!, "base64url").toString())).toMatchObject({ typ: "agent-delegation+jwt", alg: "ES256" });
    const claims = payloadOf(hop3.token);
    expect(JSON.parse(Buffer.from(p!, "base64url").toString())).toEqual(claims);
    expect(claims).toMatchObject({
      iss: STS_ISSUER,
      sub: PERSON,
      aud: spiffe("db"),
      scope: "db:read",
      cnf: { "x5t#S256": x5t(pki.agents.worker) },
      act: nestActors([spiffe("orchestrator"), spiffe("planner"), spiffe("worker")]),
      prev: createHash("sha256").update(hop2.token).digest("base64url"),
    });
    expect((claims.exp as number) - (claims.iat as number)).toBe(60);
    expect(payloadOf(hop1.token).prev).toBeUndefined();
    expect(payloadOf(hop2.token).prev).toBe(createHash("sha256").update(hop1.token).digest("base64url"));
  });

  it("logs each issued token with its hash and its prev (token_sha256, token_prev, as the audit record names them), so the issuer's log joins SPEC 5's hash chain", () => {
    const sha = (token: string) => createHash("sha256").update(token).digest("base64url");
    const issued = (token: string) => logLines.find((l) => l["msg"] === "token issued" && l["jti"] === payloadOf(token).jti);
    expect(issued(hop1.token)).toMatchObject({ level: "info", agent: spiffe("orchestrator"), token_sha256: sha(hop1.token) });
    expect(issued(hop1.token)).not.toHaveProperty("token_prev");
    expect(issued(hop2.token)).toMatchObject({ agent: spiffe("planner"), token_sha256: sha(hop2.token), token_prev: sha(hop1.token) });
    expect(issued(hop3.token)).toMatchObject({ agent: spiffe("worker"), token_sha256: sha(hop3.token), token_prev: sha(hop2.token) });
  });

  it("narrows scope at every hop: person ∩ rule, then what was asked for", () => {
    expect(hop1.scope).toEqual(["db:read", "db:write", "plan"]);
    expect(hop2.scope).toEqual(["db:read"]);
    expect(hop3.scope).toEqual(["db:read"]);
  });

  it("every token passes Check's verifier for its own hop", async () => {
    expect(await check(verifier, hop1, pki.agents.orchestrator, spiffe("planner"), ["db:read", "db:write", "plan"])).toMatchObject({ ok: true });
    expect(await check(verifier, hop2, pki.agents.planner, spiffe("worker"), ["db:read", "db:write"])).toMatchObject({ ok: true });
    expect(await check(verifier, hop3, pki.agents.worker, spiffe("db"), ["db:read", "db:write"])).toMatchObject({ ok: true, scope: ["db:read"] });
  });

  it("Check refuses a forged header chain (token_chain_mismatch)", async () => {
    const skipped = [spiffe("orchestrator"), spiffe("worker")];
    expect(await check(verifier, hop3, pki.agents.worker, spiffe("db"), undefined, skipped)).toMatchObject({ ok: false, reason: "token_chain_mismatch" });
  });

  it("Check refuses another agent replaying a token (cnf mismatch → token_invalid)", async () => {
    expect(await check(verifier, hop3, pki.agents.planner, spiffe("db"), undefined)).toMatchObject({ ok: false, reason: "token_invalid" });
  });

  it("the service refuses a token presented by an agent it was not issued for", async () => {
    const res = await call("POST", "/token", pki.agents.planner, exchangeForm(hop3.token, "db"));
    expect(res).toMatchObject({ status: 400, body: { error: "invalid_grant" } });
  });

  it("the service refuses a chain forged with the agent's own key", async () => {
    // Same kid as the service's key, so only the signature can tell them apart.
    const kid = (JSON.parse(Buffer.from(hop2.token.split(".")[0]!, "base64url").toString()) as { kid: string }).kid;
    const mallet = await createSigningKey("ES256", kid);
    const forged = await signToken(mallet, { ...payloadOf(hop2.token), act: nestActors([spiffe("orchestrator")]), aud: spiffe("worker") });
    const res = await call("POST", "/token", pki.agents.worker, exchangeForm(forged, "db"));
    expect(res).toMatchObject({ status: 400, body: { error: "invalid_grant" } });
  });

  it("the service refuses a hop the policy does not allow (invalid_target)", async () => {
    const res = await call("POST", "/token", pki.agents.planner, exchangeForm(hop1.token, "db"));
    expect(res).toMatchObject({ status: 400, body: { error: "invalid_target" } });
    expect(String(res.body.error_description)).toContain("is not allowed");
  });

  it("the service refuses scope widening (invalid_scope)", async () => {
    await expect(clientFor(pki.agents.worker).exchange(hop2.token, "db", "db:read db:write")).rejects.toMatchObject({ code: "invalid_scope" });
    await expect(clientFor(pki.agents.orchestrator).exchange(await personToken({ scope: "db:read" }), "planner", "plan")).rejects.toMatchObject({ code: "invalid_scope" });
  });
});

describe("the token endpoint's OAuth errors", () => {
  it("refuses a client without a certificate, or with one from a foreign CA (invalid_client)", async () => {
    const form = exchangeForm(await personToken(), "planner");
    expect(await call("POST", "/token", undefined, form)).toMatchObject({ status: 401, body: { error: "invalid_client" } });
    expect(await call("POST", "/token", pki.foreignCaAgent, form)).toMatchObject({ status: 401, body: { error: "invalid_client" } });
    expect(await call("POST", "/token", pki.twoUris, form)).toMatchObject({ status: 401, body: { error: "invalid_client" } });
  });

  it("refuses a revoked agent (unauthorized_client)", async () => {
    expect(await call("POST", "/token", pki.agents.retired, exchangeForm(await personToken(), "planner"))).toMatchObject({ status: 400, body: { error: "unauthorized_client" } });
  });

  it("names malformed requests", async () => {
    const agent = pki.agents.orchestrator;
    const token = await personToken();
    expect((await call("POST", "/token", agent, { ...exchangeForm(token, "planner"), grant_type: "client_credentials" })).body.error).toBe("unsupported_grant_type");
    expect((await call("POST", "/token", agent, { grant_type: "urn:ietf:params:oauth:grant-type:token-exchange", audience: "planner" })).body.error).toBe("invalid_request");
    expect((await call("POST", "/token", agent, exchangeForm(token, "planner", { subject_token_type: "urn:x" }))).body.error).toBe("invalid_request");
    expect((await call("POST", "/token", agent, exchangeForm(token, "nobody"))).body.error).toBe("invalid_target");
    expect((await call("POST", "/token", agent, exchangeForm(token, "planner"), "application/json")).body.error).toBe("invalid_request");
    expect((await call("GET", "/token", agent)).status).toBe(405);
  });

  it("refuses person tokens that are expired, for another audience, of another issuer, or typed as delegation tokens (invalid_grant)", async () => {
    const client = clientFor(pki.agents.orchestrator);
    const past = Math.floor(now() / 1000) - 1000;
    for (const bad of [
      await personToken({ iat: past, exp: past + 60 }),
      await personToken({ aud: "someone-else" }),
      await personToken({ iss: "https://evil.example.com" }),
      await signToken(sts.idp.key, { iss: IDP_ISSUER, sub: PERSON, aud: STS_AUDIENCE, exp: Math.floor(now() / 1000) + 60 }, { typ: "agent-delegation+jwt" }),
      await personToken({ sub: "mallory@evil.example" }),
    ]) {
      await expect(client.exchange(bad, "planner")).rejects.toMatchObject({ code: "invalid_grant", status: 400 });
      await expect(client.exchange(bad, "planner")).rejects.toBeInstanceOf(DelegationClientError);
    }
  });

  it("refuses an expired delegation token as subject", async () => {
    const t = await clientFor(pki.agents.orchestrator).startChain({ personToken: await personToken(), audience: "planner" });
    clockOffsetMs = 120_000;
    try {
      await expect(clientFor(pki.agents.planner).exchange(t.token, "worker")).rejects.toMatchObject({ code: "invalid_grant" });
    } finally {
      clockOffsetMs = 0;
    }
  });
});

describe("start-up warnings", () => {
  it("warns, as it starts, that without personTokens.audience any of the identity provider's tokens can start a chain", async () => {
    const lines: string[] = [];
    const open = await startTestSts({ policy: POLICY, personScope: "db:read", settings: { personAudience: undefined }, logger: createLogger("info", (l) => lines.push(l)) });
    try {
      const warnings = lines.map((l) => JSON.parse(l) as Record<string, unknown>).filter((r) => r["level"] === "warn");
      expect(warnings).toEqual([expect.objectContaining({ setting: "personTokens.audience", personIssuer: IDP_ISSUER, msg: expect.stringContaining("--person-audience") as unknown })]);
      // And, as warned, a person token for another client is exchanged.
      await expect(open.clientFor(open.pki.agents.orchestrator).startChain({ personToken: await open.idp.personToken({ aud: "another-app" }), audience: "planner" })).resolves.toBeDefined();
    } finally {
      await open.close();
    }
  });
});

describe("signing key rotation", () => {
  it("signs with the newest key file, and keeps a removed key published while its tokens live", async () => {
    const before = await clientFor(pki.agents.orchestrator).startChain({ personToken: await personToken(), audience: "planner" });
    const oldKid = (JSON.parse(Buffer.from(before.token.split(".")[0]!, "base64url").toString()) as { kid: string }).kid;
    const { privateKey } = generateKeyPairSync("ed25519");
    const newFile = join(sts.keysDir, "2026-02.pem");
    await writeFile(newFile, privateKey.export({ format: "pem", type: "pkcs8" }));
    const later = new Date(Date.now() + 10_000);
    await utimes(newFile, later, later);
    expect(await sts.service.reload()).toEqual([]);

    const after = await clientFor(pki.agents.orchestrator).startChain({ personToken: await personToken(), audience: "planner" });
    const header = JSON.parse(Buffer.from(after.token.split(".")[0]!, "base64url").toString()) as { kid: string; alg: string };
    expect(header.alg).toBe("EdDSA");
    expect(header.kid).not.toBe(oldKid);

    await unlink(join(sts.keysDir, "2026-01.pem"));
    expect(await sts.service.reload()).toEqual([]);
    const verifier = await verifierWithPublishedKeys();
    expect(await check(verifier, before, pki.agents.orchestrator, spiffe("planner"), undefined)).toMatchObject({ ok: true });
    expect(await check(verifier, after, pki.agents.orchestrator, spiffe("planner"), undefined)).toMatchObject({ ok: true });
    // The old key's last token expires (60 s) plus skew; after that it is no longer published.
    clockOffsetMs = 10 * 60_000;
    try {
      const jwks = await call("GET", "/.well-known/jwks.json", undefined);
      expect((jwks.body.keys as { kid: string }[]).map((k) => k.kid)).toEqual([header.kid]);
    } finally {
      clockOffsetMs = 0;
    }
  });
});
