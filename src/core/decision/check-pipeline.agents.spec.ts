// The Check pipeline against SPEC 8 (agent protocols and other front
// proxies): MCP rules on the last hop, how the caller was bound and
// requireCertificate, and the Transaction Token after the delegation token.
// Real certificates and the real policy loader, as in check-pipeline.spec.ts;
// the token verifiers are scripted (the real ones have their own tests).

import { beforeAll, describe, expect, it } from "vitest";
import { createTestPki, spiffe, type TestPki } from "../../../test/support/pki.js";
import { DB_VIA_RESEARCH, editHop, policyYaml, type PolicySpec } from "../../../test/support/policies.js";
import { LruHopDecisionCache } from "../../adapters/cache/hop-decision-cache.js";
import { loadPolicyText } from "../../adapters/config/policy-file.js";
import { CachingCertificateParser } from "../../adapters/x509/certificate-parser.js";
import { DEFAULT_MCP_METADATA_KEYS, MCP_METADATA_OVER_BOUNDS } from "../mcp/mcp-metadata.js";
import type { CompiledPolicy } from "../policy/model.js";
import type { DelegationTokenVerifier } from "../ports.js";
import type { DenialReason } from "../reasons.js";
import type { CheckInput } from "./check-input.js";
import { CheckPipeline, type CheckPipelineDeps } from "./check-pipeline.js";
import type { Decision } from "./decision.js";
import type { TokenCheckRequest, TokenCheckResult } from "./token-check.js";
import type { TxnTokenCheckRequest, TxnTokenCheckResult, TxnTokenVerifier } from "./txn-token-check.js";

const ORCH = spiffe("orchestrator");
const RESEARCH = spiffe("research");
const DB = spiffe("db");
const ALICE = "alice@example.com";
const NOW = Date.now();

/** orchestrator → research → db for anyone; MCP rules on research → db and on a narrow orchestrator → db that requireVia stops. */
const POLICY: PolicySpec = {
  version: "agents-1",
  requireOnBehalfOf: true,
  agents: ["orchestrator", "research", "db"],
  hops: [
    { from: "orchestrator", to: "research" },
    { from: "research", to: "db", mcp: { methods: ["tools/call", "tools/list", "resources/read"], tools: ["search_*"], resources: ["file:///docs/*"] } },
    { from: "orchestrator", to: "db", mcp: { methods: ["tools/list"] } },
  ],
  requireVia: [DB_VIA_RESEARCH],
};
const HOPS = POLICY.hops!;

/** The same hops without any mcp: (the orchestrator → db rule, which has nothing else, goes with it). */
const WITHOUT_MCP: PolicySpec = { ...POLICY, hops: [HOPS[0]!, { from: "research", to: "db" }] };

function policyFrom(spec: PolicySpec): CompiledPolicy {
  const loaded = loadPolicyText(policyYaml(spec), "policy.yaml");
  if (!loaded.ok) throw new Error(loaded.errors.join("\n"));
  return loaded.policy;
}

/** "ok" (sub alice, txn "txn-ok"), "ok-sub:<sub>", "throws", or a token_* reason to fail with. */
class ScriptedTxnVerifier implements TxnTokenVerifier {
  readonly requests: TxnTokenCheckRequest[] = [];
  verify(request: TxnTokenCheckRequest): Promise<TxnTokenCheckResult> {
    this.requests.push(request);
    const { token } = request;
    if (token === "throws") return Promise.reject(new Error("JWKS unreachable"));
    if (token === "ok" || token.startsWith("ok-sub:")) {
      const sub = token === "ok" ? ALICE : token.slice("ok-sub:".length);
      return Promise.resolve({ ok: true, txn: `txn-${token}`, sub, issuer: request.policy.issuer, audience: "example.org", tokenSha256: "h" });
    }
    return Promise.resolve({ ok: false, reason: token as "token_invalid" | "token_expired", message: `scripted ${token}` });
  }
}

