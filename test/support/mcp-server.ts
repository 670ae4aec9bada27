// A tiny MCP server for the end-to-end suites: JSON-RPC 2.0 over HTTP POST
// (MCP's Streamable HTTP transport, answering with plain JSON, never SSE).
// It knows `initialize`, `tools/list`, `tools/call` (every tool echoes its
// arguments) and `resources/read`; any other method is JSON-RPC error -32601.
// It records every request it receives, so a test can tell "Envoy forwarded
// it" from "hopwarden denied it". A request that is not a POST (an agent's
// plain REST call; MCP's SSE GET, which it does not serve) is answered 200
// with `{method, path, headers}` as it arrived, like the echo upstream, so
// one agent stand-in can serve both. Not an MCP implementation: just enough
// of one for a proxy in front of it to see real MCP traffic.

import { createServer, type IncomingHttpHeaders } from "node:http";

export interface McpReceived {
  readonly method: string;
  readonly path: string;
  readonly headers: IncomingHttpHeaders;
  /** The body as received (it may be anything: the server is also a target for non-MCP bodies). */
  readonly body: string;
}

export interface McpServer {
  readonly port: number;
  readonly received: readonly McpReceived[];
  close(): Promise<void>;
}

type JsonRpcId = string | number | null;

function answer(message: unknown): unknown {
  if (typeof message !== "object" || message === null || Array.isArray(message)) {
    return { jsonrpc: "2.0", id: null, error: { code: -32600, message: "Invalid Request" } };
  }
  const { id = null, method, params } = message as { id?: JsonRpcId; method?: unknown; params?: Record<string, unknown> };
  const result = (value: unknown) => ({ jsonrpc: "2.0", id, result: value });
  switch (method) {
    case "initialize":
      return result({ protocolVersion: "2025-06-18", capabilities: { tools: {}, resources: {} }, serverInfo: { name: "hopwarden-test-mcp", version: "0" } });
    case "tools/list":
      return result({ tools: [{ name: "search_docs", inputSchema: { type: "object" } }, { name: "delete_index", inputSchema: { type: "object" } }] });
    case "tools/call":
      return result({ content: [{ type: "text", text: JSON.stringify({ tool: params?.["name"], arguments: params?.["arguments"] ?? {} }) }] });
    case "resources/read":
      return result({ contents: [{ uri: params?.["uri"], mimeType: "text/plain", text: "resource body" }] });
    default:
      return { jsonrpc: "2.0", id, error: { code: -32601, message: `Method not found: ${String(method)}` } };
  }
}

/** Starts the server on 127.0.0.1 (a free port). */
export async function startMcpServer(): Promise<McpServer> {
  const received: McpReceived[] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const body = Buffer.concat(chunks).toString("utf8");
      received.push({ method: req.method ?? "", path: req.url ?? "", headers: req.headers, body });
      if (req.method !== "POST") {
        res.writeHead(200, { "content-type": "application/json" });
        res.end(JSON.stringify({ method: req.method, path: req.url, headers: req.headers }));
        return;
      }
      let parsed: unknown;
      try {
        parsed = JSON.parse(body);
      } catch {
        res.writeHead(400, { "content-type": "application/json" });
        res.end(JSON.stringify({ jsonrpc: "2.0", id: null, error: { code: -32700, message: "Parse error" } }));
        return;
      }
      const reply = Array.isArray(parsed) ? parsed.map(answer) : answer(parsed);
      res.writeHead(200, { "content-type": "application/json" });
      res.end(JSON.stringify(reply));
    });
  });
  await new Promise<void>((ok, fail) => {
    server.once("error", fail);
    server.listen(0, "127.0.0.1", ok);
  });
  const address = server.address();
  if (address === null || typeof address === "string") throw new Error("MCP server has no port");
  return {
    port: address.port,
    received,
    close: () =>
      new Promise<void>((ok) => {
        server.closeAllConnections();
        server.close(() => ok());
      }),
  };
}

/** A JSON-RPC request body, as an MCP client sends it. */
export function mcpRequest(method: string, params?: Record<string, unknown>, id: JsonRpcId = 1): string {
  return JSON.stringify({ jsonrpc: "2.0", id, method, ...(params !== undefined && { params }) });
}

/** Headers an MCP client sends with a Streamable HTTP POST. */
export const MCP_POST_HEADERS: Readonly<Record<string, string>> = {
  "content-type": "application/json",
  accept: "application/json, text/event-stream",
  "mcp-protocol-version": "2025-06-18",
};
