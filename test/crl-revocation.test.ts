// Revocation from a loaded CRL (SPEC 2 check 2), through the running server:
// a certificate whose serial the CRL lists is denied revoked_identity, a new
// CRL takes effect on reload, and a CRL that does not verify is refused.

import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startHopwarden, type Hopwarden } from "../src/main.js";
import { readPolicyFile, PolicyFileError } from "../src/adapters/config/policy-store.js";
import { captureLogger, type CapturedLogger } from "./support/audit-fixtures.js";
import { createTestPki, spiffe, type TestPki } from "./support/pki.js";
import { writeTestPolicy } from "./support/policies.js";
import { CheckClient, checkRequest, outcome } from "./support/check-client.js";

let pki: TestPki;
let dir: string;
let file: string;
let hopwarden: Hopwarden;
let client: CheckClient;
let log: CapturedLogger;

const researchCallsDb = () =>
  checkRequest({
    certificate: pki.agents.research.urlEncodedPem,
    callee: "db",
    path: "/query",
    headers: { "x-agent-subject": spiffe("research"), "x-agent-on-behalf-of": "alice@example.com", "x-agent-delegation-chain": `${spiffe("orchestrator")},${spiffe("research")}` },
  });

beforeAll(async () => {
  pki = await createTestPki();
  ({ dir, file } = await writeTestPolicy({ extra: "" }));
  // The CRL lists research's certificate, in a different spelling (upper case, leading zeros).
  await writeFile(join(dir, "crl.pem"), await pki.ca.crl([`00${pki.agents.research.serialHex}`.toUpperCase()]));
  await writeFile(join(dir, "ca.pem"), pki.ca.certPem);
  const text = (await import("node:fs/promises")).readFile(file, "utf8");
  await writeFile(file, (await text).replace("revoked:\n", "revoked:\n  crl: crl.pem\n  crlIssuer: ca.pem\n"));
  log = captureLogger();
  hopwarden = await startHopwarden({ policyFile: file, listen: "127.0.0.1:0", logger: log.logger, tracing: false, watchPolicy: false });
  client = new CheckClient(hopwarden.grpcAddress);
});

afterAll(async () => {
  client?.close();
  await hopwarden?.shutdown(2000);
});

describe("revocation from a CRL", () => {
  it("denies a certificate whose serial the CRL lists with revoked_identity", async () => {
    const o = outcome(await client.check(researchCallsDb()));
    expect(o.reason).toBe("revoked_identity");
    expect(o.http).toBe(403);
  });

  it("takes a new CRL on reload: a certificate no longer listed is allowed again", async () => {
    await writeFile(join(dir, "crl.pem"), await pki.ca.crl([pki.agents.db.serialHex]));
    const reload = await hopwarden.reload("test");
    expect(reload.ok).toBe(true);
    expect(reload.changed).toBe(true);
    expect(outcome(await client.check(researchCallsDb())).code).toBe(0);
    // A new CRL under the same policy version is routine: no warning about the version.
    expect(log.events("policy_version_unchanged")).toEqual([]);
  });

  it("refuses a CRL signed by another CA, keeping the last good policy", async () => {
    await writeFile(join(dir, "crl.pem"), await pki.foreignCa.crl([pki.agents.research.serialHex]));
    const reload = await hopwarden.reload("test");
    expect(reload.ok).toBe(false);
    expect(reload.errors.join("\n")).toMatch(/revoked\.crl: crl\.pem has a signature that does not verify/);
    expect(outcome(await client.check(researchCallsDb())).code).toBe(0);
    await expect(readPolicyFile(file)).rejects.toBeInstanceOf(PolicyFileError);
  });
});
