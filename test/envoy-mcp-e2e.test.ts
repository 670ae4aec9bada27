// SPEC 8 end to end: real Envoy 1.40 with its MCP filter ahead of ext_authz
// (envoy/mcp-front-proxy.yaml), real hopwarden deciding with the MCP example
// policy (examples/mcp/policy.yaml), and a small MCP server upstream. Agents
// call it over mTLS with real JSON-RPC bodies; only what the policy's `mcp:`
// admits reaches the MCP server.

import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { silentLogger } from "../src/adapters/logging/logger.js";
import type { Decision } from "../src/core/decision/decision.js";
import { startHopwarden, type Hopwarden } from "../src/main.js";
import { envoyBinary, mtlsRequest, startMcpFrontProxy, type HttpResult, type RunningProxy } from "./support/envoy.js";
import { MCP_POST_HEADERS, mcpRequest, startMcpServer, type McpServer } from "./support/mcp-server.js";
import { createTestPki, spiffe, writePki } from "./support/pki.js";

const repoRoot = join(import.meta.dirname, "..");
const PERSON = "alice@example.com";

let dir: string;
let pki: Awaited<ReturnType<typeof writePki>>;
let mcp: McpServer;
let hopwarden: Hopwarden;
let proxy: RunningProxy;
const decisions = new Map<string, Decision>();

beforeAll(async () => {
  envoyBinary();
  dir = await mkdtemp(join(tmpdir(), "hopwarden-mcp-e2e-"));
  pki = await writePki(await createTestPki(), join(dir, "pki"));
  // The example policy, plus a rule that lets the orchestrator list db's tools directly,
  // so that only requireVia (db only through research) stands in the way of that shortcut.
  const example = await readFile(join(repoRoot, "examples", "mcp", "policy.yaml"), "utf8");
  const shortcut = '  - from: orchestrator\n    to: db\n    mcp: {methods: ["tools/list"]}\n\nrequireVia:';
  const policyFile = join(dir, "policy.yaml");
  await writeFile(policyFile, example.replace("\nrequireVia:", `\n${shortcut}`));
  mcp = await startMcpServer();
  hopwarden = await startHopwarden({
    policyFile,
    listen: "127.0.0.1:0",
    logger: silentLogger,
    tracing: false,
    watchPolicy: false,
    sinks: [{ record: (d) => void decisions.set(d.decisionId, d) }],
  });
  proxy = await startMcpFrontProxy({ server: pki.server!, caFile: pki.ca.cert, hopwardenPort: hopwarden.grpcPort, researchPort: mcp.port, dbPort: mcp.port, dir });
}, 60_000);

afterAll(async () => {
  await proxy?.stop();
  await hopwarden?.shutdown(2_000);
  await mcp?.close();
  if (dir !== undefined) await rm(dir, { recursive: true, force: true });
});

interface Seen {
  readonly response: HttpResult;
  /** "allowed", or the x-authz-reason Envoy passed back. */
  readonly outcome: string;
  /** How many requests reached the MCP server for this call. */
  readonly forwarded: number;
  readonly decision: Decision | undefined;
}

/** `agent` POSTs `body` to /mcp on db (its chain: orchestrator → … → agent) through Envoy. */
async function post(body: string, options: { agent?: "research" | "orchestrator"; chain?: readonly string[]; headers?: Record<string, string> } = {}): Promise<Seen> {
  const agent = options.agent ?? "research";
  const chain = options.chain ?? ["orchestrator", "research"];
  const before = mcp.received.length;
  const response = await mtlsRequest({
    port: proxy.port,
    authority: "db",
    method: "POST",
    path: "/mcp",
    ca: pki.ca.cert,
    cert: pki[agent]!.cert,
    key: pki[agent]!.key,
    headers: {
      ...MCP_POST_HEADERS,
      "x-agent-subject": spiffe(agent),
      "x-agent-on-behalf-of": PERSON,
      "x-agent-delegation-chain": chain.map((a) => spiffe(a)).join(","),
      ...options.headers,
    },
    body,
  });
  const reason = response.headers["x-authz-reason"];
  const id = response.status === 200 ? undefined : (JSON.parse(response.body) as { decision_id?: string }).decision_id;
  return {
    response,
    outcome: response.status === 200 ? "allowed" : typeof reason === "string" ? reason : `HTTP ${response.status}`,
    forwarded: mcp.received.length - before,
    decision: id === undefined ? undefined : decisions.get(id),
  };
}

