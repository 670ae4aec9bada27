// Fail closed on the gRPC edge: an exception anywhere around the pipeline is a
// deny (internal_error, 503/14) with a decision id that the decision sinks
// (audit log, metrics) still receive, never a gRPC error.

import { afterEach, describe, expect, it } from "vitest";
import { authorizationImplementation } from "../src/adapters/grpc/authorization-service.js";
import { startCheckServer, type RunningCheckServer } from "../src/adapters/grpc/check-server.js";
import { CachingCertificateParser } from "../src/adapters/x509/certificate-parser.js";
import { UlidGenerator } from "../src/adapters/ids/ulid.js";
import { silentLogger } from "../src/adapters/logging/logger.js";
import { CheckPipeline } from "../src/core/decision/check-pipeline.js";
import type { Decision } from "../src/core/decision/decision.js";
import { loadPolicyText } from "../src/adapters/config/policy-file.js";
import { testPolicyYaml } from "./support/policies.js";
import { CheckClient, checkRequest, outcome } from "./support/check-client.js";
import { systemClock } from "../src/adapters/clock/system-clock.js";

let server: RunningCheckServer | undefined;
let client: CheckClient | undefined;

afterEach(async () => {
  client?.close();
  await server?.shutdown(1000);
});

async function serverWith(admit: () => boolean | Promise<boolean>, recorded: Decision[]): Promise<CheckClient> {
  const loaded = loadPolicyText(testPolicyYaml(), "policy.yaml");
  if (!loaded.ok) throw new Error(loaded.errors.join("\n"));
  const policy = loaded.policy;
  const pipeline = new CheckPipeline({ policies: { current: () => policy }, certificates: new CachingCertificateParser(), clock: systemClock, ids: new UlidGenerator() });
  server = await startCheckServer({
    listen: "127.0.0.1:0",
    headersRead: pipeline.headersRead,
    authorization: authorizationImplementation({ pipeline, logger: silentLogger, admit, sinks: [{ record: (d) => recorded.push(d) }] }),
  });
  client = new CheckClient(server.address);
  return client;
}

describe("fail closed at the gRPC edge", () => {
  it("denies with internal_error, and records the denial, when admission throws", async () => {
    const recorded: Decision[] = [];
    const c = await serverWith(() => {
      throw new Error("audit buffer exploded");
    }, recorded);
    const o = outcome(await c.check(checkRequest({ principal: "spiffe://example.org/agent/orchestrator", callee: "research" })));
    expect(o.reason).toBe("internal_error");
    expect(o.http).toBe(503);
    expect(o.code).toBe(14);
    expect(o.body?.decision_id).toMatch(/^[0-9A-HJKMNP-TV-Z]{26}$/);
    expect(recorded.map((d) => [d.reason, d.decisionId])).toEqual([["internal_error", o.body?.decision_id]]);
  });

  it("denies with internal_error when an admission wait rejects", async () => {
    const recorded: Decision[] = [];
    const c = await serverWith(() => Promise.reject(new Error("disk gone")), recorded);
    const o = outcome(await c.check(checkRequest({ principal: "spiffe://example.org/agent/orchestrator", callee: "research" })));
    expect(o.reason).toBe("internal_error");
    expect(recorded).toHaveLength(1);
  });

  it("denies without deciding when the audit log refuses the record", async () => {
    const recorded: Decision[] = [];
    const c = await serverWith(() => false, recorded);
    const o = outcome(await c.check(checkRequest({ principal: "spiffe://example.org/agent/orchestrator", callee: "research", headers: { "x-agent-subject": "spiffe://example.org/agent/orchestrator", "x-agent-on-behalf-of": "alice@example.com" } })));
    expect(o.reason).toBe("internal_error");
    expect(String(o.body?.message)).toMatch(/audit log cannot take more records/);
  });
});
