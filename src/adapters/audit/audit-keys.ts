// Loading and creating the Ed25519 keys that sign the audit log: the private
// key as PEM PKCS#8 (`serve --audit-key`), the public key as PEM SPKI
// (`audit verify --public-key`). Errors name the file and what is wrong with it.

import { createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject } from "node:crypto";
import { access, readFile, writeFile } from "node:fs/promises";
import { HopwardenError } from "../../core/errors.js";

export class AuditKeyError extends HopwardenError {
  readonly code = "invalid_audit_key";
  constructor(
    readonly file: string,
    problem: string,
  ) {
    super(`${file}: ${problem}`);
  }
}

export async function loadAuditPrivateKey(file: string): Promise<KeyObject> {
  const pem = await readKeyFile(file);
  if (!pem.includes("-----BEGIN PRIVATE KEY-----")) {
    throw new AuditKeyError(file, "not a PEM PKCS#8 private key (expected -----BEGIN PRIVATE KEY-----)");
  }
  let key: KeyObject;
  try {
    key = createPrivateKey({ key: pem, format: "pem" });
  } catch (error) {
    throw new AuditKeyError(file, `unreadable private key (${(error as Error).message})`);
  }
  return requireEd25519(key, file);
}

export async function loadAuditPublicKey(file: string): Promise<KeyObject> {
  const pem = await readKeyFile(file);
  if (!pem.includes("-----BEGIN PUBLIC KEY-----")) {
    throw new AuditKeyError(file, "not a PEM SubjectPublicKeyInfo public key (expected -----BEGIN PUBLIC KEY-----)");
  }
  let key: KeyObject;
  try {
    key = createPublicKey({ key: pem, format: "pem" });
  } catch (error) {
    throw new AuditKeyError(file, `unreadable public key (${(error as Error).message})`);
  }
  return requireEd25519(key, file);
}

export interface AuditKeyFiles {
  readonly privateKeyFile: string;
  readonly publicKeyFile: string;
}

/** Writes `<prefix>.key` (PKCS#8, mode 0600) and `<prefix>.pub` (SPKI); refuses to overwrite either. */
export async function writeAuditKeyPair(prefix: string): Promise<AuditKeyFiles> {
  const files = { privateKeyFile: `${prefix}.key`, publicKeyFile: `${prefix}.pub` };
  // Check both first so a refusal never leaves half a pair behind.
  for (const file of [files.privateKeyFile, files.publicKeyFile]) {
    if (await exists(file)) throw Object.assign(new Error(`${file} already exists`), { code: "EEXIST", path: file });
  }
  const { privateKey, publicKey } = generateKeyPairSync("ed25519");
  const privatePem = privateKey.export({ type: "pkcs8", format: "pem" }) as string;
  const publicPem = publicKey.export({ type: "spki", format: "pem" }) as string;
  await writeFile(files.privateKeyFile, privatePem, { mode: 0o600, flag: "wx" });
  await writeFile(files.publicKeyFile, publicPem, { mode: 0o644, flag: "wx" });
  return files;
}

async function readKeyFile(file: string): Promise<string> {
  try {
    return await readFile(file, "utf8");
  } catch (error) {
    throw new AuditKeyError(file, `cannot read key file (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`);
  }
}

function requireEd25519(key: KeyObject, file: string): KeyObject {
  if (key.asymmetricKeyType !== "ed25519") {
    throw new AuditKeyError(file, `key type is ${key.asymmetricKeyType ?? "unknown"}, expected ed25519`);
  }
  return key;
}

async function exists(file: string): Promise<boolean> {
  try {
    await access(file);
    return true;
  } catch {
    return false;
  }
}
