// Turns a validated PolicyDocument into the CompiledPolicy that Check walks:
// aliases resolved to SPIFFE IDs once, globs compiled once.

import { normalizeSerial } from "../identity/certificate-serial.js";
import { compileGlob, compileMatcherList, compilePathGlob, type Matcher } from "./glob.js";
import { compileMcpRule } from "./mcp-rule.js";
import { DEFAULT_CLOCK_SKEW_SECONDS, DEFAULT_MAX_CHAIN_LENGTH, type CompiledPolicy, type HopRule, type PolicyDocument, type RequireViaRule } from "./model.js";

/** An alias resolves to its SPIFFE ID; anything else (a SPIFFE ID or a glob) stays as written. */
export function resolveAgentPattern(pattern: string, agents: ReadonlyMap<string, string>): string {
  return agents.get(pattern) ?? pattern;
}

function agentMatcher(pattern: string, agents: ReadonlyMap<string, string>): Matcher {
  const resolved = resolveAgentPattern(pattern, agents);
  const matcher = compileGlob(resolved);
  return resolved === pattern ? matcher : { source: pattern, matches: (value) => matcher.matches(value) };
}

/**
 * `sha256` identifies the content (the file, plus any CRL it names), so that
 * the revision changes whenever anything the decision depends on changes.
 * `crlSerials` are already-normalized serials from a loaded CRL.
 */
export function compilePolicy(doc: PolicyDocument, sha256: string, crlSerials: readonly string[] = []): CompiledPolicy {
  const agents = new Map(Object.entries(doc.agents ?? {}));
  const hops: HopRule[] = (doc.hops ?? []).map((rule, index) => ({
    index,
    name: `hops[${index}]`,
    from: agentMatcher(rule.from, agents),
    to: agentMatcher(rule.to, agents),
    onBehalfOf: rule.onBehalfOf && compileMatcherList(rule.onBehalfOf),
    methods: rule.methods && compileMatcherList(rule.methods),
    paths: rule.paths && compileMatcherList(rule.paths, compilePathGlob),
    scopes: rule.scopes,
    requireToken: rule.requireToken ?? false,
    mcp: rule.mcp && compileMcpRule(rule.mcp, compileGlob),
    requireCertificate: rule.requireCertificate ?? false,
  }));
  const requireVia: RequireViaRule[] = (doc.requireVia ?? []).map((rule, index) => ({
    name: `requireVia[${index}]`,
    to: agentMatcher(rule.to, agents),
    via: rule.via.map((v) => resolveAgentPattern(v, agents)),
  }));
  const revokedSerials = new Set<string>(crlSerials);
  for (const serial of doc.revoked?.serials ?? []) {
    const normal = normalizeSerial(serial);
    if (normal !== undefined) revokedSerials.add(normal);
  }
  return {
    version: doc.version,
    sha256,
    revision: `${doc.version}#${sha256.slice(0, 16)}`,
    trustDomains: new Set(doc.trustDomains),
    maxChainLength: doc.maxChainLength ?? DEFAULT_MAX_CHAIN_LENGTH,
    requireOnBehalfOf: doc.requireOnBehalfOf ?? true,
    onBehalfOf: doc.onBehalfOf && compileMatcherList(doc.onBehalfOf),
    agents,
    hops,
    requireVia,
    revokedIdentities: new Set((doc.revoked?.identities ?? []).map((id) => resolveAgentPattern(id, agents))),
    revokedSerials,
    tokens: doc.tokens
      ? {
          issuer: doc.tokens.issuer,
          jwks: doc.tokens.jwks,
          required: doc.tokens.required ?? false,
          singleUse: doc.tokens.singleUse ?? false,
          clockSkewSeconds: doc.tokens.clockSkew ?? DEFAULT_CLOCK_SKEW_SECONDS,
        }
      : undefined,
    requireCertificate: doc.requireCertificate ?? false,
    txnTokens: doc.txnTokens
      ? {
          issuer: doc.txnTokens.issuer,
          jwks: doc.txnTokens.jwks,
          required: doc.txnTokens.required ?? false,
          clockSkewSeconds: doc.txnTokens.clockSkew ?? DEFAULT_CLOCK_SKEW_SECONDS,
        }
      : undefined,
    hasMcpRules: hops.some((rule) => rule.mcp !== undefined),
  };
}
