// The Check port's TLS files are read and checked as one set, and every
// refusal names the file and what is wrong with it.

import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createCertificateAuthority, type CertificateAuthority, type IssuedCertificate } from "../../../test/support/pki.js";
import { loadTlsFileSet, TlsFileError, type TlsFiles } from "./tls-file-set.js";

let dir: string;
let ca: CertificateAuthority;
let server: IssuedCertificate;
let other: IssuedCertificate;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "hopwarden-tls-file-set-"));
  ca = await createCertificateAuthority("tls-file-set CA");
  [server, other] = await Promise.all([ca.issue({ name: "hopwarden", dnsNames: ["hopwarden"], server: true }), ca.issue({ name: "other", dnsNames: ["other"], server: true })]);
});

afterAll(async () => {
  if (dir !== undefined) await rm(dir, { recursive: true, force: true });
});

let counter = 0;
async function file(content: string): Promise<string> {
  const path = join(dir, `f${++counter}.pem`);
  await writeFile(path, content);
  return path;
}

async function refusal(files: TlsFiles): Promise<TlsFileError> {
  const error = await loadTlsFileSet(files).then(
    () => undefined,
    (err: unknown) => err,
  );
  expect(error).toBeInstanceOf(TlsFileError);
  return error as TlsFileError;
}

describe("loadTlsFileSet", () => {
  it("reads a certificate, its key and a client CA, and says which certificate it serves", async () => {
    const set = await loadTlsFileSet({ cert: await file(server.certPem), key: await file(server.keyPem), clientCa: await file(ca.certPem) });
    expect(set.serving.serialNumber).toBe(server.serialHex);
    expect(set.serving.fingerprint256.replace(/:/g, "")).toBe(server.sha256Hex);
    expect(set.serving.subjectAltName).toBe("DNS:hopwarden");
    expect(set.clientCa?.toString()).toBe(ca.certPem);
  });

  it("takes a chain (leaf first, then the CA) and checks the key against the leaf", async () => {
    const set = await loadTlsFileSet({ cert: await file(server.certPem + ca.certPem), key: await file(server.keyPem) });
    expect(set.serving.serialNumber).toBe(server.serialHex);
  });

  it("gives equal digests for equal files and different ones when any file changes", async () => {
    const [cert, key] = [await file(server.certPem), await file(server.keyPem)];
    const a = await loadTlsFileSet({ cert, key });
    const b = await loadTlsFileSet({ cert, key });
    const c = await loadTlsFileSet({ cert, key, clientCa: await file(ca.certPem) });
    expect(a.digest).toBe(b.digest);
    expect(c.digest).not.toBe(a.digest);
  });

  const badCertificates: Array<[string, () => string, RegExp]> = [
    ["an empty certificate file", () => "", /the certificate file holds no PEM certificate/],
    ["a certificate cut off inside its PEM block", () => server.certPem.slice(0, 200), /ends inside a PEM block/],
    ["a full leaf followed by a cut-off intermediate", () => server.certPem + ca.certPem.slice(0, 100), /ends inside a PEM block/],
    ["a key in the certificate file", () => server.keyPem + server.certPem, /holds a PEM PRIVATE KEY block \(number 1\) where only certificates belong/],
    ["a certificate block that is not X.509", () => "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", /certificate 1 of the certificate file is not valid X\.509/],
  ];
  it.each(badCertificates)("refuses %s, naming the certificate file", async (_what, content, message) => {
    const cert = await file(content());
    const error = await refusal({ cert, key: await file(server.keyPem) });
    expect(error.file).toBe(cert);
    expect(error.message).toMatch(message);
    expect(error.code).toBe("tls_file_unusable");
  });

  it("refuses a key that is not PEM, an encrypted key, and another certificate's key, naming the key file", async () => {
    const cert = await file(server.certPem);
    for (const [content, message] of [
      ["not a key\n", /not a usable PEM private key/],
      ["-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n", /the private key is encrypted/],
      [other.keyPem, new RegExp(`the private key does not belong to the certificate in ${cert}`)],
      [server.keyPem.slice(0, 60), /not a usable PEM private key/],
    ] as const) {
      const key = await file(content);
      const error = await refusal({ cert, key });
      expect(error.file).toBe(key);
      expect(error.message).toMatch(message);
    }
  });

  it("refuses a client CA file without a whole certificate, naming it", async () => {
    const clientCa = await file(ca.certPem.slice(0, 300));
    const error = await refusal({ cert: await file(server.certPem), key: await file(server.keyPem), clientCa });
    expect(error.file).toBe(clientCa);
    expect(error.problem).toMatch(/the client CA file ends inside a PEM block/);
  });

  it("names a file it cannot read, with the system's reason", async () => {
    const error = await refusal({ cert: join(dir, "absent.crt"), key: await file(server.keyPem) });
    expect(error.message).toBe(`the TLS file ${join(dir, "absent.crt")} is not usable: cannot read the certificate file (ENOENT)`);
  });
});
