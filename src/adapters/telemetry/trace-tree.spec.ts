import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { decodeJaegerTraces, type StoredSpan } from "./jaeger-query-client.js";
import {
  buildDelegationForest,
  decisionFromSpan,
  decisionsFromSpans,
  delegationPath,
  renderDelegationForest,
  renderTransactionTable,
  workflowOf,
  UNKNOWN_AGENT,
  UNKNOWN_PERSON,
  type DecisionRecord,
} from "./trace-tree.js";

const id = (agent: string) => `spiffe://example.org/agent/${agent}`;
const ALICE = "alice@example.com";
let clockUs = 1_790_000_000_000_000;

interface SpanSpec {
  decisionId: string;
  chain: string[];
  callee: string;
  obo?: string;
  decision?: "allow" | "deny";
  reason?: string;
  traceId?: string;
  chainAsJsonString?: boolean;
  /** SPEC 8's attributes, when the span carries them. */
  extra?: Record<string, string>;
}

/** An authz.check span as Jaeger's JSON API returns it, decoded. */
function checkSpan(spec: SpanSpec): StoredSpan {
  clockUs += 1_000_000;
  const chain = spec.chain.map(id);
  const path = [...chain, id(spec.callee)];
  return {
    traceId: spec.traceId ?? spec.decisionId.toLowerCase().padEnd(32, "0").slice(0, 32),
    spanId: "00f067aa0ba902b7",
    parentSpanId: "b7ad6b7169203331",
    service: "hopwarden",
    name: "authz.check",
    startUs: clockUs,
    durationUs: 840,
    attributes: {
      "authz.decision": spec.decision ?? "allow",
      "authz.reason": spec.reason ?? "allowed",
      "authz.decision_id": spec.decisionId,
      "authz.policy.version": "2026-11-01.3",
      "agent.caller": chain.at(-1) ?? "",
      "agent.callee": id(spec.callee),
      "agent.on_behalf_of": spec.obo ?? ALICE,
      "agent.delegation.chain": spec.chainAsJsonString === false ? chain : JSON.stringify(chain),
      "agent.delegation.depth": chain.length,
      "http.request.method": "GET",
      "url.path": "/query",
      ...spec.extra,
    },
    events: path.slice(1).map((to, i) => ({
      name: "authz.hop",
      timeUs: clockUs,
      attributes: { from: path[i]!, to, rule: `hops[${i}]`, result: spec.decision === "deny" && i === path.length - 2 ? "deny" : "allow", cached: i === 0 },
    })),
  };
}

/** The workflow person → orchestrator → research → db, plus a denied shortcut. */
function workflow(): DecisionRecord[] {
  return decisionsFromSpans([
    checkSpan({ decisionId: "D1", chain: ["orchestrator"], callee: "research" }),
    checkSpan({ decisionId: "D2", chain: ["orchestrator", "research"], callee: "db" }),
    checkSpan({ decisionId: "D3", chain: ["orchestrator"], callee: "db", decision: "deny", reason: "hop_not_allowed" }),
  ]);
}

