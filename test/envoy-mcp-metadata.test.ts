// What Envoy 1.40's MCP filter really hands ext_authz. envoy/mcp-front-proxy.yaml
// runs with a stand-in ext_authz server that records every CheckRequest as it
// arrived (decoded with the generated schemas, none of hopwarden's code) and a
// small MCP server upstream. These tests pin the metadata shape hopwarden's
// defaults (--config `mcp:`) and docs/mcp.md rely on: when an Envoy upgrade
// changes it, this file says what changed. The A2A filter (also in the 1.40
// binary) is probed the same way.

import { toJson } from "@bufbuild/protobuf";
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { MetadataSchema } from "../src/gen/envoy/config/core/v3/base_pb.js";
import type { CheckRequest } from "../src/gen/envoy/service/auth/v3/external_auth_pb.js";
import {
  ENVOY_TEMPLATES,
  envoyBinary,
  mcpFrontProxyValues,
  mtlsRequest,
  renderEnvoyConfig,
  startEnvoy,
  startMcpFrontProxy,
  validateEnvoyConfig,
  type EnvoyProcess,
  type HttpResult,
  type RunningProxy,
} from "./support/envoy.js";
import { startExtAuthzStub, type ExtAuthzStub } from "./support/ext-authz-stub.js";
import { MCP_POST_HEADERS, mcpRequest, startMcpServer, type McpServer } from "./support/mcp-server.js";
import { createTestPki, writePki } from "./support/pki.js";

const MCP_NAMESPACE = "envoy.filters.http.mcp";
const A2A_NAMESPACE = "envoy.filters.http.a2a";

let dir: string;
let pki: Awaited<ReturnType<typeof writePki>>;
let stub: ExtAuthzStub;
let mcp: McpServer;

beforeAll(async () => {
  envoyBinary();
  dir = await mkdtemp(join(tmpdir(), "hopwarden-mcp-metadata-"));
  pki = await writePki(await createTestPki(), join(dir, "pki"));
  [stub, mcp] = await Promise.all([startExtAuthzStub(), startMcpServer()]);
});

afterAll(async () => {
  await Promise.all([stub?.close(), mcp?.close()]);
  if (dir !== undefined) await rm(dir, { recursive: true, force: true });
});

interface Observed {
  readonly response: HttpResult;
  /** The CheckRequest Envoy sent for this request, if any. */
  readonly check: CheckRequest | undefined;
  /** attributes.metadata_context.filter_metadata as JSON. */
  readonly filterMetadata: Record<string, unknown>;
  /** How many requests the MCP server received for this call (0 or 1). */
  readonly forwarded: number;
}

async function send(port: number, body: string | undefined, headers: Record<string, string> = { ...MCP_POST_HEADERS }): Promise<Observed> {
  const checksBefore = stub.requests.length;
  const forwardedBefore = mcp.received.length;
  const response = await mtlsRequest({
    port,
    authority: "db",
    path: "/mcp",
    method: body === undefined ? "GET" : "POST",
    ca: pki.ca.cert,
    cert: pki.orchestrator!.cert,
    key: pki.orchestrator!.key,
    headers,
    ...(body !== undefined && { body }),
  });
  const check = stub.requests[checksBefore];
  const metadata = check?.attributes?.metadataContext;
  const json = metadata === undefined ? {} : (toJson(MetadataSchema, metadata) as { filterMetadata?: Record<string, unknown> });
  return { response, check, filterMetadata: json.filterMetadata ?? {}, forwarded: mcp.received.length - forwardedBefore };
}

