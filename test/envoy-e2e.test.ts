// End to end through real Envoy: an agent's HTTPS client presents its mTLS
// certificate to the front proxy (envoy/front-proxy.yaml), Envoy asks a real
// hopwarden over ext_authz gRPC, and the callee agent (an echo upstream) sees
// only what was allowed, with the verified headers hopwarden set. Covers the
// SPEC 4 outputs as Envoy turns them into HTTP, Envoy's TLS gate in front of
// hopwarden, failing closed while hopwarden is down and recovering when it
// returns on the same port, and the XFCC sidecar (envoy/sidecar-xfcc.yaml).

import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startHopwarden, type Hopwarden } from "../src/main.js";
import { silentLogger } from "../src/adapters/logging/logger.js";
import type { Decision } from "../src/core/decision/decision.js";
import type { DecisionSink } from "../src/core/ports.js";
import { REASON_STATUS, type DenialReason } from "../src/core/reasons.js";
import {
  envoyBinary,
  freePort,
  mtlsRequest,
  startEchoUpstream,
  startFrontProxy,
  startSidecarXfcc,
  type EchoUpstream,
  type HttpResult,
  type RunningProxy,
} from "./support/envoy.js";
import { createTestPki, spiffe, writePki, type TestPki } from "./support/pki.js";
import { writeTestPolicy } from "./support/policies.js";

type PkiPaths = Awaited<ReturnType<typeof writePki>>;
type Agent = keyof TestPki["agents"];

const PERSON = "alice@example.com";
const chainOf = (...agents: string[]): string => agents.map((a) => spiffe(a)).join(",");

let dir: string;
let pki: TestPki;
let files: PkiPaths;
let policyFile: string;

beforeAll(async () => {
  envoyBinary(); // a missing Envoy fails here with the install hint
  dir = await mkdtemp(join(tmpdir(), "hopwarden-envoy-e2e-"));
  pki = await createTestPki();
  files = await writePki(pki, join(dir, "pki"));
  policyFile = (await writeTestPolicy({ version: "e2e-1" }, dir)).file;
});

afterAll(async () => {
  if (dir !== undefined) await rm(dir, { recursive: true, force: true });
});

function paths(name: string): { cert: string; key: string } {
  const found = files[name];
  if (found === undefined) throw new Error(`test PKI has no ${name}`);
  return found;
}

/** Every decision hopwarden made, by decision id. */
class RecordingSink implements DecisionSink {
  readonly decisions = new Map<string, Decision>();
  record(decision: Decision): void {
    this.decisions.set(decision.decisionId, decision);
  }
  get(id: string): Decision {
    const found = this.decisions.get(id);
    if (found === undefined) throw new Error(`hopwarden recorded no decision ${id}`);
    return found;
  }
}

interface AgentCall {
  /** Whose certificate the client presents (a test PKI file name). */
  readonly as: string;
  /** Host header: the callee's virtual host. */
  readonly to: "research" | "db";
  readonly method?: string;
  readonly path?: string;
  readonly headers?: Readonly<Record<string, string | readonly string[]>>;
}

/** The headers an agent sends when it calls for PERSON through `chain` (its own identity last). */
function claims(subject: string, chain?: readonly string[]): Record<string, string> {
  return {
    "x-agent-subject": spiffe(subject),
    "x-agent-on-behalf-of": PERSON,
    ...(chain !== undefined && { "x-agent-delegation-chain": chainOf(...chain) }),
  };
}

