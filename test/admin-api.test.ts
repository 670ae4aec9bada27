// SPEC 7, the admin port over the real Connect protocol (a connect-node
// client, HTTP/1.1, JSON and binary): Explain (shorthand and a full
// CheckRequest) returns the hop table and reason; GetPolicy the policy in
// force; Reload applies an edit or refuses an invalid one with errors naming
// line and field; /metrics counts decisions by outcome and reason; /healthz.

import { rm, writeFile } from "node:fs/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createClient, type Client } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { startHopwarden, type Hopwarden } from "../src/main.js";
import { silentLogger } from "../src/adapters/logging/logger.js";
import { create } from "@bufbuild/protobuf";
import { AdminService } from "../src/gen/hopwarden/admin/v1/admin_pb.js";
import { CheckRequestSchema } from "../src/gen/envoy/service/auth/v3/external_auth_pb.js";
import { MetadataSchema } from "../src/gen/envoy/config/core/v3/base_pb.js";
import { CheckClient } from "./support/check-client.js";
import { spiffe } from "./support/pki.js";
import { testPolicyYaml, writeTestPolicy } from "./support/policies.js";
import { decisionOf, PERSON, policyWithoutResearchToDb, policyWithUnknownKey, researchCallsDb } from "./support/hop-requests.js";

let hopwarden: Hopwarden;
let policyFile: string;
let policyDir: string;
let admin: Client<typeof AdminService>;
let adminBinary: Client<typeof AdminService>;
let checks: CheckClient;
let baseUrl: string;

beforeAll(async () => {
  ({ dir: policyDir, file: policyFile } = await writeTestPolicy({ version: "admin-1" }));
  hopwarden = await startHopwarden({ policyFile, listen: "127.0.0.1:0", adminListen: "127.0.0.1:0", logger: silentLogger, tracing: false, watchPolicy: false });
  baseUrl = `http://${hopwarden.adminAddress!}`;
  admin = createClient(AdminService, createConnectTransport({ baseUrl, httpVersion: "1.1" }));
  adminBinary = createClient(AdminService, createConnectTransport({ baseUrl, httpVersion: "1.1", useBinaryFormat: true }));
  checks = new CheckClient(hopwarden.grpcAddress);
});

afterAll(async () => {
  checks?.close();
  await hopwarden?.shutdown(2000);
  if (policyDir !== undefined) await rm(policyDir, { recursive: true, force: true });
});

