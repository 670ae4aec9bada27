// SPEC 6, read back from real Jaeger: one authz.check span per Check, a child
// of the caller's span (W3C traceparent or B3 in the gRPC metadata) even when
// that parent says "don't sample", with every audit attribute and one
// authz.hop event per evaluated hop; denials recorded like allows; the whole
// path Envoy → hopwarden in one trace; and a collector outage that costs
// spans (counted on /metrics) but never a Check.

import { randomBytes } from "node:crypto";
import { copyFile, mkdir, mkdtemp, rm } from "node:fs/promises";
import { createServer, type Server, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startHopwarden, type Hopwarden } from "../src/main.js";
import { silentLogger } from "../src/adapters/logging/logger.js";
import type { CheckResponse } from "../src/gen/envoy/service/auth/v3/external_auth_pb.js";
import { CheckClient, checkRequest, outcome, type RequestSpec } from "./support/check-client.js";
import { createTestPki, spiffe, writePki, type TestPki } from "./support/pki.js";
import { startJaeger, waitFor, type JaegerProcess, type OtlpStoredSpan } from "./support/jaeger.js";
import { otlpExport } from "./support/span-capture.js";
import { freePort, mtlsRequest, startEchoUpstream, startFrontProxy, type EchoUpstream, type RunningProxy } from "./support/envoy.js";

const PERSON = "alice@example.com";
const EXAMPLE_POLICY = join(import.meta.dirname, "..", "examples", "policy.yaml");
const SPAN_WAIT_MS = 10_000;

const hex = (bytes: number) => randomBytes(bytes).toString("hex");

let pki: TestPki;
let jaeger: JaegerProcess;
let workDir: string;
let policyFile: string;

beforeAll(async () => {
  // Jaeger first: if it is not installed, the suite stops here with the install hint.
  [jaeger, pki] = await Promise.all([startJaeger(), createTestPki()]);
  workDir = await mkdtemp(join(tmpdir(), "hopwarden-jaeger-spans-"));
  policyFile = join(workDir, "policy.yaml");
  await copyFile(EXAMPLE_POLICY, policyFile);
});

afterAll(async () => {
  await jaeger?.stop();
  if (workDir !== undefined) await rm(workDir, { recursive: true, force: true });
});

function agentHeaders(caller: string, chain: readonly string[]): Record<string, string> {
  return { "x-agent-subject": spiffe(caller), "x-agent-on-behalf-of": PERSON, "x-agent-delegation-chain": chain.map((a) => spiffe(a)).join(",") };
}

function decisionIdOf(response: CheckResponse): string {
  const o = outcome(response);
  const id = o.headers["x-authz-decision-id"] ?? (o.body?.decision_id as string | undefined);
  if (id === undefined) throw new Error("response carries no decision id");
  return id;
}

/** The authz.check span of one decision, once Jaeger has it. */
async function decisionSpan(traceId: string, decisionId: string): Promise<{ span: OtlpStoredSpan; trace: OtlpStoredSpan[] }> {
  return waitFor(
    `the authz.check span of decision ${decisionId} in trace ${traceId}`,
    async () => {
      const trace = await jaeger.traceV3(traceId);
      const span = trace.find((s) => s.name === "authz.check" && s.attributes["authz.decision_id"] === decisionId);
      return span === undefined ? undefined : { span, trace };
    },
    SPAN_WAIT_MS,
  );
}

async function metricValue(hopwarden: Hopwarden, name: string): Promise<number | undefined> {
  const text = await (await fetch(`http://${hopwarden.adminAddress}/metrics`, { signal: AbortSignal.timeout(5_000) })).text();
  const match = new RegExp(`^${name}(?:_total)?(?:\\{[^}]*\\})? (\\S+)$`, "m").exec(text);
  return match ? Number(match[1]) : undefined;
}

