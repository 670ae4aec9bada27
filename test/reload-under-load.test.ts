// SPEC 3, hot reload under load (issue 10, "Soak and faults"): 500 reloads of
// the built CLI's policy while four connections keep Checks in flight, with
// one process and with --workers 2. Two policies, A and B, alternate by
// atomic rename; each new file is taken up by the directory watch, by SIGHUP
// or by the admin Reload, in turn, and the next rename waits until the new
// version is in force: GetPolicy shows it (one process), or an admin Reload
// has answered for it, which it does once every worker serves it (SPEC 7: a
// reload reaches every worker). A and B
// decide differently for most of the requests, so a decision is checked
// twice:
//
//   - its policy_version (dynamic metadata) is one that was in force at some
//     moment between the call and its answer: for each call the generation
//     observed in force just before it was sent and the generation last
//     renamed into place just after its answer bound the versions it may carry;
//   - the decision is the one that version makes for that request.
//
// Zero stale decisions, and the audit log records the same version the
// client was told.

import { mkdir, mkdtemp, rename, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { CheckRequest } from "../src/gen/envoy/service/auth/v3/external_auth_pb.js";
import { checkRequest } from "./support/check-client.js";
import { killAllServes, requireBuiltCli, runCli, startServe, stopServe, type ServeProcess } from "./support/cli-process.js";
import { startCheckLoad, type CallRecord } from "./support/check-load.js";
import { readAuditDirectory, verifyAuditDirectory } from "./support/audit-directory.js";
import { spiffe } from "./support/pki.js";

const RELOADS = 500;
/** With --workers 2 each reload also waits for both workers: fewer, so the case stays well under a minute here. */
const WORKER_RELOADS = 300;
const MECHANISMS = ["file-watch", "SIGHUP", "admin Reload"] as const;
type Mechanism = (typeof MECHANISMS)[number];
/** How long one reload may take to show in GetPolicy (the watch debounces by 100 ms; the 5 s poll is its fallback). */
const APPLY_TIMEOUT_MS = 8_000;
/** A pause after each reload is in force: calls made and answered within it may carry one version only. */
const SETTLED_MS = 10;

type Version = "reload-A" | "reload-B";
const versionOf = (generation: number): Version => (generation % 2 === 0 ? "reload-A" : "reload-B");

/**
 * A and B differ in three places: which research → db paths are allowed,
 * whom orchestrator → research may act for, and whether *@example.net may be
 * represented at all (a top-level check, never cached).
 */
function policyYaml(version: Version): string {
  const a = version === "reload-A";
  return `version: "${version}"
trustDomains: [example.org]
maxChainLength: 4
requireOnBehalfOf: true
onBehalfOf: [${a ? `"*@example.com"` : `"*@example.com", "*@example.net"`}]
agents:
  orchestrator: spiffe://example.org/agent/orchestrator
  research: spiffe://example.org/agent/research
  db: spiffe://example.org/agent/db
  planner: spiffe://example.org/agent/planner
  worker: spiffe://example.org/agent/worker
hops:
  - from: orchestrator
    to: research
    onBehalfOf: [${a ? `"*@example.com"` : `"vip*@example.com"`}]
  - from: research
    to: db
    methods: [GET]
    paths: [${a ? `"/query"` : `"/schema/*"`}]
  - from: orchestrator
    to: planner
  - from: planner
    to: worker
  - from: worker
    to: research
`;
}

interface RequestCase {
  readonly name: string;
  readonly request: CheckRequest;
  readonly expected: Readonly<Record<Version, string>>;
}

const chain = (...agents: string[]) => agents.map((a) => spiffe(a)).join(",");
const call = (person: string, agents: string[], callee: string, method: string, path: string) => {
  const caller = agents.at(-1)!;
  return checkRequest({
    principal: spiffe(caller),
    callee,
    method,
    path,
    headers: { "x-agent-subject": spiffe(caller), "x-agent-on-behalf-of": person, "x-agent-delegation-chain": chain(...agents) },
  });
};

/** Six kinds of request for many people, so the hop cache both hits and misses across reloads. */
function requestCases(): RequestCase[] {
  const cases: RequestCase[] = [];
  for (let i = 0; i < 100; i++) {
    const user = `user${i}@example.com`;
    cases.push(
      { name: "research → db /query", request: call(user, ["research"], "db", "GET", `/query?q=${i}`), expected: { "reload-A": "allow", "reload-B": "hop_not_allowed" } },
      { name: "research → db /schema", request: call(user, ["research"], "db", "GET", `/schema/t${i % 13}`), expected: { "reload-A": "hop_not_allowed", "reload-B": "allow" } },
      { name: "orchestrator → research for a user", request: call(user, ["orchestrator"], "research", "POST", "/v1/summarize"), expected: { "reload-A": "allow", "reload-B": "hop_not_allowed" } },
      { name: "orchestrator → research for a vip", request: call(`vip${i}@example.com`, ["orchestrator"], "research", "POST", "/v1/summarize"), expected: { "reload-A": "allow", "reload-B": "allow" } },
      { name: "worker → research for example.net", request: call(`p${i}@example.net`, ["orchestrator", "planner", "worker"], "research", "GET", "/v1/search"), expected: { "reload-A": "on_behalf_of_not_allowed", "reload-B": "allow" } },
      { name: "research → db DELETE", request: call(user, ["research"], "db", "DELETE", "/query"), expected: { "reload-A": "hop_not_allowed", "reload-B": "hop_not_allowed" } },
    );
  }
  return cases;
}

async function admin(serve: ServeProcess, method: "GetPolicy" | "Reload"): Promise<{ version: string; ok?: boolean }> {
  const response = await fetch(`http://${serve.admin}/hopwarden.admin.v1.AdminService/${method}`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: "{}",
    signal: AbortSignal.timeout(5_000),
  });
  if (!response.ok) throw new Error(`admin ${method} answered ${response.status}: ${await response.text()}`);
  return (await response.json()) as { version: string; ok?: boolean };
}

