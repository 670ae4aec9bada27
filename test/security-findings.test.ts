// The security review's findings (issue 10), each reproduced against the
// running service (the built CLI in its own process) the way an attacker
// would send it: through the Check port or the admin port. Findings 2, 3, 8
// and 9 have suites of their own (audit log, replay store, TLS, record bounds).

import { readFile, rm, writeFile } from "node:fs/promises";
import { request as httpRequest } from "node:http";
import { join } from "node:path";
import { createGzip } from "node:zlib";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { create } from "@bufbuild/protobuf";
import { CheckRequestSchema, type CheckRequest } from "../src/gen/envoy/service/auth/v3/external_auth_pb.js";
import { CheckClient, outcome } from "./support/check-client.js";
import { killAllServes, requireBuiltCli, startServe, stopServe, eventually, type ServeProcess } from "./support/cli-process.js";
import { decisionOf, PERSON, researchCallsDb } from "./support/hop-requests.js";
import { spiffe } from "./support/pki.js";
import { TEST_HOPS, testPolicyYaml, writeTestPolicy } from "./support/policies.js";

/** research → reports, any path under /reports/. */
const REPORTS_RULE = { from: "research", to: "spiffe://example.org/agent/reports", paths: ["/reports/**"] };

let dir: string;
let policyFile: string;
let serve: ServeProcess;
let client: CheckClient;

function policyText(version: string, onBehalfOf: readonly string[] = ["*@*.example.com", "*@example.com"]): string {
  return testPolicyYaml({ version, onBehalfOf, hops: [REPORTS_RULE, ...TEST_HOPS] });
}

beforeAll(async () => {
  requireBuiltCli();
  ({ dir, file: policyFile } = await writeTestPolicy());
  await writeFile(policyFile, policyText("findings-1"));
  serve = await startServe(["--policy", policyFile, "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"], { env: { OTEL_TRACES_EXPORTER: "none" } });
  client = new CheckClient(serve.grpc);
});

afterAll(async () => {
  client?.close();
  if (serve !== undefined) await stopServe(serve);
  await killAllServes();
  if (dir !== undefined) await rm(dir, { recursive: true, force: true });
});

/** research → reports for alice, GET <path>: admitted only by the "/reports/**" rule. */
function researchCallsReports(path: string): CheckRequest {
  const request = researchCallsDb();
  request.attributes!.contextExtensions = { agent: spiffe("reports") };
  request.attributes!.request!.http!.path = path;
  return request;
}

async function metric(name: string): Promise<number> {
  const text = await (await fetch(`http://${serve.admin}/metrics`)).text();
  const line = text.split("\n").find((l) => l.startsWith(`${name} `) || l.startsWith(`${name}{`));
  return line === undefined ? 0 : Number(line.slice(line.lastIndexOf(" ") + 1));
}

/** The highest resident set size the process has reached (kB), from /proc. */
async function peakRssKb(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, "utf8");
  return Number(/VmHWM:\s+(\d+) kB/.exec(status)?.[1] ?? NaN);
}

function post(path: string, body: Buffer | AsyncIterable<Buffer>, headers: Record<string, string>): Promise<{ status: number; body: string }> {
  const [host, port] = serve.admin.split(":");
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host, port: Number(port), path, method: "POST", headers }, (res) => {
      let text = "";
      res.setEncoding("utf8").on("data", (d: string) => (text += d));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body: text }));
    });
    req.on("error", reject);
    if (Buffer.isBuffer(body)) req.end(body);
    else
      void (async () => {
        for await (const chunk of body) if (!req.write(chunk)) await new Promise((r) => req.once("drain", r));
        req.end();
      })().catch(reject);
  });
}

/** ~256 MB of spaces, gzip'd in a stream to about 250 KiB without holding it in memory. */
async function gzipBomb(): Promise<Buffer> {
  const gzip = createGzip({ level: 9 });
  const chunks: Buffer[] = [];
  gzip.on("data", (c: Buffer) => chunks.push(c));
  const done = new Promise((r) => gzip.on("end", r));
  const mb = Buffer.alloc(1024 * 1024, 0x20);
  for (let i = 0; i < 256; i++) if (!gzip.write(mb)) await new Promise((r) => gzip.once("drain", r));
  gzip.end();
  await done;
  return Buffer.concat(chunks);
}

describe("finding 1: the admin port cannot be made to allocate", () => {
  it("refuses a gzip body that would inflate to 256 MB, without inflating it", async () => {
    const bomb = await gzipBomb();
    expect(bomb.length).toBeLessThan(300 * 1024);
    const before = await peakRssKb(serve.pid);
    for (let i = 0; i < 3; i++) {
      const res = await post("/hopwarden.admin.v1.AdminService/Explain", bomb, { "content-type": "application/json", "content-encoding": "gzip" });
      expect(res.status).not.toBe(200);
    }
    const after = await peakRssKb(serve.pid);
    expect(after - before).toBeLessThan(64 * 1024);
    expect(await decisionOf(client)).toBe("allow");
  });

  it("refuses a plain body over 64 KiB", async () => {
    const body = Buffer.from(JSON.stringify({ caller: spiffe("research"), path: `/${"a".repeat(70 * 1024)}` }));
    const res = await post("/hopwarden.admin.v1.AdminService/Explain", body, { "content-type": "application/json" });
    expect(res.status).not.toBe(200);
    expect(res.body).toMatch(/resource_exhausted|larger than/);
  });

  it("still answers a small Explain", async () => {
    const body = Buffer.from(JSON.stringify({ caller: spiffe("research"), callee: "db", path: "/query" }));
    const res = await post("/hopwarden.admin.v1.AdminService/Explain", body, { "content-type": "application/json" });
    expect(res.status).toBe(200);
  });
});

