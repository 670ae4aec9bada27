// The Check pipeline against SPEC 2: checks run in the binding order, the first
// failure wins, every path ends in a Decision (fail closed). Certificates are
// real X509-SVIDs from the test PKI, read by the real certificate parser; the
// policy is loaded by the real policy loader; the delegation token verifier is
// a fake (the real one has its own tests), so only the mapping is shown here.

import fc from "fast-check";
import { beforeAll, describe, expect, it } from "vitest";
import { createTestPki, spiffe, type TestPki } from "../../../test/support/pki.js";
import { DB_VIA_RESEARCH, editHop, EXAMPLE_COM_PEOPLE, HOP, policyYaml, type PolicySpec, type TokensSpec } from "../../../test/support/policies.js";
import { LruHopDecisionCache } from "../../adapters/cache/hop-decision-cache.js";
import { loadPolicyText } from "../../adapters/config/policy-file.js";
import { CachingCertificateParser } from "../../adapters/x509/certificate-parser.js";
import type { CompiledPolicy } from "../policy/model.js";
import type { CertificateParser, DelegationTokenVerifier, HopDecisionCache, PolicySource } from "../ports.js";
import { DENIAL_REASONS, type DenialReason } from "../reasons.js";
import type { CheckInput } from "./check-input.js";
import { CheckPipeline, maxChainHeaderLength, type CheckPipelineDeps } from "./check-pipeline.js";
import type { Decision } from "./decision.js";
import type { TokenCheckRequest, TokenCheckResult } from "./token-check.js";
import type { TxnTokenVerifier } from "./txn-token-check.js";

const ORCH = spiffe("orchestrator");
const RESEARCH = spiffe("research");
const DB = spiffe("db");
const PLANNER = spiffe("planner");
const WORKER = spiffe("worker");
const RETIRED = spiffe("retired");
const ALICE = "alice@example.com";

/** The test workflow (test/support/policies.ts) with scopes on research → db, planner's own hops, orchestrator → worker for alice only, and db reached via research and orchestrator. */
const POLICY: PolicySpec = {
  version: "2026-11-01.3",
  maxChainLength: 4,
  ...EXAMPLE_COM_PEOPLE,
  agents: ["orchestrator", "research", "db", "planner", "worker"],
  hops: [
    HOP.orchestratorToResearch,
    { ...HOP.researchToDb, scopes: ["db:read"] },
    HOP.orchestratorToPlanner,
    { from: "planner", to: "db", methods: ["GET"], paths: ["/query"] },
    { from: "planner", to: "research" },
    { from: "orchestrator", to: "worker", onBehalfOf: [ALICE] },
  ],
  requireVia: [DB_VIA_RESEARCH, { to: "db", via: ["orchestrator"] }],
  revoked: { identities: [RETIRED], serials: [] },
};
const HOPS = POLICY.hops!;
/** The index of research → db in HOPS. */
const RESEARCH_TO_DB = 1;

const TOKENS: TokensSpec = { issuer: "https://sts.example.org", jwks: "jwks.json" };

function policyFrom(spec: PolicySpec): CompiledPolicy {
  const loaded = loadPolicyText(policyYaml(spec), "policy.yaml");
  if (!loaded.ok) throw new Error(loaded.errors.join("\n"));
  return loaded.policy;
}

class SwappablePolicySource implements PolicySource {
  constructor(public policy: CompiledPolicy | undefined) {}
  current(): CompiledPolicy | undefined {
    return this.policy;
  }
}

/**
 * A verifier that answers by the token's text: "ok" passes, "token_*" fails
 * with that reason. Its "hash" of a token is `sha-<token>`; a passing token
 * "ok-after-<x>" names `sha-<x>` as its prev (a later hop), any other none.
 */
class ScriptedTokenVerifier implements DelegationTokenVerifier {
  readonly requests: TokenCheckRequest[] = [];
  verify(request: TokenCheckRequest): Promise<TokenCheckResult> {
    this.requests.push(request);
    const { token } = request;
    if (token === "throws") return Promise.reject(new Error("JWKS endpoint timed out"));
    if (token.startsWith("ok")) {
      const prev = token.startsWith("ok-after-") ? `sha-${token.slice("ok-after-".length)}` : undefined;
      return Promise.resolve({ ok: true, jti: `jti-${token}`, scope: ["db:read"], issuer: request.policy.issuer, tokenSha256: `sha-${token}`, prev });
    }
    return Promise.resolve({ ok: false, reason: token as Extract<DenialReason, `token_${string}`>, message: `scripted ${token}`, tokenSha256: `sha-${token}` });
  }
}

let pki: TestPki;
const NOW = Date.now();
const seenReasons = new Set<DenialReason>();
let idCounter = 0;

beforeAll(async () => {
  pki = await createTestPki();
});

function pipeline(overrides: Partial<CheckPipelineDeps> & { policy?: CompiledPolicy | undefined } = {}): CheckPipeline {
  const { policy, ...deps } = overrides;
  return new CheckPipeline({
    policies: new SwappablePolicySource("policy" in overrides ? policy : policyFrom(POLICY)),
    certificates: new CachingCertificateParser(),
    clock: { nowMs: () => NOW },
    ids: { next: (ms) => `${ms.toString().padStart(15, "0")}-${(++idCounter).toString().padStart(8, "0")}` },
    ...deps,
  });
}

/** research calls db (alias "db" on the route) through orchestrator → research, for alice, GET /query. */
function request(overrides: Partial<CheckInput> = {}, headers: Record<string, string | undefined> = {}): CheckInput {
  const base: Record<string, string | undefined> = {
    "x-agent-subject": RESEARCH,
    "x-agent-on-behalf-of": ALICE,
    "x-agent-delegation-chain": `${ORCH}, ${RESEARCH}`,
    ...headers,
  };
  const clean: Record<string, string> = {};
  for (const [k, v] of Object.entries(base)) if (v !== undefined) clean[k] = v;
  return {
    peerCertificate: pki.agents.research.urlEncodedPem,
    peerPrincipal: "",
    destinationPrincipal: "",
    contextExtensions: { agent: "db" },
    method: "GET",
    path: "/query",
    ...overrides,
    headers: clean,
  };
}

/** A request made by `agent` with its own certificate and subject. */
function requestFrom(
  agent: "orchestrator" | "planner" | "worker" | "research" | "db",
  chain: readonly string[] | undefined,
  callee: string,
  more: Partial<CheckInput> = {},
  headers: Record<string, string | undefined> = {},
): CheckInput {
  return request(
    { peerCertificate: pki.agents[agent].urlEncodedPem, contextExtensions: { agent: callee }, ...more },
    { "x-agent-subject": spiffe(agent), "x-agent-delegation-chain": chain?.join(","), ...headers },
  );
}

async function decide(input: CheckInput, p: CheckPipeline = pipeline()): Promise<Decision> {
  const decision = await p.decide(input);
  if (decision.reason !== undefined) seenReasons.add(decision.reason);
  return decision;
}

async function reasonOf(input: CheckInput, p: CheckPipeline = pipeline()): Promise<DenialReason | "allowed"> {
  const decision = await decide(input, p);
  return decision.allowed ? "allowed" : decision.reason;
}

