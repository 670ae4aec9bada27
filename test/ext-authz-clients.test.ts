// SPEC 8, "every ext_authz client gets the same decisions": the same facts,
// sent the way Envoy sends them (the certificate, headers or header_map),
// the way proxyless gRPC sends them (header_map only, the callee in
// destination.principal) and the way agentgateway sends them (the principal
// only), get the same answer from one running hopwarden. Where a client
// cannot send a fact (the certificate), the difference is the one
// docs/caller-binding.md describes, and is asserted as such.

import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { silentLogger } from "../src/adapters/logging/logger.js";
import { startHopwarden, type Hopwarden } from "../src/main.js";
import { CheckClient, outcome } from "./support/check-client.js";
import { checkRequestFrom, EXT_AUTHZ_CLIENTS, type ExtAuthzClient, type HopFacts } from "./support/ext-authz-clients.js";
import { createTestPki, spiffe, type TestPki } from "./support/pki.js";
import { writeTestPolicy } from "./support/policies.js";

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

async function decide(who: ExtAuthzClient, facts: HopFacts): Promise<string> {
  const o = outcome(await client.check(checkRequestFrom(who, facts)));
  return o.code === 0 ? "allow" : (o.reason ?? `status ${o.code}`);
}

async function decisions(facts: HopFacts): Promise<Record<ExtAuthzClient, string>> {
  const out = {} as Record<ExtAuthzClient, string>;
  for (const who of EXT_AUTHZ_CLIENTS) out[who] = await decide(who, facts);
  return out;
}

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
  const withCertificate = ["envoy", "envoy-header-map", "proxyless-grpc-with-certificate"] as const;
  const principalOnly = ["proxyless-grpc", "agentgateway"] as const;

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
