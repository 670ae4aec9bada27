// Per-hop policy (SPEC 2 check 7, SPEC 3): default deny; a hop needs a rule
// whose from/to match (aliases, SPIFFE IDs or globs) and whose on-behalf-of
// patterns admit the person; method and path rules apply to the last hop only.

import { describe, expect, it } from "vitest";
import { compilePolicy } from "./compile.js";
import type { McpReading } from "../mcp/mcp-metadata.js";
import { evaluateHop, lastHopRequest, NO_MCP_METADATA } from "./evaluate-hop.js";
import type { PolicyDocument } from "./model.js";

const ORCH = "spiffe://example.org/agent/orchestrator";
const RESEARCH = "spiffe://example.org/agent/research";
const DB = "spiffe://example.org/agent/db";
const ALICE = "alice@example.com";

const DOC: PolicyDocument = {
  version: "v1",
  trustDomains: ["example.org"],
  agents: { orchestrator: ORCH, research: RESEARCH, db: DB },
  hops: [
    { from: "orchestrator", to: "research", onBehalfOf: ["*@example.com"] },
    { from: "research", to: "db", methods: ["GET", "POST"], paths: ["/query", "/schema/*"], scopes: ["db:read"] },
    { from: "spiffe://example.org/team/*", to: "spiffe://example.org/agent/db", paths: ["/files/**"] },
  ],
};
const policy = compilePolicy(DOC, "00".repeat(32));
const GET_QUERY = lastHopRequest("GET", "/query");

describe("default deny", () => {
  it("denies a hop that no rule names", () => {
    expect(evaluateHop(policy, ORCH, DB, ALICE, undefined)).toEqual({ allowed: false, rule: "", ruleIndex: -1, detail: "no hop rule admits this hop" });
  });

  it("denies the reverse of an allowed hop", () => {
    expect(evaluateHop(policy, RESEARCH, ORCH, ALICE, undefined).allowed).toBe(false);
  });

  it("denies every hop under a policy without rules", () => {
    const empty = compilePolicy({ version: "v", trustDomains: ["example.org"] }, "11".repeat(32));
    expect(evaluateHop(empty, ORCH, RESEARCH, ALICE, undefined).allowed).toBe(false);
  });
});

describe("rules match aliases, SPIFFE IDs or globs", () => {
  it("resolves aliases to the SPIFFE IDs they name and reports the admitting rule", () => {
    expect(evaluateHop(policy, ORCH, RESEARCH, ALICE, undefined)).toEqual({ allowed: true, rule: "hops[0]", ruleIndex: 0, detail: "admitted by hops[0]" });
  });

  it("never matches an alias name where a SPIFFE ID is expected", () => {
    expect(evaluateHop(policy, "orchestrator", "research", ALICE, undefined).allowed).toBe(false);
  });

  it("lets '*' in a SPIFFE ID glob match one path segment", () => {
    expect(evaluateHop(policy, "spiffe://example.org/team/alpha", DB, ALICE, lastHopRequest("GET", "/files/a")).allowed).toBe(true);
    expect(evaluateHop(policy, "spiffe://example.org/team/alpha/beta", DB, ALICE, lastHopRequest("GET", "/files/a")).allowed).toBe(false);
  });

  it("matches identities case-sensitively", () => {
    expect(evaluateHop(policy, "spiffe://example.org/agent/Orchestrator", RESEARCH, ALICE, undefined).allowed).toBe(false);
  });
});

describe("on-behalf-of patterns of a rule", () => {
  it("admit a person matching the pattern", () => {
    expect(evaluateHop(policy, ORCH, RESEARCH, "bob@example.com", undefined).allowed).toBe(true);
  });

  it("deny a person outside the pattern, saying which rule came near", () => {
    const outcome = evaluateHop(policy, ORCH, RESEARCH, "mallory@evil.example", undefined);
    expect(outcome).toMatchObject({ allowed: false, rule: "" });
    expect(outcome.detail).toContain("hops[0] does not admit on-behalf-of");
  });

  it("deny a request without on-behalf-of when the rule names patterns", () => {
    expect(evaluateHop(policy, ORCH, RESEARCH, undefined, undefined).allowed).toBe(false);
  });

  it("are not needed when the rule names none", () => {
    expect(evaluateHop(policy, RESEARCH, DB, undefined, GET_QUERY).allowed).toBe(true);
  });
});

