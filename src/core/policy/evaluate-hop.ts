// Decides one hop of `chain + [callee]`: is there a rule that admits `from`
// calling `to` for this on-behalf-of, and, for the last hop (this very call),
// this method, path and MCP request (SPEC 8)? Default deny.

import type { McpReading } from "../mcp/mcp-metadata.js";
import { mcpRuleAdmits } from "./mcp-rule.js";
import type { CompiledPolicy, HopRule } from "./model.js";
import { toRulePath, type RulePath } from "./request-path.js";
import { quoted } from "../input/untrusted-bounds.js";

export interface LastHopRequest {
  readonly method: string;
  /** What path rules see of the request target (toRulePath): the path, or why none may match. */
  readonly rulePath: RulePath;
  /** What Envoy's MCP filter said of the body; only `mcp:` rules read it. */
  readonly mcp: McpReading;
}

export const NO_MCP_METADATA: McpReading = Object.freeze({ kind: "absent" });

/** The last hop of a request as Envoy sent it: method, target (path and query) and MCP metadata. */
export function lastHopRequest(method: string, target: string, mcp: McpReading = NO_MCP_METADATA): LastHopRequest {
  return { method, rulePath: toRulePath(target), mcp };
}

/** Why `rule`'s `mcp:` does not admit the request, or undefined when it does (or the rule has none). */
function mcpRefusal(rule: HopRule, mcp: McpReading): string | undefined {
  if (rule.mcp === undefined) return undefined;
  const result = mcpRuleAdmits(rule.mcp, mcp.kind === "mcp" ? mcp.facts : undefined);
  if (result.admitted) return undefined;
  return mcp.kind === "unparsable" ? `${rule.name} admits only MCP requests, and the MCP metadata is unusable: ${mcp.problem}` : `${rule.name}: ${result.detail}`;
}

export interface HopOutcome {
  readonly allowed: boolean;
  /** The admitting rule ("hops[N]"), or "" when none admitted the hop. */
  readonly rule: string;
  readonly ruleIndex: number;
  readonly detail: string;
}

function onBehalfOfAdmits(rule: HopRule, onBehalfOf: string | undefined): boolean {
  if (rule.onBehalfOf === undefined) return true;
  return onBehalfOf !== undefined && rule.onBehalfOf.matches(onBehalfOf);
}

export function evaluateHop(
  policy: CompiledPolicy,
  from: string,
  to: string,
  onBehalfOf: string | undefined,
  last: LastHopRequest | undefined,
): HopOutcome {
  let nearMiss: string | undefined;
  for (const rule of policy.hops) {
    if (!rule.from.matches(from) || !rule.to.matches(to)) continue;
    if (!onBehalfOfAdmits(rule, onBehalfOf)) {
      nearMiss ??= `${rule.name} does not admit on-behalf-of ${quoted(onBehalfOf ?? "")}`;
      continue;
    }
    if (last !== undefined) {
      if (rule.methods !== undefined && !rule.methods.matches(last.method)) {
        nearMiss ??= `${rule.name} does not admit method ${quoted(last.method)}`;
        continue;
      }
      if (rule.paths !== undefined) {
        const rulePath = last.rulePath;
        if (!rulePath.ok) {
          nearMiss ??= `the path ${rulePath.problem}, so it matches no path rule`;
          continue;
        }
        if (!rule.paths.matches(rulePath.path)) {
          nearMiss ??= `${rule.name} does not admit path ${quoted(rulePath.path)}`;
          continue;
        }
      }
      const refusal = mcpRefusal(rule, last.mcp);
      if (refusal !== undefined) {
        nearMiss ??= refusal;
        continue;
      }
    }
    return { allowed: true, rule: rule.name, ruleIndex: rule.index, detail: `admitted by ${rule.name}` };
  }
  return { allowed: false, rule: "", ruleIndex: -1, detail: nearMiss ?? "no hop rule admits this hop" };
}
