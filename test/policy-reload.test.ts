// SPEC 3, hot reload: the running service picks up in-place edits, atomic
// renames and Kubernetes ConfigMap `..data` symlink swaps; an invalid or
// vanished file is refused and the last good policy stays in force;
// reload() (what SIGHUP and the admin Reload call) applies a change at once;
// and the decision's policy_version follows the policy in force.

import { mkdir, mkdtemp, rename, rm, symlink, unlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { SpanCapture } from "./support/span-capture.js";
import { startHopwarden, type Hopwarden, type HopwardenOptions } from "../src/main.js";
import { CheckClient, outcome } from "./support/check-client.js";
import { testPolicyYaml } from "./support/policies.js";
import { captureLogger, type CapturedLogger } from "./support/audit-fixtures.js";
import { decisionOf, policyWithoutResearchToDb, policyWithUnknownKey, researchCallsDb } from "./support/hop-requests.js";
import { eventually } from "./support/cli-process.js";

/** A reload triggered by the watcher lands well within this (100 ms debounce; the 5 s poll is the fallback). */
const RELOAD_WAIT_MS = 5_000;

interface Running {
  readonly hopwarden: Hopwarden;
  readonly client: CheckClient;
  readonly log: CapturedLogger;
}

const cleanups: (() => Promise<void>)[] = [];

afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function tempDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), "hopwarden-reload-"));
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

async function serve(policyFile: string, options: Partial<HopwardenOptions> = {}): Promise<Running> {
  const log = captureLogger();
  const hopwarden = await startHopwarden({ policyFile, listen: "127.0.0.1:0", logger: log.logger, tracing: false, watchPolicy: true, ...options });
  const client = new CheckClient(hopwarden.grpcAddress);
  cleanups.push(async () => {
    client.close();
    await hopwarden.shutdown(2000);
  });
  return { hopwarden, client, log };
}

/** Polls the decision for research → db until it is `expected` (bounded). */
async function expectDecisionBecomes(client: CheckClient, expected: string): Promise<void> {
  let last = "";
  const reached = await eventually(async () => (last = await decisionOf(client)) === expected, RELOAD_WAIT_MS);
  expect(reached, `decision still ${last} after ${RELOAD_WAIT_MS} ms, expected ${expected}`).toBe(true);
}

/** Waits for the store to log that it refused a reload (so "unchanged" below means the new file was seen). */
async function expectReloadRefused(log: CapturedLogger, problem: RegExp): Promise<void> {
  const refused = () => log.lines.filter((l) => l["level"] === "error" && String(l["msg"]).includes("reload refused"));
  const seen = await eventually(() => refused().some((l) => problem.test(JSON.stringify(l["errors"]))), RELOAD_WAIT_MS);
  expect(seen, `no refused reload matching ${problem} was logged; log: ${JSON.stringify(log.lines)}`).toBe(true);
}

