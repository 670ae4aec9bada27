// SPEC 7 and finding 8 of the security review (issue 10): the Check port over
// TLS and mTLS, as a user runs it (the built CLI, real processes, real
// handshakes). With --tls-client-ca, a client without a certificate of that
// CA gets no decision and leaves no record; the serving certificate follows
// its files (renames, in-place writes, Kubernetes ..data symlink swaps) with
// no restart and no dropped connection, with one worker or several; a
// rotation caught half written leaves the last good certificate in force.

import { fromBinary, toBinary } from "@bufbuild/protobuf";
import { execFile } from "node:child_process";
import { randomUUID } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, readFile, readlink, rename, rm, symlink, writeFile } from "node:fs/promises";
import { connect as http2Connect, type ClientHttp2Session, type IncomingHttpHeaders } from "node:http2";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connect as tlsConnect, type TLSSocket } from "node:tls";
import { promisify } from "node:util";
import { credentials, status as grpcStatus, type ServiceError } from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CheckRequestSchema, CheckResponseSchema, type CheckRequest, type CheckResponse } from "../src/gen/envoy/service/auth/v3/external_auth_pb.js";
import { CheckClient, checkRequest, outcome } from "./support/check-client.js";
import { eventually, killAllServes, REPO_ROOT, requireBuiltCli, runCli, startServe, stopServe, type ServeProcess } from "./support/cli-process.js";
import { PERSON, researchCallsDb } from "./support/hop-requests.js";
import { CHECK_PORT_SERVER_NAME, createTestPki, spiffe, writeCheckPortPki, type CheckPortPki, type IssuedCertificate, type TestPki } from "./support/pki.js";
import { writeTestPolicy } from "./support/policies.js";

const run = promisify(execFile);
const HEALTH_PROBE = join(REPO_ROOT, ".tools", "bin", "grpc-health-probe");

let dir: string;
let agents: TestPki;
let checkPort: CheckPortPki;
let policyFile: string;

beforeAll(async () => {
  requireBuiltCli();
  dir = await mkdtemp(join(tmpdir(), "hopwarden-check-port-tls-"));
  [agents, checkPort, { file: policyFile }] = await Promise.all([createTestPki(), writeCheckPortPki(join(dir, "tls")), writeTestPolicy({ version: "tls-1" }, dir)]);
});

afterAll(async () => {
  await killAllServes();
  if (dir !== undefined) await rm(dir, { recursive: true, force: true });
});

/** An ordinary gRPC client (grpc-js) on a connection of its own, verifying hopwarden's certificate. */
function grpcClient(address: string, client?: { cert: string; key: string }): CheckClient {
  const creds = credentials.createSsl(
    Buffer.from(checkPort.ca.certPem),
    client === undefined ? null : Buffer.from(client.key),
    client === undefined ? null : Buffer.from(client.cert),
  );
  return new CheckClient(address, creds, { "grpc.ssl_target_name_override": CHECK_PORT_SERVER_NAME, "grpc.use_local_subchannel_pool": 1 });
}

const envoyIdentity = () => ({ cert: checkPort.envoy.certPem, key: checkPort.envoy.keyPem });

/** What the service counted in hopwarden_decisions_total, all reasons together. */
async function decisionsCounted(admin: string): Promise<number> {
  const text = await (await fetch(`http://${admin}/metrics`)).text();
  return text
    .split("\n")
    .filter((line) => line.startsWith("hopwarden_decisions_total"))
    .reduce((sum, line) => sum + Number(line.split(" ").at(-1)), 0);
}

async function expectRefused(check: Promise<unknown>): Promise<void> {
  const error = await check.then(
    () => undefined,
    (err: ServiceError) => err,
  );
  expect(error, "the Check was answered").toBeDefined();
  // No TLS session, no HTTP/2 stream: the call fails as a transport error, not as a denial.
  expect(error!.code).toBe(grpcStatus.UNAVAILABLE);
}

