// Reads a policy file (SPEC 3): YAML, validated against the schema below, every
// problem reported as `file:line:column: field: problem`. A file with any error
// is refused whole; warnings (rules that can never match) do not refuse it.

import { createHash } from "node:crypto";
import { isMap, isScalar, isSeq, LineCounter, parseDocument } from "yaml";
import { parseSpiffeId } from "../../core/identity/spiffe-id.js";
import { holdsControlCharacter } from "../../core/input/control-characters.js";
import { normalizeSerial } from "../../core/identity/certificate-serial.js";
import { compilePolicy } from "../../core/policy/compile.js";
import { compileGlob } from "../../core/policy/glob.js";
import type {
  CompiledPolicy,
  HopRuleDocument,
  McpRuleDocument,
  PolicyDocument,
  RequireViaDocument,
  TokenPolicyDocument,
  TxnTokenPolicyDocument,
} from "../../core/policy/model.js";
import { parseDuration } from "./duration.js";
import {
  child,
  describeNode,
  mapFields,
  readBoolean,
  readInteger,
  readList,
  readNonEmptyString,
  readStringList,
  SchemaContext,
  type SchemaProblem,
} from "./yaml-schema.js";

export type PolicyLoadResult =
  | { readonly ok: true; readonly policy: CompiledPolicy; readonly document: PolicyDocument; readonly warnings: readonly string[] }
  | { readonly ok: false; readonly errors: readonly string[]; readonly warnings: readonly string[] };

const TOP_KEYS = [
  "version",
  "trustDomains",
  "maxChainLength",
  "requireOnBehalfOf",
  "onBehalfOf",
  "agents",
  "hops",
  "requireVia",
  "revoked",
  "tokens",
  "requireCertificate",
  "txnTokens",
];
const HOP_KEYS = ["from", "to", "onBehalfOf", "methods", "paths", "scopes", "requireToken", "mcp", "requireCertificate"];
const MCP_KEYS = ["methods", "tools", "resources"];
/** MCP method names, tool names and resource URIs: no whitespace, control or invisible format characters (they are compared exactly). */
const MCP_VALUE = /^[^\s\p{Cc}\p{Cf}\p{Cs}]+$/u;
const ALIAS = /^[A-Za-z][A-Za-z0-9_.-]*$/;
const TRUST_DOMAIN = /^[a-z0-9._-]+$/;
const METHOD = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
const SCOPE = /^[\x21\x23-\x5b\x5d-\x7e]+$/;

function format(file: string, p: SchemaProblem): string {
  return `${file}:${p.line}:${p.column}: ${p.field}: ${p.problem}`;
}

export type PolicyDocumentResult =
  | { readonly ok: true; readonly document: PolicyDocument; readonly warnings: readonly string[] }
  | { readonly ok: false; readonly errors: readonly string[]; readonly warnings: readonly string[] };

/** Every decision, span, audit record and the policy_info metric carry the version: it must stay short, printable text. */
const MAX_POLICY_VERSION_LENGTH = 128;

function readVersion(ctx: SchemaContext, node: unknown, keyNode: unknown): string | undefined {
  const version = readNonEmptyString(ctx, node, "version", keyNode);
  if (version === undefined) return undefined;
  if (version.length > MAX_POLICY_VERSION_LENGTH) {
    ctx.error(node, "version", `is ${version.length} characters; at most ${MAX_POLICY_VERSION_LENGTH}, since every decision records it`);
    return undefined;
  }
  // A line break (a `|` block scalar keeps its last one) would split log and metric lines.
  if (holdsControlCharacter(version)) {
    ctx.error(node, "version", `must be printable text, not ${JSON.stringify(version)}, which holds a control character (a | block scalar keeps its last line break: quote the value instead)`);
    return undefined;
  }
  return version;
}

function parsePolicy(text: string): { ctx: SchemaContext; document: PolicyDocument | undefined } {
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: false, uniqueKeys: true, strict: true });
  const ctx = new SchemaContext(lines);
  const document = ctx.yamlProblems(doc) ? readPolicy(ctx, doc.contents) : undefined;
  return { ctx, document };
}

function refused(file: string, ctx: SchemaContext): { ok: false; errors: string[]; warnings: string[] } {
  const errors = ctx.errors.map((e) => format(file, e));
  if (errors.length === 0) errors.push(`${file}:1:1: (file): is not a valid policy`);
  return { ok: false, errors, warnings: ctx.warnings.map((w) => format(file, w)) };
}

