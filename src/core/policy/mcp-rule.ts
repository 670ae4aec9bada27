// `mcp:` on a hop rule (SPEC 8): compiled once per policy load, then asked
// whether it admits one request's MCP facts. It applies to the last hop,
// like `methods` and `paths`: a rule with `mcp:` admits a request only when
// Envoy's MCP metadata was read (docs/mcp.md), its method matches `methods`,
// and, for tools/call, its tool matches `tools`; for resources/read, its URI
// matches `resources`. A URI that an MCP server might resolve differently
// from the glob (dot-segments, encoded slashes: the path rules' safeguards,
// SPEC 3) matches no `resources` glob. The glob compiler is passed in, so
// this file does not depend on how globs are matched.

import { MCP_RESOURCES_READ, MCP_TOOLS_CALL, type McpFacts } from "../mcp/mcp-metadata.js";
import type { Matcher } from "./glob.js";
import { resourceUriProblem } from "./request-path.js";
import type { McpRule, McpRuleDocument } from "./model.js";
import { quoted } from "../input/untrusted-bounds.js";

export function compileMcpRule(doc: McpRuleDocument, compileGlob: (pattern: string) => Matcher): McpRule {
  return {
    methods: doc.methods.map(compileGlob),
    tools: doc.tools?.map(compileGlob),
    resources: doc.resources?.map(compileGlob),
  };
}

export type McpRuleResult = { readonly admitted: true } | { readonly admitted: false; readonly detail: string };

const some = (matchers: readonly Matcher[], value: string) => matchers.some((m) => m.matches(value));

/** `facts` undefined: the request had no (or unparsable) MCP metadata, which no `mcp:` rule admits. */
export function mcpRuleAdmits(rule: McpRule, facts: McpFacts | undefined): McpRuleResult {
  if (facts === undefined) return { admitted: false, detail: "the rule admits only MCP requests, and the request carries no readable MCP metadata" };
  if (!some(rule.methods, facts.method)) return { admitted: false, detail: `MCP method ${quoted(facts.method)} is not one the rule admits` };
  if (facts.method === MCP_TOOLS_CALL && rule.tools !== undefined) {
    if (facts.tool === undefined) return { admitted: false, detail: "the tools/call names no tool (or not as a string)" };
    if (!some(rule.tools, facts.tool)) return { admitted: false, detail: `tool ${quoted(facts.tool)} is not one the rule admits` };
  }
  if (facts.method === MCP_RESOURCES_READ && rule.resources !== undefined) {
    if (facts.resource === undefined) return { admitted: false, detail: "the resources/read names no URI (or not as a string)" };
    const problem = resourceUriProblem(facts.resource);
    if (problem !== undefined) return { admitted: false, detail: `resource ${quoted(facts.resource)} ${problem}, so it matches no resources glob` };
    if (!some(rule.resources, facts.resource)) return { admitted: false, detail: `resource ${quoted(facts.resource)} is not one the rule admits` };
  }
  return { admitted: true };
}
