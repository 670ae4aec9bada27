// `hopwarden trace` end to end: a real three-hop workflow (orchestrator →
// research → db, on behalf of one person, each Check in its own trace as when
// agents do not propagate trace context) decided by hopwarden, exported to
// real Jaeger, and read back by the command, which must join the records by
// on-behalf-of and chain prefix into one tree.

import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { create } from "@bufbuild/protobuf";
import { MetadataSchema } from "../src/gen/envoy/config/core/v3/base_pb.js";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { startHopwarden, type Hopwarden } from "../src/main.js";
import { silentLogger } from "../src/adapters/logging/logger.js";
import { UlidGenerator } from "../src/adapters/ids/ulid.js";
import { traceCommand } from "../src/cli/commands/trace.js";
import type { DecisionRecord, DelegationNode } from "../src/adapters/telemetry/trace-tree.js";
import { CheckClient, checkRequest, outcome } from "./support/check-client.js";
import { createTestPki, spiffe, type TestPki } from "./support/pki.js";
import { startJaeger, waitFor, type JaegerProcess } from "./support/jaeger.js";
import { otlpExport } from "./support/span-capture.js";
import { freePort } from "./support/envoy.js";
import { createSigningKey } from "./support/delegation-tokens.js";
import { signTxnToken, txnClaims, txnTokensSection } from "./support/txn-tokens.js";

const repoRoot = join(import.meta.dirname, "..");
const run = promisify(execFile);

// One person per run, so that nothing else in Jaeger can join this workflow.
const ALICE = `alice-${randomBytes(4).toString("hex")}@example.com`;
const BOB = `bob-${randomBytes(4).toString("hex")}@example.com`;

let pki: TestPki;
let jaeger: JaegerProcess;
let hopwarden: Hopwarden;

/** Decision ids of the workflow, by what each call was. */
const ids = {} as Record<"toResearch" | "toDb" | "deleteDenied" | "shortcutDenied" | "bob", string>;
const traceIds = {} as Record<keyof typeof ids, string>;

beforeAll(async () => {
  [jaeger, pki] = await Promise.all([startJaeger(), createTestPki()]);
  hopwarden = await startHopwarden({
    policyFile: join(repoRoot, "examples", "policy.yaml"),
    listen: "127.0.0.1:0",
    logger: silentLogger,
    tracing: { export: otlpExport("grpc", jaeger.otlpGrpcUrl) },
    watchPolicy: false,
  });
  const client = new CheckClient(hopwarden.grpcAddress);
  try {
    const call = async (key: keyof typeof ids, caller: "orchestrator" | "research", chain: string[], callee: string, method: string, path: string, person = ALICE) => {
      const traceId = randomBytes(16).toString("hex");
      const response = await client.check(
        checkRequest({
          certificate: pki.agents[caller].urlEncodedPem,
          callee,
          method,
          path,
          headers: { "x-agent-subject": spiffe(caller), "x-agent-on-behalf-of": person, "x-agent-delegation-chain": chain.map((a) => spiffe(a)).join(",") },
        }),
        { traceparent: `00-${traceId}-${randomBytes(8).toString("hex")}-01` },
      );
      const o = outcome(response);
      ids[key] = o.headers["x-authz-decision-id"] ?? String(o.body?.decision_id);
      traceIds[key] = traceId;
      return o;
    };
    // person → orchestrator → research → db, then a method the db hop does not admit, and a shortcut.
    expect((await call("toResearch", "orchestrator", ["orchestrator"], "research", "POST", "/search")).code).toBe(0);
    expect((await call("toDb", "research", ["orchestrator", "research"], "db", "GET", "/query")).code).toBe(0);
    expect((await call("deleteDenied", "research", ["orchestrator", "research"], "db", "DELETE", "/query")).reason).toBe("hop_not_allowed");
    expect((await call("shortcutDenied", "orchestrator", ["orchestrator"], "db", "GET", "/query")).reason).toBe("hop_not_allowed");
    expect((await call("bob", "orchestrator", ["orchestrator"], "research", "POST", "/search", BOB)).code).toBe(0);
  } finally {
    client.close();
  }
  // Spans leave in batches (500 ms): wait until Jaeger can answer for all of them.
  await waitFor("the workflow's five decisions in Jaeger", async () => {
    const found = await jaeger.client.search({ service: "hopwarden", operation: "authz.check", startMs: Date.now() - 120_000, endMs: Date.now() + 1_000, limit: 100 });
    const seen = new Set(found.map((s) => s.attributes["authz.decision_id"]));
    return Object.values(ids).every((id) => seen.has(id)) || undefined;
  });
});

