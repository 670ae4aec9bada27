// SPEC 8, "every ext_authz client gets the same decisions": the same facts,
// sent the way Envoy sends them (the certificate, headers or header_map),
// the way proxyless gRPC sends them (header_map only, the callee in
// destination.principal) and the way agentgateway sends them (the principal
// only), get the same answer from one running hopwarden. Where a client
// cannot send a fact (the certificate), the difference is the one
// docs/caller-binding.md describes, and is asserted as such: each decision
// records how the caller was bound, and requireCertificate refuses a
// principal alone, whoever sends it.

import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { silentLogger } from "../src/adapters/logging/logger.js";
import { startHopwarden, type Hopwarden } from "../src/main.js";
import { CheckClient, outcome } from "./support/check-client.js";
import { createSigningKey, type TestSigningKey } from "./support/delegation-tokens.js";
import { checkRequestFrom, EXT_AUTHZ_CLIENTS, type ExtAuthzClient, type HopFacts } from "./support/ext-authz-clients.js";
import { createTestPki, spiffe, type TestPki } from "./support/pki.js";
import { editHop, TEST_HOPS, testPolicyYaml, writeTestPolicy } from "./support/policies.js";
import { signTxnToken, txnClaims, txnTokensSection } from "./support/txn-tokens.js";

const PERSON = "alice@example.com";

let pki: TestPki;
let hopwarden: Hopwarden;
let client: CheckClient;

beforeAll(async () => {
  pki = await createTestPki();
  // planner's certificate is revoked by serial: only a client that sends the certificate lets hopwarden see it.
  const { file } = await writeTestPolicy({ revokedSerials: [pki.agents.planner.serialHex] });
  hopwarden = await startHopwarden({ policyFile: file, listen: "127.0.0.1:0", adminListen: "127.0.0.1:0", logger: silentLogger, watchPolicy: false });
  client = new CheckClient(hopwarden.grpcAddress);
});

afterAll(async () => {
  client?.close();
  await hopwarden?.shutdown(2000);
});

async function decide(who: ExtAuthzClient, facts: HopFacts, via: CheckClient = client): Promise<string> {
  const o = outcome(await via.check(checkRequestFrom(who, facts)));
  return o.code === 0 ? "allow" : (o.reason ?? `status ${o.code}`);
}

async function decisions(facts: HopFacts, via: CheckClient = client): Promise<Record<ExtAuthzClient, string>> {
  const out = {} as Record<ExtAuthzClient, string>;
  for (const who of EXT_AUTHZ_CLIENTS) out[who] = await decide(who, facts, via);
  return out;
}

/** The clients that send the certificate, and those that send the principal alone. */
const WITH_CERTIFICATE = ["envoy", "envoy-header-map", "proxyless-grpc-with-certificate"] as const;
const PRINCIPAL_ONLY = ["proxyless-grpc", "agentgateway"] as const;

const everyone = (answer: string): Record<ExtAuthzClient, string> => Object.fromEntries(EXT_AUTHZ_CLIENTS.map((c) => [c, answer])) as Record<ExtAuthzClient, string>;

/** research → db for alice through orchestrator, POST /query: what the test policy allows. */
function researchToDb(overrides: Partial<HopFacts> = {}, headers: HopFacts["headers"] = {}): HopFacts {
  return {
    caller: pki.agents.research,
    callee: "db",
    method: "POST",
    path: "/query",
    ...overrides,
    headers: {
      "x-agent-subject": spiffe("research"),
      "x-agent-on-behalf-of": PERSON,
      "x-agent-delegation-chain": `${spiffe("orchestrator")},${spiffe("research")}`,
      ...headers,
    },
  };
}