/** A delegation-token verifier that records the order of calls with the Txn-Token one. */
class OrderedTokenVerifier implements DelegationTokenVerifier {
  constructor(readonly log: string[]) {}
  verify(request: TokenCheckRequest): Promise<TokenCheckResult> {
    this.log.push("delegation");
    if (request.token !== "ok") return Promise.resolve({ ok: false, reason: "token_invalid", message: "scripted" });
    return Promise.resolve({ ok: true, jti: "jti-1", scope: [], issuer: request.policy.issuer, tokenSha256: "h", prev: undefined });
  }
}

let pki: TestPki;
let ids = 0;

beforeAll(async () => {
  pki = await createTestPki();
});

function pipeline(overrides: Partial<CheckPipelineDeps> & { policy?: CompiledPolicy } = {}): CheckPipeline {
  const { policy, ...deps } = overrides;
  const compiled = policy ?? policyFrom(POLICY);
  return new CheckPipeline({
    policies: { current: () => compiled },
    certificates: new CachingCertificateParser(),
    clock: { nowMs: () => NOW },
    ids: { next: (ms) => `${ms}-${++ids}` },
    ...deps,
  });
}

const TOOLS_CALL = (tool: unknown) => ({ id: 1, is_mcp_request: true, jsonrpc: "2.0", method: "tools/call", params: { name: tool }, status: "mcp_ok" });

/** research calls db for alice through orchestrator → research, POST /mcp, with MCP metadata `mcp` (undefined: none). */
function request(mcp: unknown, overrides: Partial<CheckInput> = {}, headers: Record<string, string> = {}): CheckInput {
  return {
    peerCertificate: pki.agents.research.urlEncodedPem,
    peerPrincipal: "",
    destinationPrincipal: "",
    contextExtensions: { agent: "db" },
    method: "POST",
    path: "/mcp",
    headers: { "x-agent-subject": RESEARCH, "x-agent-on-behalf-of": ALICE, "x-agent-delegation-chain": `${ORCH},${RESEARCH}`, ...headers },
    ...(mcp !== undefined && { mcpMetadata: mcp }),
    ...overrides,
  };
}

async function reasonOf(input: CheckInput, p: CheckPipeline = pipeline()): Promise<DenialReason | "allowed"> {
  const d = await p.decide(input);
  return d.allowed ? "allowed" : d.reason;
}

describe("SPEC 8: an mcp: rule admits the last hop only for the MCP requests it names", () => {
  it("allows tools/call of an allowed tool, and records the method and tool", async () => {
    const decision = await pipeline().decide(request(TOOLS_CALL("search_docs")));
    expect(decision).toMatchObject({ allowed: true, mcp: { method: "tools/call", tool: "search_docs", resource: undefined } });
  });

  it.each([
    ["another tool", TOOLS_CALL("delete_index")],
    ["a tool name that is not a string", TOOLS_CALL(42)],
    ["another method", { ...TOOLS_CALL("search_docs"), method: "prompts/get" }],
    ["a body that is not MCP (no metadata: a batch, JSON that is not JSON-RPC)", undefined],
    ["a body that is not JSON", { is_mcp_request: false, passthrough_reason: "mcp_not_jsonrpc", status: "mcp_ok" }],
    ["an oversized body whose metadata describes its first bytes (tool smuggling)", { ...TOOLS_CALL("search_docs"), is_exceeding_limit: true, passthrough_reason: "mcp_body_too_large" }],
    ["duplicate keys", { ...TOOLS_CALL("search_docs"), passthrough_reason: "mcp_duplicate_keys" }],
    ["metadata over the adapter's bounds", MCP_METADATA_OVER_BOUNDS],
    ["a resource outside the glob once resolved", { ...TOOLS_CALL("x"), method: "resources/read", params: { uri: "file:///docs/../secrets" } }],
  ])("denies %s with hop_not_allowed", async (_what, mcp) => {
    const decision = await pipeline().decide(request(mcp));
    expect(decision).toMatchObject({ allowed: false, reason: "hop_not_allowed" });
    expect(decision.hops.at(-1)).toMatchObject({ from: RESEARCH, to: DB, result: "deny" });
  });

  it("still denies a chain that skips a required agent with required_hop_missing", async () => {
    const input = request({ ...TOOLS_CALL("x"), method: "tools/list" }, { peerCertificate: pki.agents.orchestrator.urlEncodedPem }, { "x-agent-subject": ORCH, "x-agent-delegation-chain": ORCH });
    expect(await reasonOf(input)).toBe("required_hop_missing");
  });

  it("records the MCP facts on every decision, even under a policy without mcp: rules and on a deny before the hops", async () => {
    const plain = policyFrom(WITHOUT_MCP);
    expect(plain.hasMcpRules).toBe(false);
    expect(await pipeline({ policy: plain }).decide(request(TOOLS_CALL("delete_index")))).toMatchObject({ allowed: true, mcp: { tool: "delete_index" } });
    const early = await pipeline().decide(request(TOOLS_CALL("search_docs"), {}, { "x-agent-subject": DB }));
    expect(early).toMatchObject({ reason: "subject_mismatch", mcp: { method: "tools/call", tool: "search_docs" } });
  });

  it("reads the configured keys", async () => {
    const keys = { ...DEFAULT_MCP_METADATA_KEYS, methodKey: "rpc.m", toolKey: "rpc.t" };
    const custom = { is_mcp_request: true, rpc: { m: "tools/call", t: "search_docs" } };
    expect(await reasonOf(request(custom), pipeline({ mcpKeys: keys }))).toBe("allowed");
    expect(await reasonOf(request(custom))).toBe("hop_not_allowed");
  });
});

