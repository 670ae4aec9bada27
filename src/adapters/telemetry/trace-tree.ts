// Rebuilds delegation chains from decision spans read back from Jaeger, for
// `hopwarden trace`. Pure: spans in, a tree (or its text) out.
//
// Each `authz.check` span is one hop decision: on behalf of a person, the
// chain [first agent, …, caller] called the callee. The records of one
// workflow share `agent.on_behalf_of` and a chain prefix (SPEC 6), so putting
// every decision at the end of its path person → chain… → callee in one trie
// joins them: person → orchestrator → research → db, with each call's
// decisions on the node of the agent that was called.

import type { AttributeValue, StoredSpan } from "./jaeger-query-client.js";
import { CHECK_SPAN_NAME, HOP_EVENT_NAME } from "./decision-span.js";

export interface HopEvaluation {
  readonly from: string;
  readonly to: string;
  readonly rule: string;
  readonly result: string;
  readonly cached: boolean;
}

/** One decision, as its `authz.check` span records it. */
export interface DecisionRecord {
  readonly decisionId: string;
  readonly traceId: string;
  readonly spanId: string;
  readonly parentSpanId: string | undefined;
  readonly decision: "allow" | "deny";
  readonly reason: string;
  readonly policyVersion: string;
  readonly caller: string;
  readonly callee: string;
  readonly onBehalfOf: string;
  readonly chain: readonly string[];
  readonly method: string;
  readonly path: string;
  /** ISO 8601, millisecond precision. */
  readonly time: string;
  readonly startUs: number;
  readonly latencyMs: number;
  readonly hops: readonly HopEvaluation[];
  /** SPEC 8: how the caller was bound, the MCP request, the transaction; "" when the span has none. */
  readonly callerBinding: string;
  readonly mcpMethod: string;
  readonly mcpTool: string;
  readonly mcpResource: string;
  readonly txn: string;
}

export interface DelegationNode {
  /** A person (the root: on-behalf-of) or an agent's SPIFFE ID. */
  readonly identity: string;
  readonly role: "person" | "agent";
  /** Decisions on calls that reached this agent through the path above it. */
  readonly decisions: DecisionRecord[];
  readonly children: DelegationNode[];
}

/** Placeholders for what a decision could not establish (e.g. a denial before the chain was read). */
export const UNKNOWN_PERSON = "(no on-behalf-of)";
export const UNKNOWN_AGENT = "(unknown agent)";

/** The decision an `authz.check` span records; undefined for any other span. */
export function decisionFromSpan(span: StoredSpan): DecisionRecord | undefined {
  const a = span.attributes;
  const decisionId = text(a["authz.decision_id"]);
  if (span.name !== CHECK_SPAN_NAME || decisionId === "") return undefined;
  return {
    decisionId,
    traceId: span.traceId,
    spanId: span.spanId,
    parentSpanId: span.parentSpanId,
    decision: text(a["authz.decision"]) === "allow" ? "allow" : "deny",
    reason: text(a["authz.reason"]),
    policyVersion: text(a["authz.policy.version"]),
    caller: text(a["agent.caller"]),
    callee: text(a["agent.callee"]),
    onBehalfOf: text(a["agent.on_behalf_of"]),
    chain: chainValue(a["agent.delegation.chain"]),
    method: text(a["http.request.method"]),
    path: text(a["url.path"]),
    time: isoTime(span.startUs),
    startUs: span.startUs,
    latencyMs: span.durationUs / 1000,
    hops: span.events
      .filter((e) => e.name === HOP_EVENT_NAME)
      .map((e) => ({
        from: text(e.attributes.from),
        to: text(e.attributes.to),
        rule: text(e.attributes.rule),
        result: text(e.attributes.result),
        cached: e.attributes.cached === true || e.attributes.cached === "true",
      })),
    callerBinding: text(a["authz.caller.binding"]),
    mcpMethod: text(a["mcp.method.name"]),
    mcpTool: text(a["gen_ai.tool.name"]),
    mcpResource: text(a["mcp.resource.uri"]),
    txn: text(a["authz.txn"]),
  };
}

