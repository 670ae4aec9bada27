// Transaction Tokens through the running service (SPEC 8): tokens that jose
// signs, checked by hopwarden's real verifier against a JWKS file beside the
// policy, over gRPC. Every reason the Txn-Token step can give, in the order
// docs/transaction-tokens.md pins, and the txn recorded on the decision.

import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { create } from "@bufbuild/protobuf";
import { silentLogger } from "../src/adapters/logging/logger.js";
import type { Decision } from "../src/core/decision/decision.js";
import { CheckRequestSchema, type CheckRequest } from "../src/gen/envoy/service/auth/v3/external_auth_pb.js";
import { startHopwarden, type Hopwarden } from "../src/main.js";
import { CheckClient, checkRequest, outcome } from "./support/check-client.js";
import { createSigningKey, signToken, type TestSigningKey } from "./support/delegation-tokens.js";
import { spiffe } from "./support/pki.js";
import { writeTestPolicy } from "./support/policies.js";
import { signTxnToken, txnClaims, txnTokensSection } from "./support/txn-tokens.js";

const PERSON = "alice@example.com";

let dir: string;
let key: TestSigningKey;
let stranger: TestSigningKey;
let hopwarden: Hopwarden;
let client: CheckClient;
const decisions = new Map<string, Decision>();

beforeAll(async () => {
  [key, stranger] = await Promise.all([createSigningKey("ES256", "tts-1"), createSigningKey("ES256", "tts-unknown")]);
  dir = await mkdtemp(join(tmpdir(), "hopwarden-txn-"));
  const { file } = await writeTestPolicy({ version: "txn-1", extra: await txnTokensSection(dir, [key], true) }, dir);
  hopwarden = await startHopwarden({
    policyFile: file,
    listen: "127.0.0.1:0",
    logger: silentLogger,
    tracing: false,
    watchPolicy: false,
    sinks: [{ record: (d) => void decisions.set(d.decisionId, d) }],
  });
  client = new CheckClient(hopwarden.grpcAddress);
});

afterAll(async () => {
  client?.close();
  await hopwarden?.shutdown(2_000);
  if (dir !== undefined) await rm(dir, { recursive: true, force: true });
});

/** research → db for alice through orchestrator, POST /query, with `txn` as the txn-token header (undefined: none). */
function researchCallsDb(txn: string | undefined, headers: Record<string, string> = {}): CheckRequest {
  return checkRequest({
    principal: spiffe("research"),
    callee: "db",
    method: "POST",
    path: "/query",
    headers: {
      "x-agent-subject": spiffe("research"),
      "x-agent-on-behalf-of": PERSON,
      "x-agent-delegation-chain": `${spiffe("orchestrator")},${spiffe("research")}`,
      ...(txn !== undefined && { "txn-token": txn }),
      ...headers,
    },
  });
}

async function decide(request: CheckRequest): Promise<{ reason: string; decision: Decision | undefined }> {
  const o = outcome(await client.check(request));
  const id = o.code === 0 ? o.headers["x-authz-decision-id"] : String(o.body?.["decision_id"]);
  return { reason: o.code === 0 ? "allowed" : (o.reason ?? `status ${o.code}`), decision: decisions.get(id ?? "") };
}

const now = () => Math.floor(Date.now() / 1000);

describe("a valid Txn-Token", () => {
  it("is accepted, and its txn recorded on the decision (span and audit record read it from there)", async () => {
    const claims = txnClaims(PERSON);
    const { reason, decision } = await decide(researchCallsDb(await signTxnToken(key, claims)));
    expect(reason).toBe("allowed");
    expect(decision).toMatchObject({ allowed: true, txn: claims.txn });
  });

  it("is accepted with aud as a one-element array, and again from the verified-token cache", async () => {
    const token = await signTxnToken(key, txnClaims(PERSON, { aud: ["example.org"] }));
    expect((await decide(researchCallsDb(token))).reason).toBe("allowed");
    expect((await decide(researchCallsDb(token))).reason).toBe("allowed");
  });
});

