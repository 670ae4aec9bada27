// Policies the integration suites run against, written to temp dirs.

import { mkdtemp, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";

export interface TestPolicyOptions {
  readonly version?: string;
  readonly revokedSerials?: readonly string[];
  readonly maxChainLength?: number;
  readonly extra?: string;
}

/**
 * The workflow person → orchestrator → research → db, plus planner → worker,
 * and a narrow orchestrator → db rule that only requireVia stops, so that
 * required_hop_missing is reachable.
 */
export function testPolicyYaml(options: TestPolicyOptions = {}): string {
  return `version: "${options.version ?? "test-1"}"
trustDomains: [example.org]
maxChainLength: ${options.maxChainLength ?? 3}
requireOnBehalfOf: true
onBehalfOf: ["*@example.com"]
agents:
  orchestrator: spiffe://example.org/agent/orchestrator
  research: spiffe://example.org/agent/research
  db: spiffe://example.org/agent/db
  planner: spiffe://example.org/agent/planner
  worker: spiffe://example.org/agent/worker
hops:
  - from: orchestrator
    to: research
    onBehalfOf: ["*@example.com"]
  - from: research
    to: db
    methods: [GET, POST]
    paths: ["/query", "/schema/*"]
  - from: orchestrator
    to: planner
  - from: planner
    to: worker
  - from: worker
    to: research
  - from: orchestrator
    to: db
    methods: [GET]
    paths: ["/health"]
requireVia:
  - to: db
    via: [research]
revoked:
  identities: [spiffe://example.org/agent/retired]
  serials: [${(options.revokedSerials ?? []).map((s) => JSON.stringify(s)).join(", ")}]
${options.extra ?? ""}`;
}

export async function writeTestPolicy(options: TestPolicyOptions = {}, dir?: string): Promise<{ dir: string; file: string }> {
  const where = dir ?? (await mkdtemp(join(tmpdir(), "hopwarden-policy-")));
  const file = join(where, "policy.yaml");
  await writeFile(file, testPolicyYaml(options));
  return { dir: where, file };
}
