// The running gRPC server, called with a real gRPC client: every reason code
// of SPEC 4 that needs no delegation token, the allow path, health,
// reflection, malformed protobuf, and graceful shutdown draining a call.

import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { promisify } from "node:util";
import { credentials } from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startHopwarden, type Hopwarden } from "../src/main.js";
import { silentLogger } from "../src/adapters/logging/logger.js";
import { REASON_STATUS } from "../src/core/reasons.js";
import { createTestPki, spiffe, type TestPki } from "./support/pki.js";
import { writeTestPolicy } from "./support/policies.js";
import { CheckClient, checkRequest, outcome, type RequestSpec } from "./support/check-client.js";
import { SpanCapture } from "./support/span-capture.js";

const EXAMPLE = "alice@example.com";
const chainOf = (...agents: string[]) => agents.map((a) => spiffe(a)).join(",");

let pki: TestPki;
let hopwarden: Hopwarden;
let client: CheckClient;
const spans = new SpanCapture();

async function finishedSpans() {
  await hopwarden.flushSpans();
  return spans.spans();
}

/** Headers a well-behaved agent sends for the chain ending in `caller`. */
function agentHeaders(caller: string, chain: string[], extra: Record<string, string> = {}): Record<string, string> {
  return { "x-agent-subject": spiffe(caller), "x-agent-on-behalf-of": EXAMPLE, "x-agent-delegation-chain": chainOf(...chain), ...extra };
}

function asAgent(name: keyof TestPki["agents"], spec: Omit<RequestSpec, "certificate">): RequestSpec {
  return { certificate: pki.agents[name].urlEncodedPem, ...spec };
}

beforeAll(async () => {
  pki = await createTestPki();
  const { file } = await writeTestPolicy({ revokedSerials: [pki.agents.planner.serialHex.toLowerCase().replace(/(..)(?!$)/g, "$1:")] });
  hopwarden = await startHopwarden({
    policyFile: file,
    listen: "127.0.0.1:0",
    adminListen: "127.0.0.1:0",
    logger: silentLogger,
    tracing: { export: undefined, transport: spans },
    watchPolicy: false,
  });
  client = new CheckClient(hopwarden.grpcAddress);
});

afterAll(async () => {
  client?.close();
  await hopwarden?.shutdown(2000);
});

describe("allow", () => {
  it("allows orchestrator → research → db for a person and sets the verified headers", async () => {
    const response = await client.check(
      checkRequest(asAgent("research", { callee: "db", method: "GET", path: "/query?limit=1", headers: agentHeaders("research", ["orchestrator", "research"]) })),
    );
    const o = outcome(response);
    expect(o.code).toBe(0);
    expect(response.httpResponse.case).toBe("okResponse");
    expect(o.headers["x-agent-verified-subject"]).toBe(spiffe("research"));
    expect(o.headers["x-agent-verified-on-behalf-of"]).toBe(EXAMPLE);
    expect(o.headers["x-agent-verified-chain"]).toBe(chainOf("orchestrator", "research"));
    expect(o.headers["x-authz-decision-id"]).toMatch(/^[0-9A-HJKMNP-TV-Z]{26}$/);
    if (response.httpResponse.case === "okResponse") {
      for (const h of response.httpResponse.value.headers) expect(h.appendAction).toBe(2); // OVERWRITE_IF_EXISTS_OR_ADD
    }
    expect(response.dynamicMetadata).toMatchObject({
      decision_id: o.headers["x-authz-decision-id"],
      policy_version: "test-1",
      caller: spiffe("research"),
      callee: spiffe("db"),
      on_behalf_of: EXAMPLE,
      chain_depth: 2,
      caller_binding: "certificate",
    });
  });

  it("treats a missing chain header as the chain [caller]", async () => {
    const headers = agentHeaders("orchestrator", ["orchestrator"]);
    delete headers["x-agent-delegation-chain"];
    const o = outcome(await client.check(checkRequest(asAgent("orchestrator", { callee: "research", headers }))));
    expect(o.code).toBe(0);
    expect(o.headers["x-agent-verified-chain"]).toBe(spiffe("orchestrator"));
  });

  it("uses source.principal when no certificate is sent (Istio)", async () => {
    const o = outcome(await client.check(checkRequest({ principal: spiffe("orchestrator"), callee: "research", headers: agentHeaders("orchestrator", ["orchestrator"]) })));
    expect(o.code).toBe(0);
  });

  it("resolves the callee from destination.principal when the route names none", async () => {
    const o = outcome(await client.check(checkRequest(asAgent("orchestrator", { destinationPrincipal: spiffe("research"), headers: agentHeaders("orchestrator", ["orchestrator"]) }))));
    expect(o.code).toBe(0);
  });
});