describe("finding 4: no pattern and no input can stall Check", () => {
  it("answers an on-behalf-of of 60 KiB '@' under `*@*.example.com` at once, and denies it", async () => {
    const request = researchCallsDb({ "x-agent-on-behalf-of": "@".repeat(60 * 1024) });
    const started = performance.now();
    const o = outcome(await client.check(request));
    const tookMs = performance.now() - started;
    expect(o.reason).toBe("on_behalf_of_not_allowed");
    // The backtracking RegExp took 381 ms at 20k characters, seconds at 60 KiB.
    expect(tookMs).toBeLessThan(250);
  });

  it("matches the longest on-behalf-of the bound lets through, in time", async () => {
    const value = `${"@".repeat(2040)}.example.com`.slice(-2048);
    const started = performance.now();
    for (let i = 0; i < 20; i++) await client.check(researchCallsDb({ "x-agent-on-behalf-of": value }));
    expect((performance.now() - started) / 20).toBeLessThan(50);
  });
});

describe("finding 5: the hop cache is bounded in bytes and ignores query strings", () => {
  it("keeps one entry for many 50 KB query strings", async () => {
    const entriesBefore = await metric("hopwarden_hop_cache_entries");
    for (let i = 0; i < 200; i++) {
      const o = outcome(await client.check(researchCallsReports(`/reports/q?x=${i}${"z".repeat(50_000)}`)));
      expect(o.code).toBe(0);
    }
    expect((await metric("hopwarden_hop_cache_entries")) - entriesBefore).toBeLessThanOrEqual(2);
    expect(await metric("hopwarden_hop_cache_bytes")).toBeLessThan(64 * 1024);
  });
});

describe("finding 6: paths an upstream resolves elsewhere match no path rule", () => {
  it("allows the plain path under /reports/**", async () => {
    expect(outcome(await client.check(researchCallsReports("/reports/2026/q3"))).code).toBe(0);
  });

  it.each(["/reports/..;/admin", "/reports/%2e%2e;/admin", "/reports/%252e%252e/%252e%252e/admin", "/reports/%252F..%252Fadmin", "/reports/a\u0001b", "/reports/caf\u00e9"])(
    "denies %j with hop_not_allowed",
    async (path) => {
      expect(outcome(await client.check(researchCallsReports(path))).reason).toBe("hop_not_allowed");
    },
  );

  it("denies a path over 8 KiB", async () => {
    expect(outcome(await client.check(researchCallsReports(`/reports/${"a".repeat(8 * 1024)}`))).reason).toBe("hop_not_allowed");
  });
});

describe("finding 7: one principal, and no merged security headers", () => {
  it("denies an on-behalf-of naming two principals, as Envoy joins a repeated header", async () => {
    expect(await decisionOf(client, researchCallsDb({ "x-agent-on-behalf-of": "mallory@evil.com,x@example.com" }))).toBe("on_behalf_of_not_allowed");
    expect(await decisionOf(client, researchCallsDb({ "x-agent-on-behalf-of": "x@example.com alice@example.com" }))).toBe("on_behalf_of_not_allowed");
  });

  const HEADERS = {
    "x-agent-subject": spiffe("research"),
    "x-agent-on-behalf-of": PERSON,
    "x-agent-delegation-chain": `${spiffe("orchestrator")},${spiffe("research")}`,
  };

  /** researchCallsDb as a proxyless client or encode_raw_headers sends it: header_map, with `repeat` sent twice. */
  function inHeaderMap(repeat?: keyof typeof HEADERS | "x-agent-delegation-token", token?: string): CheckRequest {
    const entries = Object.entries({ ...HEADERS, ...(token !== undefined && { "x-agent-delegation-token": token }) }).map(([key, value]) => ({ key, value }));
    if (repeat !== undefined) entries.push({ key: repeat.toUpperCase(), value: entries.find((e) => e.key === repeat)!.value });
    return create(CheckRequestSchema, {
      attributes: {
        source: { principal: spiffe("research") },
        contextExtensions: { agent: "db" },
        request: { http: { method: "GET", path: "/query", headerMap: { headers: entries } } },
      },
    });
  }

  it("allows the request sent in header_map once", async () => {
    expect(await decisionOf(client, inHeaderMap())).toBe("allow");
  });

  it.each([
    ["x-agent-subject", "subject_mismatch"],
    ["x-agent-on-behalf-of", "on_behalf_of_not_allowed"],
    ["x-agent-delegation-chain", "malformed_chain"],
  ] as const)("refuses %s sent twice in header_map with %s", async (header, reason) => {
    expect(await decisionOf(client, inHeaderMap(header))).toBe(reason);
  });

  it("refuses a delegation token sent twice with token_invalid", async () => {
    expect(await decisionOf(client, inHeaderMap("x-agent-delegation-token", "a.b.c"))).toBe("token_invalid");
  });
});

describe("finding 10: a poll or file event that finds the same content is not a reload", () => {
  it("counts no reload for touches and rewrites of the same content, and one for a real change", async () => {
    const before = await metric("hopwarden_policy_reloads_total");
    const same = policyText("findings-1");
    for (let i = 0; i < 5; i++) {
      await writeFile(policyFile, same);
      await writeFile(join(dir, `unrelated-${i}.txt`), "x");
      await new Promise((r) => setTimeout(r, 150));
    }
    await new Promise((r) => setTimeout(r, 400));
    expect(await metric("hopwarden_policy_reloads_total")).toBe(before);
    expect(serve.stderr()).not.toMatch(/"policy loaded"[^\n]*findings-1/);

    await writeFile(policyFile, policyText("findings-2"));
    expect(await eventually(async () => (await metric("hopwarden_policy_reloads_total")) === before + 1, 5_000)).toBe(true);
  });
});