describe("decisionFromSpan: an authz.check span is one decision", () => {
  it("reads every audit attribute, the chain Jaeger's JSON API JSON-encodes, and the hop events", () => {
    const d = decisionFromSpan(checkSpan({ decisionId: "D2", chain: ["orchestrator", "research"], callee: "db" }))!;
    expect(d).toMatchObject({
      decisionId: "D2",
      decision: "allow",
      reason: "allowed",
      policyVersion: "2026-11-01.3",
      caller: id("research"),
      callee: id("db"),
      onBehalfOf: ALICE,
      chain: [id("orchestrator"), id("research")],
      method: "GET",
      path: "/query",
      latencyMs: 0.84,
    });
    expect(d.time).toMatch(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/);
    expect(d.hops).toEqual([
      { from: id("orchestrator"), to: id("research"), rule: "hops[0]", result: "allow", cached: true },
      { from: id("research"), to: id("db"), rule: "hops[1]", result: "allow", cached: false },
    ]);
  });

  it("reads SPEC 8's attributes: the caller binding, the MCP method, tool and resource, the transaction; '' when absent", () => {
    const extra = { "authz.caller.binding": "principal", "mcp.method.name": "tools/call", "gen_ai.tool.name": "search_docs", "authz.txn": "txn-1" };
    const d = decisionFromSpan(checkSpan({ decisionId: "D", chain: ["research"], callee: "db", extra }))!;
    expect(d).toMatchObject({ callerBinding: "principal", mcpMethod: "tools/call", mcpTool: "search_docs", mcpResource: "", txn: "txn-1" });
    expect(decisionFromSpan(checkSpan({ decisionId: "E", chain: ["research"], callee: "db" }))).toMatchObject({ callerBinding: "", mcpMethod: "", txn: "" });
  });

  it("reads a chain that arrives as a real string array", () => {
    const d = decisionFromSpan(checkSpan({ decisionId: "D", chain: ["orchestrator", "research"], callee: "db", chainAsJsonString: false }))!;
    expect(d.chain).toEqual([id("orchestrator"), id("research")]);
  });

  it("ignores spans that are not decisions (Envoy's, or any without a decision id)", () => {
    const span = checkSpan({ decisionId: "D", chain: ["orchestrator"], callee: "research" });
    expect(decisionFromSpan({ ...span, name: "ingress" })).toBeUndefined();
    expect(decisionFromSpan({ ...span, attributes: { ...span.attributes, "authz.decision_id": "" } })).toBeUndefined();
  });

  it("keeps each decision once, oldest first, however many searches returned it", () => {
    const spans = [checkSpan({ decisionId: "B", chain: ["orchestrator"], callee: "research" }), checkSpan({ decisionId: "A", chain: ["orchestrator"], callee: "research" })];
    expect(decisionsFromSpans([spans[1]!, spans[0]!, spans[1]!]).map((d) => d.decisionId)).toEqual(["B", "A"]);
  });
});

describe("buildDelegationForest: person → agent → … → callee, one tree per person", () => {
  it("joins the records of one workflow by on-behalf-of and chain prefix", () => {
    const [alice] = buildDelegationForest(workflow());
    expect(alice).toMatchObject({ identity: ALICE, role: "person", decisions: [] });
    const orchestrator = alice!.children[0]!;
    expect(alice!.children).toHaveLength(1);
    expect(orchestrator.identity).toBe(id("orchestrator"));
    expect(orchestrator.decisions).toEqual([]);
    expect(orchestrator.children.map((c) => c.identity)).toEqual([id("research"), id("db")]);
    const research = orchestrator.children[0]!;
    expect(research.decisions.map((d) => d.decisionId)).toEqual(["D1"]);
    expect(research.children[0]!.identity).toBe(id("db"));
    expect(research.children[0]!.decisions.map((d) => d.decisionId)).toEqual(["D2"]);
    expect(orchestrator.children[1]!.decisions.map((d) => [d.decisionId, d.reason])).toEqual([["D3", "hop_not_allowed"]]);
  });

  it("keeps different people apart", () => {
    const forest = buildDelegationForest(
      decisionsFromSpans([
        checkSpan({ decisionId: "A", chain: ["orchestrator"], callee: "research" }),
        checkSpan({ decisionId: "B", chain: ["orchestrator"], callee: "research", obo: "bob@example.com" }),
      ]),
    );
    expect(forest.map((n) => n.identity)).toEqual([ALICE, "bob@example.com"]);
  });

  it("still places a decision denied before the chain or person was read", () => {
    const span = checkSpan({ decisionId: "X", chain: [], callee: "research", obo: "", decision: "deny", reason: "missing_peer_certificate" });
    const record = decisionFromSpan({ ...span, attributes: { ...span.attributes, "agent.caller": "", "agent.callee": "" } })!;
    expect(delegationPath(record)).toEqual([UNKNOWN_PERSON, UNKNOWN_AGENT, UNKNOWN_AGENT]);
    const fromCaller = decisionFromSpan({ ...span, attributes: { ...span.attributes, "agent.caller": id("planner") } })!;
    expect(delegationPath(fromCaller)).toEqual([UNKNOWN_PERSON, id("planner"), id("research")]);
  });
});