describe("an allowed request", () => {
  it("allows a chain whose every hop a rule admits, and records who, for whom, through whom", async () => {
    const decision = await decide(request());
    expect(decision).toMatchObject({
      allowed: true,
      reason: undefined,
      policyVersion: "2026-11-01.3",
      caller: RESEARCH,
      callee: DB,
      onBehalfOf: ALICE,
      chain: [ORCH, RESEARCH],
      method: "GET",
      path: "/query",
      decidedAtMs: NOW,
      peerCertificateSha256: pki.agents.research.sha256Hex,
      tokenId: undefined,
      tokenSha256: undefined,
      tokenPrev: undefined,
    });
    expect(decision.hops.map(({ from, to, rule, result }) => ({ from, to, rule, result }))).toEqual([
      { from: ORCH, to: RESEARCH, rule: "hops[0]", result: "allow" },
      { from: RESEARCH, to: DB, rule: "hops[1]", result: "allow" },
    ]);
  });

  it("says in its message whom the chain reached, also when the same chain header then reaches another callee", async () => {
    const p = pipeline();
    expect((await decide(request(), p)).message).toBe(`allowed: ${ORCH} → ${RESEARCH} → ${DB}`);
    expect((await decide(request(), p)).message).toBe(`allowed: ${ORCH} → ${RESEARCH} → ${DB}`);
    const open = pipeline({ policy: policyFrom({ version: "open", maxChainLength: 6, requireOnBehalfOf: false, hops: [{ from: "spiffe://example.org/agent/*", to: "spiffe://example.org/agent/*" }] }) });
    expect((await decide(request({ contextExtensions: { agent: DB } }), open)).message).toBe(`allowed: ${ORCH} → ${RESEARCH} → ${DB}`);
    expect((await decide(request({ contextExtensions: { agent: WORKER } }), open)).message).toBe(`allowed: ${ORCH} → ${RESEARCH} → ${WORKER}`);
    expect((await decide(request({ contextExtensions: { agent: DB } }, { "x-agent-delegation-chain": RESEARCH }), open)).message).toBe(`allowed: ${RESEARCH} → ${DB}`);
  });

  it("gives every decision, allow or deny, its own sortable decision id", async () => {
    const p = pipeline();
    const ids = [];
    for (const input of [request(), request({}, { "x-agent-subject": undefined }), request()]) ids.push((await decide(input, p)).decisionId);
    expect(new Set(ids).size).toBe(3);
    expect([...ids].sort()).toEqual(ids);
  });

  it("reads the configured header names instead of the defaults", async () => {
    const p = pipeline({ headerNames: { subject: "x-subject", onBehalfOf: "x-obo", chain: "x-chain", token: "x-token" } });
    const input = request({}, { "x-agent-subject": undefined, "x-agent-on-behalf-of": undefined, "x-agent-delegation-chain": undefined });
    const renamed = { ...input, headers: { "x-subject": RESEARCH, "x-obo": ALICE, "x-chain": `${ORCH},${RESEARCH}` } };
    expect(await reasonOf(renamed, p)).toBe("allowed");
    expect(await reasonOf(request(), p)).toBe("missing_subject_header");
  });
});

describe("a service without a policy", () => {
  it("denies everything with policy_unavailable", async () => {
    const decision = await decide(request(), pipeline({ policy: undefined }));
    expect(decision).toMatchObject({ allowed: false, reason: "policy_unavailable", policyVersion: "" });
  });
});

describe("check 1: caller identity present, valid, in an allowed trust domain", () => {
  it("denies a request with neither a peer certificate nor a peer principal", async () => {
    expect(await reasonOf(request({ peerCertificate: "" }))).toBe("missing_peer_certificate");
  });

  it("denies a certificate that does not parse", async () => {
    expect(await reasonOf(request({ peerCertificate: "not-a-certificate" }))).toBe("invalid_peer_certificate");
  });

  it("denies an expired certificate", async () => {
    const input = request({ peerCertificate: pki.expired.urlEncodedPem }, { "x-agent-subject": spiffe("expired"), "x-agent-delegation-chain": undefined });
    expect(await reasonOf(input)).toBe("invalid_peer_certificate");
  });

  it("denies a certificate that is not valid yet", async () => {
    expect(await reasonOf(request({ peerCertificate: pki.notYetValid.urlEncodedPem }))).toBe("invalid_peer_certificate");
  });

  it("denies a certificate with two URI SANs", async () => {
    expect(await reasonOf(request({ peerCertificate: pki.twoUris.urlEncodedPem }))).toBe("invalid_peer_certificate");
  });

  it("denies a certificate without a URI SAN", async () => {
    expect(await reasonOf(request({ peerCertificate: pki.noUri.urlEncodedPem }))).toBe("invalid_peer_certificate");
  });

  it("denies a caller from a trust domain the policy does not list", async () => {
    const input = request({ peerCertificate: pki.foreignDomain.urlEncodedPem }, { "x-agent-subject": spiffe("research", "evil.example") });
    expect(await reasonOf(input)).toBe("untrusted_trust_domain");
  });

  it("uses the peer principal when no certificate is sent (Istio)", async () => {
    expect(await reasonOf(request({ peerCertificate: "", peerPrincipal: RESEARCH }))).toBe("allowed");
  });

  it("prefers the certificate over the principal", async () => {
    expect(await reasonOf(request({ peerPrincipal: DB }))).toBe("allowed");
  });

  it("denies a peer principal that is not a SPIFFE ID", async () => {
    expect(await reasonOf(request({ peerCertificate: "", peerPrincipal: "cluster.local/ns/default/sa/research" }))).toBe("invalid_peer_certificate");
  });

  it("denies a peer principal in an untrusted trust domain", async () => {
    const input = request({ peerCertificate: "", peerPrincipal: spiffe("research", "evil.example") }, { "x-agent-subject": spiffe("research", "evil.example") });
    expect(await reasonOf(input)).toBe("untrusted_trust_domain");
  });
});

describe("check 1 with x-forwarded-client-cert", () => {
  const trusting = () => pipeline({ trustForwardedClientCert: true });
  const viaXfcc = (xfcc: string, more: Partial<CheckInput> = {}) => request({ peerCertificate: pki.server.urlEncodedPem, ...more }, { "x-forwarded-client-cert": xfcc });

  it("ignores the header unless the config trusts it", async () => {
    expect(await reasonOf(viaXfcc(`URI=${RESEARCH}`))).toBe("subject_mismatch");
    expect(await reasonOf(request({}, { "x-forwarded-client-cert": `URI=${DB}` }))).toBe("allowed");
  });

  it("reads the caller from the URI of the last element when trusted", async () => {
    expect(await reasonOf(viaXfcc(`By=${spiffe("gateway")};URI=${ORCH},By=${spiffe("gateway")};URI=${RESEARCH}`), trusting())).toBe("allowed");
  });

  it("never reads the caller from an earlier element", async () => {
    expect(await reasonOf(viaXfcc(`URI=${RESEARCH},URI=${ORCH}`), trusting())).toBe("subject_mismatch");
  });

  it("reads the caller from the Cert of the last element, with its serial and thumbprint", async () => {
    const decision = await decide(viaXfcc(`Hash=x;Cert="${pki.agents.research.urlEncodedPem}";URI=${RESEARCH}`), trusting());
    expect(decision).toMatchObject({ allowed: true, caller: RESEARCH, peerCertificateSha256: pki.agents.research.sha256Hex });
  });

  it("judges the forwarded Cert by the X509-SVID rules", async () => {
    expect(await reasonOf(viaXfcc(`Cert="${pki.expired.urlEncodedPem}"`), trusting())).toBe("invalid_peer_certificate");
  });

  it("denies a last element with two URIs or none", async () => {
    expect(await reasonOf(viaXfcc(`URI=${RESEARCH};URI=${DB}`), trusting())).toBe("invalid_peer_certificate");
    expect(await reasonOf(viaXfcc("By=spiffe://example.org/agent/gateway"), trusting())).toBe("invalid_peer_certificate");
  });

  it("denies a header that does not parse, rather than falling back to the peer certificate", async () => {
    expect(await reasonOf(viaXfcc(`URI="${RESEARCH}`, { peerCertificate: pki.agents.research.urlEncodedPem }), trusting())).toBe("invalid_peer_certificate");
  });

  it("denies a URI that is not a SPIFFE ID", async () => {
    expect(await reasonOf(viaXfcc(`URI=${RESEARCH}/`), trusting())).toBe("invalid_peer_certificate");
  });

  it("falls back to the peer certificate when the header is absent", async () => {
    expect(await reasonOf(request(), trusting())).toBe("allowed");
  });
});