interface DenyCase {
  readonly name: string;
  readonly reason: keyof typeof REASON_STATUS;
  readonly request: () => RequestSpec;
}

const denyCases: DenyCase[] = [
  { name: "no certificate and no principal", reason: "missing_peer_certificate", request: () => ({ callee: "research", headers: agentHeaders("orchestrator", ["orchestrator"]) }) },
  { name: "an expired certificate", reason: "invalid_peer_certificate", request: () => ({ certificate: pki.expired.urlEncodedPem, callee: "research", headers: agentHeaders("expired", ["expired"]) }) },
  { name: "a certificate with two URI SANs", reason: "invalid_peer_certificate", request: () => ({ certificate: pki.twoUris.urlEncodedPem, callee: "db", headers: agentHeaders("research", ["research"]) }) },
  { name: "a certificate that is not PEM", reason: "invalid_peer_certificate", request: () => ({ certificate: "-----BEGIN%20CERTIFICATE-----%0Agarbage%0A-----END%20CERTIFICATE-----", callee: "db", headers: agentHeaders("research", ["research"]) }) },
  { name: "a caller from a foreign trust domain", reason: "untrusted_trust_domain", request: () => ({ certificate: pki.foreignDomain.urlEncodedPem, callee: "db", headers: agentHeaders("research", ["research"]) }) },
  { name: "a revoked identity", reason: "revoked_identity", request: () => asAgent("retired", { callee: "research", headers: agentHeaders("retired", ["retired"]) }) },
  { name: "a revoked certificate serial", reason: "revoked_identity", request: () => asAgent("planner", { callee: "worker", headers: agentHeaders("planner", ["orchestrator", "planner"]) }) },
  { name: "no subject header", reason: "missing_subject_header", request: () => asAgent("research", { callee: "db", path: "/query", headers: { "x-agent-on-behalf-of": EXAMPLE } }) },
  { name: "a subject that is not the certificate's identity", reason: "subject_mismatch", request: () => asAgent("research", { callee: "db", path: "/query", headers: agentHeaders("research", ["orchestrator", "research"], { "x-agent-subject": spiffe("orchestrator") }) }) },
  { name: "no on-behalf-of", reason: "missing_on_behalf_of", request: () => asAgent("research", { callee: "db", path: "/query", headers: { "x-agent-subject": spiffe("research") } }) },
  { name: "an on-behalf-of outside the policy", reason: "on_behalf_of_not_allowed", request: () => asAgent("research", { callee: "db", path: "/query", headers: agentHeaders("research", ["orchestrator", "research"], { "x-agent-on-behalf-of": "mallory@evil.example" }) }) },
  { name: "a chain with an empty entry", reason: "malformed_chain", request: () => asAgent("research", { callee: "db", path: "/query", headers: agentHeaders("research", [], { "x-agent-delegation-chain": `${spiffe("orchestrator")},,${spiffe("research")}` }) }) },
  { name: "a chain longer than maxChainLength", reason: "chain_too_long", request: () => asAgent("research", { callee: "db", path: "/query", headers: agentHeaders("research", ["orchestrator", "planner", "worker", "research"]) }) },
  { name: "a chain that repeats an agent", reason: "chain_cycle", request: () => asAgent("research", { callee: "db", path: "/query", headers: agentHeaders("research", ["research", "orchestrator", "research"]) }) },
  { name: "a chain that does not end with the caller", reason: "chain_caller_mismatch", request: () => asAgent("research", { callee: "db", path: "/query", headers: agentHeaders("research", ["orchestrator"]) }) },
  { name: "a callee alias the policy does not define", reason: "unknown_callee", request: () => asAgent("research", { callee: "billing", path: "/query", headers: agentHeaders("research", ["orchestrator", "research"]) }) },
  { name: "a method no rule of the last hop admits", reason: "hop_not_allowed", request: () => asAgent("research", { callee: "db", method: "DELETE", path: "/query", headers: agentHeaders("research", ["orchestrator", "research"]) }) },
  { name: "a path with an encoded dot-segment", reason: "hop_not_allowed", request: () => asAgent("research", { callee: "db", path: "/schema/%2e%2e/admin", headers: agentHeaders("research", ["orchestrator", "research"]) }) },
  { name: "an earlier hop no rule admits", reason: "hop_not_allowed", request: () => asAgent("research", { callee: "db", path: "/query", headers: agentHeaders("research", ["planner", "research"]) }) },
  { name: "a chain that skips research on its way to db", reason: "required_hop_missing", request: () => asAgent("orchestrator", { callee: "db", path: "/health", headers: agentHeaders("orchestrator", ["orchestrator"]) }) },
];