/** Validates the file into its document, without compiling it (check-policy's schema, tests). */
export function readPolicyDocument(text: string, file: string): PolicyDocumentResult {
  const { ctx, document } = parsePolicy(text);
  if (ctx.errors.length > 0 || document === undefined) return refused(file, ctx);
  return { ok: true, document, warnings: ctx.warnings.map((w) => format(file, w)) };
}

/** Larger files are refused before parsing: YAML parses at about 0.7 s a MiB here, on the event loop, and a policy of thousands of rules takes a few hundred KiB. */
export const MAX_POLICY_FILE_BYTES = 2 * 1024 * 1024;

const STRICT_UTF8 = new TextDecoder("utf-8", { fatal: true });

/** The policy file's text, or the errors that refuse its bytes before any parsing: too large, or not UTF-8 (which would otherwise be read as U+FFFD and could never match a caller's value). */
export function policyTextOf(bytes: Uint8Array, file: string): { ok: true; text: string } | { ok: false; errors: string[] } {
  if (bytes.length > MAX_POLICY_FILE_BYTES) return { ok: false, errors: [`${file}:1:1: (file): is ${bytes.length} bytes, over the ${MAX_POLICY_FILE_BYTES} a policy file may be`] };
  try {
    return { ok: true, text: STRICT_UTF8.decode(bytes) };
  } catch {
    return { ok: false, errors: [`${file}:1:1: (file): is not valid UTF-8`] };
  }
}

export function loadPolicyText(text: string, file: string): PolicyLoadResult {
  const { ctx, document } = parsePolicy(text);
  if (ctx.errors.length > 0 || document === undefined) return refused(file, ctx);
  const sha256 = createHash("sha256").update(text).digest("hex");
  const policy = compilePolicy(document, sha256);
  return { ok: true, policy, document, warnings: ctx.warnings.map((w) => format(file, w)) };
}

function readPolicy(ctx: SchemaContext, root: unknown): PolicyDocument | undefined {
  if (root === null || root === undefined) {
    ctx.error(root, "(file)", "is empty; a policy needs at least version and trustDomains");
    return undefined;
  }
  const fields = mapFields(ctx, root, "", TOP_KEYS);
  if (fields === undefined) return undefined;
  const required = (name: string): boolean => {
    if (fields.has(name)) return true;
    ctx.error(root, name, "is required");
    return false;
  };

  const version = required("version") ? readVersion(ctx, child(fields, "version").node, child(fields, "version").key) : undefined;
  let trustDomains: string[] | undefined;
  if (required("trustDomains")) {
    const c = child(fields, "trustDomains");
    trustDomains = readStringList(ctx, c.node, "trustDomains", (value, node, field) => {
      if (!TRUST_DOMAIN.test(value)) {
        ctx.error(node, field, `${JSON.stringify(value)} is not a trust domain name (lower-case a-z 0-9 . - _, no scheme)`);
        return undefined;
      }
      return value;
    }, c.key);
    if (trustDomains !== undefined && trustDomains.length === 0) ctx.error(c.node, "trustDomains", "must name at least one trust domain");
  }
  const trusted = new Set(trustDomains ?? []);

  const opt = <T>(name: string, read: (node: unknown, key: unknown) => T | undefined): T | undefined => {
    const c = child(fields, name);
    return c.present ? read(c.node, c.key) : undefined;
  };

  const maxChainLength = opt("maxChainLength", (n, k) => readInteger(ctx, n, "maxChainLength", 1, 64, k));
  const requireOnBehalfOf = opt("requireOnBehalfOf", (n, k) => readBoolean(ctx, n, "requireOnBehalfOf", k));
  const onBehalfOf = opt("onBehalfOf", (n, k) => readStringList(ctx, n, "onBehalfOf", undefined, k));

  const agents = opt("agents", (n, k) => readAgents(ctx, n, k, trusted)) ?? {};
  const aliases = new Map(Object.entries(agents));
  const agentRef = (value: string, node: unknown, field: string, allowGlob: boolean): string | undefined => {
    if (aliases.has(value)) return value;
    if (allowGlob && value === "*") {
      // SPEC 3: `*` never matches "/", so alone it matches no SPIFFE ID at all.
      ctx.warn(node, field, 'a lone "*" matches no agent ("*" never crosses "/"); write a SPIFFE ID glob such as "spiffe://example.org/agent/*"');
      return value;
    }
    if (value.startsWith("spiffe://")) {
      const probe = allowGlob ? value.replace(/\*/g, "x") : value;
      const parsed = parseSpiffeId(probe);
      if (!parsed.ok) {
        ctx.error(node, field, `${JSON.stringify(value)} ${parsed.problem}`);
        return undefined;
      }
      if (!value.includes("*") && !trusted.has(parsed.value.trustDomain)) {
        ctx.warn(node, field, `${value} is in trust domain "${parsed.value.trustDomain}", which trustDomains does not list, so this can never match a caller`);
      }
      return value;
    }
    ctx.error(node, field, `${JSON.stringify(value)} is neither an alias defined under agents nor a SPIFFE ID${allowGlob ? " or glob" : ""}`);
    return undefined;
  };

  const hops = opt("hops", (n, k) => readHops(ctx, n, k, agentRef));
  const requireVia = opt("requireVia", (n, k) => readRequireVia(ctx, n, k, agentRef));
  const revoked = opt("revoked", (n, k) => readRevoked(ctx, n, k, agentRef));
  const tokens = opt("tokens", (n, k) => readTokens(ctx, n, k));
  const requireCertificate = opt("requireCertificate", (n, k) => readBoolean(ctx, n, "requireCertificate", k));
  const txnTokens = opt("txnTokens", (n, k) => readTxnTokens(ctx, n, k));

  if (version === undefined || trustDomains === undefined) return undefined;
  return {
    version,
    trustDomains,
    ...(maxChainLength !== undefined && { maxChainLength }),
    ...(requireOnBehalfOf !== undefined && { requireOnBehalfOf }),
    ...(onBehalfOf !== undefined && { onBehalfOf }),
    agents,
    hops: hops ?? [],
    requireVia: requireVia ?? [],
    ...(revoked !== undefined && { revoked }),
    ...(tokens !== undefined && { tokens }),
    ...(requireCertificate !== undefined && { requireCertificate }),
    ...(txnTokens !== undefined && { txnTokens }),
  };
}