describe("check 2: identity revoked", () => {
  it("denies a caller on the revoked list", async () => {
    const input = request({ peerCertificate: pki.agents.retired.urlEncodedPem }, { "x-agent-subject": RETIRED, "x-agent-delegation-chain": undefined });
    expect(await reasonOf(input)).toBe("revoked_identity");
  });

  it("denies a certificate whose serial is revoked, whatever the spelling of the serial", async () => {
    const serial = pki.agents.research.serialHex.toLowerCase().replace(/(..)(?=.)/g, "$1:");
    const policy = policyFrom({ ...POLICY, revoked: { ...POLICY.revoked, serials: [`00:${serial}`] } });
    expect(await reasonOf(request(), pipeline({ policy }))).toBe("revoked_identity");
  });

  it("checks revocation before the subject header", async () => {
    const input = request({ peerCertificate: pki.agents.retired.urlEncodedPem }, { "x-agent-subject": undefined });
    expect(await reasonOf(input)).toBe("revoked_identity");
  });
});

describe("check 3: subject header present and exactly the certificate identity", () => {
  it("denies a request without the subject header", async () => {
    expect(await reasonOf(request({}, { "x-agent-subject": undefined }))).toBe("missing_subject_header");
  });

  it("denies a subject that names another agent", async () => {
    expect(await reasonOf(request({}, { "x-agent-subject": DB }))).toBe("subject_mismatch");
  });

  it.each([
    ["upper case", RESEARCH.toUpperCase()],
    ["a trailing space", `${RESEARCH} `],
    ["a trailing slash", `${RESEARCH}/`],
    ["an alias", "research"],
    ["an empty value", ""],
  ])("denies a subject that differs only by %s", async (_what, subject) => {
    expect(await reasonOf(request({}, { "x-agent-subject": subject }))).toBe("subject_mismatch");
  });
});

describe("check 4: on-behalf-of present when required and within the policy's patterns", () => {
  it("denies a request without on-behalf-of when the policy requires it", async () => {
    expect(await reasonOf(request({}, { "x-agent-on-behalf-of": undefined }))).toBe("missing_on_behalf_of");
  });

  it("treats an empty on-behalf-of as missing", async () => {
    expect(await reasonOf(request({}, { "x-agent-on-behalf-of": "" }))).toBe("missing_on_behalf_of");
  });

  it("denies a person the policy's top-level onBehalfOf does not admit", async () => {
    expect(await reasonOf(request({}, { "x-agent-on-behalf-of": "mallory@evil.example" }))).toBe("on_behalf_of_not_allowed");
  });

  it("matches on-behalf-of case-sensitively and without trimming", async () => {
    expect(await reasonOf(request({}, { "x-agent-on-behalf-of": "alice@EXAMPLE.com" }))).toBe("on_behalf_of_not_allowed");
    expect(await reasonOf(request({}, { "x-agent-on-behalf-of": "alice@example.com " }))).toBe("on_behalf_of_not_allowed");
  });

  it("allows a request without on-behalf-of when the policy does not require it", async () => {
    const policy = policyFrom({ ...POLICY, requireOnBehalfOf: false });
    const decision = await decide(requestFrom("orchestrator", undefined, "planner", {}, { "x-agent-on-behalf-of": undefined }), pipeline({ policy }));
    expect(decision).toMatchObject({ allowed: true, onBehalfOf: undefined });
  });

  it("still denies a hop whose rule names people when on-behalf-of is absent", async () => {
    const policy = policyFrom({ ...POLICY, requireOnBehalfOf: false });
    expect(await reasonOf(request({}, { "x-agent-on-behalf-of": undefined }), pipeline({ policy }))).toBe("hop_not_allowed");
  });
});

describe("check 5: the delegation chain", () => {
  it("treats a missing chain header as the chain [caller]", async () => {
    const decision = await decide(requestFrom("orchestrator", undefined, "research"));
    expect(decision).toMatchObject({ allowed: true, chain: [ORCH] });
  });

  it("accepts optional spaces and tabs around entries", async () => {
    expect(await reasonOf(request({}, { "x-agent-delegation-chain": ` ${ORCH}\t,\t${RESEARCH} ` }))).toBe("allowed");
  });

  it.each([
    ["a present but empty header", ""],
    ["an empty entry", `${ORCH},,${RESEARCH}`],
    ["a trailing comma", `${ORCH},${RESEARCH},`],
    ["an entry that is not a SPIFFE ID", `orchestrator,${RESEARCH}`],
    ["an entry with a trailing slash", `${ORCH}/,${RESEARCH}`],
    ["entries separated by ';'", `${ORCH};${RESEARCH}`],
  ])("denies %s as malformed_chain", async (_what, chain) => {
    expect(await reasonOf(request({}, { "x-agent-delegation-chain": chain }))).toBe("malformed_chain");
  });

  it("denies an entry from an untrusted trust domain", async () => {
    expect(await reasonOf(request({}, { "x-agent-delegation-chain": `${spiffe("orchestrator", "evil.example")},${RESEARCH}` }))).toBe("untrusted_trust_domain");
  });

  it("denies a chain longer than maxChainLength", async () => {
    const chain = [spiffe("a"), spiffe("b"), spiffe("c"), ORCH, RESEARCH].join(",");
    expect(await reasonOf(request({}, { "x-agent-delegation-chain": chain }))).toBe("chain_too_long");
  });

  // SPEC 1: bounded before any work. Parsing a 4 MiB header of valid entries held the event loop for about 0.5 s (review finding).
  it("denies a header longer than any chain of maxChainLength can be, before parsing it", async () => {
    const max = maxChainHeaderLength(4);
    const many = Array.from({ length: Math.ceil(max / 20) }, (_, i) => spiffe(`a${i}`)).join(",");
    expect(many.length).toBeGreaterThan(max);
    const decision = await decide(request({}, { "x-agent-delegation-chain": many }));
    expect(decision.reason).toBe("malformed_chain");
    expect(decision.message).toContain(`takes at most ${max}`);
    // Whitespace around entries is the list syntax: up to the bound, it is read as usual.
    const padded = `${ORCH},${" ".repeat(max - ORCH.length - RESEARCH.length - 1)}${RESEARCH}`;
    expect(padded.length).toBe(max);
    expect(await reasonOf(request({}, { "x-agent-delegation-chain": padded }))).toBe("allowed");
    expect(await reasonOf(request({}, { "x-agent-delegation-chain": ` ${padded}` }))).toBe("malformed_chain");
  });

  it("quotes a bounded part of a bad entry in the deny message", async () => {
    const decision = await decide(request({}, { "x-agent-delegation-chain": `${'"'.repeat(6000)},${RESEARCH}` }));
    expect(decision.reason).toBe("malformed_chain");
    expect(decision.message.length).toBeLessThan(600);
    expect(decision.message).toContain("(6000 characters)");
  });

  it("allows a chain of exactly maxChainLength (as far as the chain checks go)", async () => {
    const chain = [spiffe("a"), spiffe("b"), ORCH, RESEARCH].join(",");
    expect(await reasonOf(request({}, { "x-agent-delegation-chain": chain }))).toBe("hop_not_allowed");
  });

  it("denies a chain that names an agent twice", async () => {
    expect(await reasonOf(request({}, { "x-agent-delegation-chain": `${RESEARCH},${ORCH},${RESEARCH}` }))).toBe("chain_cycle");
  });

  it("denies a chain whose last entry is not the caller", async () => {
    expect(await reasonOf(request({}, { "x-agent-delegation-chain": `${RESEARCH},${ORCH}` }))).toBe("chain_caller_mismatch");
    expect(await reasonOf(request({}, { "x-agent-delegation-chain": ORCH }))).toBe("chain_caller_mismatch");
  });

  it("denies a chain that passes through a revoked agent", async () => {
    expect(await reasonOf(request({}, { "x-agent-delegation-chain": `${ORCH},${RETIRED},${RESEARCH}` }))).toBe("revoked_identity");
  });

  it("checks syntax, trust domains, length, cycles, the caller and revocation in that order", async () => {
    const foreign = spiffe("x", "evil.example");
    const cases: [string, DenialReason][] = [
      [`${foreign},not-an-id,${RESEARCH}`, "malformed_chain"],
      [[foreign, spiffe("a"), spiffe("b"), spiffe("c"), RESEARCH].join(","), "untrusted_trust_domain"],
      [[ORCH, ORCH, spiffe("b"), spiffe("c"), ORCH].join(","), "chain_too_long"],
      [[ORCH, RETIRED, ORCH].join(","), "chain_cycle"],
      [[RETIRED, ORCH].join(","), "chain_caller_mismatch"],
    ];
    for (const [chain, reason] of cases) expect(await reasonOf(request({}, { "x-agent-delegation-chain": chain }))).toBe(reason);
  });
});

