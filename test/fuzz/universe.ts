// The small world the fuzz runs in: its agents, people and the fuzz policy.
// The policy is written once as data (FUZZ_POLICY) and rendered to YAML for
// the real loader; the reference decider (reference-decider.ts) reads the
// same data with its own, independent reading of SPEC 2 and 3. So the loader,
// the compiler and the pipeline are all under test, and the reference shares
// none of their code.

export const TRUSTED_DOMAIN = "example.org";
export const PARTNER_DOMAIN = "partner.example";
export const UNTRUSTED_DOMAIN = "evil.example";

export const ISSUER = "https://sts.fuzz.example";
export const JWKS_FILE = "jwks.json";

/** Agents with a certificate in the fixture; `id` is their SPIFFE ID. */
export const AGENTS = {
  front: `spiffe://${TRUSTED_DOMAIN}/agent/front`,
  planner: `spiffe://${TRUSTED_DOMAIN}/agent/planner`,
  worker: `spiffe://${TRUSTED_DOMAIN}/agent/worker`,
  research: `spiffe://${TRUSTED_DOMAIN}/agent/research`,
  db: `spiffe://${TRUSTED_DOMAIN}/agent/db`,
  mailer: `spiffe://${TRUSTED_DOMAIN}/agent/mailer`,
  /** An alias with no hop rule at all. */
  ghost: `spiffe://${TRUSTED_DOMAIN}/agent/ghost`,
  /** On the policy's revoked list. */
  retired: `spiffe://${TRUSTED_DOMAIN}/agent/retired`,
  /** In the second trusted trust domain. */
  bridge: `spiffe://${PARTNER_DOMAIN}/agent/bridge`,
  /** In a trusted domain but not named by the policy (only globs can match it). */
  stranger: `spiffe://${TRUSTED_DOMAIN}/agent/stranger`,
  /** In a trust domain the policy does not trust. */
  intruder: `spiffe://${UNTRUSTED_DOMAIN}/agent/intruder`,
} as const;

export type AgentName = keyof typeof AGENTS;
export const AGENT_NAMES = Object.keys(AGENTS) as AgentName[];

/** The aliases the policy defines (not stranger, not intruder). */
export const POLICY_ALIASES = ["front", "planner", "worker", "research", "db", "mailer", "ghost", "retired", "bridge"] as const satisfies readonly AgentName[];

export const PEOPLE = {
  alice: "alice@example.com",
  bob: "bob@example.com",
  carol: "carol@partner.example",
  mallory: "mallory@evil.com",
} as const;
export type PersonName = keyof typeof PEOPLE;

/** Agents whose certificate serial is on the revoked list (a second certificate for the same SPIFFE ID). */
export const SERIAL_REVOKED_AGENTS: readonly AgentName[] = ["front", "planner", "worker", "research", "bridge"];

// ---------------------------------------------------------------------------
// The fuzz policy, as data.

export interface FuzzHopRule {
  readonly from: string;
  readonly to: string;
  readonly onBehalfOf?: readonly string[];
  readonly methods?: readonly string[];
  readonly paths?: readonly string[];
  readonly scopes?: readonly string[];
  readonly requireToken?: boolean;
}

export interface FuzzPolicy {
  readonly version: string;
  readonly trustDomains: readonly string[];
  readonly maxChainLength: number;
  readonly requireOnBehalfOf: boolean;
  readonly onBehalfOf: readonly string[];
  readonly agents: Readonly<Record<string, string>>;
  readonly hops: readonly FuzzHopRule[];
  readonly requireVia: readonly { readonly to: string; readonly via: readonly string[] }[];
  readonly revokedIdentities: readonly string[];
  /** Filled in by the fixture: the serials of the SERIAL_REVOKED_AGENTS' second certificates, written in assorted spellings. */
  readonly revokedSerials: readonly string[];
  readonly tokens: { readonly issuer: string; readonly jwks: string; readonly required: boolean; readonly singleUse: boolean; readonly clockSkewSeconds: number };
}