describe("Envoy 1.40's MCP filter ahead of ext_authz (envoy/mcp-front-proxy.yaml)", () => {
  let proxy: RunningProxy | undefined;
  const post = (body: string | undefined, headers?: Record<string, string>) => send(proxy!.port, body, headers);

  beforeAll(async () => {
    proxy = await startMcpFrontProxy({
      server: pki.server!,
      caFile: pki.ca.cert,
      hopwardenPort: stub.port,
      researchPort: mcp.port,
      dbPort: mcp.port,
      dir,
    });
  });

  afterAll(async () => {
    await proxy?.stop();
  });

  it("tools/call: method and params.name under envoy.filters.http.mcp, never the arguments", async () => {
    const seen = await post(mcpRequest("tools/call", { name: "search_docs", arguments: { q: "envoy", limit: 3 } }));
    expect(seen.response.status).toBe(200);
    expect(seen.filterMetadata).toEqual({
      [MCP_NAMESPACE]: { id: 1, is_mcp_request: true, jsonrpc: "2.0", method: "tools/call", params: { name: "search_docs" }, status: "mcp_ok" },
    });
  });

  it("keeps the JSON-RPC id's type (a string id stays a string)", async () => {
    const seen = await post(mcpRequest("tools/call", { name: "search_docs" }, "req-7"));
    expect(seen.filterMetadata[MCP_NAMESPACE]).toMatchObject({ id: "req-7", method: "tools/call", params: { name: "search_docs" } });
  });

  it("resources/read: params.uri", async () => {
    const seen = await post(mcpRequest("resources/read", { uri: "file:///docs/readme.md" }));
    expect(seen.filterMetadata).toEqual({
      [MCP_NAMESPACE]: { id: 1, is_mcp_request: true, jsonrpc: "2.0", method: "resources/read", params: { uri: "file:///docs/readme.md" }, status: "mcp_ok" },
    });
  });

  it("another method (tools/list): the method alone, no params", async () => {
    const seen = await post(mcpRequest("tools/list"));
    expect(seen.filterMetadata).toEqual({ [MCP_NAMESPACE]: { id: 1, is_mcp_request: true, jsonrpc: "2.0", method: "tools/list", status: "mcp_ok" } });
  });

  it("an unknown method is reported as sent, without params; a notification has no id", async () => {
    expect((await post(mcpRequest("x/unknown", { name: "search_docs" }))).filterMetadata[MCP_NAMESPACE]).toEqual({
      id: 1,
      is_mcp_request: true,
      jsonrpc: "2.0",
      method: "x/unknown",
      status: "mcp_ok",
    });
    expect((await post(JSON.stringify({ jsonrpc: "2.0", method: "notifications/initialized" }))).filterMetadata[MCP_NAMESPACE]).toEqual({
      is_mcp_request: true,
      jsonrpc: "2.0",
      method: "notifications/initialized",
      status: "mcp_ok",
    });
  });

  it("prompts/get: params.name; initialize: client name and protocol version; a response: __jsonrpc_response", async () => {
    expect((await post(mcpRequest("prompts/get", { name: "p1", arguments: { x: "y" } }))).filterMetadata[MCP_NAMESPACE]).toMatchObject({
      method: "prompts/get",
      params: { name: "p1" },
    });
    const init = await post(mcpRequest("initialize", { protocolVersion: "2025-06-18", capabilities: {}, clientInfo: { name: "agent", version: "1" } }));
    expect(init.filterMetadata[MCP_NAMESPACE]).toMatchObject({ method: "initialize", params: { clientInfo: { name: "agent" }, protocolVersion: "2025-06-18" } });
    expect((await post(JSON.stringify({ jsonrpc: "2.0", id: 1, result: {} }))).filterMetadata[MCP_NAMESPACE]).toMatchObject({ method: "__jsonrpc_response" });
  });

  it("a tool name of another JSON type arrives with that type (hopwarden must require a string)", async () => {
    const seen = await post(mcpRequest("tools/call", { name: 42 }));
    expect(seen.filterMetadata[MCP_NAMESPACE]).toMatchObject({ method: "tools/call", params: { name: 42 } });
  });

  it("a JSON-RPC batch: passed through, no MCP metadata at all", async () => {
    const batch = JSON.stringify([JSON.parse(mcpRequest("tools/call", { name: "search_docs" })), JSON.parse(mcpRequest("tools/list", undefined, 2))]);
    const seen = await post(batch);
    expect(seen.check).toBeDefined();
    expect(seen.filterMetadata).toEqual({});
    expect(seen.forwarded).toBe(1);
  });

  it("JSON that is not JSON-RPC 2.0, or not sent as application/json: no MCP metadata", async () => {
    expect((await post(JSON.stringify({ hello: "world" }))).filterMetadata).toEqual({});
    expect((await post(JSON.stringify({ jsonrpc: "1.0", id: 1, method: "tools/call", params: { name: "search_docs" } }))).filterMetadata).toEqual({});
    const textPlain = await post(mcpRequest("tools/call", { name: "delete_index" }), { "content-type": "text/plain", accept: "application/json, text/event-stream" });
    expect(textPlain.filterMetadata).toEqual({});
    expect(textPlain.forwarded).toBe(1);
  });

  it("a body that is not JSON at all: metadata that says it is not MCP, and no method", async () => {
    const seen = await post("hello, this is not json");
    expect(seen.filterMetadata).toEqual({ [MCP_NAMESPACE]: { is_mcp_request: false, passthrough_reason: "mcp_not_jsonrpc", status: "mcp_ok" } });
  });

  it("a GET (no body) gets no MCP metadata", async () => {
    const seen = await post(undefined, { accept: "text/event-stream" });
    expect(seen.check).toBeDefined();
    expect(seen.filterMetadata).toEqual({});
  });

  it("a body over max_request_body_size is forwarded whole, with metadata from its first bytes marked mcp_body_too_large", async () => {
    // The smuggling this enables: Envoy reads the tool from the prefix, the
    // MCP server (which keeps the last duplicate key) runs another one.
    const body = `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"search_docs","arguments":{"q":"${"x".repeat(70_000)}"},"name":"delete_index"}}`;
    const seen = await post(body);
    expect(seen.filterMetadata[MCP_NAMESPACE]).toEqual({
      id: 1,
      is_exceeding_limit: true,
      is_mcp_request: true,
      jsonrpc: "2.0",
      method: "tools/call",
      params: { name: "search_docs" },
      passthrough_reason: "mcp_body_too_large",
      status: "mcp_ok",
    });
    expect(seen.forwarded).toBe(1);
    expect(JSON.parse(mcp.received[mcp.received.length - 1]!.body)).toMatchObject({ params: { name: "delete_index" } });
  });

  it("duplicate keys: Envoy keeps the last, and reject_duplicate_keys marks the metadata mcp_duplicate_keys", async () => {
    const seen = await post('{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"search_docs","name":"delete_index"}}');
    expect(seen.filterMetadata[MCP_NAMESPACE]).toEqual({
      id: 1,
      is_mcp_request: true,
      jsonrpc: "2.0",
      method: "tools/call",
      params: { name: "delete_index" },
      passthrough_reason: "mcp_duplicate_keys",
      status: "mcp_ok",
    });
  });

  it("reads the method wherever it stands in the object", async () => {
    const seen = await post('{"jsonrpc":"2.0","params":{"name":"search_docs"},"id":1,"method":"tools/call"}');
    expect(seen.filterMetadata[MCP_NAMESPACE]).toMatchObject({ method: "tools/call", params: { name: "search_docs" }, is_mcp_request: true });
    expect(seen.filterMetadata[MCP_NAMESPACE]).not.toHaveProperty("passthrough_reason");
  });
});