describe("check 6: the callee", () => {
  it("resolves a policy alias in the route's context extension to its SPIFFE ID", async () => {
    expect(await decide(request({ contextExtensions: { agent: "db" } }))).toMatchObject({ allowed: true, callee: DB });
  });

  it("takes a SPIFFE ID in the context extension as it is", async () => {
    expect(await decide(request({ contextExtensions: { agent: DB } }))).toMatchObject({ allowed: true, callee: DB });
  });

  it("falls back to the destination principal", async () => {
    expect(await decide(request({ contextExtensions: {}, destinationPrincipal: DB }))).toMatchObject({ allowed: true, callee: DB });
  });

  it("prefers the context extension over the destination principal", async () => {
    expect(await decide(request({ destinationPrincipal: ORCH }))).toMatchObject({ callee: DB });
  });

  it("denies a request with no callee at all", async () => {
    expect(await reasonOf(request({ contextExtensions: {} }))).toBe("unknown_callee");
  });

  it("denies an alias the policy does not define", async () => {
    expect(await reasonOf(request({ contextExtensions: { agent: "payments" } }))).toBe("unknown_callee");
    expect(await reasonOf(request({ contextExtensions: { agent: "DB" } }))).toBe("unknown_callee");
  });

  it("denies a callee that is not a valid SPIFFE ID", async () => {
    expect(await reasonOf(request({ contextExtensions: { agent: `${DB}/` } }))).toBe("unknown_callee");
    expect(await reasonOf(request({ contextExtensions: {}, destinationPrincipal: "cluster.local/ns/db" }))).toBe("unknown_callee");
  });
});

describe("check 7: per-hop policy over chain + [callee]", () => {
  it("denies a hop that no rule admits, recording the failing hop", async () => {
    const decision = await decide(requestFrom("research", [RESEARCH], "orchestrator"));
    expect(decision.reason).toBe("hop_not_allowed");
    expect(decision.hops).toEqual([expect.objectContaining({ from: RESEARCH, to: ORCH, rule: "", result: "deny" })]);
  });

  it("denies a chain whose earlier hop is not allowed, even when the last hop is", async () => {
    const decision = await decide(request({}, { "x-agent-delegation-chain": `${WORKER},${RESEARCH}` }));
    expect(decision.reason).toBe("hop_not_allowed");
    expect(decision.hops.map((h) => h.result)).toEqual(["deny"]);
  });

  it("judges every hop for this on-behalf-of", async () => {
    expect(await reasonOf(requestFrom("orchestrator", undefined, "worker"))).toBe("allowed");
    expect(await reasonOf(requestFrom("orchestrator", undefined, "worker", {}, { "x-agent-on-behalf-of": "bob@example.com" }))).toBe("hop_not_allowed");
  });

  it("denies a method the last hop's rule does not admit", async () => {
    expect(await reasonOf(request({ method: "DELETE" }))).toBe("hop_not_allowed");
  });

  it("denies a path the last hop's rule does not admit", async () => {
    expect(await reasonOf(request({ path: "/admin" }))).toBe("hop_not_allowed");
  });

  it("allows the path with a query string, and a '*' segment", async () => {
    expect(await reasonOf(request({ path: "/query?limit=10" }))).toBe("allowed");
    expect(await reasonOf(request({ method: "POST", path: "/schema/users" }))).toBe("allowed");
  });

  it.each(["/schema/../admin", "/schema/%2e%2e/admin", "/schema/users%2Fadmin", "/schema/users%5Cadmin", "/schema/./users"])(
    "denies %j, which an upstream might resolve outside the rule",
    async (path) => {
      expect(await reasonOf(request({ path }))).toBe("hop_not_allowed");
    },
  );

  it("applies method and path rules to the last hop only", async () => {
    // research → db admits only GET/POST on two paths, but as an earlier hop it is judged without them.
    const policy = policyFrom({ ...POLICY, hops: [{ from: "db", to: "worker" }, ...HOPS] });
    const input = requestFrom("db", [ORCH, RESEARCH, DB], "worker", { method: "DELETE", path: "/admin" });
    expect(await reasonOf(input, pipeline({ policy }))).toBe("allowed");
  });
});

describe("check 8: requireVia", () => {
  it("denies a chain that skips research", async () => {
    const decision = await decide(requestFrom("planner", [ORCH, PLANNER], "db"));
    expect(decision.reason).toBe("required_hop_missing");
    expect(decision.hops.map((h) => h.result)).toEqual(["allow", "allow"]);
  });

  it("denies a chain that reaches the db without starting at the orchestrator", async () => {
    expect(await reasonOf(request({}, { "x-agent-delegation-chain": `${PLANNER},${RESEARCH}` }))).toBe("required_hop_missing");
  });

  it("allows a chain that passes every required agent", async () => {
    expect(await reasonOf(request())).toBe("allowed");
  });

  it("does not apply to other callees", async () => {
    expect(await reasonOf(requestFrom("orchestrator", undefined, "planner"))).toBe("allowed");
  });
});