describe("SPEC 6: one authz.check span per Check, exported to Jaeger", () => {
  let hopwarden: Hopwarden;
  let client: CheckClient;
  let policyVersion: string;

  interface Sent {
    readonly traceId: string;
    readonly parentSpanId: string;
    readonly decisionId: string;
    readonly response: CheckResponse;
  }
  const sent: Record<"toResearch" | "toDb" | "denied" | "b3", Sent> = {} as never;

  async function send(spec: RequestSpec, propagation: "traceparent" | "b3"): Promise<Sent> {
    const traceId = hex(16);
    const parentSpanId = hex(8);
    // Sampled flag 00 / 0: the parent asks not to sample; audit spans are recorded anyway.
    const metadata: Record<string, string> = propagation === "traceparent" ? { traceparent: `00-${traceId}-${parentSpanId}-00` } : { b3: `${traceId}-${parentSpanId}-0` };
    const response = await client.check(checkRequest(spec), metadata);
    return { traceId, parentSpanId, decisionId: decisionIdOf(response), response };
  }

  beforeAll(async () => {
    hopwarden = await startHopwarden({
      policyFile,
      listen: "127.0.0.1:0",
      adminListen: "127.0.0.1:0",
      logger: silentLogger,
      tracing: { export: otlpExport("grpc", jaeger.otlpGrpcUrl) },
      watchPolicy: false,
    });
    policyVersion = hopwarden.policies.current()!.version;
    client = new CheckClient(hopwarden.grpcAddress);
    const asAgent = (name: "orchestrator" | "research", spec: Omit<RequestSpec, "certificate">): RequestSpec => ({ certificate: pki.agents[name].urlEncodedPem, ...spec });
    sent.toResearch = await send(asAgent("orchestrator", { callee: "research", method: "POST", path: "/search", headers: agentHeaders("orchestrator", ["orchestrator"]) }), "traceparent");
    sent.toDb = await send(
      asAgent("research", { callee: "db", method: "GET", path: "/query?table=orders", headers: agentHeaders("research", ["orchestrator", "research"]) }),
      "traceparent",
    );
    sent.denied = await send(asAgent("orchestrator", { callee: "db", method: "GET", path: "/query", headers: agentHeaders("orchestrator", ["orchestrator"]) }), "traceparent");
    // No certificate, only Envoy's principal (Istio's way): no tls.client.hash.sha256.
    sent.b3 = await send({ principal: spiffe("orchestrator"), callee: "research", method: "GET", path: "/", headers: agentHeaders("orchestrator", ["orchestrator"]) }, "b3");
  });

  afterAll(async () => {
    client?.close();
    await hopwarden?.shutdown(2_000);
  });

  it("answered the Checks as the policy says (allow, allow, hop_not_allowed, allow)", () => {
    expect(outcome(sent.toResearch.response).code).toBe(0);
    expect(outcome(sent.toDb.response).code).toBe(0);
    expect(outcome(sent.denied.response).reason).toBe("hop_not_allowed");
    expect(outcome(sent.b3.response).code).toBe(0);
  });

  it("records the span as a SERVER child of the traceparent's span, in its trace, although the parent was not sampled", async () => {
    const { span } = await decisionSpan(sent.toResearch.traceId, sent.toResearch.decisionId);
    expect(span.traceId).toBe(sent.toResearch.traceId);
    expect(span.parentSpanId).toBe(sent.toResearch.parentSpanId);
    expect(span.kind).toBe(2); // SERVER
    expect(span.service).toBe("hopwarden");
  });

  it("carries every SPEC 6 attribute, identities as SPIFFE IDs and the chain as a string array", async () => {
    const { span } = await decisionSpan(sent.toDb.traceId, sent.toDb.decisionId);
    expect(span.parentSpanId).toBe(sent.toDb.parentSpanId);
    expect(span.attributes).toMatchObject({
      "authz.decision": "allow",
      "authz.reason": "allowed",
      "authz.decision_id": sent.toDb.decisionId,
      "authz.policy.version": policyVersion,
      "agent.caller": spiffe("research"),
      "agent.callee": spiffe("db"),
      "agent.on_behalf_of": PERSON,
      "agent.delegation.chain": [spiffe("orchestrator"), spiffe("research")],
      "agent.delegation.depth": 2,
      "tls.client.hash.sha256": pki.agents.research.sha256Hex,
      "http.request.method": "GET",
      "url.path": "/query",
    });
    expect(span.attributes["tls.client.hash.sha256"]).toMatch(/^[0-9A-F]{64}$/);
  });

  it("adds one authz.hop event per evaluated hop of chain + [callee]", async () => {
    const { span } = await decisionSpan(sent.toDb.traceId, sent.toDb.decisionId);
    const hops = span.events.filter((e) => e.name === "authz.hop").map((e) => e.attributes);
    expect(hops).toEqual([
      expect.objectContaining({ from: spiffe("orchestrator"), to: spiffe("research"), result: "allow", rule: expect.stringMatching(/^hops\[\d+\]$/) as unknown }),
      expect.objectContaining({ from: spiffe("research"), to: spiffe("db"), result: "allow", rule: expect.stringMatching(/^hops\[\d+\]$/) as unknown }),
    ]);
    const first = await decisionSpan(sent.toResearch.traceId, sent.toResearch.decisionId);
    expect(first.span.events.filter((e) => e.name === "authz.hop")).toHaveLength(1);
  });

  it("records a denial like an allow: decision deny, its reason, and the hop that failed", async () => {
    const { span } = await decisionSpan(sent.denied.traceId, sent.denied.decisionId);
    expect(span.parentSpanId).toBe(sent.denied.parentSpanId);
    expect(span.attributes).toMatchObject({
      "authz.decision": "deny",
      "authz.reason": "hop_not_allowed",
      "authz.decision_id": sent.denied.decisionId,
      "agent.caller": spiffe("orchestrator"),
      "agent.callee": spiffe("db"),
      "agent.delegation.chain": [spiffe("orchestrator")],
      "agent.delegation.depth": 1,
      "tls.client.hash.sha256": pki.agents.orchestrator.sha256Hex,
    });
    const hops = span.events.filter((e) => e.name === "authz.hop").map((e) => e.attributes);
    expect(hops.at(-1)).toMatchObject({ from: spiffe("orchestrator"), to: spiffe("db"), result: "deny" });
  });

  it("takes the parent from a single b3 header too, and sets no certificate hash when no certificate was sent", async () => {
    const { span } = await decisionSpan(sent.b3.traceId, sent.b3.decisionId);
    expect(span.traceId).toBe(sent.b3.traceId);
    expect(span.parentSpanId).toBe(sent.b3.parentSpanId);
    expect(span.attributes["agent.caller"]).toBe(spiffe("orchestrator"));
    expect(span.attributes).not.toHaveProperty("tls.client.hash.sha256");
  });

  it("lets an auditor find every decision by its authz.decision_id through Jaeger's search API", async () => {
    for (const s of Object.values(sent)) {
      const spans = await waitFor(`a search hit for ${s.decisionId}`, async () => {
        const found = await jaeger.client.search({ service: "hopwarden", tags: { "authz.decision_id": s.decisionId }, startMs: Date.now() - 60_000, endMs: Date.now() + 1_000, limit: 10 });
        return found.length > 0 ? found : undefined;
      });
      expect(spans.map((x) => x.traceId)).toContain(s.traceId);
    }
  });

  it("counts the exported spans on /metrics (hopwarden_spans_exported)", async () => {
    const exported = await waitFor("hopwarden_spans_exported ≥ 4", async () => {
      const v = await metricValue(hopwarden, "hopwarden_spans_exported");
      return v !== undefined && v >= 4 ? v : undefined;
    });
    expect(exported).toBeGreaterThanOrEqual(4);
    expect(await metricValue(hopwarden, "hopwarden_spans_failed")).toBe(0);
  });
});