describe("Explain", () => {
  const shorthand = (method: string) => ({
    caller: spiffe("research"),
    callee: "db",
    headers: { "X-Agent-On-Behalf-Of": PERSON, "x-agent-subject": spiffe("research"), "x-agent-delegation-chain": `${spiffe("orchestrator")},${spiffe("research")}` },
    method,
    path: "/query",
  });

  it("explains an allowed shorthand request hop by hop", async () => {
    const e = await admin.explain(shorthand("GET"));
    expect(e).toMatchObject({ decision: "allow", reason: "allowed", policyVersion: "admin-1", caller: spiffe("research"), callee: spiffe("db"), onBehalfOf: PERSON, httpStatus: 200, grpcStatus: 0 });
    expect(e.chain).toEqual([spiffe("orchestrator"), spiffe("research")]);
    expect(e.hops.map(({ from, to, rule, result }) => ({ from, to, rule, result }))).toEqual([
      { from: spiffe("orchestrator"), to: spiffe("research"), rule: "hops[0]", result: "allow" },
      { from: spiffe("research"), to: spiffe("db"), rule: "hops[1]", result: "allow" },
    ]);
  });

  it("explains a denial with its reason and the hop that failed", async () => {
    const e = await admin.explain(shorthand("DELETE"));
    expect(e).toMatchObject({ decision: "deny", reason: "hop_not_allowed", httpStatus: 403, grpcStatus: 7 });
    expect(e.message).toContain("DELETE");
    expect(e.hops.at(-1)).toMatchObject({ from: spiffe("research"), to: spiffe("db"), result: "deny" });
  });

  it("explains a full CheckRequest as Envoy sends it, in JSON and in binary", async () => {
    for (const client of [admin, adminBinary]) {
      const e = await client.explain({ checkRequest: researchCallsDb() });
      expect(e).toMatchObject({ decision: "allow", reason: "allowed", caller: spiffe("research"), callee: spiffe("db") });
      expect(e.hops).toHaveLength(2);
    }
    const denied = await admin.explain({ checkRequest: researchCallsDb({ "x-agent-delegation-chain": spiffe("research"), "x-agent-subject": spiffe("orchestrator") }) });
    expect(denied).toMatchObject({ decision: "deny", reason: "subject_mismatch", httpStatus: 403 });
  });

  it("decides a full CheckRequest exactly as Check does, through the same decoder (header_map, repeated and non-UTF-8 headers)", async () => {
    const headerMap = (entries: { key: string; value?: string; rawValue?: Uint8Array }[]) =>
      create(CheckRequestSchema, {
        attributes: { source: { principal: spiffe("research") }, contextExtensions: { agent: "db" }, request: { http: { method: "GET", path: "/query", headerMap: { headers: entries } } } },
      });
    const chain = `${spiffe("orchestrator")},${spiffe("research")}`;
    const base = [
      { key: "X-Agent-Subject", value: spiffe("research") },
      { key: "x-agent-on-behalf-of", rawValue: new TextEncoder().encode(PERSON) },
      { key: "x-agent-delegation-chain", value: chain },
    ];
    const cases = [
      [headerMap(base), "allow"],
      [headerMap([...base, { key: "X-AGENT-ON-BEHALF-OF", value: PERSON }]), "on_behalf_of_not_allowed"],
      // A raw_value that is not UTF-8 is refused with its header's reason, never read as the text it resembles.
      [headerMap([...base.slice(0, 2), { key: "x-agent-delegation-chain", rawValue: Uint8Array.from([...Buffer.from(chain), 0xff]) }]), "malformed_chain"],
      // A header Check does not read is not decoded: its bytes cannot fail the request.
      [headerMap([...base, { key: "x-latin1", rawValue: Uint8Array.from([0x63, 0x61, 0x66, 0xe9]) }]), "allow"],
    ] as const;
    for (const [request, expected] of cases) {
      const e = await admin.explain({ checkRequest: request });
      expect(e.decision === "allow" ? "allow" : e.reason).toBe(expected);
      expect(await decisionOf(checks, request)).toBe(expected);
    }
  });

  it("SPEC 8: shows how the caller was bound and the MCP facts, from the shorthand or from a CheckRequest's metadata_context", async () => {
    const e = await admin.explain({ ...shorthand("POST"), mcpMethod: "tools/call", mcpTool: "search_docs" });
    expect(e).toMatchObject({ decision: "allow", callerBinding: "principal", mcpMethod: "tools/call", mcpTool: "search_docs", mcpResource: "", txn: "" });
    const withMetadata = researchCallsDb();
    withMetadata.attributes!.metadataContext = create(MetadataSchema, {
      filterMetadata: { "envoy.filters.http.mcp": { is_mcp_request: true, method: "resources/read", params: { uri: "file:///docs/a.md" } } },
    });
    expect(await admin.explain({ checkRequest: withMetadata })).toMatchObject({ decision: "allow", callerBinding: "principal", mcpMethod: "resources/read", mcpTool: "", mcpResource: "file:///docs/a.md" });
    expect(await admin.explain(shorthand("GET"))).toMatchObject({ mcpMethod: "" });
  });

  it("records nothing: explained requests are not counted as decisions", async () => {
    const before = await decisionCount("allow", "allowed");
    await admin.explain(shorthand("GET"));
    expect(await decisionCount("allow", "allowed")).toBe(before);
  });
});

describe("GetPolicy", () => {
  it("returns the version, source, hash and rule counts of the policy in force", async () => {
    const p = await admin.getPolicy({});
    const current = hopwarden.policies.current()!;
    expect(p).toMatchObject({ version: current.version, source: hopwarden.policies.file, sha256: current.sha256, agents: 5, hopRules: 6 });
    expect(p.sha256).toMatch(/^[0-9a-f]{64}$/);
    expect(Number.isNaN(Date.parse(p.loadedAt))).toBe(false);
  });
});