describe("check 9: the delegation token", () => {
  const withTokens = (tokens: Partial<TokensSpec> = {}) => policyFrom({ ...POLICY, tokens: { ...TOKENS, ...tokens } });
  const withToken = (token: string | undefined, more: Partial<CheckInput> = {}) => request(more, { "x-agent-delegation-token": token });

  it("allows a request without a token when the policy does not require one", async () => {
    expect(await reasonOf(withToken(undefined), pipeline({ policy: withTokens(), tokens: new ScriptedTokenVerifier() }))).toBe("allowed");
  });

  it("denies a missing token when the policy requires one for every hop", async () => {
    expect(await reasonOf(withToken(undefined), pipeline({ policy: withTokens({ required: true }), tokens: new ScriptedTokenVerifier() }))).toBe("token_missing");
  });

  it("treats an empty token header as missing", async () => {
    expect(await reasonOf(withToken(""), pipeline({ policy: withTokens({ required: true }), tokens: new ScriptedTokenVerifier() }))).toBe("token_missing");
  });

  it("denies a missing token when a rule on the chain requires one", async () => {
    const policy = policyFrom({ ...POLICY, hops: editHop(HOPS, 0, { requireToken: true }) });
    expect(await reasonOf(withToken(undefined), pipeline({ policy }))).toBe("token_missing");
  });

  it("allows a verified token and records its jti", async () => {
    expect(await decide(withToken("ok-1"), pipeline({ policy: withTokens(), tokens: new ScriptedTokenVerifier() }))).toMatchObject({ allowed: true, tokenId: "jti-ok-1" });
  });

  it("records a verified token's hash and its prev, so the audit trail's tokens form SPEC 5's hash chain", async () => {
    const p = pipeline({ policy: withTokens(), tokens: new ScriptedTokenVerifier() });
    expect(await decide(withToken("ok-first"), p)).toMatchObject({ allowed: true, tokenSha256: "sha-ok-first", tokenPrev: undefined });
    expect(await decide(withToken("ok-after-ok-first"), p)).toMatchObject({ allowed: true, tokenId: "jti-ok-after-ok-first", tokenSha256: "sha-ok-after-ok-first", tokenPrev: "sha-ok-first" });
  });

  it("records a refused token's hash, but no jti and no prev (only a token that passed vouches for its claims)", async () => {
    const decision = await decide(withToken("token_chain_mismatch"), pipeline({ policy: withTokens(), tokens: new ScriptedTokenVerifier() }));
    expect(decision).toMatchObject({ allowed: false, reason: "token_chain_mismatch", tokenSha256: "sha-token_chain_mismatch", tokenId: undefined, tokenPrev: undefined });
  });

  it("records no token hash when the token never reached the verifier, nor without a token", async () => {
    const verifier = new ScriptedTokenVerifier();
    expect(await decide(withToken("ok", { method: "DELETE" }), pipeline({ policy: withTokens(), tokens: verifier }))).toMatchObject({ reason: "hop_not_allowed", tokenSha256: undefined });
    expect(await decide(withToken(undefined), pipeline({ policy: withTokens(), tokens: verifier }))).toMatchObject({ allowed: true, tokenSha256: undefined, tokenPrev: undefined });
  });

  it("hands the verifier the chain, the callee, on-behalf-of, the certificate thumbprint and the last hop's scopes", async () => {
    const verifier = new ScriptedTokenVerifier();
    await decide(withToken("ok"), pipeline({ policy: withTokens(), tokens: verifier }));
    expect(verifier.requests[0]).toMatchObject({
      token: "ok",
      chain: [ORCH, RESEARCH],
      caller: RESEARCH,
      callee: DB,
      onBehalfOf: ALICE,
      allowedScopes: ["db:read"],
      nowMs: NOW,
      policy: { issuer: "https://sts.example.org", jwks: "jwks.json", required: false, singleUse: false, clockSkewSeconds: 30 },
    });
    expect(verifier.requests[0]?.peerX5tS256).toMatch(/^[A-Za-z0-9_-]{43}$/);
  });

  it.each(["token_invalid", "token_expired", "token_chain_mismatch", "token_scope_exceeded", "token_replayed"] as const)(
    "denies with the verifier's reason %s",
    async (reason) => {
      const decision = await decide(withToken(reason), pipeline({ policy: withTokens(), tokens: new ScriptedTokenVerifier() }));
      expect(decision).toMatchObject({ allowed: false, reason, message: `scripted ${reason}` });
    },
  );

  it("denies a token sent under a policy that configures no issuer as token_invalid", async () => {
    expect(await reasonOf(withToken("ok"), pipeline({ tokens: new ScriptedTokenVerifier() }))).toBe("token_invalid");
  });

  it("never consults the verifier when an earlier check fails", async () => {
    const verifier = new ScriptedTokenVerifier();
    expect(await reasonOf(withToken("ok", { method: "DELETE" }), pipeline({ policy: withTokens(), tokens: verifier }))).toBe("hop_not_allowed");
    expect(verifier.requests).toHaveLength(0);
  });

  it("denies with internal_error when the verifier fails, never allowing", async () => {
    expect(await reasonOf(withToken("throws"), pipeline({ policy: withTokens(), tokens: new ScriptedTokenVerifier() }))).toBe("internal_error");
  });

  it("denies with internal_error when tokens are configured but no verifier runs", async () => {
    expect(await reasonOf(withToken("ok"), pipeline({ policy: withTokens() }))).toBe("internal_error");
  });
});

describe("SPEC 1: untrusted values are bounded and security headers single", () => {
  const tokens = () => policyFrom({ ...POLICY, tokens: TOKENS });
  const repeated = (header: string, value: string) => ({ ...request({}, { [header]: value }), repeatedHeaders: new Set([header]) });

  it.each([
    ["x-agent-subject", RESEARCH, "subject_mismatch"],
    ["x-agent-on-behalf-of", ALICE, "on_behalf_of_not_allowed"],
    ["x-agent-delegation-chain", `${ORCH},${RESEARCH}`, "malformed_chain"],
  ] as const)("refuses a repeated %s with its reason, never merging it", async (header, value, reason) => {
    expect(await reasonOf(request({}, { [header]: value }))).toBe("allowed");
    expect(await reasonOf(repeated(header, value))).toBe(reason);
  });

  it("refuses a repeated delegation token as token_invalid, without asking the verifier", async () => {
    const verifier = new ScriptedTokenVerifier();
    const input = { ...request({}, { "x-agent-delegation-token": "ok" }), repeatedHeaders: new Set(["x-agent-delegation-token"]) };
    expect(await reasonOf(input, pipeline({ policy: tokens(), tokens: verifier }))).toBe("token_invalid");
    expect(verifier.requests).toHaveLength(0);
  });

  // The decoder reads such a raw_value with U+FFFD; the flag alone refuses it, whatever the text reads as,
  // and the decision still names the caller (it was an unattributed internal_error; review finding).
  it.each([
    ["x-agent-subject", RESEARCH, "subject_mismatch"],
    ["x-agent-on-behalf-of", ALICE, "on_behalf_of_not_allowed"],
    ["x-agent-delegation-chain", `${ORCH},${RESEARCH}`, "malformed_chain"],
  ] as const)("refuses a %s whose raw_value was not UTF-8 with its reason, naming the caller", async (header, value, reason) => {
    const decision = await decide({ ...request({}, { [header]: value }), notUtf8Headers: new Set([header]) });
    expect(decision).toMatchObject({ allowed: false, reason, caller: RESEARCH });
    expect(decision.message).toContain("not valid UTF-8");
  });

  it("refuses a delegation token whose raw_value was not UTF-8 as token_invalid, without asking the verifier", async () => {
    const verifier = new ScriptedTokenVerifier();
    const input = { ...request({}, { "x-agent-delegation-token": "ok" }), notUtf8Headers: new Set(["x-agent-delegation-token"]) };
    expect(await reasonOf(input, pipeline({ policy: tokens(), tokens: verifier }))).toBe("token_invalid");
    expect(verifier.requests).toHaveLength(0);
  });

  it("ignores the repetition of headers it does not guard", async () => {
    expect(await reasonOf({ ...request(), repeatedHeaders: new Set(["accept", "x-forwarded-for"]) })).toBe("allowed");
  });

  it("refuses an on-behalf-of naming two principals, which Envoy makes of a repeated header (finding 7)", async () => {
    const decision = await decide(request({}, { "x-agent-on-behalf-of": "mallory@evil.com,x@example.com" }));
    expect(decision).toMatchObject({ allowed: false, reason: "on_behalf_of_not_allowed" });
    expect(decision.message).toContain('","');
    expect(await reasonOf(request({}, { "x-agent-on-behalf-of": "x@example.com alice@example.com" }))).toBe("on_behalf_of_not_allowed");
    expect(await reasonOf(request({}, { "x-agent-on-behalf-of": "x@example.com\u0000" }))).toBe("on_behalf_of_not_allowed");
  });

  it("refuses an on-behalf-of over 2,048 bytes even when a pattern would admit it", async () => {
    expect(await reasonOf(request({}, { "x-agent-on-behalf-of": `${"a".repeat(2036)}@example.com` }))).toBe("allowed");
    expect(await reasonOf(request({}, { "x-agent-on-behalf-of": `${"a".repeat(2037)}@example.com` }))).toBe("on_behalf_of_not_allowed");
  });

  it("refuses a subject over 2,048 bytes as subject_mismatch", async () => {
    expect(await reasonOf(request({}, { "x-agent-subject": `${RESEARCH}${"a".repeat(2048)}` }))).toBe("subject_mismatch");
  });

  it("refuses a chain entry over 2,048 bytes as malformed_chain", async () => {
    expect(await reasonOf(request({}, { "x-agent-delegation-chain": `spiffe://example.org/${"a".repeat(2048)},${RESEARCH}` }))).toBe("malformed_chain");
  });

  it("refuses a token over 16 KiB as token_invalid, without asking the verifier", async () => {
    const verifier = new ScriptedTokenVerifier();
    const p = pipeline({ policy: tokens(), tokens: verifier });
    expect(await reasonOf(request({}, { "x-agent-delegation-token": `ok${"x".repeat(16 * 1024 - 2)}` }), p)).toBe("allowed");
    expect(await reasonOf(request({}, { "x-agent-delegation-token": `ok${"x".repeat(16 * 1024 - 1)}` }), p)).toBe("token_invalid");
    expect(verifier.requests).toHaveLength(1);
  });

  it("refuses a path over 8 KiB as hop_not_allowed even where no rule restricts paths, but not a long query string", async () => {
    const open = policyFrom({ ...POLICY, hops: editHop(HOPS, RESEARCH_TO_DB, { methods: undefined, paths: undefined }) });
    const p = pipeline({ policy: open });
    expect(await reasonOf(request({ path: `/${"a".repeat(8 * 1024 - 1)}` }), p)).toBe("allowed");
    expect(await reasonOf(request({ path: `/${"a".repeat(8 * 1024)}` }), p)).toBe("hop_not_allowed");
    expect(await reasonOf(request({ path: `/query?${"q".repeat(50_000)}` }), p)).toBe("allowed");
  });

  it.each(["/query/..;/admin", "/query;x", "/schema/%2e%2e;/admin", "/schema/%252e%252e/%252e%252e/admin", "/schema/%252F..%252Fadmin", "/schema/caf\u00e9"])(
    "denies %j, which an upstream may resolve outside the rule (finding 6)",
    async (path) => {
      expect(await reasonOf(request({ path }))).toBe("hop_not_allowed");
    },
  );
});