describe("SPEC 8: the hop cache keys the last hop by its MCP facts", () => {
  it("never serves one tool's outcome to another", async () => {
    const hopCache = new LruHopDecisionCache();
    const p = pipeline({ hopCache });
    expect(await reasonOf(request(TOOLS_CALL("search_docs")), p)).toBe("allowed");
    expect(await reasonOf(request(TOOLS_CALL("delete_index")), p)).toBe("hop_not_allowed");
    expect(await reasonOf(request({ ...TOOLS_CALL("search_docs"), method: "prompts/get" }), p)).toBe("hop_not_allowed");
    expect(await reasonOf(request(undefined), p)).toBe("hop_not_allowed");
    const again = await p.decide(request(TOOLS_CALL("search_docs")));
    expect(again.allowed).toBe(true);
    expect(again.hops.map((h) => h.cached)).toEqual([true, true]);
  });

  it("keeps a tool name and a resource URI apart, whatever characters they hold", async () => {
    const hopCache = new LruHopDecisionCache();
    const p = pipeline({ hopCache });
    // A tool "a\0-1:" with no resource must not share a key with tool "a", resource "…".
    const tricky = { ...TOOLS_CALL("search_\u00000:\u0000x"), params: { name: "search_\u00000:\u0000x", uri: "file:///docs/a" } };
    expect(await reasonOf(request(tricky), p)).toBe("allowed");
    expect(await reasonOf(request({ ...TOOLS_CALL("x"), method: "resources/read", params: { uri: "file:///docs/.." } }), p)).toBe("hop_not_allowed");
  });

  it("leaves the MCP facts out of the key under a policy without mcp: rules, so they cannot split its entries", async () => {
    const plain = policyFrom(WITHOUT_MCP);
    const hopCache = new LruHopDecisionCache();
    const p = pipeline({ policy: plain, hopCache });
    for (let i = 0; i < 20; i++) await p.decide(request(TOOLS_CALL(`tool_${i}`)));
    expect(hopCache.size).toBe(2);
  });
});