afterAll(async () => {
  await hopwarden?.shutdown(2_000);
  await jaeger?.stop();
});

interface RunResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs the command in-process, capturing what it prints. */
async function trace(...args: string[]): Promise<RunResult> {
  let stdout = "";
  let stderr = "";
  const out = vi.spyOn(process.stdout, "write").mockImplementation((chunk: string | Uint8Array) => ((stdout += String(chunk)), true));
  const err = vi.spyOn(process.stderr, "write").mockImplementation((chunk: string | Uint8Array) => ((stderr += String(chunk)), true));
  try {
    const code = await traceCommand.run(args);
    return { code, stdout, stderr };
  } finally {
    out.mockRestore();
    err.mockRestore();
  }
}

const at = (...args: string[]) => trace(...args, "--jaeger-url", jaeger.queryUrl);

interface TreeJson {
  query: Record<string, string>;
  decisions: DecisionRecord[];
  tree: DelegationNode[];
}

function child(node: DelegationNode | undefined, agent: string): DelegationNode {
  const found = node?.children.find((c) => c.identity === spiffe(agent));
  if (found === undefined) throw new Error(`no ${agent} under ${node?.identity}: ${JSON.stringify(node?.children.map((c) => c.identity))}`);
  return found;
}

describe("hopwarden trace --on-behalf-of: every decision for a person, joined into one tree", () => {
  it("prints person → orchestrator → research → db with each call's decisions (JSON)", async () => {
    const result = await at("--on-behalf-of", ALICE, "--since", "10m", "--json");
    expect(result.stderr).toBe("");
    expect(result.code).toBe(0);
    const json = JSON.parse(result.stdout) as TreeJson;
    expect(json.query).toMatchObject({ kind: "on-behalf-of", onBehalfOf: ALICE });
    expect(json.decisions.map((d) => d.decisionId).sort()).toEqual([ids.toResearch, ids.toDb, ids.deleteDenied, ids.shortcutDenied].sort());
    expect(json.tree).toHaveLength(1);
    const [person] = json.tree;
    expect(person).toMatchObject({ identity: ALICE, role: "person" });
    const orchestrator = child(person, "orchestrator");
    const research = child(orchestrator, "research");
    const db = child(research, "db");
    expect(research.decisions.map((d) => [d.decisionId, d.decision, d.reason])).toEqual([[ids.toResearch, "allow", "allowed"]]);
    expect(db.decisions.map((d) => [d.decisionId, d.decision, d.reason, d.method])).toEqual([
      [ids.toDb, "allow", "allowed", "GET"],
      [ids.deleteDenied, "deny", "hop_not_allowed", "DELETE"],
    ]);
    expect(child(orchestrator, "db").decisions.map((d) => [d.decisionId, d.reason])).toEqual([[ids.shortcutDenied, "hop_not_allowed"]]);
    const toDb = db.decisions[0]!;
    expect(toDb).toMatchObject({ policyVersion: "2026-11-01.3", caller: spiffe("research"), callee: spiffe("db"), onBehalfOf: ALICE, chain: [spiffe("orchestrator"), spiffe("research")], path: "/query", traceId: traceIds.toDb });
    expect(toDb.hops.map((h) => [h.from, h.to, h.result])).toEqual([
      [spiffe("orchestrator"), spiffe("research"), "allow"],
      [spiffe("research"), spiffe("db"), "allow"],
    ]);
    expect(Date.parse(toDb.time)).toBeGreaterThan(Date.now() - 600_000);
    expect(toDb.latencyMs).toBeGreaterThan(0);
  });

  it("draws the same tree as text, with decision, reason, policy version, time and latency on every call", async () => {
    const result = await at("--on-behalf-of", ALICE);
    expect(result.code).toBe(0);
    const lines = result.stdout.split("\n");
    expect(lines[0]).toMatch(/^4 decisions in 4 traces \(Jaeger http:\/\/127\.0\.0\.1:\d+\)$/);
    expect(result.stdout).toContain(`${ALICE}  (on behalf of)\n└─ ${spiffe("orchestrator")}\n   ├─ ${spiffe("research")}\n`);
    const line = (id: string) => lines.find((l) => l.includes(`decision ${id}`)) ?? "";
    expect(line(ids.toResearch)).toMatch(/ALLOW allowed {2}POST \/search {2}policy 2026-11-01\.3 {2}\d{4}-\d\d-\d\dT[\d:.]+Z {2}\d+\.\d\d ms/);
    expect(line(ids.deleteDenied)).toMatch(/DENY hop_not_allowed {2}DELETE \/query/);
    expect(result.stdout).not.toContain(BOB);
  });

  it("exits 1 with a message when nobody acted for that person in the window", async () => {
    const result = await at("--on-behalf-of", "nobody@example.com", "--since", "5m");
    expect(result.code).toBe(1);
    expect(result.stdout).toBe("");
    expect(result.stderr).toMatch(/no decision on behalf of "nobody@example\.com" between .* at http:\/\/127\.0\.0\.1/);
  });
});

