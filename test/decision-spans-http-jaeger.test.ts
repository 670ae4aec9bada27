// Decision spans over OTLP/HTTP protobuf (the default protocol) into real
// Jaeger: the span of a Check is stored with its kind, remote parent,
// attributes (the chain as a string array, the depth as an int) and hop
// events; once Jaeger is gone, an export fails in a way the queue retries.

import { copyFile, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startHopwarden } from "../src/main.js";
import { silentLogger } from "../src/adapters/logging/logger.js";
import { OtlpHttpTransport } from "../src/adapters/telemetry/otlp-transport.js";
import { CheckClient, checkRequest, outcome } from "./support/check-client.js";
import { createTestPki, spiffe, type TestPki } from "./support/pki.js";
import { startJaeger, waitFor, type JaegerProcess } from "./support/jaeger.js";
import { otlpExport } from "./support/span-capture.js";

let jaeger: JaegerProcess;
let pki: TestPki;
let dir: string;

beforeAll(async () => {
  [jaeger, pki] = await Promise.all([startJaeger(), createTestPki()]);
  dir = await mkdtemp(join(tmpdir(), "hopwarden-http-spans-"));
  await copyFile(join(import.meta.dirname, "..", "examples", "policy.yaml"), join(dir, "policy.yaml"));
});

afterAll(async () => {
  await jaeger?.stop();
  if (dir !== undefined) await rm(dir, { recursive: true, force: true });
});

describe("decision spans → Jaeger over OTLP/HTTP protobuf", () => {
  it("stores the span of a Check with its parent, attributes and hop events", async () => {
    const hopwarden = await startHopwarden({
      policyFile: join(dir, "policy.yaml"),
      listen: "127.0.0.1:0",
      logger: silentLogger,
      tracing: { export: otlpExport("http/protobuf", jaeger.otlpHttpTracesUrl, 5_000) },
      watchPolicy: false,
    });
    const client = new CheckClient(hopwarden.grpcAddress);
    const traceId = "4bf92f3577b34da6a3ce929d0e0e4736";
    const parentSpanId = "00f067aa0ba902b7";
    try {
      const response = await client.check(
        checkRequest({
          certificate: pki.agents.research.urlEncodedPem,
          callee: "db",
          method: "DELETE",
          path: "/query",
          headers: { "x-agent-subject": spiffe("research"), "x-agent-on-behalf-of": "alice@example.com", "x-agent-delegation-chain": `${spiffe("orchestrator")},${spiffe("research")}` },
        }),
        { traceparent: `00-${traceId}-${parentSpanId}-00` },
      );
      expect(outcome(response).reason).toBe("hop_not_allowed");
      await hopwarden.flushSpans();
    } finally {
      client.close();
      await hopwarden.shutdown(2_000);
    }

    const stored = await waitFor("the span in Jaeger", async () => (await jaeger.traceV3(traceId)).find((s) => s.name === "authz.check"));
    expect(stored.service).toBe("hopwarden");
    expect(stored.kind).toBe(2);
    expect(stored.parentSpanId).toBe(parentSpanId);
    expect(stored.attributes).toMatchObject({
      "authz.decision": "deny",
      "authz.reason": "hop_not_allowed",
      "agent.delegation.chain": [spiffe("orchestrator"), spiffe("research")],
      "agent.delegation.depth": 2,
      "http.request.method": "DELETE",
      "url.path": "/query",
    });
    expect(stored.events.map((e) => e.attributes)).toEqual([
      expect.objectContaining({ from: spiffe("orchestrator"), to: spiffe("research"), result: "allow", cached: false }),
      expect.objectContaining({ from: spiffe("research"), to: spiffe("db"), result: "deny", cached: false }),
    ]);
  });

  it("fails an export retryably once Jaeger is gone", async () => {
    const transport = new OtlpHttpTransport(otlpExport("http/protobuf", jaeger.otlpHttpTracesUrl, 1_000));
    await jaeger.stop();
    expect(await transport.send([Buffer.alloc(0)])).toMatchObject({ ok: false, retryable: true });
    transport.close();
  });
});