describe("fail closed", () => {
  it("turns an exception in the certificate parser into an internal_error deny", async () => {
    const certificates: CertificateParser = {
      parse: () => {
        throw new Error("boom");
      },
    };
    const decision = await decide(request(), pipeline({ certificates }));
    expect(decision).toMatchObject({ allowed: false, reason: "internal_error" });
    expect(decision.decisionId.length).toBeGreaterThan(0);
  });

  it("turns an exception in the policy source into an internal_error deny", async () => {
    const policies: PolicySource = {
      current: () => {
        throw new Error("boom");
      },
    };
    expect(await reasonOf(request(), new CheckPipeline({ policies, certificates: new CachingCertificateParser(), clock: { nowMs: () => NOW }, ids: { next: () => "id" } }))).toBe("internal_error");
  });

  it("turns an exception in the hop cache into an internal_error deny", async () => {
    const hopCache: HopDecisionCache = {
      get: () => {
        throw new Error("boom");
      },
      set: () => undefined,
    };
    expect(await reasonOf(request(), pipeline({ hopCache }))).toBe("internal_error");
  });

  it("can deny without deciding (a request that could not be read), with a decision id and the policy version", () => {
    const decision = pipeline().denyWithoutDeciding("internal_error", "could not decode the request");
    expect(decision).toMatchObject({ allowed: false, reason: "internal_error", policyVersion: "2026-11-01.3", chain: [] });
  });
});

describe("check order: the first failing check's reason wins", () => {
  // One fault per check, in SPEC 2's order. Applied last-to-first, so an
  // earlier fault that rewrites the same field as a later one wins, as it must.
  type Fault = { reason: DenialReason; apply: (input: CheckInput) => CheckInput };
  const header = (name: string, value: string | undefined) => (input: CheckInput): CheckInput => {
    const headers: Record<string, string> = { ...input.headers };
    if (value === undefined) delete headers[name];
    else headers[name] = value;
    return { ...input, headers };
  };
  const faults = (): Fault[] => [
    { reason: "missing_peer_certificate", apply: (i) => ({ ...i, peerCertificate: "" }) },
    { reason: "invalid_peer_certificate", apply: (i) => ({ ...i, peerCertificate: pki.expired.urlEncodedPem }) },
    { reason: "untrusted_trust_domain", apply: (i) => ({ ...i, peerCertificate: pki.foreignDomain.urlEncodedPem }) },
    { reason: "revoked_identity", apply: (i) => ({ ...i, peerCertificate: pki.agents.retired.urlEncodedPem }) },
    { reason: "missing_subject_header", apply: header("x-agent-subject", undefined) },
    { reason: "subject_mismatch", apply: header("x-agent-subject", DB) },
    { reason: "missing_on_behalf_of", apply: header("x-agent-on-behalf-of", undefined) },
    { reason: "on_behalf_of_not_allowed", apply: header("x-agent-on-behalf-of", "mallory@evil.example") },
    { reason: "malformed_chain", apply: header("x-agent-delegation-chain", `${ORCH},,${RESEARCH}`) },
    { reason: "untrusted_trust_domain", apply: header("x-agent-delegation-chain", `${spiffe("orchestrator", "evil.example")},${RESEARCH}`) },
    { reason: "chain_too_long", apply: header("x-agent-delegation-chain", [spiffe("a"), spiffe("b"), spiffe("c"), ORCH, RESEARCH].join(",")) },
    { reason: "chain_cycle", apply: header("x-agent-delegation-chain", `${RESEARCH},${ORCH},${RESEARCH}`) },
    { reason: "chain_caller_mismatch", apply: header("x-agent-delegation-chain", `${RESEARCH},${ORCH}`) },
    { reason: "revoked_identity", apply: header("x-agent-delegation-chain", `${ORCH},${RETIRED},${RESEARCH}`) },
    { reason: "unknown_callee", apply: (i) => ({ ...i, contextExtensions: { agent: "payments" } }) },
    { reason: "hop_not_allowed", apply: (i) => ({ ...i, method: "DELETE" }) },
    { reason: "required_hop_missing", apply: header("x-agent-delegation-chain", `${PLANNER},${RESEARCH}`) },
    { reason: "token_missing", apply: header("x-agent-delegation-token", undefined) },
    { reason: "token_expired", apply: header("x-agent-delegation-token", "token_expired") },
    // SPEC 8: the Transaction Token comes after the delegation token.
    { reason: "token_missing", apply: header("txn-token", undefined) },
    { reason: "token_chain_mismatch", apply: header("txn-token", "sub:bob@example.com") },
  ];
  /** A Txn-Token verifier that reads the token as `sub:<person>`. */
  const txnTokens: TxnTokenVerifier = {
    verify: (r) => Promise.resolve({ ok: true, txn: "txn-1", sub: r.token.slice(4), issuer: r.policy.issuer, audience: "example.org", tokenSha256: "h" }),
  };
  const orderPipeline = () => pipeline({ policy: policyFrom({ ...POLICY, txnTokens: { ...TOKENS, required: true }, tokens: { ...TOKENS, required: true } }), tokens: new ScriptedTokenVerifier(), txnTokens });
  const base = () => request({}, { "x-agent-delegation-token": "ok", "txn-token": `sub:${ALICE}` });

  it("allows the request with no fault", async () => {
    expect(await reasonOf(base(), orderPipeline())).toBe("allowed");
  });

  it("denies each fault alone with its own reason", async () => {
    for (const fault of faults()) expect([fault.reason, await reasonOf(fault.apply(base()), orderPipeline())]).toEqual([fault.reason, fault.reason]);
  });

  it("denies any combination of faults with the earliest check's reason (property)", async () => {
    const all = faults();
    const p = orderPipeline();
    await fc.assert(
      fc.asyncProperty(fc.subarray(all.map((_, i) => i), { minLength: 1 }), async (chosen) => {
        let input = base();
        for (const i of [...chosen].reverse()) input = all[i]!.apply(input);
        return (await reasonOf(input, p)) === all[chosen[0]!]!.reason;
      }),
      { numRuns: 300 },
    );
  });
});