describe("method and path rules apply to the last hop (this call)", () => {
  it("admit a listed method and path", () => {
    expect(evaluateHop(policy, RESEARCH, DB, ALICE, lastHopRequest("POST", "/schema/users"))).toMatchObject({ allowed: true, rule: "hops[1]" });
  });

  it("deny a method the rule does not list", () => {
    expect(evaluateHop(policy, RESEARCH, DB, ALICE, lastHopRequest("DELETE", "/query")).detail).toContain('does not admit method "DELETE"');
  });

  it("match methods exactly and case-sensitively", () => {
    expect(evaluateHop(policy, RESEARCH, DB, ALICE, lastHopRequest("get", "/query")).allowed).toBe(false);
    expect(evaluateHop(policy, RESEARCH, DB, ALICE, lastHopRequest("GET ", "/query")).allowed).toBe(false);
  });

  it("deny a path the rule does not list", () => {
    expect(evaluateHop(policy, RESEARCH, DB, ALICE, lastHopRequest("GET", "/admin")).detail).toContain('does not admit path "/admin"');
    expect(evaluateHop(policy, RESEARCH, DB, ALICE, lastHopRequest("GET", "/schema/a/b")).allowed).toBe(false);
  });

  it("match the path without its query string", () => {
    expect(evaluateHop(policy, RESEARCH, DB, ALICE, lastHopRequest("GET", "/query?q=1")).allowed).toBe(true);
  });

  it("deny a path with a dot-segment that would resolve into an allowed path", () => {
    expect(evaluateHop(policy, RESEARCH, DB, ALICE, lastHopRequest("GET", "/schema/../query")).allowed).toBe(false);
    expect(evaluateHop(policy, RESEARCH, DB, ALICE, lastHopRequest("GET", "/schema/%2e%2e/admin")).allowed).toBe(false);
  });

  it("deny an encoded slash that a '*' would otherwise admit", () => {
    const outcome = evaluateHop(policy, RESEARCH, DB, ALICE, lastHopRequest("GET", "/schema/users%2F..%2Fadmin"));
    expect(outcome.allowed).toBe(false);
    expect(outcome.detail).toContain("matches no path rule");
  });

  it("are ignored on a hop before the last", () => {
    expect(evaluateHop(policy, RESEARCH, DB, ALICE, undefined).allowed).toBe(true);
  });

  it("let a rule without methods or paths admit any method and path", () => {
    expect(evaluateHop(policy, ORCH, RESEARCH, ALICE, lastHopRequest("PATCH", "/anything/../at/all")).allowed).toBe(true);
  });

  it("fall through to a later rule when an earlier one does not admit the request", () => {
    const twoRules = compilePolicy(
      { ...DOC, hops: [{ from: "research", to: "db", methods: ["GET"] }, { from: "research", to: "db", methods: ["POST"], paths: ["/query"] }] },
      "22".repeat(32),
    );
    expect(evaluateHop(twoRules, RESEARCH, DB, ALICE, lastHopRequest("POST", "/query"))).toMatchObject({ allowed: true, rule: "hops[1]", ruleIndex: 1 });
  });
});