export function fuzzPolicy(revokedSerials: readonly string[]): FuzzPolicy {
  const agents: Record<string, string> = {};
  for (const alias of POLICY_ALIASES) agents[alias] = AGENTS[alias];
  return {
    version: "fuzz-2026-12",
    trustDomains: [TRUSTED_DOMAIN, PARTNER_DOMAIN],
    maxChainLength: 4,
    requireOnBehalfOf: true,
    onBehalfOf: ["*@example.com", "carol@partner.example"],
    agents,
    hops: [
      /* 0 */ { from: "front", to: "planner", onBehalfOf: ["*@example.com"] },
      /* 1 */ { from: "planner", to: "worker" },
      /* 2 */ { from: "worker", to: "db", methods: ["GET"], paths: ["/query", "/schema/*"], scopes: ["db:read"] },
      /* 3 */ { from: "planner", to: "research" },
      /* 4 */ { from: "research", to: "db", methods: ["GET", "POST"], paths: ["/query", "/reports/**"], scopes: ["db:read", "db:write"], requireToken: true },
      /* 5 */ { from: `spiffe://${TRUSTED_DOMAIN}/agent/*`, to: "mailer", methods: ["POST"], paths: ["/send"], onBehalfOf: ["alice@example.com"] },
      /* 6 */ { from: "front", to: "bridge", onBehalfOf: ["carol@partner.example", "*@example.com"] },
      /* 7 */ { from: "bridge", to: "research", methods: ["GET"], paths: ["/r/*/x"] },
      /* 8 */ { from: "front", to: "db", methods: ["GET"], paths: ["/health"] },
      /* 9 */ { from: "planner", to: "retired" },
    ],
    requireVia: [
      { to: "db", via: ["planner"] },
      { to: `spiffe://${TRUSTED_DOMAIN}/agent/mail*`, via: ["front"] },
    ],
    revokedIdentities: ["retired"],
    revokedSerials,
    tokens: { issuer: ISSUER, jwks: JWKS_FILE, required: false, singleUse: false, clockSkewSeconds: 30 },
  };
}

const q = (s: string): string => JSON.stringify(s);
const list = (values: readonly string[]): string => `[${values.map(q).join(", ")}]`;

/** The policy as the YAML file the real loader reads. */
export function fuzzPolicyYaml(policy: FuzzPolicy): string {
  const lines = [
    `version: ${q(policy.version)}`,
    `trustDomains: ${list(policy.trustDomains)}`,
    `maxChainLength: ${policy.maxChainLength}`,
    `requireOnBehalfOf: ${policy.requireOnBehalfOf}`,
    `onBehalfOf: ${list(policy.onBehalfOf)}`,
    "agents:",
    ...Object.entries(policy.agents).map(([alias, id]) => `  ${alias}: ${id}`),
    "hops:",
  ];
  for (const rule of policy.hops) {
    lines.push(`  - from: ${q(rule.from)}`, `    to: ${q(rule.to)}`);
    if (rule.onBehalfOf) lines.push(`    onBehalfOf: ${list(rule.onBehalfOf)}`);
    if (rule.methods) lines.push(`    methods: ${list(rule.methods)}`);
    if (rule.paths) lines.push(`    paths: ${list(rule.paths)}`);
    if (rule.scopes) lines.push(`    scopes: ${list(rule.scopes)}`);
    if (rule.requireToken !== undefined) lines.push(`    requireToken: ${rule.requireToken}`);
  }
  lines.push("requireVia:");
  for (const rule of policy.requireVia) lines.push(`  - to: ${q(rule.to)}`, `    via: ${list(rule.via)}`);
  lines.push("revoked:", `  identities: ${list(policy.revokedIdentities)}`, `  serials: ${list(policy.revokedSerials)}`);
  const t = policy.tokens;
  lines.push(
    "tokens:",
    `  issuer: ${q(t.issuer)}`,
    `  jwks: ${q(t.jwks)}`,
    `  required: ${t.required}`,
    `  singleUse: ${t.singleUse}`,
    `  clockSkew: ${t.clockSkewSeconds}s`,
  );
  return lines.join("\n") + "\n";
}