describe("SPEC 6 through real Envoy: the authz.check span is a child of Envoy's ext_authz span", () => {
  let hopwarden: Hopwarden;
  let upstream: EchoUpstream;
  let proxy: RunningProxy;
  let certs: Awaited<ReturnType<typeof writePki>>;

  beforeAll(async () => {
    certs = await writePki(pki, join(workDir, "pki"));
    await mkdir(join(workDir, "envoy"));
    [hopwarden, upstream] = await Promise.all([
      startHopwarden({
        policyFile,
        listen: "127.0.0.1:0",
        logger: silentLogger,
        tracing: { export: otlpExport("grpc", jaeger.otlpGrpcUrl) },
        watchPolicy: false,
      }),
      startEchoUpstream(),
    ]);
    proxy = await startFrontProxy({
      server: certs.server!,
      caFile: certs.ca.cert,
      hopwardenPort: hopwarden.grpcPort,
      researchPort: upstream.port,
      dbPort: upstream.port,
      otlpPort: jaeger.ports.otlpGrpc,
      dir: join(workDir, "envoy"),
    });
  });

  afterAll(async () => {
    await proxy?.stop();
    await upstream?.close();
    await hopwarden?.shutdown(2_000);
  });

  it("puts Envoy's spans and hopwarden's decision span in one trace, authz.check under Envoy's Check call", async () => {
    const response = await mtlsRequest({
      port: proxy.port,
      authority: "research",
      path: "/search",
      method: "GET",
      headers: { "x-agent-subject": spiffe("orchestrator"), "x-agent-on-behalf-of": PERSON },
      cert: certs.orchestrator!.cert,
      key: certs.orchestrator!.key,
      ca: certs.ca.cert,
    });
    expect(response.status).toBe(200);
    const echoed = JSON.parse(response.body) as { headers: Record<string, string> };
    const decisionId = echoed.headers["x-authz-decision-id"]!;
    expect(decisionId).toMatch(/^[0-9A-HJKMNP-TV-Z]{26}$/);

    const [decision] = await waitFor(`decision ${decisionId} in Jaeger`, async () => {
      const found = await jaeger.client.search({ service: "hopwarden", tags: { "authz.decision_id": decisionId }, startMs: Date.now() - 60_000, endMs: Date.now() + 1_000, limit: 5 });
      return found.length > 0 ? found : undefined;
    });
    // Envoy's OpenTelemetry tracer flushes on a timer (5 s by default): wait for its spans.
    const { span, parent, trace } = await waitFor(
      `Envoy's parent span of decision ${decisionId}`,
      async () => {
        const trace = await jaeger.traceV3(decision!.traceId);
        const span = trace.find((s) => s.name === "authz.check" && s.attributes["authz.decision_id"] === decisionId);
        const parent = trace.find((s) => s.spanId === span?.parentSpanId);
        return span === undefined || parent === undefined ? undefined : { span, parent, trace };
      },
      15_000,
      250,
    );
    expect(parent.service).toBe("envoy-front-proxy");
    expect(parent.traceId).toBe(span.traceId);
    // Envoy's gRPC client span for the ext_authz call ("async envoy.service.auth.v3.Authorization.Check egress").
    expect(parent.name).toMatch(/Authorization\.Check/);
    expect(parent.kind).toBe(3); // CLIENT
    // …itself under Envoy's ingress span for the agent's request.
    const ingress = trace.find((s) => s.spanId === parent.parentSpanId);
    expect(ingress?.service).toBe("envoy-front-proxy");
    expect(span.attributes).toMatchObject({ "agent.caller": spiffe("orchestrator"), "agent.callee": spiffe("research"), "url.path": "/search", "authz.decision": "allow" });
  });
});