describe("front proxy → hopwarden → agents", () => {
  const sink = new RecordingSink();
  let hopwardenPort: number;
  let hopwarden: Hopwarden | undefined;
  let proxy: RunningProxy | undefined;
  let research: EchoUpstream | undefined;
  let db: EchoUpstream | undefined;

  const start = (port: number) =>
    startHopwarden({ policyFile, listen: `127.0.0.1:${port}`, logger: silentLogger, tracing: false, sinks: [sink], watchPolicy: false });

  beforeAll(async () => {
    // A fixed port, so the fail-closed case can bring hopwarden back where Envoy expects it.
    hopwardenPort = await freePort();
    [hopwarden, research, db] = await Promise.all([start(hopwardenPort), startEchoUpstream(), startEchoUpstream()]);
    proxy = await startFrontProxy({
      server: paths("server"),
      caFile: paths("ca").cert,
      hopwardenPort,
      researchPort: research.port,
      dbPort: db.port,
      dir,
    });
  });

  afterAll(async () => {
    await proxy?.stop();
    await hopwarden?.shutdown(1_000);
    await Promise.all([research?.close(), db?.close()]);
  });

  const call = (c: AgentCall): Promise<HttpResult> =>
    mtlsRequest({
      port: proxy!.port,
      authority: c.to,
      method: c.method ?? "GET",
      path: c.path ?? "/query",
      ca: paths("ca").cert,
      cert: paths(c.as).cert,
      key: paths(c.as).key,
      headers: c.headers ?? {},
    });
  const upstreamHits = () => research!.requests.length + db!.requests.length;

  // orchestrator → research → db for alice: the request research makes to db.
  const allowedHop: AgentCall = { as: "research", to: "db", headers: claims("research", ["orchestrator", "research"]) };

  it("forwards an allowed 3-hop chain with the verified headers, replacing the caller's copies", async () => {
    const before = db!.requests.length;
    const direct = hopwarden!.check.directChecks()!;
    const response = await call({
      ...allowedHop,
      headers: {
        ...allowedHop.headers,
        "x-agent-verified-subject": spiffe("orchestrator"),
        "x-agent-verified-on-behalf-of": "root@example.com",
        "x-agent-verified-chain": spiffe("orchestrator"),
        "x-authz-decision-id": "forged",
      },
    });
    expect(response.status, response.body).toBe(200);
    expect(db!.requests).toHaveLength(before + 1);
    const seen = db!.requests.at(-1)!;
    expect(seen).toMatchObject({ method: "GET", path: "/query" });
    expect(seen.headers["x-agent-verified-subject"]).toBe(spiffe("research"));
    expect(seen.headers["x-agent-verified-on-behalf-of"]).toBe(PERSON);
    expect(seen.headers["x-agent-verified-chain"]).toBe(chainOf("orchestrator", "research"));
    // Exactly one value each: the forged copies were dropped, not merged.
    expect(JSON.stringify(seen.headers)).not.toMatch(/root@example\.com|forged/);
    const decisionId = seen.headers["x-authz-decision-id"];
    expect(decisionId).toMatch(/^[0-9A-HJKMNP-TV-Z]{26}$/);
    expect(sink.get(decisionId as string)).toMatchObject({
      allowed: true,
      caller: spiffe("research"),
      callee: spiffe("db"),
      onBehalfOf: PERSON,
      chain: [spiffe("orchestrator"), spiffe("research")],
      // The certificate Envoy sent hopwarden is the one the client presented.
      peerCertificateSha256: pki.agents.research.sha256Hex,
    });
    // Envoy's SANITIZE_SET XFCC names the verified caller to the agent.
    expect(seen.headers["x-forwarded-client-cert"]).toContain(`URI=${spiffe("research")}`);
    // Envoy's ext_authz client sends the common shape: its Check was answered straight from the HTTP/2 stream.
    expect(hopwarden!.check.directChecks()).toBe(direct + 1);
  });

  it("does not take a forged x-agent-verified-subject for the subject header", async () => {
    const before = upstreamHits();
    const response = await call({
      as: "research",
      to: "db",
      headers: { "x-agent-verified-subject": spiffe("research"), "x-agent-on-behalf-of": PERSON, "x-agent-delegation-chain": chainOf("orchestrator", "research") },
    });
    expect(response.status).toBe(401);
    expect(response.headers["x-authz-reason"]).toBe("missing_subject_header");
    expect(upstreamHits()).toBe(before);
  });

  const denials: ReadonlyArray<{ name: string; reason: DenialReason; call: AgentCall; cert: Agent }> = [
    {
      name: "a subject header that is not the certificate's identity",
      reason: "subject_mismatch",
      cert: "research",
      call: { as: "research", to: "db", headers: claims("orchestrator", ["orchestrator", "research"]) },
    },
    {
      name: "a chain that does not end in the caller",
      reason: "chain_caller_mismatch",
      cert: "research",
      call: { as: "research", to: "db", headers: claims("research", ["research", "orchestrator"]) },
    },
    {
      name: "a hop no rule allows (research may not DELETE on db)",
      reason: "hop_not_allowed",
      cert: "research",
      call: { ...allowedHop, method: "DELETE" },
    },
    {
      name: "a chain that skips research on its way to db",
      reason: "required_hop_missing",
      cert: "orchestrator",
      call: { as: "orchestrator", to: "db", path: "/health", headers: claims("orchestrator", ["orchestrator"]) },
    },
    {
      name: "a chain longer than maxChainLength",
      reason: "chain_too_long",
      cert: "research",
      call: { as: "research", to: "db", headers: claims("research", ["orchestrator", "planner", "worker", "research"]) },
    },
    {
      // encode_raw_headers: Envoy passes the two lines on, rather than joining them into a valid chain.
      name: "a chain header sent as two lines",
      reason: "malformed_chain",
      cert: "research",
      call: { as: "research", to: "db", headers: { ...claims("research"), "x-agent-delegation-chain": [spiffe("orchestrator"), spiffe("research")] } },
    },
    {
      name: "a chain that visits an agent twice",
      reason: "chain_cycle",
      cert: "research",
      call: { as: "research", to: "db", headers: claims("research", ["research", "orchestrator", "research"]) },
    },
    {
      name: "a revoked agent",
      reason: "revoked_identity",
      cert: "retired",
      call: { as: "retired", to: "research", path: "/", headers: claims("retired", ["retired"]) },
    },
  ];

  it.each(denials)("denies $name: $reason, with the JSON body and status of SPEC 4, and forwards nothing", async ({ reason, call: request, cert }) => {
    const before = upstreamHits();
    const response = await call(request);
    expect(response.status, response.body).toBe(REASON_STATUS[reason].http);
    expect(response.headers["x-authz-reason"]).toBe(reason);
    expect(response.headers["content-type"]).toBe("application/json");
    const body = JSON.parse(response.body) as Record<string, unknown>;
    expect(Object.keys(body).sort()).toEqual(["decision_id", "error", "message"]);
    expect(body.error).toBe(reason);
    expect(body.message).toEqual(expect.any(String));
    expect(body.message).not.toBe("");
    const decision = sink.get(body.decision_id as string);
    expect(decision).toMatchObject({ allowed: false, reason, peerCertificateSha256: pki.agents[cert].sha256Hex });
    expect(upstreamHits()).toBe(before);
  });

  it("refuses the TLS handshake of a client without a certificate", async () => {
    const before = upstreamHits();
    const decisions = sink.decisions.size;
    await expect(mtlsRequest({ port: proxy!.port, authority: "research", path: "/", ca: paths("ca").cert, headers: claims("orchestrator") })).rejects.toThrow(
      /alert certificate required/,
    );
    expect(upstreamHits()).toBe(before);
    expect(sink.decisions.size).toBe(decisions);
  });

  it("refuses the TLS handshake of a certificate from a foreign CA", async () => {
    const before = upstreamHits();
    await expect(call({ as: "foreign-ca-agent", to: "research", path: "/", headers: claims("research") })).rejects.toThrow(/alert unknown ca/);
    expect(upstreamHits()).toBe(before);
  });

  // Last in this block: it stops hopwarden and starts it again.
  it("fails closed while hopwarden is down, and recovers when it returns on the same port", async () => {
    await hopwarden!.shutdown(1_000);
    hopwarden = undefined;
    const before = upstreamHits();
    const down = await call(allowedHop);
    expect(down.status).toBe(503);
    expect(down.headers["x-authz-reason"]).toBeUndefined();
    expect(upstreamHits()).toBe(before);

    hopwarden = await start(hopwardenPort);
    // Envoy reconnects (and its health check marks the host healthy again) within a few seconds.
    const deadline = Date.now() + 15_000;
    let back = await call(allowedHop);
    while (back.status !== 200 && Date.now() < deadline) {
      expect(back.status).toBe(503);
      await new Promise((ok) => setTimeout(ok, 200));
      back = await call(allowedHop);
    }
    expect(back.status).toBe(200);
    expect(upstreamHits()).toBe(before + 1);
  }, 30_000);
});

