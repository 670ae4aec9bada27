// `--workers N` behind real Envoy (issue 11): Envoy multiplexes its Checks on
// few long-lived HTTP/2 connections, and node:cluster hands out connections,
// not calls. With the stock HTTP/2 settings, an Envoy with one worker thread
// sent every Check on one connection, so one hopwarden worker decided all
// 600 of them and the other sat idle (measured here). The shipped templates
// cap the streams per connection and replace a connection after 500 Checks;
// this test runs the shipped front proxy with one worker thread and counts
// which hopwarden worker decided each Check (decision log lines carry the
// worker id).

import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { eventually, killAllServes, requireBuiltCli, startServe, stopServe, type ServeProcess } from "./support/cli-process.js";
import { envoyBinary, mtlsRequest, startEchoUpstream, startFrontProxy, type EchoUpstream, type RunningProxy } from "./support/envoy.js";
import { PERSON } from "./support/hop-requests.js";
import { createTestPki, spiffe, writePki } from "./support/pki.js";
import { writeTestPolicy } from "./support/policies.js";

let dir: string;
let files: Awaited<ReturnType<typeof writePki>>;
let hopwarden: ServeProcess;
let research: EchoUpstream;
let proxy: RunningProxy;

beforeAll(async () => {
  requireBuiltCli();
  envoyBinary();
  dir = await mkdtemp(join(tmpdir(), "hopwarden-spread-"));
  const [pki, policy] = await Promise.all([createTestPki(), writeTestPolicy({ version: "spread-1" }, dir)]);
  files = await writePki(pki, join(dir, "pki"));
  [research, hopwarden] = await Promise.all([
    startEchoUpstream(),
    startServe(["--policy", policy.file, "--listen", "127.0.0.1:0", "--admin-listen", "off", "--workers", "2", "--log-level", "debug"], { env: { OTEL_TRACES_EXPORTER: "none" } }),
  ]);
  proxy = await startFrontProxy({ server: files.server!, caFile: files.ca.cert, hopwardenPort: Number(hopwarden.grpc.split(":").at(-1)), researchPort: research.port, dbPort: research.port, dir, concurrency: 1 });
}, 60_000);

afterAll(async () => {
  await proxy?.stop();
  if (hopwarden !== undefined) await stopServe(hopwarden);
  await killAllServes();
  await research?.close();
  if (dir !== undefined) await rm(dir, { recursive: true, force: true });
});

function callResearch() {
  return mtlsRequest({
    port: proxy.port,
    authority: "research",
    path: "/summarize",
    ca: files.ca.cert,
    cert: files.orchestrator!.cert,
    key: files.orchestrator!.key,
    headers: { "x-agent-subject": spiffe("orchestrator"), "x-agent-on-behalf-of": PERSON },
  });
}

function decisionsByWorker(stderr: string): Map<number, number> {
  const counts = new Map<number, number>();
  for (const line of stderr.split("\n")) {
    if (!line.includes('"msg":"decision"')) continue;
    const worker = (JSON.parse(line) as { worker?: number }).worker ?? 0;
    counts.set(worker, (counts.get(worker) ?? 0) + 1);
  }
  return counts;
}

describe("Checks from Envoy reach every worker", () => {
  it("spreads concurrent Checks over both workers", async () => {
    // Envoy's first health check must pass before it sends Checks.
    expect(await eventually(async () => (await callResearch()).status === 200, 15_000, 200)).toBe(true);
    const before = decisionsByWorker(hopwarden.stderr());
    const total = 3000;
    let next = 0;
    await Promise.all(
      Array.from({ length: 48 }, async () => {
        while (next < total) {
          next++;
          expect((await callResearch()).status).toBe(200);
        }
      }),
    );
    await new Promise((r) => setTimeout(r, 300));
    const after = decisionsByWorker(hopwarden.stderr());
    const counts = [...after].map(([w, n]) => n - (before.get(w) ?? 0));
    process.stderr.write(`[spread] decisions per worker: ${JSON.stringify(Object.fromEntries([...after].map(([w, n]) => [w, n - (before.get(w) ?? 0)])))}\n`);
    expect(counts.reduce((a, b) => a + b, 0)).toBeGreaterThanOrEqual(total);
    expect(counts.length).toBe(2);
    // Connections are replaced every 500 Checks and handed out in turn (health
    // checks take turns too), so the split is uneven under a loaded machine
    // (45/55 to 25/75 measured); before, it was 100/0.
    expect(Math.min(...counts)).toBeGreaterThan(total * 0.1);
    // 3,000 mTLS calls through Envoy, each logged at debug: 14–19 s on 2 shared cores, too close to the 20 s default.
  }, 60_000);
});
