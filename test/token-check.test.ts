// Delegation tokens through the running gRPC server (SPEC 5): a token that
// proves orchestrator → research → db is allowed, and each token_* reason of
// SPEC 4 is returned for a request that earns it.

import { randomUUID } from "node:crypto";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startHopwarden, type Hopwarden } from "../src/main.js";
import { silentLogger } from "../src/adapters/logging/logger.js";
import { nestActors } from "../src/adapters/tokens/delegation-token-format.js";
import { REASON_STATUS } from "../src/core/reasons.js";
import { createTestPki, spiffe, type TestPki } from "./support/pki.js";
import { editHop, TEST_HOPS, writeTestPolicy } from "./support/policies.js";
import { CheckClient, checkRequest, outcome } from "./support/check-client.js";
import { createSigningKey, jwksOf, signToken, type TestSigningKey } from "./support/delegation-tokens.js";

const ISSUER = "https://sts.example.org";
const PERSON = "alice@example.com";

let pki: TestPki;
let key: TestSigningKey;
let hopwarden: Hopwarden;
let client: CheckClient;

/** Claims for research calling db for alice, chain orchestrator → research, bound to research's certificate. */
function claims(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  const now = Math.floor(Date.now() / 1000);
  return {
    iss: ISSUER,
    sub: PERSON,
    aud: spiffe("db"),
    iat: now - 5,
    exp: now + 55,
    jti: randomUUID(),
    scope: "db:read",
    cnf: { "x5t#S256": Buffer.from(pki.agents.research.sha256Hex, "hex").toString("base64url") },
    act: nestActors([spiffe("orchestrator"), spiffe("research")]),
    ...overrides,
  };
}

async function callWith(token: string | undefined) {
  const headers: Record<string, string> = {
    "x-agent-subject": spiffe("research"),
    "x-agent-on-behalf-of": PERSON,
    "x-agent-delegation-chain": `${spiffe("orchestrator")},${spiffe("research")}`,
  };
  if (token !== undefined) headers["x-agent-delegation-token"] = token;
  return outcome(await client.check(checkRequest({ certificate: pki.agents.research.urlEncodedPem, callee: "db", method: "GET", path: "/query", headers })));
}

beforeAll(async () => {
  pki = await createTestPki();
  key = await createSigningKey("ES256");
  const { dir, file } = await writeTestPolicy({
    tokens: { issuer: ISSUER, jwks: "jwks.json", required: true, singleUse: true, clockSkew: "30s" },
    // research → db (hops[1]) admits only the db:read scope in this test.
    hops: editHop(TEST_HOPS, 1, { scopes: ["db:read"] }),
  });
  await writeFile(join(dir, "jwks.json"), JSON.stringify(jwksOf(key)));
  hopwarden = await startHopwarden({ policyFile: file, listen: "127.0.0.1:0", adminListen: "127.0.0.1:0", logger: silentLogger, tracing: false, watchPolicy: false });
  client = new CheckClient(hopwarden.grpcAddress);
});

afterAll(async () => {
  client?.close();
  await hopwarden?.shutdown(2000);
});

function expectReason(o: Awaited<ReturnType<typeof callWith>>, reason: keyof typeof REASON_STATUS): void {
  expect(o.reason).toBe(reason);
  expect(o.http).toBe(REASON_STATUS[reason].http);
  expect(o.code).toBe(REASON_STATUS[reason].grpc);
  expect(o.body).toMatchObject({ error: reason });
}

describe("delegation token (check 9)", () => {
  it("allows a call whose token proves every hop", async () => {
    const o = await callWith(await signToken(key, claims()));
    expect(o.code).toBe(0);
    expect(o.headers["x-agent-verified-chain"]).toBe(`${spiffe("orchestrator")},${spiffe("research")}`);
  });

  it("denies a missing token when the policy requires one: token_missing", async () => {
    expectReason(await callWith(undefined), "token_missing");
  });

  it("denies a token with a broken signature: token_invalid", async () => {
    const token = await signToken(key, claims());
    const [h, p, s] = token.split(".");
    const flipped = `${s!.slice(0, -2)}${s!.endsWith("AA") ? "BB" : "AA"}`;
    expectReason(await callWith(`${h}.${p}.${flipped}`), "token_invalid");
  });

  it("denies a token bound to another agent's certificate: token_invalid", async () => {
    const other = Buffer.from(pki.agents.orchestrator.sha256Hex, "hex").toString("base64url");
    expectReason(await callWith(await signToken(key, claims({ cnf: { "x5t#S256": other } }))), "token_invalid");
  });

  it("denies an expired token: token_expired", async () => {
    const now = Math.floor(Date.now() / 1000);
    expectReason(await callWith(await signToken(key, claims({ iat: now - 600, exp: now - 300 }))), "token_expired");
  });

  it("denies a token whose act chain differs from the header chain: token_chain_mismatch", async () => {
    const forged = nestActors([spiffe("planner"), spiffe("research")]);
    expectReason(await callWith(await signToken(key, claims({ act: forged }))), "token_chain_mismatch");
  });

  it("denies a scope wider than the hop rule's: token_scope_exceeded", async () => {
    expectReason(await callWith(await signToken(key, claims({ scope: "db:read db:write" }))), "token_scope_exceeded");
  });

  it("counts key set loads on /metrics", async () => {
    await callWith(await signToken(key, claims()));
    const metrics = await (await fetch(`http://${hopwarden.adminAddress}/metrics`)).text();
    expect(metrics).toMatch(/hopwarden_jwks_refreshes_total\{result="ok"[^}]*\} [1-9]/);
  });

  it("denies a single-use token presented twice: token_replayed", async () => {
    const token = await signToken(key, claims());
    expect((await callWith(token)).code).toBe(0);
    expectReason(await callWith(token), "token_replayed");
  });
});