/** research → db, DELETE: a request the test policy denies. */
const deniedRequest = (): CheckRequest =>
  checkRequest({
    principal: spiffe("research"),
    callee: "db",
    method: "DELETE",
    path: "/query",
    headers: { "x-agent-subject": spiffe("research"), "x-agent-on-behalf-of": PERSON, "x-agent-delegation-chain": `${spiffe("orchestrator")},${spiffe("research")}` },
  });

describe("finding 8: with --tls-client-ca, only a client with a certificate from that CA gets decisions", () => {
  let serve: ServeProcess;
  let auditLog: string;
  let auditPub: string;

  beforeAll(async () => {
    const keyPrefix = join(dir, "audit");
    expect((await runCli(["audit", "keygen", "--out", keyPrefix])).code).toBe(0);
    auditLog = join(dir, "audit", "audit.log");
    auditPub = `${keyPrefix}.pub`;
    serve = await startServe([
      "--policy",
      policyFile,
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
      "--audit-log",
      auditLog,
      "--audit-key",
      `${keyPrefix}.key`,
      "--log-level",
      "debug",
    ]);
  });

  afterAll(async () => {
    if (serve !== undefined) await stopServe(serve);
  });

  it("says tls=mtls on its ready line, and logs the certificate it serves", () => {
    expect(serve.stdout()).toMatch(/^hopwarden ready grpc=127\.0\.0\.1:\d+ admin=127\.0\.0\.1:\d+ workers=1 tls=mtls /m);
    expect(serve.stderr()).toContain(`"serial":"${checkPort.server.serialHex}"`);
  });

  it("finding 8: refuses a gRPC client without a certificate in the handshake: no decision, nothing recorded", async () => {
    const anonymous = grpcClient(serve.grpc);
    try {
      await expectRefused(anonymous.check(researchCallsDb()));
      await expectRefused(anonymous.health());
    } finally {
      anonymous.close();
    }
    // Nor does plaintext get anywhere.
    const plaintext = new CheckClient(serve.grpc, credentials.createInsecure(), { "grpc.use_local_subchannel_pool": 1 });
    try {
      await expectRefused(plaintext.check(researchCallsDb()));
    } finally {
      plaintext.close();
    }
    expect(await decisionsCounted(serve.admin)).toBe(0);
    expect(serve.stderr()).not.toContain('"msg":"decision"');
  });

  it("finding 8: refuses a client certificate from another CA, such as an agent's own SVID", async () => {
    const agent = grpcClient(serve.grpc, { cert: agents.agents.research.certPem, key: agents.agents.research.keyPem });
    const foreign = grpcClient(serve.grpc, { cert: agents.foreignCaAgent.certPem, key: agents.foreignCaAgent.keyPem });
    try {
      await expectRefused(agent.check(researchCallsDb()));
      await expectRefused(foreign.check(researchCallsDb()));
    } finally {
      agent.close();
      foreign.close();
    }
    expect(await decisionsCounted(serve.admin)).toBe(0);
  });

  it("answers a client with Envoy's certificate: one allow and one deny, both counted", async () => {
    const envoy = grpcClient(serve.grpc, envoyIdentity());
    try {
      expect(outcome(await envoy.check(researchCallsDb())).code).toBe(0);
      const denied = outcome(await envoy.check(deniedRequest()));
      expect(denied.code).not.toBe(0);
      expect(denied.reason).toBeDefined();
    } finally {
      envoy.close();
    }
    expect(await decisionsCounted(serve.admin)).toBe(2);
  });

  it("answers grpc-health-probe -tls with Envoy's certificate, and not without one", async () => {
    expect(existsSync(HEALTH_PROBE), "grpc-health-probe is missing: run scripts/install-test-tools.sh grpc-health-probe").toBe(true);
    const tlsFlags = ["-addr", serve.grpc, "-tls", "-tls-ca-cert", checkPort.files.ca, "-tls-server-name", CHECK_PORT_SERVER_NAME];
    const ok = await run(HEALTH_PROBE, [...tlsFlags, "-tls-client-cert", checkPort.files.envoy.cert, "-tls-client-key", checkPort.files.envoy.key], { timeout: 10_000 });
    // The probe prints its verdict on stderr.
    expect(ok.stderr.trim()).toBe("status: SERVING");
    await expect(run(HEALTH_PROBE, tlsFlags, { timeout: 10_000 })).rejects.toMatchObject({ code: 2 });
  });

  it("finding 8: the signed audit log holds the two decisions made over mTLS and nothing from the refused clients", async () => {
    expect(await stopServe(serve)).toEqual({ code: 0, signal: null });
    const records = (await readFile(auditLog, "utf8"))
      .split("\n")
      .filter((line) => line.length > 0)
      .map((line) => JSON.parse(line) as { type: string; decision?: string });
    expect(records.filter((r) => r.type === "decision")).toHaveLength(2);
    const verify = await runCli(["audit", "verify", "--public-key", auditPub, auditLog]);
    expect(verify.code, verify.stdout + verify.stderr).toBe(0);
  });
});