describe("workflowOf: the calls that led to a decision and the calls it led to", () => {
  it("takes chain prefixes and extensions of the same person, not other branches or people", () => {
    const records = decisionsFromSpans([
      checkSpan({ decisionId: "D1", chain: ["orchestrator"], callee: "research" }),
      checkSpan({ decisionId: "D2", chain: ["orchestrator", "research"], callee: "db" }),
      checkSpan({ decisionId: "OTHER_BRANCH", chain: ["planner"], callee: "worker" }),
      checkSpan({ decisionId: "OTHER_PERSON", chain: ["orchestrator"], callee: "research", obo: "bob@example.com" }),
    ]);
    const d1 = records.find((r) => r.decisionId === "D1")!;
    const d2 = records.find((r) => r.decisionId === "D2")!;
    expect(workflowOf(d2, records).map((r) => r.decisionId)).toEqual(["D1", "D2"]);
    expect(workflowOf(d1, records).map((r) => r.decisionId)).toEqual(["D1", "D2"]);
  });

  it("takes everything in the decision's own trace", () => {
    const records = decisionsFromSpans([
      checkSpan({ decisionId: "D1", chain: ["orchestrator"], callee: "research", traceId: "a".repeat(32) }),
      checkSpan({ decisionId: "ELSEWHERE", chain: ["planner"], callee: "worker", traceId: "a".repeat(32) }),
    ]);
    expect(workflowOf(records[0]!, records)).toHaveLength(2);
  });
});

describe("renderDelegationForest", () => {
  it("draws the tree with each decision under the agent it called, and marks the one asked for", () => {
    const text = renderDelegationForest(buildDelegationForest(workflow()), { highlight: "D2" });
    const lines = text.trimEnd().split("\n");
    expect(lines[0]).toBe(`${ALICE}  (on behalf of)`);
    expect(lines[1]).toBe(`└─ ${id("orchestrator")}`);
    expect(lines[2]).toBe(`   ├─ ${id("research")}`);
    expect(lines[3]).toMatch(/^ {3}│ {2}│ ALLOW allowed {2}GET \/query {2}policy 2026-11-01\.3 {2}\S+Z {2}0\.84 ms {2}decision D1 {2}trace \S+$/);
    expect(lines[4]).toBe(`   │  │     hop ${id("orchestrator")} -> ${id("research")}: allow by hops[0] (cached)`);
    expect(lines[5]).toBe(`   │  └─ ${id("db")}`);
    expect(text).toMatch(/ALLOW allowed .*decision D2 .*<= this decision/);
    expect(text).toMatch(new RegExp(`   └─ ${id("db").replace(/[/.]/g, "\\$&")}\\n {8}DENY hop_not_allowed`));
    expect(text.endsWith("\n")).toBe(true);
    expect(renderDelegationForest([])).toBe("");
  });
});