describe("SPEC 6 faults: a collector outage loses spans (counted) but never delays or fails a Check", () => {
  const CALLS = 40;
  const SLOW_MS = 250;

  /**
   * CALLS Checks one after the other on a warmed-up channel, each answered as
   * the policy says and well under the exporter's 1 s deadline: a Check that
   * waited for the collector would take that second.
   */
  async function checksStayFast(hopwarden: Hopwarden): Promise<void> {
    const client = new CheckClient(hopwarden.grpcAddress);
    try {
      await client.health();
      const started = Date.now();
      const timings: number[] = [];
      for (let i = 0; i < CALLS; i++) {
        const t0 = Date.now();
        const response = await client.check(
          checkRequest({
            certificate: pki.agents.orchestrator.urlEncodedPem,
            callee: i % 2 === 0 ? "research" : "db",
            headers: agentHeaders("orchestrator", ["orchestrator"]),
            path: "/search",
          }),
          { traceparent: `00-${hex(16)}-${hex(8)}-01` },
        );
        timings.push(Date.now() - t0);
        expect(outcome(response).code).toBe(i % 2 === 0 ? 0 : 7);
      }
      expect(Math.max(...timings)).toBeLessThan(SLOW_MS);
      expect(Date.now() - started).toBeLessThan(3_000);
    } finally {
      client.close();
    }
  }

  async function metricReaches(hopwarden: Hopwarden, name: string, count: number): Promise<number> {
    return waitFor(
      `${name} ≥ ${count}`,
      async () => {
        const v = await metricValue(hopwarden, name);
        return v !== undefined && v >= count ? v : undefined;
      },
      10_000,
      200,
    );
  }

  it("keeps answering when nothing listens on the collector's port, holding the spans (bounded) and counting failed exports", async () => {
    const port = await freePort();
    const hopwarden = await startHopwarden({
      policyFile,
      listen: "127.0.0.1:0",
      adminListen: "127.0.0.1:0",
      logger: silentLogger,
      tracing: { export: otlpExport("grpc", `http://127.0.0.1:${port}`, 1_000) },
      watchPolicy: false,
    });
    try {
      await checksStayFast(hopwarden);
      await hopwarden.flushSpans();
      expect(await metricReaches(hopwarden, "hopwarden_span_exports_failed", 1)).toBeGreaterThanOrEqual(1);
      expect(await metricValue(hopwarden, "hopwarden_spans_queued")).toBe(CALLS);
      expect(await metricValue(hopwarden, "hopwarden_spans_exported")).toBe(0);
      expect(await metricValue(hopwarden, "hopwarden_spans_failed")).toBe(0);
    } finally {
      await hopwarden.shutdown(1_000);
    }
  });

  it("counts the spans that do not fit the bounded queue as lost, without encoding them", async () => {
    const port = await freePort();
    const hopwarden = await startHopwarden({
      policyFile,
      listen: "127.0.0.1:0",
      adminListen: "127.0.0.1:0",
      logger: silentLogger,
      tracing: { export: otlpExport("http/protobuf", `http://127.0.0.1:${port}/v1/traces`, 1_000), maxQueueBytes: 2_048 },
      watchPolicy: false,
    });
    try {
      await checksStayFast(hopwarden);
      const lost = await metricReaches(hopwarden, "hopwarden_spans_failed", CALLS - 4);
      const queuedBytes = (await metricValue(hopwarden, "hopwarden_spans_queued_bytes")) ?? 0;
      expect(queuedBytes).toBeLessThan(2_048 + 2_048);
      expect(lost + ((await metricValue(hopwarden, "hopwarden_spans_queued")) ?? 0)).toBe(CALLS);
    } finally {
      await hopwarden.shutdown(1_000);
    }
  });

  it("keeps answering when the collector accepts connections but never answers", async () => {
    const sockets = new Set<Socket>();
    const blackHole: Server = createServer((socket) => {
      sockets.add(socket);
      socket.on("error", () => undefined);
      socket.resume();
    });
    await new Promise<void>((ok) => blackHole.listen(0, "127.0.0.1", ok));
    const port = (blackHole.address() as { port: number }).port;
    const hopwarden = await startHopwarden({
      policyFile,
      listen: "127.0.0.1:0",
      adminListen: "127.0.0.1:0",
      logger: silentLogger,
      tracing: { export: otlpExport("http/protobuf", `http://127.0.0.1:${port}/v1/traces`, 1_000) },
      watchPolicy: false,
    });
    try {
      await checksStayFast(hopwarden);
      await hopwarden.flushSpans();
      expect(await metricReaches(hopwarden, "hopwarden_span_exports_failed", 1)).toBeGreaterThanOrEqual(1);
      expect(await metricValue(hopwarden, "hopwarden_spans_exported")).toBe(0);
    } finally {
      await hopwarden.shutdown(1_000);
      for (const s of sockets) s.destroy();
      await new Promise<void>((ok) => blackHole.close(() => ok()));
    }
  });

  it("keeps answering when Jaeger goes away mid-run: spans before are stored, spans after wait in the queue", async () => {
    const hopwarden = await startHopwarden({
      policyFile,
      listen: "127.0.0.1:0",
      adminListen: "127.0.0.1:0",
      logger: silentLogger,
      tracing: { export: otlpExport("grpc", jaeger.otlpGrpcUrl, 1_000) },
      watchPolicy: false,
    });
    try {
      await checksStayFast(hopwarden);
      await waitFor("the first spans exported", async () => ((await metricValue(hopwarden, "hopwarden_spans_exported")) ?? 0) >= CALLS || undefined);
      await jaeger.stop();
      await checksStayFast(hopwarden);
      await hopwarden.flushSpans();
      expect(await metricReaches(hopwarden, "hopwarden_span_exports_failed", 1)).toBeGreaterThanOrEqual(1);
      expect(await metricValue(hopwarden, "hopwarden_spans_queued")).toBe(CALLS);
      expect(await metricValue(hopwarden, "hopwarden_spans_exported")).toBe(CALLS);
    } finally {
      await hopwarden.shutdown(1_000);
    }
  });
});