// --- rotation -----------------------------------------------------------------

/** A TLS connection of our own, kept open, with an HTTP/2 session on it: one connection, not a pool. */
interface HeldConnection {
  readonly socket: TLSSocket;
  readonly session: ClientHttp2Session;
  /** Serial of the certificate the server presented when this connection was made. */
  readonly serial: string;
  check(request: CheckRequest): Promise<CheckResponse>;
  close(): void;
}

async function holdConnection(address: string): Promise<HeldConnection> {
  const [host, port] = [address.slice(0, address.lastIndexOf(":")), Number(address.slice(address.lastIndexOf(":") + 1))];
  const socket = await new Promise<TLSSocket>((resolve, reject) => {
    const s = tlsConnect({
      host,
      port,
      servername: CHECK_PORT_SERVER_NAME,
      ca: checkPort.ca.certPem,
      cert: checkPort.envoy.certPem,
      key: checkPort.envoy.keyPem,
      ALPNProtocols: ["h2"],
    });
    s.once("secureConnect", () => resolve(s));
    s.once("error", reject);
  });
  const session = http2Connect(`https://${CHECK_PORT_SERVER_NAME}:${port}`, { createConnection: () => socket });
  session.on("error", () => undefined);
  const serial = socket.getPeerX509Certificate()?.serialNumber ?? "";
  return {
    socket,
    session,
    serial,
    check: (request) => unaryCheck(session, request),
    close: () => {
      session.close();
      socket.destroy();
    },
  };
}

/** One gRPC unary Check on an existing HTTP/2 session (length-prefixed message, grpc-status in the trailers). */
function unaryCheck(session: ClientHttp2Session, request: CheckRequest): Promise<CheckResponse> {
  return new Promise((resolve, reject) => {
    const message = Buffer.from(toBinary(CheckRequestSchema, request));
    const frame = Buffer.alloc(5 + message.length);
    frame.writeUInt32BE(message.length, 1);
    message.copy(frame, 5);
    const stream = session.request({ ":method": "POST", ":path": "/envoy.service.auth.v3.Authorization/Check", "content-type": "application/grpc", te: "trailers" });
    const chunks: Buffer[] = [];
    let grpcStatusCode: string | undefined;
    stream.on("response", (headers) => (grpcStatusCode ??= headers["grpc-status"] as string | undefined));
    stream.on("trailers", (trailers: IncomingHttpHeaders) => (grpcStatusCode = trailers["grpc-status"] as string | undefined));
    stream.on("data", (chunk: Buffer) => chunks.push(chunk));
    stream.on("error", reject);
    stream.on("close", () => {
      const body = Buffer.concat(chunks);
      if (grpcStatusCode !== "0" || body.length < 5) return reject(new Error(`Check failed on the held connection: grpc-status ${grpcStatusCode ?? "none"}`));
      resolve(fromBinary(CheckResponseSchema, body.subarray(5, 5 + body.readUInt32BE(1))));
    });
    stream.end(frame);
  });
}