describe("the same facts get the same decision from every client", () => {
  it.each([
    ["an allowed hop", () => researchToDb(), "allow"],
    ["a path no rule admits", () => researchToDb({ path: "/admin" }), "hop_not_allowed"],
    ["a method no rule admits", () => researchToDb({ method: "DELETE" }), "hop_not_allowed"],
    ["a subject header that is not the caller", () => researchToDb({}, { "x-agent-subject": spiffe("orchestrator") }), "subject_mismatch"],
    ["a chain that does not end with the caller", () => researchToDb({}, { "x-agent-delegation-chain": spiffe("orchestrator") }), "chain_caller_mismatch"],
    ["no on-behalf-of", () => ({ ...researchToDb(), headers: { "x-agent-subject": spiffe("research"), "x-agent-delegation-chain": spiffe("research") } }), "missing_on_behalf_of"],
    ["a person the policy does not allow", () => researchToDb({}, { "x-agent-on-behalf-of": "mallory@evil.example" }), "on_behalf_of_not_allowed"],
    [
      "a chain that skips the required agent",
      () => ({
        caller: pki.agents.orchestrator,
        callee: "db",
        method: "GET",
        path: "/health",
        headers: { "x-agent-subject": spiffe("orchestrator"), "x-agent-on-behalf-of": PERSON, "x-agent-delegation-chain": spiffe("orchestrator") },
      }),
      "required_hop_missing",
    ],
    ["a caller revoked by SPIFFE ID", () => researchToDb({ caller: pki.agents.retired }, { "x-agent-subject": spiffe("retired"), "x-agent-delegation-chain": spiffe("retired") }), "revoked_identity"],
    ["a caller of another trust domain", () => researchToDb({ caller: pki.foreignDomain }, { "x-agent-subject": spiffe("research", "evil.example") }), "untrusted_trust_domain"],
  ])("%s", async (_what, facts, expected) => {
    expect(await decisions(facts())).toEqual(everyone(expected));
  });
});

describe("where a client cannot send the certificate, only what the certificate proves differs (docs/caller-binding.md)", () => {
  const withCertificate = WITH_CERTIFICATE;
  const principalOnly = PRINCIPAL_ONLY;

  it("records how each client bound the caller: certificate or principal (dynamic metadata caller_binding)", async () => {
    for (const who of EXT_AUTHZ_CLIENTS) {
      const response = await client.check(checkRequestFrom(who, researchToDb()));
      expect(response.status?.code, who).toBe(0);
      expect(response.dynamicMetadata?.["caller_binding"], who).toBe((WITH_CERTIFICATE as readonly string[]).includes(who) ? "certificate" : "principal");
    }
  });

  it("a certificate revoked by serial is refused only when the certificate is sent", async () => {
    const facts: HopFacts = {
      caller: pki.agents.planner,
      callee: "worker",
      method: "GET",
      path: "/",
      headers: { "x-agent-subject": spiffe("planner"), "x-agent-on-behalf-of": PERSON, "x-agent-delegation-chain": `${spiffe("orchestrator")},${spiffe("planner")}` },
    };
    const seen = await decisions(facts);
    for (const who of withCertificate) expect(seen[who], who).toBe("revoked_identity");
    for (const who of principalOnly) expect(seen[who], who).toBe("allow");
  });

  it("an expired certificate, or one with two URI SANs, is refused only when the certificate is sent", async () => {
    const expired = await decisions(researchToDb({ caller: pki.expired }, { "x-agent-subject": spiffe("expired"), "x-agent-delegation-chain": spiffe("expired") }));
    const twoUris = await decisions(researchToDb({ caller: pki.twoUris }));
    for (const who of withCertificate) {
      expect(expired[who], who).toBe("invalid_peer_certificate");
      expect(twoUris[who], who).toBe("invalid_peer_certificate");
    }
    // The principal is the client's choice: A92 takes the first URI SAN.
    for (const who of principalOnly) {
      expect(expired[who], who).not.toBe("invalid_peer_certificate");
      expect(twoUris[who], who).toBe("allow");
    }
  });
});

describe("a repeated security header", () => {
  const orchestrator = spiffe("orchestrator");
  const research = spiffe("research");

  it("is denied by every client, whether it arrives repeated or merged", async () => {
    const chain = `${orchestrator},${research}`;
    const seen = await decisions(researchToDb({}, { "x-agent-delegation-chain": [chain, chain] }));
    for (const who of EXT_AUTHZ_CLIENTS) expect(seen[who], who).not.toBe("allow");
  });

  // SPEC 1: a security header repeated in header_map is refused with its
  // reason, never merged, even when the copies together spell an allowed chain.
  it("refuses two chain headers in header_map that together spell an allowed chain (malformed_chain)", async () => {
    const seen = await decisions(researchToDb({}, { "x-agent-delegation-chain": [orchestrator, research] }));
    for (const who of ["envoy-header-map", "proxyless-grpc", "proxyless-grpc-with-certificate"] as const) expect(seen[who], who).toBe("malformed_chain");
  });
});