describe("the two ways a Check arrives", () => {
  const spec = () => checkRequest(asAgent("research", { callee: "db", method: "GET", path: "/query?limit=1", headers: agentHeaders("research", ["orchestrator", "research"]) }));
  const withoutId = (o: ReturnType<typeof outcome>) => ({ ...o, headers: { ...o.headers, "x-authz-decision-id": "" }, body: o.body && { ...o.body, decision_id: "" } });

  it("answers a Check of the common shape straight from its HTTP/2 stream", async () => {
    const before = hopwarden.check.directChecks();
    expect(before).toBeTypeOf("number");
    expect(outcome(await client.check(spec())).code).toBe(0);
    expect(hopwarden.check.directChecks()).toBe(before! + 1);
  });

  it("answers a gzip-compressed Check through grpc-js with the same decision", async () => {
    const gzipClient = new CheckClient(hopwarden.grpcAddress, credentials.createInsecure(), { "grpc.default_compression_algorithm": 2 });
    try {
      const before = hopwarden.check.directChecks();
      const viaGrpcJs = outcome(await gzipClient.check(spec()));
      expect(hopwarden.check.directChecks()).toBe(before);
      const direct = outcome(await client.check(spec()));
      expect(viaGrpcJs.code).toBe(0);
      expect(withoutId(viaGrpcJs)).toEqual(withoutId(direct));
      const denied = checkRequest(asAgent("research", { callee: "db", headers: agentHeaders("research", ["orchestrator", "research"], { "x-agent-subject": spiffe("orchestrator") }) }));
      expect(withoutId(outcome(await gzipClient.check(denied)))).toEqual(withoutId(outcome(await client.check(denied))));
      expect(outcome(await gzipClient.check(denied)).reason).toBe("subject_mismatch");
    } finally {
      gzipClient.close();
    }
  });
});

describe("deny", () => {
  for (const c of denyCases) {
    it(`denies ${c.name} with ${c.reason}`, async () => {
      const response = await client.check(checkRequest(c.request()));
      const o = outcome(response);
      const status = REASON_STATUS[c.reason];
      expect(o.reason).toBe(c.reason);
      expect(o.code).toBe(status.grpc);
      expect(o.http).toBe(status.http);
      expect(o.headers["content-type"]).toBe("application/json");
      expect(o.body).toMatchObject({ error: c.reason });
      expect(typeof o.body?.message).toBe("string");
      expect(o.body?.decision_id).toMatch(/^[0-9A-HJKMNP-TV-Z]{26}$/);
      expect(response.status?.message).toBe(c.reason);
    });
  }

  it("answers bytes that are not a CheckRequest with a deny, not a gRPC error", async () => {
    const o = outcome(await client.raw(Buffer.from([0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f, 0x01])));
    expect(o.reason).toBe("internal_error");
    expect(o.http).toBe(503);
    expect(o.code).toBe(14);
  });
});