describe("the hop cache", () => {
  it("serves a repeated hop from the cache and says so", async () => {
    const hopCache = new LruHopDecisionCache();
    const p = pipeline({ hopCache });
    await decide(request(), p);
    const second = await decide(request(), p);
    expect(second.allowed).toBe(true);
    expect(second.hops.map((h) => h.cached)).toEqual([true, true]);
    expect(hopCache.hits).toBe(2);
  });

  it("never serves a stale outcome after a policy reload", async () => {
    const hopCache = new LruHopDecisionCache();
    const source = new SwappablePolicySource(policyFrom(POLICY));
    const p = pipeline({ hopCache, policies: source });
    expect(await reasonOf(request(), p)).toBe("allowed");
    source.policy = policyFrom({ ...POLICY, version: "2026-11-01.4", hops: editHop(HOPS, RESEARCH_TO_DB, { methods: ["POST"] }) });
    expect(await reasonOf(request(), p)).toBe("hop_not_allowed");
    source.policy = policyFrom(POLICY);
    expect(await reasonOf(request(), p)).toBe("allowed");
  });

  it("never serves a stale outcome after an edit that keeps the version string", async () => {
    const hopCache = new LruHopDecisionCache();
    const source = new SwappablePolicySource(policyFrom(POLICY));
    const p = pipeline({ hopCache, policies: source });
    expect(await reasonOf(request(), p)).toBe("allowed");
    source.policy = policyFrom({ ...POLICY, hops: editHop(HOPS, RESEARCH_TO_DB, { paths: ["/schema/*"] }) });
    const decision = await decide(request(), p);
    expect(decision).toMatchObject({ allowed: false, reason: "hop_not_allowed", policyVersion: "2026-11-01.3" });
    expect(decision.hops.map((h) => h.cached)).toEqual([false, false]);
  });

  it("never lets a hop cached as an earlier hop admit a last hop whose method or path its rule refuses", async () => {
    const hopCache = new LruHopDecisionCache();
    const policy = policyFrom({ ...POLICY, hops: [{ from: "db", to: "worker" }, ...HOPS] });
    const p = pipeline({ hopCache, policy });
    // research → db as an earlier hop: admitted without method and path, and cached.
    const throughDb = requestFrom("db", [RESEARCH, DB], "worker", { method: "DELETE", path: "/admin" });
    expect(await reasonOf(throughDb, p)).toBe("allowed");
    // research → db as the last hop, same method and path: its rule refuses them.
    const direct = requestFrom("research", [RESEARCH], "db", { method: "DELETE", path: "/admin" });
    expect(await reasonOf(direct, p)).toBe("hop_not_allowed");
  });

  it("keys the last hop by the path rules see: distinct query strings share one entry (finding 5)", async () => {
    const hopCache = new LruHopDecisionCache();
    const p = pipeline({ hopCache });
    for (let i = 0; i < 50; i++) expect(await reasonOf(request({ path: `/query?q=${i}${"x".repeat(1000)}` }), p)).toBe("allowed");
    expect(hopCache.size).toBe(2);
    expect(hopCache.bytes).toBeLessThan(4096);
  });

  it("stays within its byte bound whatever the callers send (finding 5)", async () => {
    const hopCache = new LruHopDecisionCache(10_000, 256 * 1024);
    const p = pipeline({ hopCache });
    for (let i = 0; i < 300; i++) {
      await decide(request({ path: `/schema/${i}${"y".repeat(1500)}` }, { "x-agent-on-behalf-of": `${i}${"p".repeat(1500)}@example.com` }), p);
    }
    expect(hopCache.bytes).toBeLessThanOrEqual(256 * 1024);
    expect(hopCache.size).toBeLessThan(300);
  });

  it("keys a repeated chain header's hops by the person, callee, method and path of each request", async () => {
    const hopCache = new LruHopDecisionCache();
    const p = pipeline({ hopCache });
    const toWorker = (person: string, more: Partial<CheckInput> = {}) => requestFrom("orchestrator", [ORCH], "worker", more, { "x-agent-on-behalf-of": person });
    const toDb = (more: Partial<CheckInput>) => request(more);
    for (let round = 0; round < 2; round++) {
      // orchestrator → worker is for alice only; the same chain header for bob must not be served alice's outcome.
      expect(await reasonOf(toWorker(ALICE), p)).toBe("allowed");
      expect(await reasonOf(toWorker("bob@example.com"), p)).toBe("hop_not_allowed");
      // research → db admits GET /query only: the same chain with another method or path, or another callee, is decided for itself.
      expect(await reasonOf(toDb({}), p)).toBe("allowed");
      expect(await reasonOf(toDb({ method: "DELETE" }), p)).toBe("hop_not_allowed");
      expect(await reasonOf(toDb({ path: "/admin" }), p)).toBe("hop_not_allowed");
      expect(await reasonOf(toDb({ contextExtensions: { agent: "worker" } }), p)).toBe("hop_not_allowed");
      expect(await reasonOf(toDb({}), p)).toBe("allowed");
    }
  });

  it("gives the same decisions with and without the cache (property)", async () => {
    const cached = pipeline({ hopCache: new LruHopDecisionCache(16) });
    const uncached = pipeline();
    const agents = fc.constantFrom(ORCH, RESEARCH, DB, PLANNER, WORKER);
    await fc.assert(
      fc.asyncProperty(
        fc.array(agents, { minLength: 1, maxLength: 4 }),
        fc.constantFrom("db", "research", "planner", "worker"),
        fc.constantFrom("GET", "POST", "DELETE"),
        fc.constantFrom("/query", "/schema/x", "/admin", "/schema/../admin"),
        fc.constantFrom(ALICE, "bob@example.com"),
        async (chain, callee, method, path, person) => {
          const input = request({ contextExtensions: { agent: callee }, method, path }, { "x-agent-delegation-chain": [...chain, RESEARCH].join(","), "x-agent-on-behalf-of": person });
          const [a, b] = [await decide(input, cached), await decide(input, uncached)];
          return a.allowed === b.allowed && a.reason === b.reason;
        },
      ),
      { numRuns: 400 },
    );
  });
});