type AgentRef = (value: string, node: unknown, field: string, allowGlob: boolean) => string | undefined;

function readAgents(ctx: SchemaContext, node: unknown, key: unknown, trusted: ReadonlySet<string>): Record<string, string> {
  const out: Record<string, string> = {};
  if (node === null || node === undefined) return out;
  if (!isMap(node)) {
    ctx.error(node ?? key, "agents", `must be a map of alias: SPIFFE ID, not ${describeNode(node)}`);
    return out;
  }
  const seenIds = new Map<string, string>();
  const items = node.items;
  for (const pair of items) {
    const alias = isScalar(pair.key) ? pair.key.value : undefined;
    if (typeof alias !== "string") {
      ctx.error(pair.key ?? node, "agents", `has a key that is not a string: ${describeNode(pair.key)}`);
      continue;
    }
    const field = `agents.${alias}`;
    if (!ALIAS.test(alias)) {
      ctx.error(pair.key, field, `alias ${JSON.stringify(alias)} must start with a letter and hold only letters, digits, "_", "." or "-"`);
      continue;
    }
    const id = readNonEmptyString(ctx, pair.value, field, pair.key);
    if (id === undefined) continue;
    const parsed = parseSpiffeId(id);
    if (!parsed.ok) {
      ctx.error(pair.value, field, `${JSON.stringify(id)} ${parsed.problem}`);
      continue;
    }
    if (!trusted.has(parsed.value.trustDomain)) {
      ctx.warn(pair.value, field, `${id} is in trust domain "${parsed.value.trustDomain}", which trustDomains does not list`);
    }
    const other = seenIds.get(id);
    if (other !== undefined) ctx.warn(pair.value, field, `names the same agent as alias "${other}"`);
    seenIds.set(id, alias);
    out[alias] = id;
  }
  return out;
}