/** Serial of the certificate a new handshake gets now. */
async function servedSerial(address: string): Promise<string> {
  const connection = await holdConnection(address);
  connection.close();
  return connection.serial;
}

const issueServer = (): Promise<IssuedCertificate> => checkPort.ca.issue({ name: CHECK_PORT_SERVER_NAME, dnsNames: [CHECK_PORT_SERVER_NAME, "localhost"], server: true });

/** Writes a file next to `path` and renames it over `path`: what most rotators do. */
async function replaceAtomically(path: string, content: string): Promise<void> {
  const temporary = `${path}.${randomUUID()}.tmp`;
  await writeFile(temporary, content, { mode: 0o600 });
  await rename(temporary, path);
}

describe("a rotated certificate is taken up without a restart (renames and in-place writes)", () => {
  let serve: ServeProcess;
  let tlsDir: string;
  let first: HeldConnection;

  beforeAll(async () => {
    tlsDir = join(dir, "rotating");
    await mkdir(tlsDir);
    await writeFile(join(tlsDir, "tls.crt"), checkPort.server.certPem);
    await writeFile(join(tlsDir, "tls.key"), checkPort.server.keyPem, { mode: 0o600 });
    serve = await startServe([
      "--policy",
      policyFile,
      "--listen",
      "127.0.0.1:0",
      "--admin-listen",
      "off",
      "--tls-cert",
      join(tlsDir, "tls.crt"),
      "--tls-key",
      join(tlsDir, "tls.key"),
      "--tls-client-ca",
      checkPort.files.ca,
    ]);
    first = await holdConnection(serve.grpc);
  });

  afterAll(async () => {
    first?.close();
    if (serve !== undefined) await stopServe(serve);
  });

  it("serves the first certificate from the first handshake on", async () => {
    expect(first.serial).toBe(checkPort.server.serialHex);
    expect(outcome(await first.check(researchCallsDb())).code).toBe(0);
  });

  it("takes up a certificate and key replaced by renames: new connections get it, the open one keeps working", async () => {
    const next = await issueServer();
    await replaceAtomically(join(tlsDir, "tls.key"), next.keyPem);
    await replaceAtomically(join(tlsDir, "tls.crt"), next.certPem);
    expect(await eventually(async () => (await servedSerial(serve.grpc)) === next.serialHex, 10_000, 100), "a new handshake got the new certificate").toBe(true);
    // The connection made before the rotation is the same TLS session, still answering.
    expect(first.socket.destroyed).toBe(false);
    expect(first.session.closed).toBe(false);
    expect(outcome(await first.check(researchCallsDb())).code).toBe(0);
    expect(serve.stderr()).toMatch(new RegExp(`"msg":"check port TLS certificate rotated; new handshakes use it".*"serial":"${next.serialHex}"`));
  });

  it("refuses a half-written certificate and a key that does not match, logging each, and keeps the last good certificate", async () => {
    const inForce = await servedSerial(serve.grpc);
    const next = await issueServer();
    const certFile = join(tlsDir, "tls.crt");
    // In place, as a naive copy would: first half the certificate...
    await writeFile(certFile, next.certPem.slice(0, Math.floor(next.certPem.length / 2)));
    expect(await eventually(() => serve.stderr().includes("ends inside a PEM block"), 10_000)).toBe(true);
    expect(await servedSerial(serve.grpc)).toBe(inForce);
    // ...then the whole certificate, while the key on disk is still the old one...
    await writeFile(certFile, next.certPem);
    expect(await eventually(() => serve.stderr().includes("the private key does not belong to the certificate"), 10_000)).toBe(true);
    expect(await servedSerial(serve.grpc)).toBe(inForce);
    expect(serve.stderr()).toMatch(/"level":"error","msg":"check port TLS files refused; the last good certificate stays in force"/);
    // ...and then the key: the set is whole again, and taken up.
    await writeFile(join(tlsDir, "tls.key"), next.keyPem);
    expect(await eventually(async () => (await servedSerial(serve.grpc)) === next.serialHex, 10_000, 100)).toBe(true);
    expect(outcome(await first.check(researchCallsDb())).code).toBe(0);
    expect(serve.child.exitCode).toBeNull();
  });
});