describe("SPEC 8: every decision records how the caller was bound", () => {
  const plain = () => policyFrom(WITHOUT_MCP);

  it("certificate: the peer certificate", async () => {
    expect(await pipeline({ policy: plain() }).decide(request(undefined))).toMatchObject({ allowed: true, callerBinding: "certificate" });
  });

  it("principal: source.principal alone (Istio, agentgateway, proxyless gRPC)", async () => {
    const d = await pipeline({ policy: plain() }).decide(request(undefined, { peerCertificate: "", peerPrincipal: RESEARCH }));
    expect(d).toMatchObject({ allowed: true, callerBinding: "principal", peerCertificateSha256: undefined });
  });

  it("xfcc: a trusted forwarded certificate header, with or without Cert", async () => {
    const p = pipeline({ policy: plain(), trustForwardedClientCert: true });
    const uriOnly = await p.decide(request(undefined, { peerCertificate: pki.server.urlEncodedPem }, { "x-forwarded-client-cert": `By=spiffe://example.org/sidecar;URI=${RESEARCH}` }));
    expect(uriOnly).toMatchObject({ allowed: true, callerBinding: "xfcc" });
    const withCert = await p.decide(request(undefined, {}, { "x-forwarded-client-cert": `Cert="${pki.agents.research.urlEncodedPem}"` }));
    expect(withCert).toMatchObject({ allowed: true, callerBinding: "xfcc", peerCertificateSha256: pki.agents.research.sha256Hex });
  });

  // Envoy sends one XFCC line with its own element last; a second line would be read joined (review finding).
  it("xfcc: refuses the header sent twice, whatever the lines say", async () => {
    const p = pipeline({ policy: plain(), trustForwardedClientCert: true });
    const twice = { ...request(undefined, { peerCertificate: "" }, { "x-forwarded-client-cert": `URI=spiffe://evil.example/x,URI=${RESEARCH}` }), repeatedHeaders: new Set(["x-forwarded-client-cert"]) };
    expect(await p.decide(twice)).toMatchObject({ allowed: false, reason: "invalid_peer_certificate", callerBinding: "xfcc" });
  });

  it("xfcc: refuses a raw_value that was not UTF-8, whatever its text reads as", async () => {
    const p = pipeline({ policy: plain(), trustForwardedClientCert: true });
    const input = { ...request(undefined, { peerCertificate: "" }, { "x-forwarded-client-cert": `URI=${RESEARCH}` }), notUtf8Headers: new Set(["x-forwarded-client-cert"]) };
    const decision = await p.decide(input);
    expect(decision).toMatchObject({ allowed: false, reason: "invalid_peer_certificate", callerBinding: "xfcc" });
    expect(decision.message).toContain("not valid UTF-8");
  });

  it("the source tried, when it then fails; none when the request names no caller", async () => {
    expect(await pipeline().decide(request(undefined, { peerCertificate: "garbage" }))).toMatchObject({ reason: "invalid_peer_certificate", callerBinding: "certificate" });
    expect(await pipeline().decide(request(undefined, { peerCertificate: "", peerPrincipal: "not-spiffe" }))).toMatchObject({ reason: "invalid_peer_certificate", callerBinding: "principal" });
    expect(await pipeline().decide(request(undefined, { peerCertificate: "" }))).toMatchObject({ reason: "missing_peer_certificate", callerBinding: undefined });
  });
});