describe("renderTransactionTable: every hop of one transaction, in time order", () => {
  it("prints one row per decision with caller, binding, callee, request, MCP method and tool, decision and ids", () => {
    const txn = { "authz.txn": "txn-7" };
    const records = decisionsFromSpans([
      checkSpan({ decisionId: "T1", chain: ["orchestrator"], callee: "research", extra: { ...txn, "authz.caller.binding": "certificate" } }),
      checkSpan({ decisionId: "T2", chain: ["orchestrator", "research"], callee: "db", extra: { ...txn, "authz.caller.binding": "certificate", "mcp.method.name": "tools/call", "gen_ai.tool.name": "search_docs" } }),
      checkSpan({
        decisionId: "T3",
        chain: ["orchestrator", "research"],
        callee: "db",
        decision: "deny",
        reason: "hop_not_allowed",
        extra: { ...txn, "mcp.method.name": "resources/read", "mcp.resource.uri": "file:///docs/.." },
      }),
    ]);
    const lines = renderTransactionTable("txn-7", [records[2]!, records[0]!, records[1]!]).split("\n");
    expect(lines[0]).toBe(`transaction txn-7, on behalf of ${ALICE}`);
    expect(lines[2]).toMatch(/^#\s+time\s+caller\s+binding\s+callee\s+request\s+mcp\s+decision\s+reason\s+decision id\s+trace$/);
    const rows = lines.slice(4).filter((l) => l !== "");
    expect(rows).toHaveLength(3);
    expect(rows[0]).toMatch(new RegExp(`^1\\s+\\S+Z\\s+${id("orchestrator")}\\s+certificate\\s+${id("research")}\\s+GET /query\\s+-\\s+ALLOW\\s+allowed\\s+T1\\s`));
    expect(rows[1]).toMatch(/^2\s.*\s+tools\/call search_docs\s+ALLOW\s+allowed\s+T2\s/);
    expect(rows[2]).toMatch(/^3\s.*\s+-\s+spiffe:\S+db\s+GET \/query\s+resources\/read file:\/\/\/docs\/\.\.\s+DENY\s+hop_not_allowed\s+T3\s/);
  });
});

describe("decodeJaegerTraces (Jaeger's answers are input too)", () => {
  it("flattens tags, logs and the CHILD_OF reference", () => {
    const [span] = decodeJaegerTraces({
      data: [
        {
          traceID: "t1",
          processes: { p1: { serviceName: "hopwarden" } },
          spans: [
            {
              traceID: "t1",
              spanID: "s1",
              operationName: "authz.check",
              references: [{ refType: "CHILD_OF", traceID: "t1", spanID: "p" }],
              startTime: 5,
              duration: 7,
              processID: "p1",
              tags: [{ key: "authz.decision", type: "string", value: "allow" }],
              logs: [{ timestamp: 6, fields: [{ key: "event", value: "authz.hop" }, { key: "from", value: "a" }] }],
            },
          ],
        },
      ],
    });
    expect(span).toEqual({
      traceId: "t1",
      spanId: "s1",
      parentSpanId: "p",
      service: "hopwarden",
      name: "authz.check",
      startUs: 5,
      durationUs: 7,
      attributes: { "authz.decision": "allow" },
      events: [{ name: "authz.hop", timeUs: 6, attributes: { from: "a" } }],
    });
  });

  it("never throws on any data array, and decisions drawn from it never throw either", () => {
    fc.assert(
      fc.property(fc.array(fc.anything()), (data) => {
        const spans = decodeJaegerTraces({ data });
        renderDelegationForest(buildDelegationForest(decisionsFromSpans(spans)));
      }),
      { seed: 884083907, numRuns: 300 },
    );
    const tag = fc.record({ key: fc.constantFrom("authz.decision_id", "agent.delegation.chain", "agent.on_behalf_of", "agent.callee", "event"), value: fc.anything() });
    const span = fc.record({
      traceID: fc.constant("t"),
      spanID: fc.string(),
      operationName: fc.constantFrom("authz.check", "ingress"),
      startTime: fc.oneof(fc.integer(), fc.anything()),
      tags: fc.oneof(fc.array(tag), fc.anything()),
      logs: fc.oneof(fc.array(fc.record({ timestamp: fc.anything(), fields: fc.array(tag) })), fc.anything()),
      references: fc.anything(),
    });
    fc.assert(
      fc.property(fc.array(fc.record({ traceID: fc.constant("t"), spans: fc.array(span), processes: fc.anything() })), (data) => {
        renderDelegationForest(buildDelegationForest(decisionsFromSpans(decodeJaegerTraces({ data }))));
      }),
      { seed: 884083907, numRuns: 300 },
    );
    // The value that once threw: an array item whose toString is not callable.
    expect(() => decodeJaegerTraces({ data: [{ traceID: "t", spans: [{ traceID: "t", spanID: "s", operationName: "authz.check", tags: [{ key: "agent.delegation.chain", value: [{ toString: "" }] }] }] }] })).not.toThrow();
    expect(() => decodeJaegerTraces({ errors: [] })).toThrow(/no data array/);
  });
});
