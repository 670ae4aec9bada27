// SPEC 8: MCP facts come from the MCP filter's metadata, and absent or
// unparsable metadata gives none (so no `mcp:` rule can admit the request).
// The inputs are the structs Envoy 1.40 really sends (test/envoy-mcp-metadata.test.ts).

import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { DEFAULT_MCP_METADATA_KEYS, MAX_MCP_VALUE_LENGTH, MCP_METADATA_OVER_BOUNDS, mcpMetadataFor, readMcpFacts } from "./mcp-metadata.js";

const TOOLS_CALL = { id: 1, is_mcp_request: true, jsonrpc: "2.0", method: "tools/call", params: { name: "search_docs" }, status: "mcp_ok" };

describe("MCP facts from Envoy 1.40's metadata", () => {
  it("tools/call gives the method and the tool", () => {
    expect(readMcpFacts(TOOLS_CALL)).toEqual({ kind: "mcp", facts: { method: "tools/call", tool: "search_docs", resource: undefined } });
  });

  it("resources/read gives the URI", () => {
    const read = { ...TOOLS_CALL, method: "resources/read", params: { uri: "file:///docs/a.md" } };
    expect(readMcpFacts(read)).toEqual({ kind: "mcp", facts: { method: "resources/read", tool: undefined, resource: "file:///docs/a.md" } });
  });

  it("another method gives the method alone, even if params carry a name", () => {
    expect(readMcpFacts({ ...TOOLS_CALL, method: "prompts/get", params: { name: "p1" } })).toEqual({ kind: "mcp", facts: { method: "prompts/get", tool: undefined, resource: undefined } });
  });

  it("a tools/call whose name is not a string has a method but no tool", () => {
    expect(readMcpFacts({ ...TOOLS_CALL, params: { name: 42 } })).toEqual({ kind: "mcp", facts: { method: "tools/call", tool: undefined, resource: undefined } });
    expect(readMcpFacts({ ...TOOLS_CALL, params: undefined })).toMatchObject({ kind: "mcp", facts: { tool: undefined } });
  });

  it("no namespace (a batch, JSON that is not JSON-RPC, another content type) is absent", () => {
    expect(readMcpFacts(undefined)).toEqual({ kind: "absent" });
  });

  it.each([
    ["a body that is not JSON", { is_mcp_request: false, passthrough_reason: "mcp_not_jsonrpc", status: "mcp_ok" }],
    ["a body over the filter's limit (metadata from its first bytes)", { ...TOOLS_CALL, is_exceeding_limit: true, passthrough_reason: "mcp_body_too_large" }],
    ["duplicate keys", { ...TOOLS_CALL, params: { name: "delete_index" }, passthrough_reason: "mcp_duplicate_keys" }],
    ["is_exceeding_limit alone", { ...TOOLS_CALL, is_exceeding_limit: true }],
    ["no is_mcp_request", { method: "tools/call", params: { name: "search_docs" } }],
    ["is_mcp_request as a string", { ...TOOLS_CALL, is_mcp_request: "true" }],
    ["a method that is not a string", { ...TOOLS_CALL, method: ["tools/call"] }],
    ["an empty method", { ...TOOLS_CALL, method: "" }],
    ["an overlong method", { ...TOOLS_CALL, method: "x".repeat(MAX_MCP_VALUE_LENGTH + 1) }],
    ["a list instead of a struct", [TOOLS_CALL]],
    ["null", null],
    ["a struct the adapter would not read whole (over its bounds)", MCP_METADATA_OVER_BOUNDS],
  ])("%s is unparsable", (_what, metadata) => {
    expect(readMcpFacts(metadata)).toMatchObject({ kind: "unparsable" });
  });

  it("reads configured keys, and never inherited properties", () => {
    const keys = { ...DEFAULT_MCP_METADATA_KEYS, methodKey: "rpc.method", toolKey: "rpc.tool" };
    expect(readMcpFacts({ is_mcp_request: true, rpc: { method: "tools/call", tool: "t" } }, keys)).toMatchObject({ facts: { method: "tools/call", tool: "t" } });
    expect(readMcpFacts({ is_mcp_request: true, method: "tools/call", params: {} }, { ...DEFAULT_MCP_METADATA_KEYS, toolKey: "params.constructor" })).toMatchObject({ facts: { tool: undefined } });
  });

  it("never throws, whatever the struct holds", () => {
    fc.assert(
      fc.property(fc.jsonValue(), (value) => {
        const reading = readMcpFacts(value);
        expect(["absent", "unparsable", "mcp"]).toContain(reading.kind);
        if (reading.kind === "mcp") expect(typeof reading.facts.method).toBe("string");
      }),
    );
  });
});

describe("the problem an unparsable reading names", () => {
  it("names Envoy's passthrough_reason when it is one of its short identifiers, and never quotes anything else", () => {
    expect(readMcpFacts({ ...TOOLS_CALL, passthrough_reason: "mcp_body_too_large" })).toEqual({ kind: "unparsable", problem: "Envoy passed the body through unparsed (mcp_body_too_large)" });
    const long = readMcpFacts({ ...TOOLS_CALL, passthrough_reason: "x".repeat(10_000) });
    expect(long).toEqual({ kind: "unparsable", problem: "Envoy passed the body through unparsed (passthrough_reason)" });
  });
});

describe("the struct explain decides for --mcp-method/--mcp-tool", () => {
  it("is what Envoy 1.40 writes, read back to the same facts", () => {
    expect(mcpMetadataFor({ method: "tools/call", tool: "search_docs" })).toEqual({ is_mcp_request: true, jsonrpc: "2.0", method: "tools/call", params: { name: "search_docs" } });
    expect(readMcpFacts(mcpMetadataFor({ method: "resources/read", resource: "file:///a" }))).toEqual({ kind: "mcp", facts: { method: "resources/read", tool: undefined, resource: "file:///a" } });
  });

  it("follows configured keys", () => {
    const keys = { ...DEFAULT_MCP_METADATA_KEYS, methodKey: "rpc.method", toolKey: "rpc.tool" };
    const struct = mcpMetadataFor({ method: "tools/call", tool: "t" }, keys);
    expect(struct).toEqual({ is_mcp_request: true, jsonrpc: "2.0", rpc: { method: "tools/call", tool: "t" } });
    expect(readMcpFacts(struct, keys)).toEqual({ kind: "mcp", facts: { method: "tools/call", tool: "t", resource: undefined } });
  });
});