describe("XFCC sidecar → hopwarden trusting x-forwarded-client-cert → agent", () => {
  const sink = new RecordingSink();
  let hopwarden: Hopwarden | undefined;
  let sidecar: RunningProxy | undefined;
  let db: EchoUpstream | undefined;

  beforeAll(async () => {
    [hopwarden, db] = await Promise.all([
      startHopwarden({
        policyFile,
        listen: "127.0.0.1:0",
        logger: silentLogger,
        tracing: false,
        sinks: [sink],
        watchPolicy: false,
        trustForwardedClientCert: true,
      }),
      startEchoUpstream(),
    ]);
    sidecar = await startSidecarXfcc({
      server: paths("server"),
      caFile: paths("ca").cert,
      proxySpiffeId: spiffe("gateway"),
      hopwardenPort: hopwarden.grpcPort,
      agent: "db",
      agentPort: db.port,
      dir,
    });
  });

  afterAll(async () => {
    await sidecar?.stop();
    await hopwarden?.shutdown(1_000);
    await db?.close();
  });

  // The gateway (test PKI `server`) terminated research's mTLS and forwards its identity in XFCC.
  const viaGateway = (headers: Record<string, string>) =>
    mtlsRequest({
      port: sidecar!.port,
      path: "/query",
      ca: paths("ca").cert,
      cert: paths("server").cert,
      key: paths("server").key,
      headers: { "x-forwarded-client-cert": `By=${spiffe("gateway")};URI=${spiffe("research")}`, ...headers },
    });

  it("judges the caller named in XFCC and forwards an allowed hop", async () => {
    const response = await viaGateway(claims("research", ["orchestrator", "research"]));
    expect(response.status, response.body).toBe(200);
    const seen = db!.requests.at(-1)!;
    expect(seen.headers["x-agent-verified-subject"]).toBe(spiffe("research"));
    expect(seen.headers["x-agent-verified-chain"]).toBe(chainOf("orchestrator", "research"));
    expect(sink.get(seen.headers["x-authz-decision-id"] as string)).toMatchObject({ allowed: true, caller: spiffe("research"), callee: spiffe("db") });
  });

  // Without XFCC the peer is the gateway itself, and hopwarden would judge it as the caller (review finding).
  it("refuses a request from the gateway that carries no XFCC, asking and forwarding nothing", async () => {
    const before = db!.requests.length;
    const decisions = sink.decisions.size;
    const response = await mtlsRequest({ port: sidecar!.port, path: "/query", ca: paths("ca").cert, cert: paths("server").cert, key: paths("server").key, headers: claims("research", ["orchestrator", "research"]) });
    expect(response.status, response.body).toBe(401);
    expect(JSON.parse(response.body)).toEqual({ error: "missing_forwarded_client_cert" });
    expect(db!.requests).toHaveLength(before);
    expect(sink.decisions.size).toBe(decisions);
  });

  it("denies a subject header that is not the XFCC identity, forwarding nothing", async () => {
    const before = db!.requests.length;
    const response = await viaGateway(claims("orchestrator", ["orchestrator"]));
    expect(response.status).toBe(403);
    expect(response.headers["x-authz-reason"]).toBe("subject_mismatch");
    expect(db!.requests).toHaveLength(before);
  });
});