describe("hopwarden trace <decision-id>: that call with the calls that led to it and those it led to", () => {
  it("finds the decision by authz.decision_id and joins the rest of its workflow, not other branches or people", async () => {
    const result = await at(ids.toDb, "--json");
    expect(result.code).toBe(0);
    const json = JSON.parse(result.stdout) as TreeJson;
    expect(json.query).toEqual({ kind: "decision", decisionId: ids.toDb });
    expect(json.decisions.map((d) => d.decisionId).sort()).toEqual([ids.toResearch, ids.toDb, ids.deleteDenied].sort());
    const research = child(child(json.tree[0], "orchestrator"), "research");
    expect(research.decisions.map((d) => d.decisionId)).toEqual([ids.toResearch]);
    expect(child(research, "db").decisions.map((d) => d.decisionId)).toEqual([ids.toDb, ids.deleteDenied]);
  });

  it("marks the decision asked for in the text tree", async () => {
    const result = await at(ids.toResearch);
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(new RegExp(`decision ${ids.toResearch} .*<= this decision`));
    expect(result.stdout).toContain(`decision ${ids.toDb}`);
    expect(result.stdout).not.toContain(ids.shortcutDenied);
  });

  it("exits 1 for a decision id Jaeger does not have", async () => {
    const unknown = new UlidGenerator().next(Date.now());
    const result = await at(unknown);
    expect(result.code).toBe(1);
    expect(result.stderr).toContain(`no decision ${unknown} in service "hopwarden"`);
  });
});

describe("hopwarden trace <trace-id>", () => {
  it("prints the decisions of that trace", async () => {
    const result = await at(traceIds.shortcutDenied, "--json");
    expect(result.code).toBe(0);
    const json = JSON.parse(result.stdout) as TreeJson;
    expect(json.decisions.map((d) => d.decisionId)).toEqual([ids.shortcutDenied]);
    expect(child(child(json.tree[0], "orchestrator"), "db").decisions[0]).toMatchObject({ decision: "deny", reason: "hop_not_allowed" });
  });

  it("exits 1 for a trace Jaeger does not have", async () => {
    const result = await at("0123456789abcdef0123456789abcdef");
    expect(result.code).toBe(1);
    expect(result.stderr).toContain("has no trace 0123456789abcdef0123456789abcdef");
  });
});