// DNS rebinding: a page whose name now points at the admin address calls it as its own origin (review finding).
describe("a browser", () => {
  it("is refused: any request with an Origin header gets 403, and Reload does not run", async () => {
    const inForce = (await admin.getPolicy({})).version;
    await writeFile(policyFile, testPolicyYaml({ version: "admin-rebound" }));
    for (const method of ["Reload", "GetPolicy", "Explain"]) {
      const response = await fetch(`${baseUrl}/hopwarden.admin.v1.AdminService/${method}`, {
        method: "POST",
        headers: { "content-type": "application/json", origin: "http://rebound.example:9192" },
        body: "{}",
      });
      expect(response.status, method).toBe(403);
      expect(await response.text()).toContain("Origin");
    }
    expect((await admin.getPolicy({})).version).toBe(inForce);
  });
});

describe("Reload", () => {
  it("applies an edit and returns the new version", async () => {
    await writeFile(policyFile, policyWithoutResearchToDb({ version: "admin-2" }));
    const r = await admin.reload({});
    expect(r).toMatchObject({ ok: true, version: "admin-2", errors: [] });
    expect(await admin.getPolicy({})).toMatchObject({ version: "admin-2", hopRules: 5 });
    expect(await decisionOf(checks)).toBe("hop_not_allowed");
  });

  it("refuses an invalid edit with errors naming line and field, and keeps the policy in force", async () => {
    await writeFile(policyFile, policyWithUnknownKey({ version: "admin-3-bad" }));
    const r = await admin.reload({});
    expect(r.ok).toBe(false);
    expect(r.version).toBe("admin-2");
    expect(r.errors.length).toBeGreaterThan(0);
    expect(r.errors.some((e) => /^.+:\d+:\d+: hops\[1\]\.methds: unknown key "methds"/.test(e))).toBe(true);
    expect((await admin.getPolicy({})).version).toBe("admin-2");

    await writeFile(policyFile, testPolicyYaml({ version: "admin-4" }));
    expect(await admin.reload({})).toMatchObject({ ok: true, version: "admin-4" });
    expect(await decisionOf(checks)).toBe("allow");
  });
});

/** The value of hopwarden_decisions_total{decision, reason} on /metrics (0 when absent). */
async function decisionCount(decision: string, reason: string): Promise<number> {
  const text = await (await fetch(`${baseUrl}/metrics`)).text();
  const line = text.split("\n").find((l) => l.startsWith("hopwarden_decisions_total{") && l.includes(`decision="${decision}"`) && l.includes(`reason="${reason}"`));
  return line === undefined ? 0 : Number(line.split(" ").at(-1));
}

describe("/metrics and /healthz", () => {
  it("counts decisions by decision and reason", async () => {
    const allowedBefore = await decisionCount("allow", "allowed");
    const deniedBefore = await decisionCount("deny", "subject_mismatch");
    for (let i = 0; i < 3; i++) expect(await decisionOf(checks)).toBe("allow");
    for (let i = 0; i < 2; i++) expect(await decisionOf(checks, researchCallsDb({ "x-agent-subject": spiffe("orchestrator") }))).toBe("subject_mismatch");
    const response = await fetch(`${baseUrl}/metrics`);
    expect(response.status).toBe(200);
    expect(response.headers.get("content-type")).toContain("text/plain");
    const text = await response.text();
    expect(text).toMatch(/^hopwarden_decisions_total\{[^}]*decision="allow"[^}]*reason="allowed"[^}]*binding="principal"[^}]*\} \d+/m);
    expect(text).toMatch(/^hopwarden_decisions_total\{[^}]*decision="deny"[^}]*reason="subject_mismatch"[^}]*\} \d+/m);
    expect(await decisionCount("allow", "allowed")).toBe(allowedBefore + 3);
    expect(await decisionCount("deny", "subject_mismatch")).toBe(deniedBefore + 2);
  });

  it("answers /healthz with 200 while a policy is in force", async () => {
    const response = await fetch(`${baseUrl}/healthz`);
    expect(response.status).toBe(200);
    expect(await response.text()).toBe("ok\n");
  });
});
