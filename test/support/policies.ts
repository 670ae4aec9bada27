// Policies the suites and specs run against, built from parts rather than
// written out again in each file: a policy is a PolicySpec (the policy
// file's own shape, SPEC 3), rendered to YAML for the real loader. The test
// workflow (testPolicyYaml) and the hop rules it is made of are exported, so
// a suite that needs a variant says only what differs.

import { mkdtemp, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { stringify } from "yaml";
import type { HopRuleDocument, RequireViaDocument } from "../../src/core/policy/model.js";
import { spiffe } from "./pki.js";

/** `tokens:` as the file says it (clockSkew a duration such as "30s"). */
export interface TokensSpec {
  readonly issuer: string;
  readonly jwks: string;
  readonly required?: boolean;
  readonly singleUse?: boolean;
  readonly clockSkew?: string;
}

/** A policy file's content; unset keys are left out of the file. */
export interface PolicySpec {
  readonly version: string;
  /** Default [example.org]. */
  readonly trustDomains?: readonly string[];
  readonly maxChainLength?: number;
  readonly requireOnBehalfOf?: boolean;
  readonly onBehalfOf?: readonly string[];
  readonly requireCertificate?: boolean;
  /** Agent names: each becomes the alias of spiffe(name). */
  readonly agents?: readonly string[];
  readonly hops?: readonly HopRuleDocument[];
  readonly requireVia?: readonly RequireViaDocument[];
  readonly revoked?: { readonly identities?: readonly string[]; readonly serials?: readonly string[]; readonly crl?: string; readonly crlIssuer?: string };
  readonly tokens?: TokensSpec;
  readonly txnTokens?: Omit<TokensSpec, "singleUse">;
}

/** The policy file for `spec`; `extra` (YAML text) is appended as is. */
export function policyYaml(spec: PolicySpec, extra = ""): string {
  const { version, trustDomains = ["example.org"], maxChainLength, requireOnBehalfOf, onBehalfOf, requireCertificate, agents, hops, requireVia, revoked, tokens, txnTokens } = spec;
  const aliases = agents === undefined ? undefined : Object.fromEntries(agents.map((name) => [name, spiffe(name)]));
  // In the order SPEC 3 writes them; undefined keys are left out.
  const file = { version, trustDomains, maxChainLength, requireOnBehalfOf, onBehalfOf, requireCertificate, agents: aliases, hops, requireVia, revoked, tokens, txnTokens };
  return stringify(file) + extra;
}

/** The people the SPEC 3 example may represent: anyone at example.com, and someone must be named. */
export const EXAMPLE_COM_PEOPLE = { requireOnBehalfOf: true, onBehalfOf: ["*@example.com"] } as const satisfies Partial<PolicySpec>;

/** The hop rules the suites share. */
export const HOP = {
  /** orchestrator → research, on behalf of anyone at example.com. */
  orchestratorToResearch: { from: "orchestrator", to: "research", onBehalfOf: ["*@example.com"] },
  /** research → db: GET and POST on /query and /schema/*. */
  researchToDb: { from: "research", to: "db", methods: ["GET", "POST"], paths: ["/query", "/schema/*"] },
  orchestratorToPlanner: { from: "orchestrator", to: "planner" },
  plannerToWorker: { from: "planner", to: "worker" },
  workerToResearch: { from: "worker", to: "research" },
  /** A narrow orchestrator → db rule that only requireVia stops. */
  orchestratorToDbHealth: { from: "orchestrator", to: "db", methods: ["GET"], paths: ["/health"] },
} as const satisfies Record<string, HopRuleDocument>;

/** A chain reaching db must pass through research. */
export const DB_VIA_RESEARCH: RequireViaDocument = { to: "db", via: ["research"] };

/** Replaces the hop rule at `index` with `edit` applied (an undefined value removes that key). */
export function editHop(hops: readonly HopRuleDocument[], index: number, edit: Partial<HopRuleDocument>): HopRuleDocument[] {
  if (hops[index] === undefined) throw new Error(`there is no hop rule ${index} to edit`);
  return hops.map((hop, i) => (i === index ? { ...hop, ...edit } : hop));
}

export const TEST_AGENTS = ["orchestrator", "research", "db", "planner", "worker"] as const;

/** The test workflow's rules: person → orchestrator → research → db, planner → worker, and the narrow orchestrator → db. */
export const TEST_HOPS: readonly HopRuleDocument[] = [HOP.orchestratorToResearch, HOP.researchToDb, HOP.orchestratorToPlanner, HOP.plannerToWorker, HOP.workerToResearch, HOP.orchestratorToDbHealth];

export interface TestPolicyOptions extends Partial<PolicySpec> {
  readonly revokedSerials?: readonly string[];
  /** YAML text appended to the file. */
  readonly extra?: string;
}

/**
 * The workflow person → orchestrator → research → db, plus planner → worker,
 * and a narrow orchestrator → db rule that only requireVia stops, so that
 * required_hop_missing is reachable. Options replace the parts they name.
 */
export function testPolicySpec(options: TestPolicyOptions = {}): PolicySpec {
  const { revokedSerials, extra: _extra, ...overrides } = options;
  return {
    version: "test-1",
    maxChainLength: 3,
    ...EXAMPLE_COM_PEOPLE,
    agents: TEST_AGENTS,
    hops: TEST_HOPS,
    requireVia: [DB_VIA_RESEARCH],
    revoked: { identities: [spiffe("retired")], serials: revokedSerials ?? [] },
    ...overrides,
  };
}

export function testPolicyYaml(options: TestPolicyOptions = {}): string {
  return policyYaml(testPolicySpec(options), options.extra);
}

export async function writeTestPolicy(options: TestPolicyOptions = {}, dir?: string): Promise<{ dir: string; file: string }> {
  const where = dir ?? (await mkdtemp(join(tmpdir(), "hopwarden-policy-")));
  const file = join(where, "policy.yaml");
  await writeFile(file, testPolicyYaml(options));
  return { dir: where, file };
}
