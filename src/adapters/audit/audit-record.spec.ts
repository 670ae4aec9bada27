import { describe, expect, it } from "vitest";
import { sampleDecision } from "../../../test/support/audit-fixtures.js";
import { createHash } from "node:crypto";
import { AUDIT_CHAIN_BOUNDS, buildAuditRecord } from "./audit-record.js";

const TOKEN_SHA256 = Buffer.alloc(32, 2).toString("base64url");
const PREV_SHA256 = Buffer.alloc(32, 1).toString("base64url");

describe("buildAuditRecord (SPEC 6: one record per decision)", () => {
  it("records an allow with reason 'allowed' and every field of the contract", () => {
    const decision = sampleDecision({
      tokenId: "jti-1",
      tokenSha256: TOKEN_SHA256,
      tokenPrev: PREV_SHA256,
      callerBinding: "certificate",
      mcp: { method: "tools/call", tool: "search_docs", resource: undefined },
      txn: "txn-1",
    });
    const record = buildAuditRecord(decision, { traceId: "a".repeat(32), spanId: "b".repeat(16), latencyMs: 0.12345678 });
    expect(record).toEqual({
      decision_id: decision.decisionId,
      time: new Date(decision.decidedAtMs).toISOString(),
      decision: "allow",
      reason: "allowed",
      message: "allowed",
      policy_version: "2026-11-01.3",
      caller: "spiffe://example.org/agent/research",
      callee: "spiffe://example.org/agent/db",
      on_behalf_of: "alice@example.com",
      chain: ["spiffe://example.org/agent/orchestrator", "spiffe://example.org/agent/research"],
      chain_depth: 2,
      hops: [
        { from: "spiffe://example.org/agent/orchestrator", to: "spiffe://example.org/agent/research", rule: "hops[0]", result: "allow" },
        { from: "spiffe://example.org/agent/research", to: "spiffe://example.org/agent/db", rule: "hops[1]", result: "allow" },
      ],
      tls_client_hash_sha256: "AB".repeat(32),
      method: "GET",
      path: "/query",
      trace_id: "a".repeat(32),
      span_id: "b".repeat(16),
      latency_ms: 0.123,
      token_id: "jti-1",
      token_sha256: TOKEN_SHA256,
      token_prev: PREV_SHA256,
      caller_binding: "certificate",
      mcp_method: "tools/call",
      mcp_tool: "search_docs",
      mcp_resource: null,
      txn: "txn-1",
    });
  });

  it("records a deny with its reason and null for what was never learnt", () => {
    const record = buildAuditRecord(
      sampleDecision({ reason: "missing_peer_certificate", message: "no certificate", caller: undefined, callee: undefined, onBehalfOf: undefined, chain: [], hops: [], peerCertificateSha256: undefined }),
      { latencyMs: 1 },
    );
    expect(record).toMatchObject({
      decision: "deny",
      reason: "missing_peer_certificate",
      caller: null,
      callee: null,
      on_behalf_of: null,
      chain: [],
      chain_depth: 0,
      tls_client_hash_sha256: null,
      trace_id: null,
      span_id: null,
      token_id: null,
      token_sha256: null,
      token_prev: null,
      caller_binding: null,
      mcp_method: null,
      mcp_tool: null,
      mcp_resource: null,
      txn: null,
    });
  });

  it("SPEC 5: names the token by its hash, refused too, and gives its prev, so each hop's token_prev is the previous hop's token_sha256", () => {
    const first = buildAuditRecord(sampleDecision({ tokenId: "jti-1", tokenSha256: PREV_SHA256, tokenPrev: undefined }), { latencyMs: 1 });
    const second = buildAuditRecord(sampleDecision({ tokenId: "jti-2", tokenSha256: TOKEN_SHA256, tokenPrev: PREV_SHA256 }), { latencyMs: 1 });
    expect(first).toMatchObject({ token_id: "jti-1", token_sha256: PREV_SHA256, token_prev: null });
    expect(second.token_prev).toBe(first.token_sha256);
    const refused = buildAuditRecord(sampleDecision({ reason: "token_invalid", message: "bad signature", tokenSha256: TOKEN_SHA256 }), { latencyMs: 1 });
    expect(refused).toMatchObject({ token_id: null, token_sha256: TOKEN_SHA256, token_prev: null });
  });

  it("bounds token_prev like the jti: the issuer chose both", () => {
    const big = "p".repeat(60 * 1024);
    const record = buildAuditRecord(sampleDecision({ tokenId: big, tokenPrev: big }), { latencyMs: 1 });
    for (const field of [record.token_id, record.token_prev]) expect(field).toMatch(/^p{1024}…\[truncated: 61440 bytes, sha256=[0-9a-f]{64}\]$/);
  });

  it("SPEC 8: bounds the MCP names, which come from the request body, and the transaction id", () => {
    const big = "t".repeat(60 * 1024);
    const record = buildAuditRecord(sampleDecision({ mcp: { method: big, tool: big, resource: big }, txn: big }), { latencyMs: 1 });
    for (const field of [record.mcp_method, record.mcp_tool, record.mcp_resource, record.txn]) expect(field).toMatch(/^t{1024}…\[truncated: 61440 bytes, sha256=[0-9a-f]{64}\]$/);
    expect(Buffer.byteLength(JSON.stringify(record))).toBeLessThan(8 * 1024);
  });

  it("finding 9: two 60 KiB headers no longer make a ~120 KiB record", () => {
    const onBehalfOf = `${"m".repeat(60 * 1024)}@example.com`;
    const path = `/reports/${"p".repeat(60 * 1024)}`;
    const record = buildAuditRecord(
      sampleDecision({ reason: "on_behalf_of_not_allowed", message: `the policy does not allow acting on behalf of ${JSON.stringify(onBehalfOf)}`, onBehalfOf, path }),
      { latencyMs: 1 },
    );
    const bytes = Buffer.byteLength(JSON.stringify(record));
    expect(bytes).toBeLessThan(5 * 1024);
    const sha = (text: string) => createHash("sha256").update(text).digest("hex");
    expect(record.on_behalf_of).toBe(`${onBehalfOf.slice(0, 1024)}…[truncated: ${Buffer.byteLength(onBehalfOf)} bytes, sha256=${sha(onBehalfOf)}]`);
    expect(record.path).toBe(`${path.slice(0, 1024)}…[truncated: ${path.length} bytes, sha256=${sha(path)}]`);
    expect(record.message).toMatch(/…\[truncated: \d+ bytes, sha256=[0-9a-f]{64}\]$/);
  });

  it("finding 9: a chain of thousands of entries keeps its first entries, a marker and its true depth", () => {
    const chain = Array.from({ length: 5000 }, (_, i) => `spiffe://example.org/agent/a${i}`);
    const hops = chain.map((from, i) => ({ from, to: chain[i + 1] ?? "spiffe://example.org/agent/db", rule: `hops[${i}]`, result: "allow" as const, cached: false, detail: "" }));
    const record = buildAuditRecord(sampleDecision({ chain, hops: [...hops.slice(0, -1), { ...hops.at(-1)!, result: "deny", rule: "" }] }), { latencyMs: 1 });
    expect(record.chain_depth).toBe(5000);
    expect(record.chain.length).toBeLessThanOrEqual(AUDIT_CHAIN_BOUNDS.maxItems + 1);
    expect(record.chain.at(-1)).toMatch(/^…\[truncated: 5000 items, \d+ bytes, sha256=[0-9a-f]{64}\]$/);
    expect(record.hops.at(-1)).toMatchObject({ from: chain.at(-1), result: "deny" });
    expect(record.hops.at(-2)).toMatchObject({ from: expect.stringMatching(/^…\[truncated: \d+ hops of 5000\]$/) as unknown, result: "allow" });
    expect(Buffer.byteLength(JSON.stringify(record))).toBeLessThan(16 * 1024);
  });
});