/** Every decision among the spans, oldest first, each once (a span may come back in several search results). */
export function decisionsFromSpans(spans: readonly StoredSpan[]): DecisionRecord[] {
  const byId = new Map<string, DecisionRecord>();
  for (const span of spans) {
    const record = decisionFromSpan(span);
    if (record !== undefined && !byId.has(record.decisionId)) byId.set(record.decisionId, record);
  }
  return [...byId.values()].sort((x, y) => x.startUs - y.startUs || compare(x.decisionId, y.decisionId));
}

/** person → first agent → … → caller → callee: where a decision sits in the tree. */
export function delegationPath(record: DecisionRecord): string[] {
  const chain = record.chain.length > 0 ? [...record.chain] : [record.caller === "" ? UNKNOWN_AGENT : record.caller];
  return [record.onBehalfOf === "" ? UNKNOWN_PERSON : record.onBehalfOf, ...chain, record.callee === "" ? UNKNOWN_AGENT : record.callee];
}

/** Joins decisions into one tree per person; roots and children ordered by first activity. */
export function buildDelegationForest(records: readonly DecisionRecord[]): DelegationNode[] {
  const roots: DelegationNode[] = [];
  for (const record of [...records].sort((x, y) => x.startUs - y.startUs)) {
    const [person, ...agents] = delegationPath(record);
    let node = findOrAdd(roots, person!, "person");
    for (const agent of agents) node = findOrAdd(node.children, agent, "agent");
    node.decisions.push(record);
  }
  return roots;
}

function findOrAdd(siblings: DelegationNode[], identity: string, role: DelegationNode["role"]): DelegationNode {
  let node = siblings.find((n) => n.identity === identity);
  if (node === undefined) {
    node = { identity, role, decisions: [], children: [] };
    siblings.push(node);
  }
  return node;
}

/**
 * The decisions of the workflow `target` belongs to: same person, and a path
 * that is a prefix of the target's path or extends it (the calls that led to
 * this one and the calls it led to), plus everything in the target's trace.
 */
export function workflowOf(target: DecisionRecord, records: readonly DecisionRecord[]): DecisionRecord[] {
  const targetPath = delegationPath(target);
  return records.filter((r) => {
    if (r.decisionId === target.decisionId || r.traceId === target.traceId) return true;
    if (r.onBehalfOf !== target.onBehalfOf) return false;
    const path = delegationPath(r);
    return isPrefix(path, targetPath) || isPrefix(targetPath, path);
  });
}

function isPrefix(prefix: readonly string[], of: readonly string[]): boolean {
  return prefix.length <= of.length && prefix.every((p, i) => of[i] === p);
}

export interface RenderOptions {
  /** Marks this decision in the output. */
  readonly highlight?: string | undefined;
}

/**
 * The forest as text: one line per person and agent, and under each agent one
 * line per decision on calls to it, then the hops that decision evaluated.
 */
export function renderDelegationForest(forest: readonly DelegationNode[], options: RenderOptions = {}): string {
  const lines: string[] = [];
  for (const root of forest) {
    lines.push(`${root.identity}  (on behalf of)`);
    renderChildren(root, "", lines, options);
  }
  return lines.join("\n") + (lines.length > 0 ? "\n" : "");
}

function renderChildren(node: DelegationNode, prefix: string, lines: string[], options: RenderOptions): void {
  node.children.forEach((child, i) => {
    const last = i === node.children.length - 1;
    lines.push(`${prefix}${last ? "└─ " : "├─ "}${child.identity}`);
    const inner = prefix + (last ? "   " : "│  ");
    const bar = child.children.length > 0 ? "│ " : "  ";
    for (const d of child.decisions) {
      const mark = d.decisionId === options.highlight ? "  <= this decision" : "";
      lines.push(`${inner}${bar}${describeDecision(d)}${mark}`);
      for (const hop of d.hops) lines.push(`${inner}${bar}    hop ${hop.from} -> ${hop.to}: ${hop.result}${hop.rule === "" ? "" : ` by ${hop.rule}`}${hop.cached ? " (cached)" : ""}`);
    }
    renderChildren(child, inner, lines, options);
  });
}

