// CheckPortTls: grpc-js server credentials that only ever hold a checked set
// of files. A real grpc-js server on loopback shows what a client sees: a
// certificate from the first handshake after bind, the new one after a
// reload, the last good one after a refused reload; and with a client CA, no
// session without a client certificate.

import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connect, type ConnectionOptions } from "node:tls";
import { Server } from "@grpc/grpc-js";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { createCertificateAuthority, type CertificateAuthority, type IssuedCertificate } from "../../../test/support/pki.js";
import { createLogger, type Logger } from "../logging/logger.js";
import { CheckPortTls } from "./check-port-tls.js";

let dir: string;
let ca: CertificateAuthority;
let first: IssuedCertificate;
let client: IssuedCertificate;
const servers: Server[] = [];
const opened: CheckPortTls[] = [];

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "hopwarden-check-port-tls-"));
  ca = await createCertificateAuthority("check-port-tls CA");
  [first, client] = await Promise.all([ca.issue({ name: "hopwarden", dnsNames: ["hopwarden"], server: true }), ca.issue({ name: "envoy", uris: ["spiffe://example.org/proxy/envoy"] })]);
});

afterEach(() => {
  for (const server of servers.splice(0)) server.forceShutdown();
  for (const tls of opened.splice(0)) tls.close();
});

afterAll(async () => {
  if (dir !== undefined) await rm(dir, { recursive: true, force: true });
});

function recordingLogger(): { logger: Logger; lines: () => Array<Record<string, unknown>> } {
  const lines: string[] = [];
  return { logger: createLogger("debug", (line) => lines.push(line)), lines: () => lines.map((l) => JSON.parse(l) as Record<string, unknown>) };
}

let counter = 0;
async function writeSet(cert: IssuedCertificate): Promise<{ cert: string; key: string }> {
  const base = join(dir, `set${++counter}`);
  await writeFile(`${base}.crt`, cert.certPem);
  await writeFile(`${base}.key`, cert.keyPem);
  return { cert: `${base}.crt`, key: `${base}.key` };
}

async function serveWith(tls: CheckPortTls): Promise<number> {
  const server = new Server();
  servers.push(server);
  return new Promise((resolve, reject) => server.bindAsync("127.0.0.1:0", tls.credentials, (err, port) => (err ? reject(err) : resolve(port))));
}

/** The serial the server presents to a new handshake, or the handshake's error. */
function handshake(port: number, extra: ConnectionOptions = {}): Promise<string> {
  return new Promise((resolve) => {
    const socket = connect({ host: "127.0.0.1", port, servername: "hopwarden", ca: ca.certPem, ALPNProtocols: ["h2"], ...extra });
    socket.once("secureConnect", () => {
      const serial = socket.getPeerX509Certificate()?.serialNumber ?? "";
      // TLS 1.3: a refused client certificate arrives as an alert just after the client's handshake ends.
      socket.once("error", (err: Error) => resolve(`error: ${err.message}`));
      socket.once("data", () => undefined);
      setTimeout(() => {
        socket.destroy();
        resolve(serial);
      }, 100);
    });
    socket.once("error", (err: Error) => resolve(`error: ${err.message}`));
  });
}

describe("CheckPortTls", () => {
  it("serves its certificate from the very first handshake after bind", async () => {
    const tls = await CheckPortTls.open(await writeSet(first), recordingLogger().logger);
    opened.push(tls);
    const port = await serveWith(tls);
    expect(await handshake(port)).toBe(first.serialHex);
  });

  it("re-keys new handshakes on a reload that finds new files, and says nothing when nothing changed", async () => {
    const files = await writeSet(first);
    const { logger, lines } = recordingLogger();
    const tls = await CheckPortTls.open(files, logger);
    opened.push(tls);
    const port = await serveWith(tls);
    expect(await tls.reload("poll")).toMatchObject({ ok: true, changed: false });
    expect(lines()).toHaveLength(1);

    const next = await ca.issue({ name: "hopwarden", dnsNames: ["hopwarden"], server: true });
    await writeFile(files.key, next.keyPem);
    await writeFile(files.cert, next.certPem);
    expect(await tls.reload("test")).toMatchObject({ ok: true, changed: true, serving: { serialNumber: next.serialHex } });
    expect(await handshake(port)).toBe(next.serialHex);
    expect(lines().at(-1)).toMatchObject({ level: "info", msg: "check port TLS certificate rotated; new handshakes use it", serial: next.serialHex, previous_serial: first.serialHex });
  });

  it("keeps the last good certificate when a reload finds a bad set, logging a refusal once however often a poll finds it", async () => {
    const files = await writeSet(first);
    const { logger, lines } = recordingLogger();
    const tls = await CheckPortTls.open(files, logger);
    opened.push(tls);
    const port = await serveWith(tls);
    await writeFile(files.cert, first.certPem.slice(0, 100));
    for (let i = 0; i < 3; i++) expect(await tls.reload("poll")).toMatchObject({ ok: false, changed: false, serving: { serialNumber: first.serialHex } });
    const refusals = lines().filter((l) => l.level === "error");
    expect(refusals).toHaveLength(1);
    expect(refusals[0]).toMatchObject({ msg: "check port TLS files refused; the last good certificate stays in force", serial_in_force: first.serialHex });
    expect(String(refusals[0]!.error)).toContain(files.cert);
    expect(await handshake(port)).toBe(first.serialHex);
  });

  it("with a client CA, completes a session only for a client certificate from it", async () => {
    const tls = await CheckPortTls.open({ ...(await writeSet(first)), clientCa: join(dir, "client-ca.crt") }, recordingLogger().logger).catch((e: unknown) => e);
    expect(tls).toBeInstanceOf(Error); // the client CA file does not exist yet
    await writeFile(join(dir, "client-ca.crt"), ca.certPem);
    const mutual = await CheckPortTls.open({ ...(await writeSet(first)), clientCa: join(dir, "client-ca.crt") }, recordingLogger().logger);
    opened.push(mutual);
    expect(mutual.mutual).toBe(true);
    const port = await serveWith(mutual);
    expect(await handshake(port, { cert: client.certPem, key: client.keyPem })).toBe(first.serialHex);
    expect(await handshake(port)).toMatch(/^error: .*certificate required/);
  });
});