async function reloadsTotal(serve: ServeProcess): Promise<number> {
  const text = await (await fetch(`http://${serve.admin}/metrics`)).text();
  const line = text.split("\n").find((l) => l.startsWith("hopwarden_policy_reloads_total{") && l.includes('result="ok"'));
  return line === undefined ? 0 : Number(line.slice(line.lastIndexOf(" ") + 1));
}

let root: string;

beforeAll(async () => {
  requireBuiltCli();
  root = await mkdtemp(join(tmpdir(), "hopwarden-reload-load-"));
});

afterAll(async () => {
  await killAllServes();
  if (root !== undefined) await rm(root, { recursive: true, force: true });
});

async function reloadUnderLoad(workers: number, reloads: number): Promise<void> {
    const dir = await mkdtemp(join(root, `workers-${workers}-`));
    const policy = join(dir, "policy.yaml");
    await writeFile(policy, policyYaml(versionOf(0)));
    const keygen = await runCli(["audit", "keygen", "--out", join(dir, "audit-key")]);
    expect(keygen.code, keygen.stderr).toBe(0);
    const auditDir = join(dir, "audit");
    await mkdir(auditDir);
    const serve = await startServe([
      "--policy", policy,
      "--listen", "127.0.0.1:0",
      "--admin-listen", "127.0.0.1:0",
      "--audit-log", join(auditDir, "audit.log"),
      "--audit-key", join(dir, "audit-key.key"),
      "--workers", String(workers),
    ]);

    // Generation g is versionOf(g). `renamed`: the last generation whose file was (being) put in place;
    // `applied`: the last one seen in force. Versions only move forward, so a call made when
    // `applied` was b and answered when `renamed` was a may carry the version of any generation in [b, a].
    let renamed = 0;
    let applied = 0;
    const cases = requestCases();
    const load = startCheckLoad({
      address: serve.grpc,
      connections: 4,
      inFlightPerConnection: 4,
      requests: cases.map((c) => c.request),
      before: () => applied,
      after: () => renamed,
    });

    const byMechanism: Record<Mechanism, number> = { "file-watch": 0, SIGHUP: 0, "admin Reload": 0 };
    /** Admin Reload answers that named another version than the file renamed into place just before, or were not ok. */
    const reloadAnswers: { generation: number; expected: Version; answered: string }[] = [];
    const started = Date.now();
    try {
      for (let g = 1; g <= reloads; g++) {
        const next = join(dir, `policy.${g}.yaml`);
        await writeFile(next, policyYaml(versionOf(g)));
        renamed = g;
        await rename(next, policy);
        const mechanism = MECHANISMS[g % MECHANISMS.length]!;
        byMechanism[mechanism]++;
        if (mechanism === "SIGHUP") serve.child.kill("SIGHUP");
        if (mechanism === "admin Reload") {
          const answer = await admin(serve, "Reload");
          if (answer.version !== versionOf(g) || answer.ok !== true) reloadAnswers.push({ generation: g, expected: versionOf(g), answered: `${answer.version} (ok: ${answer.ok})` });
        }
        const deadline = Date.now() + APPLY_TIMEOUT_MS;
        while ((await admin(serve, "GetPolicy")).version !== versionOf(g)) {
          if (Date.now() > deadline) throw new Error(`generation ${g} (${versionOf(g)}, by ${mechanism}) not in force after ${APPLY_TIMEOUT_MS} ms`);
          await new Promise((r) => setTimeout(r, 2));
        }
        // GetPolicy is the primary's; the workers are in step once an admin Reload has answered for it.
        if (workers > 1 && mechanism !== "admin Reload") {
          const answer = await admin(serve, "Reload");
          if (answer.version !== versionOf(g) || answer.ok !== true) reloadAnswers.push({ generation: g, expected: versionOf(g), answered: `${answer.version} (ok: ${answer.ok})` });
        }
        applied = g;
        await new Promise((r) => setTimeout(r, SETTLED_MS));
      }
    } finally {
      await load.stop();
      load.close();
    }
    const reloadSeconds = (Date.now() - started) / 1000;
    const reloadsCounted = await reloadsTotal(serve);
    expect(await stopServe(serve)).toEqual({ code: 0, signal: null });

    const calls = load.calls;
    const failed = calls.filter((c) => c.outcome.kind === "failed");
    const stale: string[] = [];
    let duringReload = 0;
    let settled = 0;
    for (const c of calls) {
      if (c.outcome.kind !== "answered") continue;
      const kase = cases[c.request]!;
      const allowed = new Set<string>();
      for (let g = c.before; g <= c.after && allowed.size < 2; g++) allowed.add(versionOf(g));
      if (allowed.size > 1) duringReload++;
      else settled++;
      const version = c.outcome.policyVersion as Version;
      if (!allowed.has(version)) stale.push(`${kase.name}: version ${version}, but only ${[...allowed].join(" or ")} was in force between the call (generation ${c.before}) and its answer (generation ${c.after})`);
      else if (c.outcome.decision !== kase.expected[version]) stale.push(`${kase.name}: ${c.outcome.decision} under ${version}, which decides ${kase.expected[version]}`);
    }
    const answered = calls.length - failed.length;
    process.stderr.write(
      `[reload under load, --workers ${workers}] ${reloads} reloads in ${reloadSeconds.toFixed(1)} s (${Object.entries(byMechanism).map(([m, n]) => `${n} by ${m}`).join(", ")}; reloads_total ${reloadsCounted}); ` +
        `${calls.length} Checks, ${answered} answered, ${failed.length} failed, ${settled} made and answered with one version in force, ${duringReload} while a reload was under way; stale: ${stale.length}; admin Reload answers naming an older version: ${reloadAnswers.length}\n`,
    );

    expect(failed.map((c) => c.outcome)).toEqual([]);
    expect(stale.slice(0, 20), `${stale.length} stale decisions`).toEqual([]);
    // The load was real: many decisions, under both versions, many of them while a reload was under way.
    const versions = new Set(calls.flatMap((c) => (c.outcome.kind === "answered" ? [c.outcome.policyVersion] : [])));
    expect(versions).toEqual(new Set(["reload-A", "reload-B"]));
    expect(answered).toBeGreaterThan(reloads * 2);
    expect(duringReload).toBeGreaterThan(0);
    expect(settled).toBeGreaterThan(reloads);
    // Every reload is counted once, however many workers carried it out (the primary's /metrics
    // keeps one count, not the sum of its workers'): each one changed the content (SPEC 7: the
    // same content is no reload).
    expect(reloadsCounted).toBe(reloads);
    // An admin Reload answers for the file as it was when it was asked (and, with workers, once they all serve it).
    expect(reloadAnswers).toEqual([]);

    // The audit log records the version each client was told.
    const verify = await verifyAuditDirectory(auditDir, join(dir, "audit-key.pub"));
    expect(verify.code, verify.stdout + verify.stderr).toBe(0);
    const audit = await readAuditDirectory(auditDir);
    const differing = calls.filter((c: CallRecord) => c.outcome.kind === "answered" && audit.versions.get(c.outcome.decisionId) !== c.outcome.policyVersion);
    expect(differing.length).toBe(0);
    expect(audit.decisionIds.length).toBe(answered);
}

describe("policy reload under load", () => {
  it(`serves no stale decision through ${RELOADS} reloads (atomic renames taken up by the watch, SIGHUP and admin Reload in turn)`, async () => {
    await reloadUnderLoad(1, RELOADS);
  }, 90_000);

  it(`does the same through ${WORKER_RELOADS} reloads with --workers 2, in step once an admin Reload has answered`, async () => {
    await reloadUnderLoad(2, WORKER_RELOADS);
  }, 90_000);
});