/** `ALLOW allowed  GET /query  [mcp tools/call search_docs]  policy 2026-11-01.3  2026-…Z  0.84 ms  decision 01J…  trace 4bf9…  [txn …]` */
export function describeDecision(d: DecisionRecord): string {
  const request = d.method === "" && d.path === "" ? "" : `  ${d.method} ${d.path}`;
  const mcp = d.mcpMethod === "" ? "" : `  mcp ${describeMcp(d)}`;
  const txn = d.txn === "" ? "" : `  txn ${d.txn}`;
  return `${d.decision.toUpperCase()} ${d.reason}${request}${mcp}  policy ${d.policyVersion === "" ? "(none)" : d.policyVersion}  ${d.time}  ${formatLatency(d.latencyMs)}  decision ${d.decisionId}  trace ${d.traceId}${txn}`;
}

/** `tools/call search_docs`, `resources/read file:///docs/a`, `tools/list`. */
function describeMcp(d: DecisionRecord): string {
  const target = d.mcpTool !== "" ? d.mcpTool : d.mcpResource;
  return target === "" ? d.mcpMethod : `${d.mcpMethod} ${target}`;
}

/**
 * Every hop of one transaction (`hopwarden trace --txn`), oldest first, one
 * row each: when, who called whom (bound how), for whom, the request and its
 * MCP method and tool, the answer, and the ids to look further.
 */
export function renderTransactionTable(txn: string, records: readonly DecisionRecord[]): string {
  const sorted = [...records].sort((x, y) => x.startUs - y.startUs || compare(x.decisionId, y.decisionId));
  const people = [...new Set(sorted.map((r) => r.onBehalfOf || UNKNOWN_PERSON))];
  const header = ["#", "time", "caller", "binding", "callee", "request", "mcp", "decision", "reason", "decision id", "trace"];
  const rows = sorted.map((r, i) => [
    String(i + 1),
    r.time,
    r.caller || UNKNOWN_AGENT,
    r.callerBinding || "-",
    r.callee || UNKNOWN_AGENT,
    r.method === "" && r.path === "" ? "-" : `${r.method} ${r.path}`,
    r.mcpMethod === "" ? "-" : describeMcp(r),
    r.decision.toUpperCase(),
    r.reason,
    r.decisionId,
    r.traceId,
  ]);
  const widths = header.map((h, c) => Math.max(h.length, ...rows.map((row) => row[c]!.length)));
  const line = (cells: readonly string[]) => cells.map((cell, c) => cell.padEnd(widths[c]!)).join("  ").trimEnd();
  return [
    `transaction ${txn}, on behalf of ${people.join(", ")}`,
    "",
    line(header),
    line(widths.map((w) => "-".repeat(w))),
    ...rows.map(line),
    "",
  ].join("\n");
}

/** A span's start as ISO 8601; "(invalid time)" for a timestamp no Date can hold. */
function isoTime(startUs: number): string {
  const date = new Date(Math.floor(startUs / 1000));
  return Number.isNaN(date.getTime()) ? "(invalid time)" : date.toISOString();
}

function formatLatency(ms: number): string {
  return ms >= 100 ? `${Math.round(ms)} ms` : `${ms.toFixed(2)} ms`;
}

function text(value: AttributeValue | undefined): string {
  if (value === undefined) return "";
  return Array.isArray(value) ? value.join(",") : String(value);
}

/** A string array (OTLP) or, from Jaeger's JSON API, that array JSON-encoded in a string tag. */
function chainValue(value: AttributeValue | undefined): string[] {
  if (value === undefined) return [];
  if (Array.isArray(value)) return value.map(String);
  const s = String(value);
  if (s.startsWith("[")) {
    try {
      const parsed = JSON.parse(s) as unknown;
      if (Array.isArray(parsed)) return parsed.map(String);
    } catch {
      // not JSON after all: fall through to the header syntax
    }
  }
  return s === "" ? [] : s.split(",").map((e) => e.trim());
}

function compare(x: string, y: string): number {
  return x < y ? -1 : x > y ? 1 : 0;
}