function readHops(ctx: SchemaContext, node: unknown, key: unknown, agentRef: AgentRef): HopRuleDocument[] | undefined {
  const items = readList(ctx, node, "hops", key);
  if (items === undefined) return undefined;
  const rules: HopRuleDocument[] = [];
  const seen = new Map<string, number>();
  items.forEach((item, i) => {
    const field = `hops[${i}]`;
    const f = mapFields(ctx, item, field, HOP_KEYS);
    if (f === undefined) return;
    const ref = (name: "from" | "to"): string | undefined => {
      const c = child(f, name);
      if (!c.present) {
        ctx.error(item, `${field}.${name}`, "is required");
        return undefined;
      }
      const value = readNonEmptyString(ctx, c.node, `${field}.${name}`, c.key);
      return value === undefined ? undefined : agentRef(value, c.node, `${field}.${name}`, true);
    };
    const from = ref("from");
    const to = ref("to");
    const list = (name: string, check?: (v: string, n: unknown, fld: string) => string | undefined): string[] | undefined => {
      const c = child(f, name);
      if (!c.present) return undefined;
      const values = readStringList(ctx, c.node, `${field}.${name}`, check, c.key);
      if (values !== undefined && values.length === 0) ctx.warn(c.node, `${field}.${name}`, "is an empty list, so this rule can never match");
      return values;
    };
    const onBehalfOf = list("onBehalfOf");
    const methods = list("methods", (v, n, fld) => {
      if (!METHOD.test(v)) {
        ctx.error(n, fld, `${JSON.stringify(v)} is not an HTTP method token`);
        return undefined;
      }
      if (v !== v.toUpperCase()) ctx.warn(n, fld, `${JSON.stringify(v)} is not upper case; methods match exactly, so it will not match ${v.toUpperCase()}`);
      return v;
    });
    const paths = list("paths", (v, n, fld) => {
      if (!v.startsWith("/")) {
        ctx.error(n, fld, `${JSON.stringify(v)} must start with "/"`);
        return undefined;
      }
      const body = v.endsWith("/**") ? v.slice(0, -3) : v;
      if (body.includes("**")) {
        ctx.error(n, fld, `${JSON.stringify(v)} uses "**" other than as a trailing "/**"`);
        return undefined;
      }
      if (v.includes("?") || v.includes("#")) {
        ctx.error(n, fld, `${JSON.stringify(v)} holds "?" or "#"; path rules match the path without its query string`);
        return undefined;
      }
      return v;
    });
    const scopes = list("scopes", (v, n, fld) => {
      if (!SCOPE.test(v)) {
        ctx.error(n, fld, `${JSON.stringify(v)} is not a scope token (RFC 6749 3.3: printable ASCII, no space, quote or backslash)`);
        return undefined;
      }
      return v;
    });
    const rt = child(f, "requireToken");
    const requireToken = rt.present ? readBoolean(ctx, rt.node, `${field}.requireToken`, rt.key) : undefined;
    const mcpC = child(f, "mcp");
    const mcp = mcpC.present ? readMcp(ctx, mcpC.node, mcpC.key, `${field}.mcp`) : undefined;
    const rc = child(f, "requireCertificate");
    const requireCertificate = rc.present ? readBoolean(ctx, rc.node, `${field}.requireCertificate`, rc.key) : undefined;
    if (from === undefined || to === undefined) return;
    const rule: HopRuleDocument = {
      from,
      to,
      ...(onBehalfOf !== undefined && { onBehalfOf }),
      ...(methods !== undefined && { methods }),
      ...(paths !== undefined && { paths }),
      ...(scopes !== undefined && { scopes }),
      ...(requireToken !== undefined && { requireToken }),
      ...(mcp !== undefined && { mcp }),
      ...(requireCertificate !== undefined && { requireCertificate }),
    };
    const signature = JSON.stringify(rule);
    const earlier = seen.get(signature);
    if (earlier !== undefined) ctx.warn(item, field, `repeats hops[${earlier}] exactly, so it never decides anything`);
    else seen.set(signature, i);
    rules.push(rule);
  });
  return rules;
}

function readRequireVia(ctx: SchemaContext, node: unknown, key: unknown, agentRef: AgentRef): RequireViaDocument[] | undefined {
  const items = readList(ctx, node, "requireVia", key);
  if (items === undefined) return undefined;
  const out: RequireViaDocument[] = [];
  items.forEach((item, i) => {
    const field = `requireVia[${i}]`;
    const f = mapFields(ctx, item, field, ["to", "via"]);
    if (f === undefined) return;
    const to = child(f, "to");
    const via = child(f, "via");
    if (!to.present) ctx.error(item, `${field}.to`, "is required");
    if (!via.present) ctx.error(item, `${field}.via`, "is required");
    const toValue = to.present ? readNonEmptyString(ctx, to.node, `${field}.to`, to.key) : undefined;
    const toRef = toValue === undefined ? undefined : agentRef(toValue, to.node, `${field}.to`, true);
    const viaValues = via.present
      ? readStringList(ctx, via.node, `${field}.via`, (v, n, fld) => (v.includes("*") ? (ctx.error(n, fld, "must name one agent, not a glob"), undefined) : agentRef(v, n, fld, false)), via.key)
      : undefined;
    if (viaValues !== undefined && viaValues.length === 0) ctx.error(via.node, `${field}.via`, "must name at least one agent");
    if (toRef !== undefined && viaValues !== undefined) out.push({ to: toRef, via: viaValues });
  });
  return out;
}