describe("hot reload of the policy file", () => {
  it("applies an in-place edit that removes a hop rule", async () => {
    const dir = await tempDir();
    const file = join(dir, "policy.yaml");
    await writeFile(file, testPolicyYaml({ version: "v1" }));
    const { hopwarden, client } = await serve(file);
    expect(await decisionOf(client)).toBe("allow");

    await writeFile(file, policyWithoutResearchToDb({ version: "v2" }));
    await expectDecisionBecomes(client, "hop_not_allowed");
    expect(hopwarden.policies.current()?.version).toBe("v2");
  });

  it("applies an atomic rename of a new file over the policy", async () => {
    const dir = await tempDir();
    const file = join(dir, "policy.yaml");
    await writeFile(file, testPolicyYaml({ version: "v1" }));
    const { hopwarden, client } = await serve(file);
    expect(await decisionOf(client)).toBe("allow");

    const temp = join(dir, ".policy.yaml.tmp");
    await writeFile(temp, policyWithoutResearchToDb({ version: "v2" }));
    await rename(temp, file);
    await expectDecisionBecomes(client, "hop_not_allowed");
    expect(hopwarden.policies.current()?.version).toBe("v2");
  });

  it("applies a Kubernetes ConfigMap update that swaps the ..data symlink", async () => {
    const dir = await tempDir();
    // The layout the kubelet writes: a timestamped directory, ..data pointing at it, and the key a symlink through ..data.
    await mkdir(join(dir, "..2026_01_01_00_00_00.000000001"));
    await writeFile(join(dir, "..2026_01_01_00_00_00.000000001", "policy.yaml"), testPolicyYaml({ version: "v1" }));
    await symlink("..2026_01_01_00_00_00.000000001", join(dir, "..data"));
    await symlink("..data/policy.yaml", join(dir, "policy.yaml"));
    const { hopwarden, client } = await serve(join(dir, "policy.yaml"));
    expect(await decisionOf(client)).toBe("allow");
    expect(hopwarden.policies.current()?.version).toBe("v1");

    await mkdir(join(dir, "..2026_01_01_00_05_00.000000002"));
    await writeFile(join(dir, "..2026_01_01_00_05_00.000000002", "policy.yaml"), policyWithoutResearchToDb({ version: "v2" }));
    await symlink("..2026_01_01_00_05_00.000000002", join(dir, "..data_tmp"));
    await rename(join(dir, "..data_tmp"), join(dir, "..data"));
    await rm(join(dir, "..2026_01_01_00_00_00.000000001"), { recursive: true });
    await expectDecisionBecomes(client, "hop_not_allowed");
    expect(hopwarden.policies.current()?.version).toBe("v2");
  });

  it("refuses an invalid new file and keeps the last good policy, then applies the fix", async () => {
    const dir = await tempDir();
    const file = join(dir, "policy.yaml");
    await writeFile(file, testPolicyYaml({ version: "v1" }));
    const { hopwarden, client, log } = await serve(file);
    const sha256 = hopwarden.policies.current()?.sha256;

    await writeFile(file, policyWithUnknownKey({ version: "v2-bad" }));
    await expectReloadRefused(log, /methds/);
    expect(await decisionOf(client)).toBe("allow");
    expect(hopwarden.policies.current()?.version).toBe("v1");
    expect(hopwarden.policies.current()?.sha256).toBe(sha256);

    await writeFile(file, policyWithoutResearchToDb({ version: "v3" }));
    await expectDecisionBecomes(client, "hop_not_allowed");
    expect(hopwarden.policies.current()?.version).toBe("v3");
  });

  it("keeps the last good policy when the file is deleted", async () => {
    const dir = await tempDir();
    const file = join(dir, "policy.yaml");
    await writeFile(file, testPolicyYaml({ version: "v1" }));
    const { hopwarden, client, log } = await serve(file);

    await unlink(file);
    await expectReloadRefused(log, /ENOENT/);
    expect(await decisionOf(client)).toBe("allow");
    expect(hopwarden.policies.current()?.version).toBe("v1");
  });

  it("logs a refused file once, however often other files in its directory change", async () => {
    // Writes beside the policy (a log redirected there, an audit log) wake the
    // directory watcher; re-logging the same refusal each time would feed a
    // log written into that directory forever.
    const dir = await tempDir();
    const file = join(dir, "policy.yaml");
    await writeFile(file, testPolicyYaml({ version: "v1" }));
    const { hopwarden, log } = await serve(file);
    await writeFile(file, policyWithUnknownKey({ version: "v2-bad" }));
    await expectReloadRefused(log, /methds/);
    const refusals = () => log.lines.filter((l) => String(l["msg"]).includes("reload refused")).length;
    await new Promise((r) => setTimeout(r, 300)); // the events of the write itself settle
    const before = refusals();
    for (let i = 0; i < 8; i++) {
      await writeFile(join(dir, "neighbour.log"), `line ${i}\n`, { flag: "a" });
      await new Promise((r) => setTimeout(r, 150));
    }
    expect(refusals()).toBe(before);
    expect(hopwarden.policies.current()?.version).toBe("v1");
  });

  it("reload() applies a change immediately, with no watcher", async () => {
    const dir = await tempDir();
    const file = join(dir, "policy.yaml");
    await writeFile(file, testPolicyYaml({ version: "v1" }));
    const { hopwarden, client } = await serve(file, { watchPolicy: false });

    await writeFile(file, policyWithoutResearchToDb({ version: "v2" }));
    expect(await decisionOf(client)).toBe("allow"); // nothing watches: the old policy is still in force
    const result = await hopwarden.reload("test");
    expect(result).toMatchObject({ ok: true, changed: true, version: "v2", errors: [] });
    expect(await decisionOf(client)).toBe("hop_not_allowed");

    await writeFile(file, policyWithUnknownKey({ version: "v3-bad" }));
    const refused = await hopwarden.reload("test");
    expect(refused.ok).toBe(false);
    expect(refused.version).toBe("v2");
    expect(refused.errors.join("\n")).toMatch(/:\d+:\d+: hops\[1\]\.methds: unknown key "methds"/);
    expect(await decisionOf(client)).toBe("hop_not_allowed");
  });

  // Decisions name their policy by version: one version for two rule sets leaves an auditor guessing.
  it("warns when an edit changes the rules but keeps the version, not when only a comment changed or the version moved", async () => {
    const dir = await tempDir();
    const file = join(dir, "policy.yaml");
    await writeFile(file, testPolicyYaml({ version: "v1" }));
    const { hopwarden, client, log } = await serve(file, { watchPolicy: false });
    const versionUnchanged = () => log.events("policy_version_unchanged");

    // A comment added is a new file, reloaded, but the same rules: no warning.
    await writeFile(file, `${testPolicyYaml({ version: "v1" })}\n# reviewed 2026-12-06\n`);
    expect(await hopwarden.reload("test")).toMatchObject({ ok: true, changed: true, version: "v1" });
    expect(versionUnchanged()).toHaveLength(0);

    await writeFile(file, policyWithoutResearchToDb({ version: "v1" }));
    expect(await hopwarden.reload("test")).toMatchObject({ ok: true, changed: true, version: "v1" });
    expect(await decisionOf(client)).toBe("hop_not_allowed");
    expect(versionUnchanged()).toHaveLength(1);
    expect(versionUnchanged()[0]).toMatchObject({ level: "warn", version: "v1", file });

    await writeFile(file, testPolicyYaml({ version: "v2" }));
    expect(await hopwarden.reload("test")).toMatchObject({ ok: true, changed: true, version: "v2" });
    expect(versionUnchanged()).toHaveLength(1);
  });

  it("records the reloaded policy version in the decision's metadata and span", async () => {
    const dir = await tempDir();
    const file = join(dir, "policy.yaml");
    await writeFile(file, testPolicyYaml({ version: "v1" }));
    const spans = new SpanCapture();
    const { hopwarden, client } = await serve(file, { watchPolicy: false, tracing: { export: undefined, transport: spans } });

    const versionOf = async () => {
      await hopwarden.flushSpans();
      spans.reset();
      const response = await client.check(researchCallsDb());
      expect(outcome(response).code).toBe(0);
      await hopwarden.flushSpans();
      const span = spans.spans().find((s) => s.name === "authz.check");
      return { metadata: response.dynamicMetadata?.["policy_version"], span: span?.attributes["authz.policy.version"] };
    };
    expect(await versionOf()).toEqual({ metadata: "v1", span: "v1" });

    await writeFile(file, testPolicyYaml({ version: "v2" }));
    expect((await hopwarden.reload("test")).version).toBe("v2");
    expect(await versionOf()).toEqual({ metadata: "v2", span: "v2" });
  });
});
