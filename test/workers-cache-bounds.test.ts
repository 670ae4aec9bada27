// `--config` `cache:` bounds every process that decides: with one process and
// with --workers 2 (each worker holds its own caches, so the primary's merged
// /metrics may show up to twice the bound). Found by the soak (issue 10):
// the workers used to start with the default bounds, whatever the config said.

import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { checkRequest } from "./support/check-client.js";
import { killAllServes, requireBuiltCli, startServe, stopServe } from "./support/cli-process.js";
import { OwnConnectionCheckClient } from "./support/hop-requests.js";
import { createTestPki, spiffe, type TestPki } from "./support/pki.js";
import { writeTestPolicy } from "./support/policies.js";

const HOP_ENTRIES = 5;
const CERTIFICATES = 2;

let dir: string;
let pki: TestPki;

beforeAll(async () => {
  requireBuiltCli();
  dir = await mkdtemp(join(tmpdir(), "hopwarden-cache-bounds-"));
  pki = await createTestPki();
  await writeFile(join(dir, "config.yaml"), `cache:\n  hopDecisions: ${HOP_ENTRIES}\n  certificates: ${CERTIFICATES}\n`);
}, 30_000);

afterAll(async () => {
  await killAllServes();
  if (dir !== undefined) await rm(dir, { recursive: true, force: true });
});

async function gauge(admin: string, name: string): Promise<number> {
  const text = await (await fetch(`http://${admin}/metrics`)).text();
  return text
    .split("\n")
    .filter((l) => l.startsWith(`${name}{`) || l.startsWith(`${name} `))
    .reduce((sum, l) => sum + Number(l.slice(l.lastIndexOf(" ") + 1)), 0);
}

describe("--config cache bounds", () => {
  for (const workers of [1, 2]) {
    it(`hold in every process with --workers ${workers}`, async () => {
      const { file } = await writeTestPolicy({}, dir);
      const serve = await startServe(["--policy", file, "--config", join(dir, "config.yaml"), "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0", "--workers", String(workers)]);
      // Four connections (the primary hands them to the workers in turn), three callers' certificates, 40 people.
      const clients = Array.from({ length: 4 }, () => new OwnConnectionCheckClient(serve.grpc));
      const callers = [pki.agents.orchestrator, pki.agents.planner, pki.agents.worker] as const;
      try {
        for (let i = 0; i < 40; i++) {
          const caller = callers[i % callers.length]!;
          const request = checkRequest({
            certificate: caller.urlEncodedPem,
            callee: "research",
            headers: { "x-agent-subject": spiffe(caller.name), "x-agent-on-behalf-of": `user${i}@example.com` },
          });
          // Allowed or denied, each is decided (and its hops cached); a gRPC error would throw.
          await clients[i % clients.length]!.check(request);
        }
        expect(await gauge(serve.admin, "hopwarden_hop_cache_entries")).toBeGreaterThan(0);
        expect(await gauge(serve.admin, "hopwarden_hop_cache_entries")).toBeLessThanOrEqual(HOP_ENTRIES * workers);
        expect(await gauge(serve.admin, "hopwarden_certificate_cache_entries")).toBeLessThanOrEqual(CERTIFICATES * workers);
      } finally {
        for (const c of clients) c.close();
        await stopServe(serve);
      }
    }, 30_000);
  }
});
