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
}

export const DEFAULT_MAX_CHAIN_LENGTH = 6;

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
}