/** A Kubernetes Secret volume: files are symlinks through `..data` to a timestamped directory that the kubelet swaps. */
async function projectSecret(volume: string, files: Record<string, string>): Promise<void> {
  const generation = `..${Date.now()}_${randomUUID().slice(0, 8)}`;
  await mkdir(join(volume, generation), { recursive: true });
  for (const [name, content] of Object.entries(files)) await writeFile(join(volume, generation, name), content, { mode: 0o600 });
  const staged = join(volume, "..data_tmp");
  await rm(staged, { force: true });
  await symlink(generation, staged);
  const previous = existsSync(join(volume, "..data")) ? await readlink(join(volume, "..data")) : undefined;
  await rename(staged, join(volume, "..data"));
  for (const name of Object.keys(files)) {
    if (!existsSync(join(volume, name))) await symlink(join("..data", name), join(volume, name));
  }
  if (previous !== undefined) await rm(join(volume, previous), { recursive: true, force: true });
}

describe("with --workers 2, every worker serves TLS and takes up a Kubernetes ..data swap", () => {
  let serve: ServeProcess;
  let volume: string;

  beforeAll(async () => {
    volume = join(dir, "secret-volume");
    await mkdir(volume);
    await projectSecret(volume, { "tls.crt": checkPort.server.certPem, "tls.key": checkPort.server.keyPem, "ca.crt": checkPort.ca.certPem });
    serve = await startServe(
      [
        "--policy",
        policyFile,
        "--listen",
        "127.0.0.1:0",
        "--admin-listen",
        "off",
        "--workers",
        "2",
        "--tls-cert",
        join(volume, "tls.crt"),
        "--tls-key",
        join(volume, "tls.key"),
        "--tls-client-ca",
        join(volume, "ca.crt"),
      ],
      { readyTimeoutMs: 30_000 },
    );
  });

  afterAll(async () => {
    if (serve !== undefined) await stopServe(serve);
  });

  it("answers over mTLS on every worker, and after a swap every new connection gets the new certificate while old ones keep working", async () => {
    expect(serve.stdout()).toMatch(/^hopwarden ready .* workers=2 tls=mtls /m);
    // The primary hands connections to the workers in turn: several connections reach both.
    const before = await Promise.all(Array.from({ length: 4 }, () => holdConnection(serve.grpc)));
    try {
      expect(before.map((c) => c.serial)).toEqual(Array(4).fill(checkPort.server.serialHex));
      for (const c of before) expect(outcome(await c.check(researchCallsDb())).code).toBe(0);

      const next = await issueServer();
      await projectSecret(volume, { "tls.crt": next.certPem, "tls.key": next.keyPem, "ca.crt": checkPort.ca.certPem });
      // Both workers log the rotation.
      expect(await eventually(() => serve.stderr().split("check port TLS certificate rotated").length - 1 >= 2, 10_000), serve.stderr()).toBe(true);
      const after = await Promise.all(Array.from({ length: 6 }, () => servedSerial(serve.grpc)));
      expect(after).toEqual(Array(6).fill(next.serialHex));
      for (const c of before) {
        expect(c.socket.destroyed).toBe(false);
        expect(outcome(await c.check(researchCallsDb())).code).toBe(0);
      }
    } finally {
      for (const c of before) c.close();
    }
  });
});