describe("requireCertificate (SPEC 8) refuses a principal alone, whoever sends it", () => {
  let dir: string;
  let key: TestSigningKey;
  const running: { hopwarden: Hopwarden; client: CheckClient }[] = [];
  /** A hopwarden on the policy `yaml` written to `policyDir`, and a client of it. */
  const start = async (policyDir: string, yaml: string) => {
    const file = join(policyDir, "policy.yaml");
    await writeFile(file, yaml);
    const h = await startHopwarden({ policyFile: file, listen: "127.0.0.1:0", logger: silentLogger, tracing: false, watchPolicy: false });
    const c = new CheckClient(h.grpcAddress);
    running.push({ hopwarden: h, client: c });
    return c;
  };
  let everyCaller: CheckClient;
  let dbHopOnly: CheckClient;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "hopwarden-binding-"));
    key = await createSigningKey("ES256", "tts-clients");
    const [top, perHop] = await Promise.all([mkdtemp(join(dir, "top-")), mkdtemp(join(dir, "hop-"))]);
    everyCaller = await start(top, testPolicyYaml({ version: "binding-1", requireCertificate: true }));
    // Only the rule research → db (hops[1]) asks for a certificate; a Txn-Token is verified on every hop.
    dbHopOnly = await start(perHop, testPolicyYaml({ version: "binding-2", hops: editHop(TEST_HOPS, 1, { requireCertificate: true }), extra: await txnTokensSection(perHop, [key]) }));
  });

  afterAll(async () => {
    for (const r of running) {
      r.client.close();
      await r.hopwarden.shutdown(2_000);
    }
    if (dir !== undefined) await rm(dir, { recursive: true, force: true });
  });

  const expected = (certificate: string, principal: string) =>
    Object.fromEntries(EXT_AUTHZ_CLIENTS.map((c) => [c, (WITH_CERTIFICATE as readonly string[]).includes(c) ? certificate : principal])) as Record<ExtAuthzClient, string>;

  it("at the top level: the same facts are allowed with a certificate and missing_peer_certificate without", async () => {
    expect(await decisions(researchToDb(), everyCaller)).toEqual(expected("allow", "missing_peer_certificate"));
    // What would be refused anyway keeps its own reason where the certificate is sent.
    expect(await decisions(researchToDb({ path: "/admin" }), everyCaller)).toEqual(expected("hop_not_allowed", "missing_peer_certificate"));
  });

  it("on a hop rule: only the call that rule admits as the last hop needs the certificate", async () => {
    expect(await decisions(researchToDb(), dbHopOnly)).toEqual(expected("allow", "missing_peer_certificate"));
    const toResearch: HopFacts = {
      caller: pki.agents.orchestrator,
      callee: "research",
      method: "POST",
      path: "/search",
      headers: { "x-agent-subject": spiffe("orchestrator"), "x-agent-on-behalf-of": PERSON, "x-agent-delegation-chain": spiffe("orchestrator") },
    };
    expect(await decisions(toResearch, dbHopOnly)).toEqual(everyone("allow"));
  });

  it("a Txn-Token gets the same answer from every client, wherever it carries its headers", async () => {
    const toResearch = (token: string): HopFacts => ({
      caller: pki.agents.orchestrator,
      callee: "research",
      method: "POST",
      path: "/search",
      headers: { "x-agent-subject": spiffe("orchestrator"), "x-agent-on-behalf-of": PERSON, "x-agent-delegation-chain": spiffe("orchestrator"), "txn-token": token },
    });
    const now = Math.floor(Date.now() / 1000);
    expect(await decisions(toResearch(await signTxnToken(key, txnClaims(PERSON))), dbHopOnly)).toEqual(everyone("allow"));
    expect(await decisions(toResearch(await signTxnToken(key, txnClaims("bob@example.com"))), dbHopOnly)).toEqual(everyone("token_chain_mismatch"));
    expect(await decisions(toResearch(await signTxnToken(key, txnClaims(PERSON, { iat: now - 900, exp: now - 600 }))), dbHopOnly)).toEqual(everyone("token_expired"));
  });
});
