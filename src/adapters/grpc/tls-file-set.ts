// The Check port's TLS files (`serve --tls-cert --tls-key [--tls-client-ca]`)
// read and checked as one set: every PEM block complete and parsable, the key
// belonging to the certificate, and OpenSSL willing to build a context from
// them. A set is used whole or not at all, so a half-written file (a
// rotation caught mid-write) is an error naming that file, never a server
// without a certificate.

import { createHash, createPrivateKey, X509Certificate, type KeyObject } from "node:crypto";
import { readFile } from "node:fs/promises";
import { createSecureContext } from "node:tls";
import { HopwardenError } from "../../core/errors.js";

export interface TlsFiles {
  /** Server certificate (PEM): the leaf first, then any intermediates. */
  readonly cert: string;
  /** Its private key (PEM, unencrypted). */
  readonly key: string;
  /** CA bundle (PEM) that client certificates must chain to; absent: no client certificate asked for. */
  readonly clientCa?: string | undefined;
}

export class TlsFileError extends HopwardenError {
  readonly code = "tls_file_unusable";
  constructor(
    readonly file: string,
    readonly problem: string,
  ) {
    super(`the TLS file ${file} is not usable: ${problem}`);
  }
}

/** What a log line or a test needs to tell one server certificate from another. */
export interface ServingCertificate {
  readonly serialNumber: string;
  /** SHA-256 of the DER, colon-separated hex as node:crypto prints it. */
  readonly fingerprint256: string;
  readonly subject: string;
  readonly subjectAltName: string | undefined;
  readonly validFrom: Date;
  readonly validTo: Date;
}

export interface TlsFileSet {
  readonly files: TlsFiles;
  readonly cert: Buffer;
  readonly key: Buffer;
  readonly clientCa: Buffer | undefined;
  readonly serving: ServingCertificate;
  /** SHA-256 over the three files' bytes: equal digests, nothing changed. */
  readonly digest: string;
}

const PEM_BLOCK = /-----BEGIN ([A-Z0-9 ]+)-----\r?\n([\s\S]*?)-----END \1-----/g;
const PEM_BEGIN = /-----BEGIN [A-Z0-9 ]+-----/g;

async function readTlsFile(file: string, role: string): Promise<Buffer> {
  try {
    return await readFile(file);
  } catch (err) {
    throw new TlsFileError(file, `cannot read the ${role} (${(err as NodeJS.ErrnoException).code ?? String(err)})`);
  }
}

/** The certificates of a PEM file; a file with anything else, or cut off inside a block, is refused. */
function pemCertificates(file: string, text: string, role: string): X509Certificate[] {
  const blocks = [...text.matchAll(PEM_BLOCK)];
  const begins = text.match(PEM_BEGIN)?.length ?? 0;
  if (begins > blocks.length) throw new TlsFileError(file, `the ${role} ends inside a PEM block (a file still being written?)`);
  if (blocks.length === 0) throw new TlsFileError(file, `the ${role} holds no PEM certificate (-----BEGIN CERTIFICATE-----)`);
  return blocks.map((block, i) => {
    if (block[1] !== "CERTIFICATE") throw new TlsFileError(file, `the ${role} holds a PEM ${block[1]} block (number ${i + 1}) where only certificates belong`);
    try {
      return new X509Certificate(block[0]);
    } catch (err) {
      throw new TlsFileError(file, `certificate ${i + 1} of the ${role} is not valid X.509 (${err instanceof Error ? err.message : String(err)})`);
    }
  });
}

function privateKey(file: string, pem: Buffer): KeyObject {
  const text = pem.toString("utf8");
  if (/-----BEGIN ENCRYPTED PRIVATE KEY-----|Proc-Type: 4,ENCRYPTED/.test(text)) {
    throw new TlsFileError(file, "the private key is encrypted; hopwarden reads unencrypted PEM keys (protect the file instead)");
  }
  try {
    return createPrivateKey({ key: pem, format: "pem" });
  } catch (err) {
    throw new TlsFileError(file, `not a usable PEM private key (${err instanceof Error ? err.message : String(err)})`);
  }
}

/** Reads and checks the set; throws a TlsFileError naming the first file that is not usable. */
export async function loadTlsFileSet(files: TlsFiles): Promise<TlsFileSet> {
  const [cert, key, clientCa] = await Promise.all([
    readTlsFile(files.cert, "certificate file"),
    readTlsFile(files.key, "private key file"),
    files.clientCa === undefined ? undefined : readTlsFile(files.clientCa, "client CA file"),
  ]);
  const leaf = pemCertificates(files.cert, cert.toString("utf8"), "certificate file")[0]!;
  if (!leaf.checkPrivateKey(privateKey(files.key, key))) {
    throw new TlsFileError(files.key, `the private key does not belong to the certificate in ${files.cert} (a rotation half done?)`);
  }
  if (clientCa !== undefined) pemCertificates(files.clientCa!, clientCa.toString("utf8"), "client CA file");
  try {
    createSecureContext({ cert, key, ...(clientCa !== undefined && { ca: clientCa }) });
  } catch (err) {
    throw new TlsFileError(files.cert, `OpenSSL refuses the certificate, key or client CA (${err instanceof Error ? err.message : String(err)})`);
  }
  const digest = createHash("sha256").update(cert).update("\u0000").update(key).update("\u0000").update(clientCa ?? "").digest("hex");
  return {
    files,
    cert,
    key,
    clientCa,
    digest,
    serving: {
      serialNumber: leaf.serialNumber,
      fingerprint256: leaf.fingerprint256,
      subject: leaf.subject,
      subjectAltName: leaf.subjectAltName,
      validFrom: new Date(leaf.validFrom),
      validTo: new Date(leaf.validTo),
    },
  };
}
