// The policy, twice: PolicyDocument is the validated shape of the YAML file
// (SPEC 3), CompiledPolicy is what Check evaluates: aliases resolved, globs
// compiled, sets built once per load rather than once per request.

import type { Matcher, MatcherList } from "./glob.js";

export interface HopRuleDocument {
  readonly from: string;
  readonly to: string;
  readonly onBehalfOf?: readonly string[];
  readonly methods?: readonly string[];
  readonly paths?: readonly string[];
  readonly scopes?: readonly string[];
  readonly requireToken?: boolean;
  /** MCP method, tool and resource globs for the last hop (SPEC 8). */
  readonly mcp?: McpRuleDocument;
  /** The last hop's caller must be bound by a certificate, not a principal alone (SPEC 8). */
  readonly requireCertificate?: boolean;
}

/**
 * `mcp:` on a hop rule. `methods` is required by the loader (a rule that
 * names tools but no methods would otherwise admit every other method);
 * `tools` applies to `tools/call`, `resources` to `resources/read`; an absent
 * list admits any tool (resource) of an admitted method.
 */
export interface McpRuleDocument {
  readonly methods: readonly string[];
  readonly tools?: readonly string[];
  readonly resources?: readonly string[];
}

export interface RequireViaDocument {
  readonly to: string;
  readonly via: readonly string[];
}

export interface TokenPolicyDocument {
  readonly issuer: string;
  readonly jwks: string;
  readonly required?: boolean;
  readonly singleUse?: boolean;
  /** Seconds. */
  readonly clockSkew?: number;
}

/** `txnTokens:` (SPEC 8): Transaction Tokens, verified with the same key sources as `tokens`. */
export interface TxnTokenPolicyDocument {
  readonly issuer: string;
  readonly jwks: string;
  readonly required?: boolean;
  /** Seconds. */
  readonly clockSkew?: number;
}

export interface PolicyDocument {
  readonly version: string;
  readonly trustDomains: readonly string[];
  readonly maxChainLength?: number;
  readonly requireOnBehalfOf?: boolean;
  readonly onBehalfOf?: readonly string[];
  readonly agents?: Readonly<Record<string, string>>;
  readonly hops?: readonly HopRuleDocument[];
  readonly requireVia?: readonly RequireViaDocument[];
  readonly revoked?: {
    readonly identities?: readonly string[];
    readonly serials?: readonly string[];
    /** A CRL file (PEM or DER), relative to the policy file; its serials are revoked too. */
    readonly crl?: string;
    /** The CA certificate (PEM) whose key must have signed the CRL. */
    readonly crlIssuer?: string;
  };
  readonly tokens?: TokenPolicyDocument;
  /** Every caller must be bound by a certificate (Envoy's or a trusted XFCC), never a principal alone (SPEC 8). */
  readonly requireCertificate?: boolean;
  readonly txnTokens?: TxnTokenPolicyDocument;
}

export const DEFAULT_MAX_CHAIN_LENGTH = 6;
/** `tokens.clockSkew` and `txnTokens.clockSkew` when the policy names none. */
export const DEFAULT_CLOCK_SKEW_SECONDS = 30;

export interface HopRule {
  /** Index in the file's `hops` list. */
  readonly index: number;
  /** "hops[N]": how decisions and audit records name the rule. */
  readonly name: string;
  readonly from: Matcher;
  readonly to: Matcher;
  readonly onBehalfOf: MatcherList | undefined;
  readonly methods: MatcherList | undefined;
  readonly paths: MatcherList | undefined;
  readonly scopes: readonly string[] | undefined;
  readonly requireToken: boolean;
  /** The compiled `mcp:` (last hop only); undefined when the rule has none. */
  readonly mcp: McpRule | undefined;
  /** The last hop's caller must not be bound by a principal alone (SPEC 8). */
  readonly requireCertificate: boolean;
}

export interface McpRule {
  readonly methods: readonly Matcher[];
  /** undefined: any tool of `tools/call`. */
  readonly tools: readonly Matcher[] | undefined;
  /** undefined: any URI of `resources/read`. */
  readonly resources: readonly Matcher[] | undefined;
}

export interface RequireViaRule {
  readonly name: string;
  readonly to: Matcher;
  /** SPIFFE IDs that every chain reaching `to` must pass through. */
  readonly via: readonly string[];
}

export interface TokenPolicy {
  readonly issuer: string;
  readonly jwks: string;
  readonly required: boolean;
  readonly singleUse: boolean;
  readonly clockSkewSeconds: number;
}

export interface TxnTokenPolicy {
  readonly issuer: string;
  readonly jwks: string;
  readonly required: boolean;
  readonly clockSkewSeconds: number;
}

export interface CompiledPolicy {
  readonly version: string;
  /** SHA-256 (hex) of the file's bytes. */
  readonly sha256: string;
  /** Version plus content hash: the cache key prefix, so an edit without a version bump still invalidates. */
  readonly revision: string;
  readonly trustDomains: ReadonlySet<string>;
  readonly maxChainLength: number;
  readonly requireOnBehalfOf: boolean;
  readonly onBehalfOf: MatcherList | undefined;
  /** alias → SPIFFE ID */
  readonly agents: ReadonlyMap<string, string>;
  readonly hops: readonly HopRule[];
  readonly requireVia: readonly RequireViaRule[];
  readonly revokedIdentities: ReadonlySet<string>;
  /** Normalized serials: lower-case hex, no separators, no leading zeros. */
  readonly revokedSerials: ReadonlySet<string>;
  readonly tokens: TokenPolicy | undefined;
  /** Every caller must be bound by a certificate (Envoy's or a trusted XFCC), never a principal alone (SPEC 8). */
  readonly requireCertificate: boolean;
  readonly txnTokens: TxnTokenPolicy | undefined;
  /** Some hop rule has `mcp:`: only then do the MCP facts enter the last hop's decision (and its cache key). */
  readonly hasMcpRules: boolean;
}