describe("hopwarden trace --txn: every hop of one transaction (SPEC 8)", () => {
  // A second hopwarden on the same Jaeger: the MCP example policy plus txnTokens, and
  // one transaction (a Txn-Token signed by jose) that the orchestrator starts and
  // research forwards unmodified: research, then two MCP tool calls on db.
  let mcpHopwarden: Hopwarden;
  let dir: string;
  const txn = `txn-${randomBytes(6).toString("hex")}`;
  const otherTxn = `txn-${randomBytes(6).toString("hex")}`;
  const txnIds: string[] = [];

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "hopwarden-trace-txn-"));
    const key = await createSigningKey("ES256", "tts-trace");
    const policyFile = join(dir, "policy.yaml");
    await writeFile(policyFile, (await readFile(join(repoRoot, "examples", "mcp", "policy.yaml"), "utf8")) + (await txnTokensSection(dir, [key], true)));
    mcpHopwarden = await startHopwarden({ policyFile, listen: "127.0.0.1:0", logger: silentLogger, tracing: { export: otlpExport("grpc", jaeger.otlpGrpcUrl) }, watchPolicy: false });
    const client = new CheckClient(mcpHopwarden.grpcAddress);
    const token = await signTxnToken(key, txnClaims(ALICE, { txn }));
    const other = await signTxnToken(key, txnClaims(ALICE, { txn: otherTxn }));
    const call = async (caller: "orchestrator" | "research", chain: string[], callee: string, txnToken: string, tool?: string) => {
      const request = checkRequest({
        certificate: pki.agents[caller].urlEncodedPem,
        callee,
        method: "POST",
        path: callee === "db" ? "/mcp" : "/search",
        headers: { "x-agent-subject": spiffe(caller), "x-agent-on-behalf-of": ALICE, "x-agent-delegation-chain": chain.map((a) => spiffe(a)).join(","), "txn-token": txnToken },
      });
      if (tool !== undefined) {
        request.attributes!.metadataContext = create(MetadataSchema, {
          filterMetadata: { "envoy.filters.http.mcp": { id: 1, is_mcp_request: true, jsonrpc: "2.0", method: "tools/call", params: { name: tool }, status: "mcp_ok" } },
        });
      }
      const o = outcome(await client.check(request));
      return { reason: o.code === 0 ? "allowed" : o.reason, id: o.headers["x-authz-decision-id"] ?? String(o.body?.decision_id) };
    };
    try {
      for (const [caller, chain, callee, tool, expected] of [
        ["orchestrator", ["orchestrator"], "research", undefined, "allowed"],
        ["research", ["orchestrator", "research"], "db", "search_docs", "allowed"],
        ["research", ["orchestrator", "research"], "db", "delete_index", "hop_not_allowed"],
      ] as const) {
        const { reason, id } = await call(caller, [...chain], callee, token, tool);
        expect(reason).toBe(expected);
        txnIds.push(id);
      }
      expect((await call("orchestrator", ["orchestrator"], "research", other)).reason).toBe("allowed");
    } finally {
      client.close();
    }
    await waitFor("the transaction's decisions in Jaeger", async () => {
      const found = await jaeger.client.search({ service: "hopwarden", operation: "authz.check", tags: { "authz.txn": txn }, startMs: Date.now() - 120_000, endMs: Date.now() + 1_000, limit: 100 });
      return new Set(found.map((s) => s.attributes["authz.decision_id"])).size === 3 || undefined;
    });
  });

  afterAll(async () => {
    await mcpHopwarden?.shutdown(2_000);
    if (dir !== undefined) await rm(dir, { recursive: true, force: true });
  });

  it("lists the transaction's hops in time order, with the MCP tool and the caller binding, and nothing of another transaction", async () => {
    const result = await at("--txn", txn);
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toContain(`3 hops in 3 traces (Jaeger ${jaeger.queryUrl})`);
    expect(result.stdout).toContain(`transaction ${txn}, on behalf of ${ALICE}`);
    const rows = result.stdout.split("\n").filter((l) => /^\d+\s+\d{4}-/.test(l));
    expect(rows).toHaveLength(3);
    expect(rows[0]).toMatch(new RegExp(`^1\\s.*${spiffe("orchestrator")}\\s+certificate\\s+${spiffe("research")}\\s+POST /search\\s+-\\s+ALLOW\\s+allowed\\s+${txnIds[0]}`));
    expect(rows[1]).toMatch(new RegExp(`^2\\s.*${spiffe("research")}\\s+certificate\\s+${spiffe("db")}\\s+POST /mcp\\s+tools/call search_docs\\s+ALLOW\\s+allowed\\s+${txnIds[1]}`));
    expect(rows[2]).toMatch(new RegExp(`^3\\s.*tools/call delete_index\\s+DENY\\s+hop_not_allowed\\s+${txnIds[2]}`));
  });

  it("gives the same as JSON, each decision carrying its txn", async () => {
    const json = JSON.parse((await at("--txn", txn, "--json")).stdout) as TreeJson;
    expect(json.query).toMatchObject({ kind: "txn", txn });
    expect(json.decisions.map((d) => d.decisionId)).toEqual(txnIds);
    expect(json.decisions.map((d) => [d.txn, d.mcpTool, d.callerBinding])).toEqual([
      [txn, "", "certificate"],
      [txn, "search_docs", "certificate"],
      [txn, "delete_index", "certificate"],
    ]);
  });

  it("exits 1 for a transaction Jaeger has no decision of", async () => {
    const result = await at("--txn", "txn-that-never-was");
    expect(result.code).toBe(1);
    expect(result.stderr).toContain('no decision in transaction "txn-that-never-was"');
  });
});