describe("malformed input never yields an allow (property)", () => {
  // A policy under which any chain of example.org agents may reach the db,
  // so that only the input under test can make the difference.
  /** Any example.org agent may call any other, for anyone: only the checks before the hop rules can deny. */
  const OPEN: PolicySpec = { version: "open", maxChainLength: 6, requireOnBehalfOf: false, hops: [{ from: "spiffe://example.org/agent/*", to: "spiffe://example.org/agent/*" }] };
  const open = () => pipeline({ policy: policyFrom(OPEN) });
  const validEntry = /^spiffe:\/\/example\.org\/agent\/[A-Za-z0-9._-]+$/;

  it("allows an arbitrary chain header exactly when it is a list of distinct example.org agents ending with the caller", async () => {
    const p = open();
    const piece = fc.oneof(
      fc.constantFrom(ORCH, RESEARCH, PLANNER, DB, spiffe("x", "evil.example"), `${ORCH}/`, "research", ",", ", ", "\t", " ", "", ",,", "\n", "%2C"),
      fc.string({ maxLength: 4 }),
    );
    const lists = fc
      .tuple(fc.array(fc.constantFrom(ORCH, PLANNER, DB, WORKER, RESEARCH, spiffe("x.y_Z-1"), spiffe("..")), { maxLength: 7 }), fc.array(fc.constantFrom(",", " , ", ",\t", ",,", ", "), { minLength: 7, maxLength: 7 }))
      .map(([ids, separators]) => [...ids, RESEARCH].map((id, i) => (i === 0 ? id : separators[i - 1]! + id)).join(""));
    const headers = fc.oneof(fc.string(), fc.array(piece, { maxLength: 10 }).map((p) => p.join("")), lists);
    await fc.assert(
      fc.asyncProperty(headers, async (chain) => {
        const entries = chain.split(",").map((e) => e.replace(/^[ \t]+|[ \t]+$/g, ""));
        const segments = entries.map((e) => e.split("/").at(-1));
        const expected =
          entries.every((e) => validEntry.test(e)) &&
          !segments.includes(".") &&
          !segments.includes("..") &&
          new Set(entries).size === entries.length &&
          entries.length <= 6 &&
          entries.at(-1) === RESEARCH;
        const decision = await decide(request({ contextExtensions: { agent: DB } }, { "x-agent-delegation-chain": chain }), p);
        return decision.allowed === expected;
      }),
      { numRuns: 1000 },
    );
  });

  it("allows an arbitrary subject header only when it is exactly the caller", async () => {
    const p = open();
    const subjects = fc.oneof(fc.string(), fc.constantFrom(RESEARCH, ` ${RESEARCH}`, RESEARCH.toUpperCase(), `${RESEARCH}\u0000`), fc.string().map((s) => RESEARCH + s));
    await fc.assert(
      fc.asyncProperty(subjects, async (subject) => (await decide(request({ contextExtensions: { agent: DB } }, { "x-agent-subject": subject }), p)).allowed === (subject === RESEARCH)),
      { numRuns: 500 },
    );
  });

  it("never allows an arbitrary string as the peer certificate", async () => {
    const p = open();
    const valid = pki.agents.research.urlEncodedPem;
    const pieces = fc.constantFrom("-----BEGIN%20CERTIFICATE-----%0A", "-----END%20CERTIFICATE-----%0A", "-----BEGIN CERTIFICATE-----\n", "MIIB", "%", "%0", "%E0%A4%A", "AAAA", "\n");
    const certificates = fc.oneof(
      fc.string(),
      fc.array(pieces, { maxLength: 8 }).map((p) => p.join("")),
      fc.nat(valid.length - 1).map((n) => valid.slice(0, n)),
      fc.tuple(fc.nat(valid.length - 1), fc.string({ minLength: 1, maxLength: 3 })).map(([n, s]) => valid.slice(0, n) + s),
    );
    await fc.assert(
      fc.asyncProperty(certificates, async (certificate) => {
        const decision = await decide(request({ peerCertificate: certificate, contextExtensions: { agent: DB } }), p);
        return !decision.allowed || certificate.startsWith(valid.slice(0, valid.lastIndexOf("-----") + 5));
      }),
      { numRuns: 400 },
    );
  });

  it("allows a forwarded client certificate header only when its last element names exactly the caller", async () => {
    const p = pipeline({ policy: policyFrom(OPEN), trustForwardedClientCert: true });
    const researchPem = pki.agents.research.urlEncodedPem;
    const key = fc.constantFrom("By", "Hash", "URI", "uri", "Cert", "DNS", "Subject");
    const value = fc.oneof(fc.constantFrom(RESEARCH, DB, `${RESEARCH}/`, "", researchPem, pki.agents.db.urlEncodedPem, "a,b;c=d"), fc.string({ maxLength: 6 }));
    const element = fc.oneof(
      fc.array(fc.tuple(key, value, fc.boolean()), { minLength: 1, maxLength: 4 }),
      fc.array(fc.tuple(fc.constantFrom("By", "URI", "Hash"), fc.constantFrom(RESEARCH, spiffe("gateway"), "f00d"), fc.boolean()), { minLength: 1, maxLength: 3 }),
    );
    const quote = (v: string, force: boolean) => (force || /[,;="\\]/.test(v) ? `"${v.replace(/[\\"]/g, "\\$&")}"` : v);
    await fc.assert(
      fc.asyncProperty(fc.array(element, { minLength: 1, maxLength: 3 }), async (elements) => {
        const header = elements.map((pairs) => pairs.map(([k, v, force]) => `${k}=${quote(v, force)}`).join(";")).join(",");
        const last = elements.at(-1)!;
        const certs = last.filter(([k]) => k === "Cert").map(([, v]) => v);
        const uris = last.filter(([k]) => k.toLowerCase() === "uri").map(([, v]) => v);
        const expected = certs.length > 0 ? certs.length === 1 && certs[0] === researchPem : uris.length === 1 && uris[0] === RESEARCH;
        const decision = await decide(request({ peerCertificate: pki.server.urlEncodedPem, contextExtensions: { agent: DB } }, { "x-forwarded-client-cert": header }), p);
        return decision.allowed === expected;
      }),
      { numRuns: 400 },
    );
  });

  it("never allows an arbitrary string as the forwarded client certificate header unless it names the caller", async () => {
    const p = pipeline({ policy: policyFrom(OPEN), trustForwardedClientCert: true });
    await fc.assert(
      fc.asyncProperty(fc.string(), async (xfcc) => {
        const decision = await decide(request({ contextExtensions: { agent: DB } }, { "x-forwarded-client-cert": xfcc }), p);
        return !decision.allowed || xfcc.includes(RESEARCH);
      }),
      { numRuns: 500 },
    );
  });

  it("never throws and always returns a decision with a known reason, whatever the request", async () => {
    const p = pipeline({ trustForwardedClientCert: true, hopCache: new LruHopDecisionCache(64) });
    const anyHeaders = fc.dictionary(
      fc.constantFrom("x-agent-subject", "x-agent-on-behalf-of", "x-agent-delegation-chain", "x-agent-delegation-token", "x-forwarded-client-cert", "other"),
      fc.oneof(fc.string(), fc.constantFrom(RESEARCH, ORCH, ALICE, `${ORCH},${RESEARCH}`)),
    );
    const input = fc.record({
      peerCertificate: fc.oneof(fc.string(), fc.constant(pki.agents.research.urlEncodedPem)),
      peerPrincipal: fc.oneof(fc.string(), fc.constant(RESEARCH)),
      destinationPrincipal: fc.oneof(fc.string(), fc.constant(DB)),
      contextExtensions: fc.dictionary(fc.constantFrom("agent", "other", "__proto__"), fc.oneof(fc.string(), fc.constantFrom("db", "constructor", "__proto__", "toString"))),
      headers: anyHeaders,
      method: fc.oneof(fc.string(), fc.constant("GET")),
      path: fc.oneof(fc.string(), fc.constant("/query")),
    });
    await fc.assert(
      fc.asyncProperty(input, async (i) => {
        const decision = await decide(i, p);
        return decision.decisionId.length > 0 && (decision.allowed ? decision.reason === undefined : DENIAL_REASONS.includes(decision.reason));
      }),
      { numRuns: 500 },
    );
  });
});

describe("SPEC 4 reason coverage", () => {
  it("reached every reason code the core can produce", () => {
    // This runs last in the file: every reason is produced by some test above.
    expect(DENIAL_REASONS.filter((r) => !seenReasons.has(r))).toEqual([]);
  });
});
