// SPEC 8: an `mcp:` rule admits a request only when MCP metadata is present,
// its method matches `methods`, and for tools/call its tool matches `tools`,
// for resources/read its URI matches `resources`.

import { describe, expect, it } from "vitest";
import type { McpFacts } from "../mcp/mcp-metadata.js";
import { compileGlob } from "./glob.js";
import { compileMcpRule, mcpRuleAdmits } from "./mcp-rule.js";

const rule = compileMcpRule({ methods: ["tools/call", "tools/list", "resources/read"], tools: ["search_*"], resources: ["file:///docs/*"] }, compileGlob);
const facts = (method: string, extra: Partial<McpFacts> = {}): McpFacts => ({ method, tool: undefined, resource: undefined, ...extra });
const admitted = (f: McpFacts | undefined, r = rule) => mcpRuleAdmits(r, f).admitted;

describe("an mcp: rule", () => {
  it("admits tools/call of an allowed tool, tools/list, and resources/read of an allowed URI", () => {
    expect(admitted(facts("tools/call", { tool: "search_docs" }))).toBe(true);
    expect(admitted(facts("tools/list"))).toBe(true);
    expect(admitted(facts("resources/read", { resource: "file:///docs/readme.md" }))).toBe(true);
  });

  it.each([
    ["no MCP metadata", undefined],
    ["another tool", facts("tools/call", { tool: "delete_index" })],
    ["a tools/call without a tool", facts("tools/call")],
    ["another method", facts("prompts/get")],
    ["a method that differs in case", facts("Tools/Call", { tool: "search_docs" })],
    ["a tool whose glob match would need to cross '/'", facts("tools/call", { tool: "search_/etc" })],
    ["a resource outside the glob", facts("resources/read", { resource: "file:///etc/passwd" })],
    ["a resources/read without a URI", facts("resources/read")],
    ["a resource the glob matches only before the MCP server resolves '..'", facts("resources/read", { resource: "file:///docs/.." })],
    ["a resource with an encoded dot-segment", facts("resources/read", { resource: "file:///docs/%2e%2e" })],
    ["a resource with an encoded slash inside the starred segment", facts("resources/read", { resource: "file:///docs/..%2Fetc%2Fpasswd" })],
  ])("refuses %s", (_what, f) => {
    const result = mcpRuleAdmits(rule, f);
    expect(result.admitted).toBe(false);
    if (!result.admitted) expect(result.detail.length).toBeGreaterThan(0);
  });

  it("admits any tool (resource) of an admitted method when tools (resources) is absent", () => {
    const open = compileMcpRule({ methods: ["tools/call", "resources/read"] }, compileGlob);
    expect(admitted(facts("tools/call", { tool: "anything" }), open)).toBe(true);
    expect(admitted(facts("tools/call"), open)).toBe(true);
    expect(admitted(facts("resources/read", { resource: "x:y" }), open)).toBe(true);
    expect(admitted(undefined, open)).toBe(false);
  });
});
