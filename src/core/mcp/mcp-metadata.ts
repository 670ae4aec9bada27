// The MCP facts of one request, read from the dynamic metadata Envoy's MCP
// filter forwards to ext_authz (SPEC 8). Pure: the Envoy adapter turns
// `metadata_context.filter_metadata[namespace]` into plain JSON and calls
// readMcpFacts; explain and the tests call it the same way.
//
// Metadata is trusted only as far as Envoy vouches for it (docs/mcp.md, as
// measured with Envoy 1.40): `is_mcp_request` must be true, and any
// `passthrough_reason` (a body over the filter's limit, whose metadata comes
// from its first bytes only; duplicate JSON keys) makes the request
// unparsable. Anything else odd (a missing method, a tool name that is not a
// string) leaves the request without that fact, so an `mcp:` rule cannot
// admit it.

/** Where the facts are: the metadata namespace and dotted paths inside it (`--config` `mcp:`). */
export interface McpMetadataKeys {
  readonly namespace: string;
  readonly methodKey: string;
  /** Read for `tools/call`. */
  readonly toolKey: string;
  /** Read for `resources/read`. */
  readonly resourceKey: string;
}

/** What Envoy 1.40's MCP filter writes (test/envoy-mcp-metadata.test.ts). */
export const DEFAULT_MCP_METADATA_KEYS: McpMetadataKeys = {
  namespace: "envoy.filters.http.mcp",
  methodKey: "method",
  toolKey: "params.name",
  resourceKey: "params.uri",
};

export const MCP_TOOLS_CALL = "tools/call";
export const MCP_RESOURCES_READ = "resources/read";

/** No honest method, tool name or URI is longer; a longer one is not matched at all. */
export const MAX_MCP_VALUE_LENGTH = 8 * 1024;

export interface McpFacts {
  readonly method: string;
  /** The tool of a `tools/call`; undefined for other methods, or when Envoy reported none. */
  readonly tool: string | undefined;
  /** The URI of a `resources/read`; undefined otherwise. */
  readonly resource: string | undefined;
}

export type McpReading =
  | { readonly kind: "absent" }
  | { readonly kind: "unparsable"; readonly problem: string }
  | { readonly kind: "mcp"; readonly facts: McpFacts };

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function at(struct: Record<string, unknown>, dotted: string): unknown {
  let node: unknown = struct;
  for (const part of dotted.split(".")) {
    if (!isObject(node) || !Object.hasOwn(node, part)) return undefined;
    node = node[part];
  }
  return node;
}

function boundedString(value: unknown): string | undefined {
  return typeof value === "string" && value.length > 0 && value.length <= MAX_MCP_VALUE_LENGTH ? value : undefined;
}

/**
 * What the Envoy adapter hands over instead of the struct when the namespace
 * is larger, deeper or in more pieces than it reads (MAX_MCP_METADATA_BYTES,
 * MAX_MCP_METADATA_DEPTH, MAX_MCP_METADATA_PIECES): Envoy's MCP filter writes
 * a few short fields in one piece, so such a struct did not come from it, and
 * is unparsable.
 */
export const MCP_METADATA_OVER_BOUNDS: unique symbol = Symbol("MCP metadata over bounds");
/** The encoded size of the namespace's struct the adapter reads at most. */
export const MAX_MCP_METADATA_BYTES = 64 * 1024;
/** Nesting of structs and lists the adapter reads at most (Envoy 1.40's deepest key is params.name: depth 2). */
export const MAX_MCP_METADATA_DEPTH = 8;
/**
 * Pieces (value fields of one map entry, merged as protobuf merges them) the
 * namespace's struct may come in: Envoy sends one. Without it, a few MiB of
 * empty pieces would cost a second of work while adding up to 0 bytes.
 */
export const MAX_MCP_METADATA_PIECES = 64;

/** Envoy's passthrough_reason values are short identifiers (mcp_body_too_large): anything else is only named. */
function shortReason(reason: unknown): string {
  return typeof reason === "string" && /^[a-z0-9_]{1,64}$/.test(reason) ? reason : "passthrough_reason";
}

/**
 * `namespaced` is the namespace's struct as JSON (undefined when Envoy sent
 * no such namespace). "absent" and "unparsable" both mean: no MCP facts, so
 * no `mcp:` rule admits the request; the difference is for the audit trail.
 */
export function readMcpFacts(namespaced: unknown, keys: McpMetadataKeys = DEFAULT_MCP_METADATA_KEYS): McpReading {
  if (namespaced === undefined) return { kind: "absent" };
  if (namespaced === MCP_METADATA_OVER_BOUNDS) {
    return { kind: "unparsable", problem: `the ${keys.namespace} metadata is larger than ${MAX_MCP_METADATA_BYTES} bytes, nested deeper than ${MAX_MCP_METADATA_DEPTH} levels or sent in more than ${MAX_MCP_METADATA_PIECES} pieces` };
  }
  if (!isObject(namespaced)) return { kind: "unparsable", problem: `the ${keys.namespace} metadata is not a struct` };
  if (namespaced["is_mcp_request"] !== true) return { kind: "unparsable", problem: "Envoy did not recognise the body as an MCP request (is_mcp_request is not true)" };
  const reason = namespaced["passthrough_reason"];
  if (reason !== undefined) return { kind: "unparsable", problem: `Envoy passed the body through unparsed (${shortReason(reason)})` };
  if (namespaced["is_exceeding_limit"] === true) return { kind: "unparsable", problem: "the body exceeded the MCP filter's size limit" };
  const method = boundedString(at(namespaced, keys.methodKey));
  if (method === undefined) return { kind: "unparsable", problem: `${keys.methodKey} is missing, not a string, or longer than ${MAX_MCP_VALUE_LENGTH} characters` };
  return {
    kind: "mcp",
    facts: {
      method,
      tool: method === MCP_TOOLS_CALL ? boundedString(at(namespaced, keys.toolKey)) : undefined,
      resource: method === MCP_RESOURCES_READ ? boundedString(at(namespaced, keys.resourceKey)) : undefined,
    },
  };
}

/**
 * The struct Envoy's MCP filter would write for `facts`, at the configured
 * keys: what `explain --mcp-method/--mcp-tool` decides, so a dry-run goes
 * through the same reading as a real request.
 */
export function mcpMetadataFor(facts: { readonly method: string; readonly tool?: string | undefined; readonly resource?: string | undefined }, keys: McpMetadataKeys = DEFAULT_MCP_METADATA_KEYS): Record<string, unknown> {
  const struct: Record<string, unknown> = { is_mcp_request: true, jsonrpc: "2.0" };
  const put = (dotted: string, value: string) => {
    const parts = dotted.split(".");
    let node = struct;
    for (const part of parts.slice(0, -1)) {
      const next = node[part];
      node = isObject(next) ? next : (node[part] = {});
    }
    node[parts[parts.length - 1]!] = value;
  };
  put(keys.methodKey, facts.method);
  if (facts.tool !== undefined) put(keys.toolKey, facts.tool);
  if (facts.resource !== undefined) put(keys.resourceKey, facts.resource);
  return struct;
}