function readRevoked(ctx: SchemaContext, node: unknown, key: unknown, agentRef: AgentRef): PolicyDocument["revoked"] {
  if (node === null || node === undefined) return {};
  const f = mapFields(ctx, node, "revoked", ["identities", "serials", "crl", "crlIssuer"], key);
  if (f === undefined) return undefined;
  const ids = child(f, "identities");
  const serials = child(f, "serials");
  const identities = ids.present
    ? readStringList(ctx, ids.node, "revoked.identities", (v, n, fld) => (v.includes("*") ? (ctx.error(n, fld, "must name one identity, not a glob"), undefined) : agentRef(v, n, fld, false)), ids.key)
    : undefined;
  const serialList = serials.present
    ? readStringList(ctx, serials.node, "revoked.serials", (v, n, fld) => {
        if (normalizeSerial(v) === undefined) {
          ctx.error(n, fld, `${JSON.stringify(v)} is not a hex serial (digits 0-9 a-f, ":" separators allowed)`);
          return undefined;
        }
        return v;
      }, serials.key)
    : undefined;
  const crlC = child(f, "crl");
  const crl = crlC.present ? readNonEmptyString(ctx, crlC.node, "revoked.crl", crlC.key) : undefined;
  const issuerC = child(f, "crlIssuer");
  const crlIssuer = issuerC.present ? readNonEmptyString(ctx, issuerC.node, "revoked.crlIssuer", issuerC.key) : undefined;
  if (crlIssuer !== undefined && !crlC.present) ctx.error(issuerC.key, "revoked.crlIssuer", "needs revoked.crl: the CA certificate checks the CRL's signature");
  return {
    ...(identities !== undefined && { identities }),
    ...(serialList !== undefined && { serials: serialList }),
    ...(crl !== undefined && { crl }),
    ...(crlIssuer !== undefined && { crlIssuer }),
  };
}

/** `mcp:` of a hop rule (SPEC 8): globs over the MCP method, the tool of tools/call and the URI of resources/read. */
function readMcp(ctx: SchemaContext, node: unknown, key: unknown, field: string): McpRuleDocument | undefined {
  const f = mapFields(ctx, node, field, MCP_KEYS, key);
  if (f === undefined) return undefined;
  const list = (name: string, what: string): string[] | undefined => {
    const c = child(f, name);
    if (!c.present) return undefined;
    const values = readStringList(ctx, c.node, `${field}.${name}`, (v, n, fld) => {
      if (!MCP_VALUE.test(v)) {
        ctx.error(n, fld, `${JSON.stringify(v)} holds whitespace, a control or an invisible character; ${what} are compared exactly, so it could never match`);
        return undefined;
      }
      if (v.includes("**")) {
        ctx.error(n, fld, `${JSON.stringify(v)} uses "**"; in ${what} "*" matches any run of characters except "/", and there is no deeper match`);
        return undefined;
      }
      return v;
    }, c.key);
    // Only a list written empty: one whose entries were refused has its errors already.
    if (isSeq(c.node) && c.node.items.length === 0) ctx.warn(c.node, `${field}.${name}`, "is an empty list, so this rule can never match");
    return values;
  };
  const methods = list("methods", "MCP methods");
  const tools = list("tools", "tool names");
  const resources = list("resources", "resource URIs");
  const methodsC = child(f, "methods");
  if (!methodsC.present) {
    ctx.error(node ?? key, `${field}.methods`, 'is required: name the MCP methods this rule admits, e.g. ["tools/call"]');
    return undefined;
  }
  if (methods === undefined) return undefined;
  const matchers = methods.map(compileGlob);
  const admits = (method: string) => matchers.some((m) => m.matches(method));
  for (const [i, m] of methods.entries()) {
    if (m === "*") {
      ctx.warn(methodsC.node, `${field}.methods[${i}]`, 'a lone "*" matches only methods without "/" (initialize, ping); write "tools/*" or "*/*" to match others');
    }
  }
  const scoped = (name: "tools" | "resources", method: string, values: string[] | undefined) => {
    const c = child(f, name);
    if (values !== undefined && !admits(method)) {
      ctx.warn(c.key, `${field}.${name}`, `applies only to ${method}, which ${field}.methods does not admit, so it has no effect`);
    }
    if (values === undefined && admits(method)) {
      ctx.warn(methodsC.key, `${field}.methods`, `admits ${method} without ${field}.${name}, so every ${name === "tools" ? "tool" : "resource"} is admitted`);
    }
  };
  scoped("tools", "tools/call", tools);
  scoped("resources", "resources/read", resources);
  return { methods, ...(tools !== undefined && { tools }), ...(resources !== undefined && { resources }) };
}