describe("every reason the Txn-Token step gives (docs/transaction-tokens.md)", () => {
  const bad = async (claims: Record<string, unknown>, header: Record<string, unknown> = {}, signer = key) => signTxnToken(signer, txnClaims(PERSON, claims), header);

  it.each<[string, () => Promise<CheckRequest>, string]>([
    ["no token, when txnTokens.required", () => Promise.resolve(researchCallsDb(undefined)), "token_missing"],
    ["an empty header, when required", () => Promise.resolve(researchCallsDb("")), "token_missing"],
    ["a value that is not a JWS", () => Promise.resolve(researchCallsDb("not-a-token")), "token_invalid"],
    ["typ JWT instead of txntoken+jwt", async () => researchCallsDb(await bad({}, { typ: "JWT" })), "token_invalid"],
    ["a delegation token's typ", async () => researchCallsDb(await bad({}, { typ: "agent-delegation+jwt" })), "token_invalid"],
    ["alg none on the wire", async () => researchCallsDb(await signToken(key, txnClaims(PERSON), { typ: "txntoken+jwt", alg: "none" })), "token_invalid"],
    ["an HMAC alg on the wire", async () => researchCallsDb(await signToken(key, txnClaims(PERSON), { typ: "txntoken+jwt", alg: "HS256" })), "token_invalid"],
    ["a kid the JWKS does not have", async () => researchCallsDb(await bad({}, {}, stranger)), "token_invalid"],
    ["a signature that does not verify", async () => researchCallsDb(`${(await bad({})).slice(0, -4)}AAAA`), "token_invalid"],
    ["a key with the right kid but another key pair", async () => researchCallsDb(await signTxnToken({ ...stranger, kid: "tts-1" }, txnClaims(PERSON))), "token_invalid"],
    ["another issuer", async () => researchCallsDb(await bad({ iss: "https://evil.example" })), "token_invalid"],
    ["iat in the future beyond the skew", async () => researchCallsDb(await bad({ iat: now() + 600 })), "token_invalid"],
    ["nbf in the future beyond the skew", async () => researchCallsDb(await bad({ nbf: now() + 600 })), "token_invalid"],
    ["an aud that is not a trust domain of the policy", async () => researchCallsDb(await bad({ aud: "other.org" })), "token_invalid"],
    ["an aud spelt as a SPIFFE ID", async () => researchCallsDb(await bad({ aud: "spiffe://example.org" })), "token_invalid"],
    ["an aud naming two trust domains", async () => researchCallsDb(await bad({ aud: ["example.org", "other.org"] })), "token_invalid"],
    ["no txn claim", async () => researchCallsDb(await bad({ txn: undefined })), "token_invalid"],
    ["a txn with a space", async () => researchCallsDb(await bad({ txn: "a b" })), "token_invalid"],
    ["no sub", async () => researchCallsDb(await bad({ sub: undefined })), "token_invalid"],
    ["a token over 16 KiB", async () => researchCallsDb(await bad({ tctx: { pad: "x".repeat(17 * 1024) } })), "token_invalid"],
    ["an expired token (past exp + clockSkew)", async () => researchCallsDb(await bad({ iat: now() - 600, exp: now() - 120 })), "token_expired"],
    ["a sub that is not the on-behalf-of", async () => researchCallsDb(await bad({ sub: "bob@example.com" })), "token_chain_mismatch"],
  ])("%s → %s", async (_what, request, expected) => {
    expect((await decide(await request())).reason).toBe(expected);
  });

  it("refuses a Txn-Token header sent twice (header_map, as proxyless gRPC and encode_raw_headers send it), never merging", async () => {
    const token = await signTxnToken(key, txnClaims(PERSON));
    const base = researchCallsDb(undefined).attributes!;
    const headers = Object.entries(base.request!.http!.headers).map(([k, v]) => ({ key: k, rawValue: new TextEncoder().encode(v) }));
    const twice = create(CheckRequestSchema, {
      attributes: {
        source: { principal: spiffe("research") },
        contextExtensions: { agent: "db" },
        request: { http: { method: "POST", path: "/query", headerMap: { headers: [...headers, { key: "txn-token", rawValue: new TextEncoder().encode(token) }, { key: "Txn-Token", rawValue: new TextEncoder().encode(token) }] } } },
      },
    });
    expect((await decide(twice)).reason).toBe("token_invalid");
  });

  it("records the txn of a verified token whose sub is refused, so the audit trail names the transaction", async () => {
    const claims = txnClaims("bob@example.com");
    const { reason, decision } = await decide(researchCallsDb(await signTxnToken(key, claims)));
    expect(reason).toBe("token_chain_mismatch");
    expect(decision?.txn).toBe(claims.txn);
  });

  it("checks the Txn-Token after every other check: a refused hop is hop_not_allowed, whatever the token", async () => {
    const request = researchCallsDb("not-a-token");
    request.attributes!.request!.http!.method = "DELETE";
    expect((await decide(request)).reason).toBe("hop_not_allowed");
  });
});
