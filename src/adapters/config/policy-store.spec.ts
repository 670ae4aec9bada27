// The policy store does not parse the same refused files twice on its own:
// a poll or file event that finds them as they were answers with the last
// refusal, since a large invalid file would hold the event loop for its parse
// at every poll. SIGHUP and the admin Reload always read again, and a file
// the refusal could not read (a CRL named before it exists) counts as changed
// once it appears.

import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { silentLogger } from "../logging/logger.js";
import { createTestPki, type TestPki } from "../../../test/support/pki.js";
import { testPolicyYaml } from "../../../test/support/policies.js";
import type * as policyFile from "./policy-file.js";
import { loadPolicyText } from "./policy-file.js";
import { PolicyFileError, PolicyStore, readPolicyFile } from "./policy-store.js";

vi.mock("./policy-file.js", async (importOriginal) => {
  const original = await importOriginal<typeof policyFile>();
  return { ...original, loadPolicyText: vi.fn(original.loadPolicyText) };
});

const parses = () => vi.mocked(loadPolicyText).mock.calls.length;

let dir: string;
let file: string;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "hopwarden-store-"));
  file = join(dir, "policy.yaml");
  await writeFile(file, testPolicyYaml({ version: "v1" }));
});

afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function startedStore(): Promise<PolicyStore> {
  const store = new PolicyStore(file, silentLogger);
  await store.loadInitial();
  return store;
}

const INVALID = testPolicyYaml({ version: "v2" }).replace("hops:", "hopz:");

describe("a refused policy file", () => {
  it("is parsed once by the poll and file events while it stays as it was, and again when asked or changed", async () => {
    const store = await startedStore();
    await writeFile(file, INVALID);
    const first = await store.reload("poll");
    expect(first.ok).toBe(false);
    expect(first.errors.join("\n")).toMatch(/hopz/);
    const afterRefusal = parses();

    for (const trigger of ["poll", "file-watch", "poll"]) {
      expect(await store.reload(trigger), trigger).toEqual({ ok: false, changed: false, version: "v1", errors: first.errors });
    }
    expect(parses()).toBe(afterRefusal);

    // Asked for: read and parsed again.
    expect((await store.reload("SIGHUP")).ok).toBe(false);
    expect(parses()).toBe(afterRefusal + 1);

    // Changed (still broken, in another way): parsed again, with its own errors.
    await writeFile(file, INVALID.replace("hopz:", "hopy:"));
    const second = await store.reload("poll");
    expect(second.errors.join("\n")).toMatch(/hopy/);
    expect(parses()).toBe(afterRefusal + 2);

    // Fixed: loaded.
    await writeFile(file, testPolicyYaml({ version: "v3" }));
    expect(await store.reload("poll")).toMatchObject({ ok: true, changed: true, version: "v3" });
    expect(store.current()?.version).toBe("v3");
  });

  it("is read again once a CRL it named but could not read appears", async () => {
    const pki: TestPki = await createTestPki();
    const store = await startedStore();
    await writeFile(join(dir, "ca.pem"), pki.ca.certPem);
    await writeFile(file, testPolicyYaml({ version: "v2" }).replace("revoked:\n", "revoked:\n  crl: crl.pem\n  crlIssuer: ca.pem\n"));
    const refused = await store.reload("poll");
    expect(refused.ok).toBe(false);
    expect(refused.errors.join("\n")).toMatch(/revoked\.crl: cannot read .*crl\.pem \(ENOENT\)/);
    const afterRefusal = parses();
    expect((await store.reload("poll")).ok).toBe(false);
    expect(parses()).toBe(afterRefusal);

    await writeFile(join(dir, "crl.pem"), await pki.ca.crl([pki.agents.db.serialHex]));
    expect(await store.reload("poll")).toMatchObject({ ok: true, changed: true, version: "v2" });
    expect(parses()).toBe(afterRefusal + 1);
  });

  it("is parsed again after the file in force came back and broke the same way once more", async () => {
    const store = await startedStore();
    await writeFile(file, INVALID);
    expect((await store.reload("poll")).ok).toBe(false);
    await writeFile(file, testPolicyYaml({ version: "v1" }));
    expect(await store.reload("poll")).toMatchObject({ ok: true, changed: false, version: "v1" });
    const beforeBreak = parses();
    await writeFile(file, INVALID);
    expect((await store.reload("poll")).ok).toBe(false);
    expect(parses()).toBe(beforeBreak + 1);
  });
});

describe("readPolicyFile's refusal", () => {
  it("names the files it read and a digest that moves with their bytes", async () => {
    await writeFile(file, INVALID);
    const refusal = async () => {
      try {
        await readPolicyFile(file);
      } catch (err) {
        if (err instanceof PolicyFileError) return err.sources;
      }
      throw new Error("the file was not refused");
    };
    const first = await refusal();
    expect(first?.paths).toEqual([file]);
    expect(first?.sha256).toMatch(/^[0-9a-f]{64}$/);
    expect((await refusal())?.sha256).toBe(first?.sha256);
    await writeFile(file, `${INVALID}# one more line\n`);
    expect((await refusal())?.sha256).not.toBe(first?.sha256);
  });
});