/** The part `tokens:` and `txnTokens:` share: issuer, jwks (a file or an https:// URL), required, clockSkew. */
function readSignedTokenSource(
  ctx: SchemaContext,
  node: unknown,
  key: unknown,
  section: string,
  extraKeys: readonly string[],
): { fields: ReturnType<typeof mapFields>; common: { issuer: string; jwks: string; required?: boolean; clockSkew?: number } | undefined } {
  const f = mapFields(ctx, node, section, ["issuer", "jwks", "required", ...extraKeys, "clockSkew"], key);
  if (f === undefined) return { fields: undefined, common: undefined };
  const issuerC = child(f, "issuer");
  const jwksC = child(f, "jwks");
  if (!issuerC.present) ctx.error(node, `${section}.issuer`, "is required");
  if (!jwksC.present) ctx.error(node, `${section}.jwks`, "is required");
  const issuer = issuerC.present ? readNonEmptyString(ctx, issuerC.node, `${section}.issuer`, issuerC.key) : undefined;
  const jwks = jwksC.present ? readNonEmptyString(ctx, jwksC.node, `${section}.jwks`, jwksC.key) : undefined;
  if (jwks !== undefined && /^[a-z]+:\/\//i.test(jwks)) {
    const url = URL.canParse(jwks) ? new URL(jwks) : undefined;
    const loopback = url !== undefined && ["127.0.0.1", "localhost", "[::1]"].includes(url.hostname);
    if (url === undefined || !(url.protocol === "https:" || (url.protocol === "http:" && loopback))) {
      ctx.error(jwksC.node, `${section}.jwks`, `${JSON.stringify(jwks)} must be a file path, an https:// URL, or an http:// URL on loopback`);
    }
  }
  const requiredC = child(f, "required");
  const required = requiredC.present ? readBoolean(ctx, requiredC.node, `${section}.required`, requiredC.key) : undefined;
  const skewC = child(f, "clockSkew");
  let clockSkew: number | undefined;
  if (skewC.present) {
    const raw = (skewC.node as { value?: unknown } | null)?.value;
    const seconds = typeof raw === "number" || typeof raw === "string" ? parseDuration(raw) : undefined;
    if (seconds === undefined || seconds > 300) ctx.error(skewC.node ?? skewC.key, `${section}.clockSkew`, `must be a duration such as "30s" or "2m", at most 5m, not ${JSON.stringify(raw ?? null)}`);
    else clockSkew = seconds;
  }
  if (issuer === undefined || jwks === undefined) return { fields: f, common: undefined };
  return { fields: f, common: { issuer, jwks, ...(required !== undefined && { required }), ...(clockSkew !== undefined && { clockSkew }) } };
}

function readTokens(ctx: SchemaContext, node: unknown, key: unknown): TokenPolicyDocument | undefined {
  const { fields, common } = readSignedTokenSource(ctx, node, key, "tokens", ["singleUse"]);
  const su = child(fields, "singleUse");
  const singleUse = su.present ? readBoolean(ctx, su.node, "tokens.singleUse", su.key) : undefined;
  if (common === undefined) return undefined;
  return { ...common, ...(singleUse !== undefined && { singleUse }) };
}

/** `txnTokens:` (SPEC 8): the same key sources and time-outs as `tokens`, no single use (a Txn-Token travels the whole call chain). */
function readTxnTokens(ctx: SchemaContext, node: unknown, key: unknown): TxnTokenPolicyDocument | undefined {
  return readSignedTokenSource(ctx, node, key, "txnTokens", []).common;
}
