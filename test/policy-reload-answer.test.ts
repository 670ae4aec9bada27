// SPEC 3 and 7, reloads that overlap, on the built CLI: what a reload
// answers and installs is the policy file as it is when the reload is asked
// for, also when another read of it is under way. Found by the
// reload-under-load suite (an admin Reload answered {"ok":true} with the
// version of the file before the one just renamed into place).
//
// The overlap is made deterministic with a policy whose CRL is a named pipe:
// the read of that policy stays blocked on the pipe until the test lets it
// go; every later read of the pipe is served at once.

import { spawnSync } from "node:child_process";
import { closeSync, constants, openSync, writeSync } from "node:fs";
import { mkdtemp, rename, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { eventually, killAllServes, requireBuiltCli, startServe, stopServe } from "./support/cli-process.js";
import { createCertificateAuthority } from "./support/pki.js";
import { testPolicyYaml } from "./support/policies.js";

let dir: string;
let crl: string;

beforeAll(async () => {
  requireBuiltCli();
  dir = await mkdtemp(join(tmpdir(), "hopwarden-reload-answer-"));
  crl = await (await createCertificateAuthority()).crl([]);
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

/** The policy of `version` with the pipe as its CRL. */
const withPipedCrl = (version: string) => testPolicyYaml({ version }).replace("revoked:\n", "revoked:\n  crl: slow.crl\n");

/** A named pipe whose first reader waits for release(); every reader after it gets the CRL at once. */
interface HeldPipe {
  /** Resolves once a reader holds the pipe open (the first read is under way). */
  readonly opened: Promise<boolean>;
  release(): void;
  close(): void;
}

function holdPipe(path: string, content: string): HeldPipe {
  expect(spawnSync("mkfifo", [path]).status).toBe(0);
  // O_NONBLOCK: opening the write end fails (ENXIO) while nobody reads.
  const writer = () => {
    try {
      return openSync(path, constants.O_WRONLY | constants.O_NONBLOCK);
    } catch {
      return undefined;
    }
  };
  const serve = (fd: number) => {
    writeSync(fd, content);
    closeSync(fd);
  };
  let first: number | undefined;
  let feeding: NodeJS.Timeout | undefined;
  const opened = eventually(() => (first = writer()) !== undefined, 10_000, 5);
  return {
    opened,
    release: () => {
      serve(first!);
      feeding = setInterval(() => {
        const fd = writer();
        if (fd !== undefined) serve(fd);
      }, 5);
    },
    close: () => clearInterval(feeding),
  };
}

describe("overlapping reloads", () => {
  it("an admin Reload made while a read is under way answers for the file as it was when Reload was called", async () => {
    const sub = await mkdtemp(join(dir, "answer-"));
    const pipe = holdPipe(join(sub, "slow.crl"), crl);
    const policy = join(sub, "policy.yaml");
    await writeFile(policy, testPolicyYaml({ version: "v1" }));
    const serve = await startServe(["--policy", policy, "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"]);
    try {
      // v2's read (started by the directory watch) blocks on its CRL.
      await putPolicy(policy, withPipedCrl("v2"));
      expect(await pipe.opened, "the reload of v2 never opened its CRL").toBe(true);
      // While it waits: v3 goes in place, and an operator asks for a reload.
      await putPolicy(policy, testPolicyYaml({ version: "v3" }));
      const answer = adminCall(serve.admin, "Reload");
      await new Promise((r) => setTimeout(r, 300));
      pipe.release();

      expect(await answer).toEqual({ ok: true, version: "v3" });
      expect((await adminCall(serve.admin, "GetPolicy")).version).toBe("v3");
    } finally {
      pipe.close();
      await stopServe(serve);
    }
  });

  it("a file replaced while a reload reads it is loaded afterwards, not taken for the one just loaded", async () => {
    const sub = await mkdtemp(join(dir, "replaced-"));
    const pipe = holdPipe(join(sub, "slow.crl"), crl);
    const policy = join(sub, "policy.yaml");
    await writeFile(policy, testPolicyYaml({ version: "v1" }));
    const serve = await startServe(["--policy", policy, "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"]);
    try {
      // v2's read blocks on its CRL; v3 (same CRL) replaces the file before that read ends.
      await putPolicy(policy, withPipedCrl("v2"));
      expect(await pipe.opened, "the reload of v2 never opened its CRL").toBe(true);
      await putPolicy(policy, withPipedCrl("v3"));
      pipe.release();

      // The watch saw v3 arrive; SIGHUP and an admin Reload ask again. v3 must be in force.
      const v3 = await eventually(async () => (await adminCall(serve.admin, "GetPolicy")).version === "v3", 3_000);
      serve.child.kill("SIGHUP");
      const reload = await adminCall(serve.admin, "Reload");
      expect({ v3InForceWithin3s: v3, reload }).toEqual({ v3InForceWithin3s: true, reload: { ok: true, version: "v3" } });
    } finally {
      pipe.close();
      await stopServe(serve);
    }
  });
});
