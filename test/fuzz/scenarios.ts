// The calls the fuzz policy (universe.ts) admits, as templates, and a few it
// refuses for a reason only the whole request shows (requireVia). Every
// contract mutation (contract-mutations.ts) starts from one of these, so the
// answer the contract gives is known by construction.

import type { DenialReason } from "../../src/core/reasons.js";
import type { AgentName, PersonName } from "./universe.js";

/** What path rules the last hop's rule has (see pathArbitrary in arbitraries.ts). */
export type PathRule = "any" | "worker-db" | "research-db" | "send" | "bridge-research" | "health";

export interface Scenario {
  readonly name: string;
  /** First agent first, the caller last. */
  readonly chain: readonly AgentName[];
  readonly callee: AgentName;
  readonly people: readonly PersonName[];
  /** The methods the last hop's rule admits; undefined: any. */
  readonly methods: readonly string[] | undefined;
  readonly paths: PathRule;
  /** The last hop's rule scopes; undefined: any scope. */
  readonly scopes: readonly string[] | undefined;
  readonly tokenRequired: boolean;
  /** Sign the whole set of broken-token variants for this scenario (else only valid tokens). */
  readonly tokenVariants: boolean;
  /** A scenario the contract refuses as a whole, with this reason. */
  readonly denied?: DenialReason;
}

const ANYONE_AT_EXAMPLE: readonly PersonName[] = ["alice", "bob"];

export const SCENARIOS: readonly Scenario[] = [
  { name: "S1", chain: ["front"], callee: "planner", people: ANYONE_AT_EXAMPLE, methods: undefined, paths: "any", scopes: undefined, tokenRequired: false, tokenVariants: false },
  { name: "S2", chain: ["front", "planner"], callee: "worker", people: ANYONE_AT_EXAMPLE, methods: undefined, paths: "any", scopes: undefined, tokenRequired: false, tokenVariants: false },
  { name: "S3", chain: ["front", "planner", "worker"], callee: "db", people: ANYONE_AT_EXAMPLE, methods: ["GET"], paths: "worker-db", scopes: ["db:read"], tokenRequired: false, tokenVariants: true },
  { name: "S4", chain: ["front", "planner"], callee: "research", people: ANYONE_AT_EXAMPLE, methods: undefined, paths: "any", scopes: undefined, tokenRequired: false, tokenVariants: false },
  { name: "S5", chain: ["front", "planner", "research"], callee: "db", people: ANYONE_AT_EXAMPLE, methods: ["GET", "POST"], paths: "research-db", scopes: ["db:read", "db:write"], tokenRequired: true, tokenVariants: true },
  { name: "S6", chain: ["front"], callee: "mailer", people: ["alice"], methods: ["POST"], paths: "send", scopes: undefined, tokenRequired: false, tokenVariants: false },
  { name: "S7", chain: ["front", "planner"], callee: "mailer", people: ["alice"], methods: ["POST"], paths: "send", scopes: undefined, tokenRequired: false, tokenVariants: false },
  { name: "S8", chain: ["front", "planner", "worker"], callee: "mailer", people: ["alice"], methods: ["POST"], paths: "send", scopes: undefined, tokenRequired: false, tokenVariants: false },
  { name: "S9", chain: ["front"], callee: "bridge", people: ["alice", "bob", "carol"], methods: undefined, paths: "any", scopes: undefined, tokenRequired: false, tokenVariants: false },
  { name: "S10", chain: ["front", "bridge"], callee: "research", people: ["alice", "bob", "carol"], methods: ["GET"], paths: "bridge-research", scopes: undefined, tokenRequired: false, tokenVariants: false },
  { name: "S11", chain: ["front", "planner"], callee: "retired", people: ANYONE_AT_EXAMPLE, methods: undefined, paths: "any", scopes: undefined, tokenRequired: false, tokenVariants: false },
  { name: "S12", chain: ["front", "planner", "research"], callee: "mailer", people: ["alice"], methods: ["POST"], paths: "send", scopes: undefined, tokenRequired: false, tokenVariants: false },
  // Refused as a whole:
  { name: "D1", chain: ["front"], callee: "db", people: ANYONE_AT_EXAMPLE, methods: ["GET"], paths: "health", scopes: undefined, tokenRequired: false, tokenVariants: false, denied: "required_hop_missing" },
  { name: "D2", chain: ["planner"], callee: "mailer", people: ["alice"], methods: ["POST"], paths: "send", scopes: undefined, tokenRequired: false, tokenVariants: false, denied: "required_hop_missing" },
  { name: "D3", chain: ["front"], callee: "planner", people: ["carol"], methods: undefined, paths: "any", scopes: undefined, tokenRequired: false, tokenVariants: false, denied: "hop_not_allowed" },
];

export const ALLOWED_SCENARIOS = SCENARIOS.filter((s) => s.denied === undefined);

export function callerOf(s: Scenario): AgentName {
  return s.chain[s.chain.length - 1]!;
}

/** Token variants signed for scenarios with `tokenVariants`, and what the contract answers for each (SPEC 5's order). */
export const TOKEN_VARIANTS = {
  valid: "allow",
  /** scope "db:read db:write": allowed only where the rule's scopes hold both. */
  wideScope: "scope-dependent",
  emptyScope: "allow",
  unknownKey: "token_invalid",
  unknownKid: "token_invalid",
  typJwt: "token_invalid",
  noTyp: "token_invalid",
  algNone: "token_invalid",
  algHs256: "token_invalid",
  wrongIss: "token_invalid",
  futureIat: "token_invalid",
  futureNbf: "token_invalid",
  otherCnf: "token_invalid",
  noJti: "token_invalid",
  truncated: "token_invalid",
  payloadFlip: "token_invalid",
  /** The valid token with unused bits set in its signature's last character: the same bytes, another spelling. */
  respelledSignature: "token_invalid",
  bearer: "token_invalid",
  expired: "token_expired",
  expiredOtherCnf: "token_invalid",
  expiredOtherChain: "token_expired",
  otherChain: "token_chain_mismatch",
  reversedChain: "token_chain_mismatch",
  otherAud: "token_chain_mismatch",
  otherSub: "token_chain_mismatch",
  otherChainWideScope: "token_chain_mismatch",
  scopeExceeded: "token_scope_exceeded",
} as const satisfies Record<string, DenialReason | "allow" | "scope-dependent">;

export type TokenVariant = keyof typeof TOKEN_VARIANTS;
export const TOKEN_VARIANT_NAMES = Object.keys(TOKEN_VARIANTS) as TokenVariant[];

export function tokenName(s: Scenario, person: PersonName, variant: TokenVariant): string {
  return `${s.name}:${person}:${variant}`;
}

/** The contract's answer for a token variant on an otherwise allowed call of `s`. */
export function tokenVariantExpectation(s: Scenario, variant: TokenVariant): DenialReason | "allow" {
  const e = TOKEN_VARIANTS[variant];
  if (e !== "scope-dependent") return e;
  const wide = ["db:read", "db:write"];
  return s.scopes === undefined || wide.every((w) => s.scopes!.includes(w)) ? "allow" : "token_scope_exceeded";
}