describe("decision span", () => {
  it("is a SERVER child of the caller's W3C trace context, even when the parent is not sampled", async () => {
    await hopwarden.flushSpans();
    spans.reset();
    const traceId = "4bf92f3577b34da6a3ce929d0e0e4736";
    const parentId = "00f067aa0ba902b7";
    await client.check(
      checkRequest(asAgent("research", { callee: "db", path: "/query?x=1", headers: agentHeaders("research", ["orchestrator", "research"]) })),
      { traceparent: `00-${traceId}-${parentId}-00` },
    );
    const [span] = (await finishedSpans());
    expect(span?.name).toBe("authz.check");
    expect(span?.kind).toBe(2); // OTLP SPAN_KIND_SERVER
    expect(span?.traceId).toBe(traceId);
    expect(span?.parentSpanId).toBe(parentId);
    expect(span?.attributes).toMatchObject({
      "authz.decision": "allow",
      "authz.reason": "allowed",
      "authz.policy.version": "test-1",
      "agent.caller": spiffe("research"),
      "agent.callee": spiffe("db"),
      "agent.on_behalf_of": EXAMPLE,
      "agent.delegation.chain": [spiffe("orchestrator"), spiffe("research")],
      "agent.delegation.depth": 2,
      "tls.client.hash.sha256": pki.agents.research.sha256Hex,
      "http.request.method": "GET",
      "url.path": "/query",
    });
    expect(span?.attributes["authz.decision_id"]).toMatch(/^[0-9A-HJKMNP-TV-Z]{26}$/);
    const hops = span?.events.filter((e) => e.name === "authz.hop") ?? [];
    expect(hops.map((e) => [e.attributes.from, e.attributes.to, e.attributes.result])).toEqual([
      [spiffe("orchestrator"), spiffe("research"), "allow"],
      [spiffe("research"), spiffe("db"), "allow"],
    ]);
  });

  it("follows a B3 single-header parent and records denials too", async () => {
    await hopwarden.flushSpans();
    spans.reset();
    const traceId = "80f198ee56343ba864fe8b2a57d3eff7";
    const parentId = "e457b5a2e4d86bd1";
    await client.check(checkRequest(asAgent("research", { callee: "db", method: "DELETE", path: "/query", headers: agentHeaders("research", ["orchestrator", "research"]) })), {
      b3: `${traceId}-${parentId}-0`,
    });
    const [span] = (await finishedSpans());
    expect(span?.traceId).toBe(traceId);
    expect(span?.parentSpanId).toBe(parentId);
    expect(span?.attributes["authz.decision"]).toBe("deny");
    expect(span?.attributes["authz.reason"]).toBe("hop_not_allowed");
    const hops = span?.events.filter((e) => e.name === "authz.hop") ?? [];
    expect(hops.at(-1)?.attributes).toMatchObject({ from: spiffe("research"), to: spiffe("db"), result: "deny", rule: "" });
  });

  it("records one authz.hop event per hop also when the hop outcome came from the cache", async () => {
    const request = checkRequest(asAgent("research", { callee: "db", path: "/query", headers: agentHeaders("research", ["orchestrator", "research"]) }));
    await client.check(request);
    await hopwarden.flushSpans();
    spans.reset();
    await client.check(request);
    const hops = (await finishedSpans())[0]?.events.filter((e) => e.name === "authz.hop") ?? [];
    expect(hops).toHaveLength(2);
    expect(hops.every((e) => e.attributes.cached === true)).toBe(true);
  });
});

describe("health and reflection", () => {
  it("reports SERVING for the server and for the Authorization service", async () => {
    expect((await client.health("")).status).toBe(1);
    expect((await client.health("envoy.service.auth.v3.Authorization")).status).toBe(1);
  });

  it("lets grpcurl list and describe the services by reflection alone", async () => {
    // The server runs in this process: grpcurl must run asynchronously.
    const grpcurl = ".tools/bin/grpcurl";
    expect(existsSync(grpcurl), "grpcurl is missing: run scripts/install-test-tools.sh grpcurl").toBe(true);
    const run = promisify(execFile);
    const list = await run(grpcurl, ["-plaintext", hopwarden.grpcAddress, "list"], { timeout: 15_000 });
    expect(list.stdout.split("\n")).toEqual(expect.arrayContaining(["envoy.service.auth.v3.Authorization", "grpc.health.v1.Health"]));
    const describeOut = await run(grpcurl, ["-plaintext", hopwarden.grpcAddress, "describe", "envoy.service.auth.v3.CheckRequest"], { timeout: 15_000 });
    expect(describeOut.stdout).toContain(".envoy.service.auth.v3.AttributeContext attributes = 1;");
  });
});