describe("hopwarden trace: usage and failures", () => {
  it("teaches with --help and exits 0", async () => {
    const result = await trace("--help");
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(/^Usage: hopwarden trace/);
    expect(result.stdout).toContain("--on-behalf-of <person>");
    expect(result.stdout).toContain("HOPWARDEN_JAEGER_URL");
  });

  it.each([
    [[], /name a decision id or a trace id/],
    [["a", "b"], /one id at a time/],
    [["x", "--on-behalf-of", "alice@example.com"], /either an id or --on-behalf-of/],
    [["x", "--txn", "t-1"], /one of an id, --on-behalf-of or --txn/],
    [["--txn", ""], /--txn needs a value/],
    [["--on-behalf-of", "a@example.com", "--since", "yesterday"], /--since "yesterday" is neither a duration/],
    [["--on-behalf-of", "a@example.com", "--since", "1h", "--until", "2h"], /--since must be before --until/],
    [["x", "--jaeger-url", "ftp://jaeger"], /must be http:\/\/ or https:\/\//],
    [["x", "--limit", "0"], /--limit must be a positive whole number/],
    [["x", "--timeout", "soon"], /--timeout "soon" is not a duration/],
    [["x", "--bogus"], /Unknown option '--bogus'/],
  ])("exits 2 for %j", async (args, message) => {
    const result = await trace(...args);
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(message);
    expect(result.stderr).toContain("Run 'hopwarden trace --help' for usage.");
  });

  it("exits 3 and names the URL when Jaeger cannot be reached", async () => {
    const port = await freePort();
    const started = Date.now();
    const result = await trace("--on-behalf-of", ALICE, "--jaeger-url", `http://127.0.0.1:${port}`, "--timeout", "2s");
    expect(result.code).toBe(3);
    expect(result.stderr).toContain(`cannot reach Jaeger's query API at http://127.0.0.1:${port}`);
    expect(Date.now() - started).toBeLessThan(3_000);
  });
});

describe("the hopwarden executable", () => {
  it("runs `hopwarden trace` with the Jaeger URL from HOPWARDEN_JAEGER_URL", async () => {
    const { stdout } = await run(process.execPath, ["--import", "tsx", join(repoRoot, "src", "cli", "bin.ts"), "trace", ids.toDb], {
      cwd: repoRoot,
      env: { ...process.env, HOPWARDEN_JAEGER_URL: jaeger.queryUrl },
      timeout: 20_000,
    });
    expect(stdout).toContain(`${ALICE}  (on behalf of)`);
    expect(stdout).toMatch(new RegExp(`decision ${ids.toDb} .*<= this decision`));
  });

  it("exits 1 when nothing is found", async () => {
    const failure = await run(process.execPath, ["--import", "tsx", join(repoRoot, "src", "cli", "bin.ts"), "trace", "--on-behalf-of", "nobody@example.com", "--jaeger-url", jaeger.queryUrl], {
      cwd: repoRoot,
      timeout: 20_000,
    }).then(
      () => undefined,
      (err: { code?: number; stderr?: string }) => err,
    );
    expect(failure?.code).toBe(1);
    expect(failure?.stderr).toContain("no decision on behalf of");
  });
});