describe("SPEC 8: requireCertificate refuses a principal binding with missing_peer_certificate", () => {
  const principalOnly = (headers: Record<string, string> = {}) => request(TOOLS_CALL("search_docs"), { peerCertificate: "", peerPrincipal: RESEARCH }, headers);

  it("at the top level, for every caller, before the principal is even read", async () => {
    const policy = policyFrom({ ...POLICY, requireCertificate: true });
    expect(await reasonOf(principalOnly(), pipeline({ policy }))).toBe("missing_peer_certificate");
    expect(await reasonOf(request(TOOLS_CALL("search_docs"), { peerCertificate: "", peerPrincipal: "not a spiffe id" }), pipeline({ policy }))).toBe("missing_peer_certificate");
    expect(await reasonOf(request(TOOLS_CALL("search_docs")), pipeline({ policy }))).toBe("allowed");
  });

  // An XFCC element without Cert= names the caller as a principal does: hopwarden sees no serial, CRL
  // entry or validity window, which is what requireCertificate is for (review finding).
  it("at the top level, letting a trusted XFCC through only with its certificate (Cert=)", async () => {
    const policy = policyFrom({ ...POLICY, requireCertificate: true });
    const p = pipeline({ policy, trustForwardedClientCert: true });
    const uriOnly = request(TOOLS_CALL("search_docs"), { peerCertificate: "", peerPrincipal: spiffe("sidecar") }, { "x-forwarded-client-cert": `Hash=abc;URI=${RESEARCH}` });
    const denied = await p.decide(uriOnly);
    expect(denied).toMatchObject({ allowed: false, reason: "missing_peer_certificate", callerBinding: "xfcc" });
    expect(denied.message).toContain("no Cert=");
    const withCert = request(TOOLS_CALL("search_docs"), { peerCertificate: "", peerPrincipal: spiffe("sidecar") }, { "x-forwarded-client-cert": `Cert="${pki.agents.research.urlEncodedPem}"` });
    expect(await reasonOf(withCert, p)).toBe("allowed");
  });

  it("on a hop rule, refusing an XFCC without Cert= as it refuses a principal", async () => {
    const policy = policyFrom({ ...POLICY, hops: editHop(HOPS, 1, { requireCertificate: true }) });
    const p = pipeline({ policy, trustForwardedClientCert: true });
    const uriOnly = request(TOOLS_CALL("search_docs"), { peerCertificate: "", peerPrincipal: spiffe("sidecar") }, { "x-forwarded-client-cert": `URI=${RESEARCH}` });
    const denied = await p.decide(uriOnly);
    expect(denied).toMatchObject({ allowed: false, reason: "missing_peer_certificate", callerBinding: "xfcc" });
    expect(denied.message).toContain("without Cert=");
    const withCert = request(TOOLS_CALL("search_docs"), { peerCertificate: "", peerPrincipal: spiffe("sidecar") }, { "x-forwarded-client-cert": `Cert="${pki.agents.research.urlEncodedPem}"` });
    expect(await reasonOf(withCert, p)).toBe("allowed");
  });

  it("on a hop rule, for the call that rule admits as the last hop only", async () => {
    const policy = policyFrom({ ...POLICY, hops: editHop(HOPS, 1, { requireCertificate: true }) });
    const denied = await pipeline({ policy }).decide(principalOnly());
    expect(denied).toMatchObject({ allowed: false, reason: "missing_peer_certificate", callerBinding: "principal" });
    expect(denied.message).toContain("hops[1]");
    expect(await reasonOf(request(TOOLS_CALL("search_docs")), pipeline({ policy }))).toBe("allowed");
    // orchestrator → research (no requireCertificate) as the last hop: a principal is enough.
    const toResearch = request(undefined, { peerCertificate: "", peerPrincipal: ORCH, contextExtensions: { agent: "research" } }, { "x-agent-subject": ORCH, "x-agent-delegation-chain": ORCH });
    expect(await reasonOf(toResearch, pipeline({ policy }))).toBe("allowed");
  });

  it("on a hop rule, judged after the hop is admitted: a refused hop stays hop_not_allowed", async () => {
    const policy = policyFrom({ ...POLICY, hops: editHop(HOPS, 1, { requireCertificate: true }) });
    expect(await reasonOf(principalOnly({}), pipeline({ policy }))).toBe("missing_peer_certificate");
    expect(await reasonOf(request(TOOLS_CALL("delete_index"), { peerCertificate: "", peerPrincipal: RESEARCH }), pipeline({ policy }))).toBe("hop_not_allowed");
  });
});