describe("Envoy 1.40 also has an A2A filter (envoy.filters.http.a2a)", () => {
  let envoy: EnvoyProcess | undefined;
  let port: number;
  let adminPort: number;

  /** envoy/mcp-front-proxy.yaml with the A2A filter in the MCP filter's place, its namespace forwarded. */
  async function a2aConfig(): Promise<string> {
    const rendered = await mcpFrontProxyValues({ server: pki.server!, caFile: pki.ca.cert, hopwardenPort: stub.port, researchPort: mcp.port, dbPort: mcp.port });
    port = rendered.port;
    adminPort = rendered.adminPort;
    const file = await renderEnvoyConfig(ENVOY_TEMPLATES.mcpFrontProxy, rendered.values, join(dir, "a2a"));
    const mcpFilter = /( *)- name: envoy\.filters\.http\.mcp\n(?:\1 {2}.*\n)+/;
    const text = (await readFile(file, "utf8"))
      .replace(mcpFilter, (_all, indent: string) => `${indent}- name: envoy.filters.http.a2a\n${indent}  typed_config:\n${indent}    "@type": type.googleapis.com/envoy.extensions.filters.http.a2a.v3.A2a\n`)
      .replace(`metadata_context_namespaces: [${MCP_NAMESPACE}]`, `metadata_context_namespaces: [${A2A_NAMESPACE}]`);
    expect(text).toContain("envoy.extensions.filters.http.a2a.v3.A2a");
    expect(text).not.toContain("envoy.extensions.filters.http.mcp.v3.Mcp");
    await writeFile(file, text);
    return file;
  }

  beforeAll(async () => {
    await mkdir(join(dir, "a2a"));
    const configPath = await a2aConfig();
    const validation = await validateEnvoyConfig(configPath);
    expect(validation.ok, validation.output).toBe(true);
    envoy = await startEnvoy({ configPath, adminPort, listenerPorts: [port] });
  });

  afterAll(async () => {
    await envoy?.stop();
  });

  it("message/send: method and the message's fields under envoy.filters.http.a2a", async () => {
    const body = JSON.stringify({
      jsonrpc: "2.0",
      id: "r1",
      method: "message/send",
      params: { message: { role: "user", messageId: "m1", contextId: "c1", kind: "message", parts: [{ kind: "text", text: "hi" }] } },
    });
    const seen = await send(port, body);
    expect(seen.filterMetadata).toEqual({
      [A2A_NAMESPACE]: {
        id: "r1",
        jsonrpc: "2.0",
        method: "message/send",
        params: { message: { role: "user", messageId: "m1", contextId: "c1", kind: "message", parts: [{ kind: "text", text: "hi" }] } },
      },
    });
  });

  it("tasks/get: params.id; a method A2A does not know: the method alone", async () => {
    expect((await send(port, JSON.stringify({ jsonrpc: "2.0", id: 2, method: "tasks/get", params: { id: "t1" } }))).filterMetadata).toEqual({
      [A2A_NAMESPACE]: { id: 2, jsonrpc: "2.0", method: "tasks/get", params: { id: "t1" } },
    });
    expect((await send(port, mcpRequest("tools/call", { name: "search_docs" }))).filterMetadata).toEqual({
      [A2A_NAMESPACE]: { id: 1, jsonrpc: "2.0", method: "tools/call" },
    });
  });

  it("a body over its default limit (8 KiB) is refused by Envoy (413); duplicate keys: the last wins, unmarked", async () => {
    const big = await send(port, JSON.stringify({ jsonrpc: "2.0", id: 2, method: "tasks/get", params: { id: "t1", metadata: { x: "y".repeat(9_000) } } }));
    expect(big.response.status).toBe(413);
    expect(big.check).toBeUndefined();
    const dup = await send(port, '{"jsonrpc":"2.0","id":1,"method":"tasks/get","method":"message/send","params":{"id":"t"}}');
    expect(dup.filterMetadata).toEqual({ [A2A_NAMESPACE]: { id: 1, jsonrpc: "2.0", method: "message/send" } });
  });

  it("a body that is not JSON is refused by Envoy itself (400), before any Check", async () => {
    const seen = await send(port, "not json");
    expect(seen.response.status).toBe(400);
    expect(seen.check).toBeUndefined();
    expect(seen.forwarded).toBe(0);
  });
});