describe("serve TLS start-up errors", () => {
  const serveArgs = (...tls: string[]) => ["serve", "--policy", policyFile, "--listen", "127.0.0.1:0", "--admin-listen", "off", ...tls];

  it("serve --help documents the TLS flags and what each protects", async () => {
    const r = await runCli(["serve", "--help"]);
    expect(r.code).toBe(0);
    for (const flag of ["--tls-cert <file>", "--tls-key <file>", "--tls-client-ca <file>"]) expect(r.stdout).toContain(flag);
    expect(r.stdout).toMatch(/What TLS protects:/);
    expect(r.stdout).toMatch(/refused in the TLS handshake/);
    expect(r.stdout).toMatch(/grpc-health-probe .*-tls /);
  });

  it.each([
    ["--tls-cert without --tls-key", ["--tls-cert", "x.crt"], /--tls-cert and --tls-key go together \(--tls-cert was given without --tls-key\)/],
    ["--tls-key without --tls-cert", ["--tls-key", "x.key"], /--tls-cert and --tls-key go together \(--tls-key was given without --tls-cert\)/],
    ["--tls-client-ca without a certificate", ["--tls-client-ca", "ca.crt"], /--tls-client-ca needs --tls-cert and --tls-key/],
  ])("exits 2 with usage for %s, naming the flags", async (_what, flags, message) => {
    const r = await runCli(serveArgs(...flags));
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(message);
    expect(r.stdout).not.toContain("hopwarden ready");
  });

  it("takes the files from HOPWARDEN_TLS_* environment variables too, and checks them together", async () => {
    const r = await runCli(serveArgs(), { env: { HOPWARDEN_TLS_CLIENT_CA: checkPort.files.ca } });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--tls-client-ca needs --tls-cert and --tls-key/);
  });

  it("exits 1 naming a file that is not PEM, a missing file and a key of another certificate, without a stack trace", async () => {
    const notPem = join(dir, "not-a-certificate.crt");
    await writeFile(notPem, "hello\n");
    const cases: Array<[string[], RegExp]> = [
      [["--tls-cert", notPem, "--tls-key", checkPort.files.server.key], new RegExp(`the TLS file ${notPem} is not usable: the certificate file holds no PEM certificate`)],
      [["--tls-cert", join(dir, "missing.crt"), "--tls-key", checkPort.files.server.key], /missing\.crt is not usable: cannot read the certificate file \(ENOENT\)/],
      [["--tls-cert", checkPort.files.server.cert, "--tls-key", checkPort.files.envoy.key], /envoy-client\.key is not usable: the private key does not belong to the certificate/],
      [["--tls-cert", checkPort.files.server.cert, "--tls-key", checkPort.files.server.key, "--tls-client-ca", notPem], /not-a-certificate\.crt is not usable: the client CA file holds no PEM certificate/],
    ];
    for (const [flags, message] of cases) {
      const r = await runCli(serveArgs(...flags));
      expect(r.code, r.stderr).toBe(1);
      expect(r.stderr).toMatch(message);
      expect(r.stderr).not.toMatch(/^\s+at /m);
      expect(r.stdout).not.toContain("hopwarden ready");
    }
  });

  it("exits 1 naming the file with --workers 2 as well, before any worker starts", async () => {
    const r = await runCli(serveArgs("--workers", "2", "--tls-cert", checkPort.files.server.cert, "--tls-key", join(dir, "missing.key")));
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/hopwarden serve: cannot start: the TLS file \S*missing\.key is not usable: cannot read the private key file \(ENOENT\)/);
    expect(r.stderr).not.toContain("worker");
  });

  it("takes tlsCert, tlsKey and tlsClientCa from --config", async () => {
    const config = join(dir, "tls-config.yaml");
    await writeFile(config, `tlsCert: ${checkPort.files.server.cert}\ntlsKey: ${checkPort.files.server.key}\ntlsClientCa: ${checkPort.files.ca}\n`);
    const serve = await startServe(["--policy", policyFile, "--config", config, "--listen", "127.0.0.1:0", "--admin-listen", "off"]);
    try {
      expect(serve.stdout()).toMatch(/^hopwarden ready .* tls=mtls /m);
      const envoy = grpcClient(serve.grpc, envoyIdentity());
      try {
        expect(outcome(await envoy.check(researchCallsDb())).code).toBe(0);
      } finally {
        envoy.close();
      }
    } finally {
      await stopServe(serve);
    }
  });
});
