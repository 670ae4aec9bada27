// Real Envoy reaching a real hopwarden process over mTLS (SPEC 7, finding 8):
// envoy/front-proxy.yaml rendered with HOPWARDEN_MTLS=true presents Envoy's
// client certificate to `hopwarden serve --tls-cert --tls-key --tls-client-ca`
// and checks hopwarden's certificate; an allowed and a denied call go end to
// end. A proxy without that certificate (plaintext, or an agent's SVID in its
// place) gets no decision and fails closed.

import { mkdir, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { eventually, killAllServes, requireBuiltCli, startServe, stopServe, type ServeProcess } from "./support/cli-process.js";
import { envoyBinary, mtlsRequest, startEchoUpstream, startFrontProxy, type EchoUpstream, type HopwardenTlsOptions, type RunningProxy } from "./support/envoy.js";
import { PERSON } from "./support/hop-requests.js";
import { CHECK_PORT_SERVER_NAME, createTestPki, spiffe, writeCheckPortPki, writePki, type CheckPortPki } from "./support/pki.js";
import { writeTestPolicy } from "./support/policies.js";

type PkiPaths = Awaited<ReturnType<typeof writePki>>;

let dir: string;
let agentFiles: PkiPaths;
let checkPort: CheckPortPki;
let hopwarden: ServeProcess;
let research: EchoUpstream;
let db: EchoUpstream;
const proxies: RunningProxy[] = [];

beforeAll(async () => {
  requireBuiltCli();
  envoyBinary(); // a missing Envoy fails here with the install hint
  dir = await mkdtemp(join(tmpdir(), "hopwarden-envoy-mtls-"));
  const [pki, cp, policy] = await Promise.all([createTestPki(), writeCheckPortPki(join(dir, "check-port")), writeTestPolicy({ version: "mtls-1" }, dir)]);
  agentFiles = await writePki(pki, join(dir, "agents"));
  checkPort = cp;
  [research, db, hopwarden] = await Promise.all([
    startEchoUpstream(),
    startEchoUpstream(),
    startServe([
      "--policy",
      policy.file,
      "--listen",
      "127.0.0.1:0",
      "--admin-listen",
      "127.0.0.1:0",
      "--tls-cert",
      checkPort.files.server.cert,
      "--tls-key",
      checkPort.files.server.key,
      "--tls-client-ca",
      checkPort.files.ca,
    ]),
  ]);
});

afterAll(async () => {
  await Promise.all(proxies.map((p) => p.stop()));
  if (hopwarden !== undefined) await stopServe(hopwarden);
  await killAllServes();
  await Promise.all([research?.close(), db?.close()]);
  if (dir !== undefined) await rm(dir, { recursive: true, force: true });
});

function agent(name: string): { cert: string; key: string } {
  const found = agentFiles[name];
  if (found === undefined) throw new Error(`test PKI has no ${name}`);
  return found;
}

async function frontProxy(name: string, hopwardenTls: HopwardenTlsOptions | undefined): Promise<RunningProxy> {
  const proxyDir = join(dir, name);
  await mkdir(proxyDir);
  const proxy = await startFrontProxy({
    server: agent("server"),
    caFile: agent("ca").cert,
    hopwardenPort: Number(hopwarden.grpc.split(":").at(-1)),
    ...(hopwardenTls !== undefined && { hopwardenTls }),
    researchPort: research.port,
    dbPort: db.port,
    dir: proxyDir,
  });
  proxies.push(proxy);
  return proxy;
}

/** The orchestrator asks research for alice (allowed), or research deletes on db (no rule allows DELETE). */
function call(proxy: RunningProxy, kind: "allowed" | "denied") {
  const as = kind === "allowed" ? "orchestrator" : "research";
  return mtlsRequest({
    port: proxy.port,
    authority: kind === "allowed" ? "research" : "db",
    method: kind === "allowed" ? "GET" : "DELETE",
    path: kind === "allowed" ? "/summarize" : "/query",
    ca: agent("ca").cert,
    cert: agent(as).cert,
    key: agent(as).key,
    headers: {
      "x-agent-subject": spiffe(as),
      "x-agent-on-behalf-of": PERSON,
      ...(kind === "denied" && { "x-agent-delegation-chain": `${spiffe("orchestrator")},${spiffe("research")}` }),
    },
  });
}

async function decisionsCounted(): Promise<number> {
  const text = await (await fetch(`http://${hopwarden.admin}/metrics`)).text();
  return text
    .split("\n")
    .filter((line) => line.startsWith("hopwarden_decisions_total"))
    .reduce((sum, line) => sum + Number(line.split(" ").at(-1)), 0);
}

/** A counter or gauge from Envoy's admin /stats. */
async function envoyStat(proxy: RunningProxy, name: string): Promise<number> {
  const stats = await proxy.envoy.admin(`stats?filter=^${name.replace(/\./g, "\\.")}$`);
  const match = new RegExp(`^${name.replace(/\./g, "\\.")}: (\\d+)$`, "m").exec(stats);
  return match === null ? NaN : Number(match[1]);
}

describe("Envoy → hopwarden over mTLS (HOPWARDEN_MTLS=true)", () => {
  let proxy: RunningProxy;

  beforeAll(async () => {
    proxy = await frontProxy("mtls", { clientCert: checkPort.files.envoy, serverCa: checkPort.files.ca, serverName: CHECK_PORT_SERVER_NAME });
  });

  it("forwards an allowed call, with hopwarden's decision id, after a Check over mTLS", async () => {
    const before = research.requests.length;
    const response = await call(proxy, "allowed");
    expect(response.status, response.body).toBe(200);
    expect(research.requests).toHaveLength(before + 1);
    expect(research.requests.at(-1)!.headers["x-authz-decision-id"]).toMatch(/^[0-9A-HJKMNP-TV-Z]{26}$/);
    expect(research.requests.at(-1)!.headers["x-agent-verified-subject"]).toBe(spiffe("orchestrator"));
  });

  it("refuses a denied call with hopwarden's reason, forwarding nothing", async () => {
    const before = db.requests.length;
    const response = await call(proxy, "denied");
    expect(response.status).toBe(403);
    expect(response.headers["x-authz-reason"]).toEqual(expect.any(String));
    expect(db.requests).toHaveLength(before);
  });

  it("reached hopwarden through TLS handshakes, health checks included, and hopwarden decided both calls", async () => {
    expect(await envoyStat(proxy, "cluster.hopwarden.ssl.handshake")).toBeGreaterThanOrEqual(1);
    expect(await envoyStat(proxy, "cluster.hopwarden.ssl.connection_error")).toBe(0);
    expect(await eventually(async () => (await envoyStat(proxy, "cluster.hopwarden.health_check.success")) >= 1, 5_000)).toBe(true);
    expect(await decisionsCounted()).toBe(2);
  });
});

describe("finding 8: a proxy without Envoy's client certificate gets no decision from hopwarden", () => {
  it.each([
    ["plaintext (HOPWARDEN_MTLS=false)", undefined],
    ["an agent's SVID as its client certificate", "agent-cert"],
  ] as const)("finding 8: %s: the handshake fails, the call fails closed (503), nothing is decided", async (_what, variant) => {
    const counted = await decisionsCounted();
    const proxy = await frontProxy(
      `refused-${variant ?? "plaintext"}`,
      variant === undefined ? undefined : { clientCert: agent("orchestrator"), serverCa: checkPort.files.ca, serverName: CHECK_PORT_SERVER_NAME },
    );
    const before = research.requests.length;
    const response = await call(proxy, "allowed");
    expect(response.status).toBe(503);
    expect(research.requests).toHaveLength(before);
    expect(await decisionsCounted()).toBe(counted);
    // Envoy's own gRPC health checks are refused the same way: the connection, not a Check, fails.
    expect(await envoyStat(proxy, "cluster.hopwarden.health_check.success")).toBe(0);
    expect(await eventually(async () => (await envoyStat(proxy, "cluster.hopwarden.health_check.network_failure")) >= 1, 5_000)).toBe(true);
    await proxy.stop();
  });
});