describe("SPEC 8: the Transaction Token, after the delegation token", () => {
  const TXN = { issuer: "https://tts.example.org", jwks: "tts.json" };
  const DELEGATION = { issuer: "https://sts.example.org", jwks: "jwks.json" };
  const withTxn = (required?: boolean) => policyFrom({ ...POLICY, txnTokens: { ...TXN, required } });
  const call = (token: string | undefined, more: Record<string, string> = {}) => request(TOOLS_CALL("search_docs"), {}, { ...(token !== undefined && { "txn-token": token }), ...more });

  it("allows a request without one when the policy does not require it", async () => {
    expect(await pipeline({ policy: withTxn(), txnTokens: new ScriptedTxnVerifier() }).decide(call(undefined))).toMatchObject({ allowed: true, txn: undefined });
  });

  // A raw_value that was not UTF-8 (the decoder reads it with U+FFFD): refused unread, on the allow path and when
  // another check denied first (withTxnRecorded must not record a txn from it either).
  it("refuses one whose raw_value was not UTF-8 as token_invalid, without asking the verifier", async () => {
    const verifier = new ScriptedTxnVerifier();
    const notUtf8 = { ...call("ok"), notUtf8Headers: new Set(["txn-token"]) };
    const decision = await pipeline({ policy: withTxn(), txnTokens: verifier }).decide(notUtf8);
    expect(decision).toMatchObject({ allowed: false, reason: "token_invalid", txn: undefined });
    expect(decision.message).toContain("not valid UTF-8");
    const deniedFirst = { ...call("ok", { "x-agent-subject": ORCH }), notUtf8Headers: new Set(["txn-token"]) };
    expect(await pipeline({ policy: withTxn(), txnTokens: verifier }).decide(deniedFirst)).toMatchObject({ reason: "subject_mismatch", txn: undefined });
    expect(verifier.requests).toHaveLength(0);
  });

  it("verifies one that is sent, against the policy's txnTokens and trust domains, and records its txn", async () => {
    const verifier = new ScriptedTxnVerifier();
    expect(await pipeline({ policy: withTxn(), txnTokens: verifier }).decide(call("ok"))).toMatchObject({ allowed: true, txn: "txn-ok" });
    expect(verifier.requests[0]).toMatchObject({ token: "ok", nowMs: NOW, policy: { issuer: "https://tts.example.org", jwks: "tts.json", required: false, clockSkewSeconds: 30 } });
    expect([...verifier.requests[0]!.trustDomains]).toEqual(["example.org"]);
  });

  it.each([
    ["a missing token when txnTokens.required", () => ({ policy: withTxn(true), token: undefined }), "token_missing"],
    ["an empty header when required", () => ({ policy: withTxn(true), token: "" }), "token_missing"],
    ["a token the verifier finds invalid", () => ({ policy: withTxn(), token: "token_invalid" }), "token_invalid"],
    ["an expired token", () => ({ policy: withTxn(), token: "token_expired" }), "token_expired"],
    ["a token whose sub is not the on-behalf-of", () => ({ policy: withTxn(), token: "ok-sub:bob@example.com" }), "token_chain_mismatch"],
    ["a token sent under a policy without txnTokens", () => ({ policy: policyFrom(POLICY), token: "ok" }), "token_invalid"],
    ["a token over 16 KiB", () => ({ policy: withTxn(), token: "o".repeat(16 * 1024 + 1) }), "token_invalid"],
    ["a verifier that throws", () => ({ policy: withTxn(), token: "throws" }), "internal_error"],
  ])("denies %s", async (_what, setup, reason) => {
    const { policy, token } = setup();
    expect(await reasonOf(call(token), pipeline({ policy, txnTokens: new ScriptedTxnVerifier() }))).toBe(reason);
  });

  it("records the txn of a verified token whose sub is refused (the audit trail names the transaction)", async () => {
    const d = await pipeline({ policy: withTxn(), txnTokens: new ScriptedTxnVerifier() }).decide(call("ok-sub:bob@example.com"));
    expect(d).toMatchObject({ reason: "token_chain_mismatch", txn: "txn-ok-sub:bob@example.com" });
  });

  it("refuses a repeated header without asking the verifier", async () => {
    const verifier = new ScriptedTxnVerifier();
    const input = { ...call("ok"), repeatedHeaders: new Set(["txn-token"]) };
    expect(await reasonOf(input, pipeline({ policy: withTxn(), txnTokens: verifier }))).toBe("token_invalid");
    expect(verifier.requests).toHaveLength(0);
  });

  it("denies with internal_error when the policy has txnTokens but no verifier runs", async () => {
    expect(await reasonOf(call("ok"), pipeline({ policy: withTxn() }))).toBe("internal_error");
  });

  it("comes after the delegation token: a bad delegation token's reason wins over a bad Txn-Token's", async () => {
    const log: string[] = [];
    const txn = new ScriptedTxnVerifier();
    const policy = policyFrom({ ...POLICY, txnTokens: TXN, tokens: DELEGATION });
    const p = pipeline({ policy, txnTokens: txn, tokens: new OrderedTokenVerifier(log) });
    expect(await reasonOf(call("token_expired", { "x-agent-delegation-token": "bad" }), p)).toBe("token_invalid");
    expect(await reasonOf(call("token_expired", { "x-agent-delegation-token": "ok" }), p)).toBe("token_expired");
    expect(await p.decide(call("ok", { "x-agent-delegation-token": "ok" }))).toMatchObject({ allowed: true, tokenId: "jti-1", txn: "txn-ok" });
  });

  it("comes after every earlier check: a refused hop stays hop_not_allowed, whatever the Txn-Token", async () => {
    const p = pipeline({ policy: withTxn(), txnTokens: new ScriptedTxnVerifier() });
    for (const token of ["ok", "token_invalid", "token_expired", "ok-sub:bob@example.com", "throws"]) {
      expect(await reasonOf(request(TOOLS_CALL("delete_index"), {}, { "txn-token": token }), p)).toBe("hop_not_allowed");
    }
  });

  it("records the transaction of a request refused earlier, keeping that reason, so trace --txn lists refused hops too", async () => {
    const verifier = new ScriptedTxnVerifier();
    const p = pipeline({ policy: withTxn(), txnTokens: verifier });
    const forbiddenTool = request(TOOLS_CALL("delete_index"), {}, { "txn-token": "ok" });
    expect(await p.decide(forbiddenTool)).toMatchObject({ allowed: false, reason: "hop_not_allowed", txn: "txn-ok" });
    // An invalid or expired Txn-Token records no transaction.
    for (const token of ["token_invalid", "token_expired", "throws"]) {
      expect(await p.decide(request(TOOLS_CALL("delete_index"), {}, { "txn-token": token }))).toMatchObject({ reason: "hop_not_allowed", txn: undefined });
    }
    expect(await p.decide(request(TOOLS_CALL("search_docs"), {}, { "x-agent-subject": DB, "txn-token": "ok" }))).toMatchObject({ reason: "subject_mismatch", txn: "txn-ok" });
    const withDelegation = pipeline({ policy: policyFrom({ ...POLICY, txnTokens: TXN, tokens: DELEGATION }), txnTokens: verifier, tokens: new OrderedTokenVerifier([]) });
    expect(await withDelegation.decide(call("ok", { "x-agent-delegation-token": "bad" }))).toMatchObject({ reason: "token_invalid", txn: "txn-ok" });
  });

  it("verifies nothing for the record without the header, or with a repeated one", async () => {
    const verifier = new ScriptedTxnVerifier();
    const p = pipeline({ policy: withTxn(), txnTokens: verifier });
    expect(p.decide(request(TOOLS_CALL("delete_index")))).not.toBeInstanceOf(Promise);
    await p.decide({ ...request(TOOLS_CALL("delete_index"), {}, { "txn-token": "ok" }), repeatedHeaders: new Set(["txn-token"]) });
    expect(verifier.requests).toHaveLength(0);
  });

  it("reads the configured header name, and asks the decoder for it", async () => {
    const headerNames = { subject: "x-agent-subject", onBehalfOf: "x-agent-on-behalf-of", chain: "x-agent-delegation-chain", token: "x-agent-delegation-token", txnToken: "x-txn" };
    const p = pipeline({ policy: withTxn(true), txnTokens: new ScriptedTxnVerifier(), headerNames });
    expect(p.headersRead.has("x-txn")).toBe(true);
    expect(await reasonOf(call(undefined, { "x-txn": "ok" }), p)).toBe("allowed");
    expect(await reasonOf(call("ok"), p)).toBe("token_missing");
    expect(pipeline().headersRead.has("txn-token")).toBe(true);
  });
});

describe("the decision a pipeline makes without deciding", () => {
  it("carries no binding, MCP facts or txn", () => {
    const d: Decision = pipeline().denyWithoutDeciding("internal_error", "could not decode");
    expect(d).toMatchObject({ callerBinding: undefined, mcp: undefined, txn: undefined });
  });
});
