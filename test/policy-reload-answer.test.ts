// SPEC 7, the admin Reload of the built CLI answers for the policy file as it
// is when Reload is called, also when a reload is already under way. The
// read under way may have begun before the caller's change: its outcome
// names the file as it was. Found by the reload-under-load suite (an admin
// Reload answered {"ok":true} with the version of the file before the one
// just renamed into place).
//
// The race is made deterministic with a policy whose CRL is a named pipe:
// the reload that the directory watch starts for that file stays blocked on
// the pipe until the test writes the CRL into it.

import { spawnSync } from "node:child_process";
import { constants, openSync, writeSync, closeSync } from "node:fs";
import { mkdtemp, rename, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { eventually, killAllServes, requireBuiltCli, startServe, stopServe } from "./support/cli-process.js";
import { createCertificateAuthority } from "./support/pki.js";
import { testPolicyYaml } from "./support/policies.js";

let dir: string;

beforeAll(async () => {
  requireBuiltCli();
  dir = await mkdtemp(join(tmpdir(), "hopwarden-reload-answer-"));
});

afterAll(async () => {
  await killAllServes();
  if (dir !== undefined) await rm(dir, { recursive: true, force: true });
});

async function adminCall(admin: string, method: "Reload" | "GetPolicy"): Promise<{ ok?: boolean; version: string }> {
  const response = await fetch(`http://${admin}/hopwarden.admin.v1.AdminService/${method}`, { method: "POST", headers: { "content-type": "application/json" }, body: "{}" });
  return (await response.json()) as { ok?: boolean; version: string };
}

/** Renames a new file over the policy, as a deploy or a ConfigMap update does. */
async function putPolicy(file: string, yaml: string): Promise<void> {
  const next = `${file}.next`;
  await writeFile(next, yaml);
  await rename(next, file);
}

/** The pipe's write end once a reader holds it open (O_NONBLOCK: ENXIO while nobody reads); undefined until then. */
function writerOnceRead(pipe: string): number | undefined {
  try {
    return openSync(pipe, constants.O_WRONLY | constants.O_NONBLOCK);
  } catch {
    return undefined;
  }
}

describe("admin Reload during a reload under way", () => {
  it("answers with the version of the file as it was when Reload was called, not the one the earlier read found", async () => {
    const pipe = join(dir, "slow.crl");
    expect(spawnSync("mkfifo", [pipe]).status).toBe(0);
    const crl = await (await createCertificateAuthority()).crl([]);
    const policy = join(dir, "policy.yaml");
    await writeFile(policy, testPolicyYaml({ version: "v1" }));
    const serve = await startServe(["--policy", policy, "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"]);
    let writer: number | undefined;
    try {
      // v2 names the pipe as its CRL: the reload the watch starts for it blocks reading the pipe.
      await putPolicy(policy, testPolicyYaml({ version: "v2" }).replace("revoked:\n", "revoked:\n  crl: slow.crl\n"));
      expect(await eventually(() => (writer = writerOnceRead(pipe)) !== undefined, 10_000), "the reload of v2 never opened its CRL").toBe(true);

      // While it waits: v3 goes in place, and an operator asks for a reload.
      await putPolicy(policy, testPolicyYaml({ version: "v3" }));
      const answer = adminCall(serve.admin, "Reload");
      await new Promise((r) => setTimeout(r, 300));
      writeSync(writer!, crl);
      closeSync(writer!);
      writer = undefined;

      expect(await answer).toEqual({ ok: true, version: "v3" });
      expect((await adminCall(serve.admin, "GetPolicy")).version).toBe("v3");
    } finally {
      if (writer !== undefined) closeSync(writer);
      await stopServe(serve);
    }
  });
});