describe("an mcp: rule behind Envoy's MCP filter", () => {
  it("passes tools/call of an allowed tool to the MCP server, which answers", async () => {
    const seen = await post(mcpRequest("tools/call", { name: "search_docs", arguments: { q: "envoy" } }));
    expect(seen.outcome).toBe("allowed");
    expect(seen.forwarded).toBe(1);
    expect(JSON.parse(seen.response.body)).toMatchObject({ jsonrpc: "2.0", id: 1, result: { content: [{ type: "text" }] } });
    const decision = [...decisions.values()].at(-1);
    expect(decision).toMatchObject({ allowed: true, callerBinding: "certificate", mcp: { method: "tools/call", tool: "search_docs" } });
  });

  it("passes another admitted method (tools/list) and a resources/read under /docs", async () => {
    expect((await post(mcpRequest("tools/list"))).outcome).toBe("allowed");
    expect((await post(mcpRequest("resources/read", { uri: "file:///docs/readme.md" }))).outcome).toBe("allowed");
  });

  it.each([
    ["tools/call of another tool", () => mcpRequest("tools/call", { name: "delete_index" })],
    ["another method (prompts/get)", () => mcpRequest("prompts/get", { name: "search_docs" })],
    ["a tool name that is not a string", () => mcpRequest("tools/call", { name: ["search_docs"] })],
    ["a resource that escapes /docs once resolved", () => mcpRequest("resources/read", { uri: "file:///docs/../secrets" })],
    ["a body that is not MCP (JSON that is not JSON-RPC)", () => JSON.stringify({ hello: "world", method: "tools/call" })],
    ["a body that is not JSON at all", () => "tools/call search_docs"],
    ["a JSON-RPC batch, even of allowed calls", () => `[${mcpRequest("tools/call", { name: "search_docs" })},${mcpRequest("tools/list", undefined, 2)}]`],
    ["duplicate keys, where Envoy and the MCP server could name different tools", () => '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"search_docs","name":"delete_index"}}'],
  ])("denies %s with hop_not_allowed, and forwards nothing", async (_what, body) => {
    const seen = await post(body());
    expect(seen.outcome).toBe("hop_not_allowed");
    expect(seen.response.status).toBe(403);
    expect(seen.forwarded).toBe(0);
  });

  it("denies a tools/call sent as text/plain: the filter reports nothing, and an mcp: rule admits no request without MCP metadata", async () => {
    const seen = await post(mcpRequest("tools/call", { name: "search_docs" }), { headers: { "content-type": "text/plain" } });
    expect(seen.outcome).toBe("hop_not_allowed");
    expect(seen.forwarded).toBe(0);
  });

  it("denies tool smuggling in a body over the filter's limit: Envoy reads search_docs from the prefix, the MCP server would run delete_index", async () => {
    const body = `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"search_docs","arguments":{"q":"${"x".repeat(70_000)}"},"name":"delete_index"}}`;
    const seen = await post(body);
    expect(seen.outcome).toBe("hop_not_allowed");
    expect(seen.forwarded).toBe(0);
    expect(seen.decision?.hops.at(-1)?.detail).toMatch(/MCP metadata is unusable: Envoy passed the body through unparsed \(mcp_body_too_large\)/);
  });

  it("still denies a chain that skips the required agent with required_hop_missing", async () => {
    const seen = await post(mcpRequest("tools/list"), { agent: "orchestrator", chain: ["orchestrator"] });
    expect(seen.outcome).toBe("required_hop_missing");
    expect(seen.forwarded).toBe(0);
    expect(seen.decision).toMatchObject({ mcp: { method: "tools/list" } });
  });

  it("records the MCP method and tool of a refused call (span and audit record read them from the decision)", async () => {
    const seen = await post(mcpRequest("tools/call", { name: "delete_index" }));
    expect(seen.decision).toMatchObject({ allowed: false, reason: "hop_not_allowed", callerBinding: "certificate", mcp: { method: "tools/call", tool: "delete_index" } });
  });
});