describe("compiling a policy", () => {
  it("derives a revision from the version and the file's hash, so an edit without a version bump still changes it", () => {
    const a = compilePolicy(DOC, "aa".repeat(32));
    const b = compilePolicy(DOC, "bb".repeat(32));
    expect(a.version).toBe(b.version);
    expect(a.revision).not.toBe(b.revision);
    expect(a.revision.startsWith("v1#")).toBe(true);
  });

  it("fills the defaults: maxChainLength 6, on-behalf-of required, no tokens", () => {
    expect(policy).toMatchObject({ maxChainLength: 6, requireOnBehalfOf: true, tokens: undefined, onBehalfOf: undefined });
  });

  it("resolves revoked aliases and normalizes revoked serials", () => {
    const compiled = compilePolicy({ ...DOC, revoked: { identities: ["research", DB], serials: ["0A:1B", "ff"] } }, "cc".repeat(32));
    expect([...compiled.revokedIdentities]).toEqual([RESEARCH, DB]);
    expect([...compiled.revokedSerials]).toEqual(["a1b", "ff"]);
  });

  it("resolves requireVia aliases", () => {
    const compiled = compilePolicy({ ...DOC, requireVia: [{ to: "db", via: ["research"] }] }, "dd".repeat(32));
    expect(compiled.requireVia[0]?.via).toEqual([RESEARCH]);
    expect(compiled.requireVia[0]?.to.matches(DB)).toBe(true);
  });

  it("fills token defaults: not required, not single use, 30 s clock skew", () => {
    const compiled = compilePolicy({ ...DOC, tokens: { issuer: "https://sts.example.org", jwks: "jwks.json" } }, "ee".repeat(32));
    expect(compiled.tokens).toEqual({ issuer: "https://sts.example.org", jwks: "jwks.json", required: false, singleUse: false, clockSkewSeconds: 30 });
  });
});

describe("mcp: on a rule applies to the last hop (SPEC 8)", () => {
  const mcpPolicy = compilePolicy(
    {
      ...DOC,
      hops: [
        { from: "orchestrator", to: "research", mcp: { methods: ["tools/call", "tools/list"], tools: ["search_*"] } },
        { from: "research", to: "db", mcp: { methods: ["resources/read"], resources: ["file:///docs/*"] } },
      ],
    },
    "ff".repeat(32),
  );
  const call = (mcp: McpReading) => evaluateHop(mcpPolicy, ORCH, RESEARCH, ALICE, lastHopRequest("POST", "/mcp", mcp));
  const facts = (method: string, tool?: string, resource?: string): McpReading => ({ kind: "mcp", facts: { method, tool, resource } });
  const OVERSIZED: McpReading = { kind: "unparsable", problem: "the body exceeded the MCP filter's size limit" };

  it("admits tools/call of an allowed tool, and another admitted method", () => {
    expect(call(facts("tools/call", "search_docs"))).toMatchObject({ allowed: true, rule: "hops[0]" });
    expect(call(facts("tools/list")).allowed).toBe(true);
  });

  it.each([
    ["another tool", facts("tools/call", "delete_index"), 'tool "delete_index" is not one the rule admits'],
    ["another method", facts("prompts/get"), 'MCP method "prompts/get" is not one the rule admits'],
    ["a body without MCP metadata (a batch, a body that is not JSON-RPC)", NO_MCP_METADATA, "the request carries no readable MCP metadata"],
    ["unparsable metadata (an oversized body)", OVERSIZED, "the MCP metadata is unusable: the body exceeded"],
  ])("refuses %s, saying why", (_what, mcp, detail) => {
    const outcome = call(mcp);
    expect(outcome.allowed).toBe(false);
    expect(outcome.detail).toContain(detail);
  });

  it("refuses a resource URI that escapes the glob's directory once resolved", () => {
    const read = (uri: string) => evaluateHop(mcpPolicy, RESEARCH, DB, ALICE, lastHopRequest("POST", "/mcp", facts("resources/read", undefined, uri)));
    expect(read("file:///docs/readme.md").allowed).toBe(true);
    expect(read("file:///docs/..").allowed).toBe(false);
    expect(read("file:///docs/%2E%2E").detail).toContain("holds a dot-segment");
  });

  it("does not apply to earlier hops", () => {
    expect(evaluateHop(mcpPolicy, ORCH, RESEARCH, ALICE, undefined).allowed).toBe(true);
  });

  it("leaves rules without mcp: blind to the MCP metadata", () => {
    expect(evaluateHop(policy, RESEARCH, DB, ALICE, lastHopRequest("GET", "/query", facts("tools/call", "delete_index"))).allowed).toBe(true);
    expect(policy.hasMcpRules).toBe(false);
    expect(mcpPolicy.hasMcpRules).toBe(true);
  });
});
