// The token service's signing keys: read from one file or a directory of
// files (PEM PKCS#8, a private JWK, or a JWK Set of private JWKs). The newest
// key signs: in a directory the most recently modified file, within a file
// the last key. Every key on disk is published in the JWKS, and a key that
// leaves the disk stays published until the last token it signed has
// expired, so verifiers never see a valid token whose key vanished.

import { createPrivateKey, createPublicKey, type JsonWebKey, type KeyObject } from "node:crypto";
import { readdir, readFile, stat } from "node:fs/promises";
import { join } from "node:path";
import { calculateJwkThumbprint, CompactSign, type JWK } from "jose";
import { isAllowedAlg, type DelegationTokenAlg } from "../tokens/delegation-token-format.js";
import { JwksKeySet, type KeyLookup } from "../tokens/jwks-key-set.js";
import type { VerificationKeySource } from "../tokens/jwks-key-source.js";
import { HopwardenError } from "../../core/errors.js";

export interface SigningKey {
  readonly kid: string;
  readonly alg: DelegationTokenAlg;
  readonly privateKey: KeyObject;
  /** Public members only, with kid, alg and use. */
  readonly publicJwk: JWK;
  /** Where it came from, for messages. */
  readonly source: string;
}

export class SigningKeyError extends HopwardenError {
  readonly code = "invalid_signing_key";
  constructor(
    readonly file: string,
    problem: string,
  ) {
    super(`${file}: ${problem}`);
  }
}

const KEY_FILE = /\.(pem|key|jwk|json)$/i;
const PUBLIC_MEMBERS: Readonly<Record<string, readonly string[]>> = { EC: ["kty", "crv", "x", "y"], OKP: ["kty", "crv", "x"], RSA: ["kty", "n", "e"] };

function algFor(key: KeyObject, declared: unknown, file: string): DelegationTokenAlg {
  const type = key.asymmetricKeyType;
  const curve = key.asymmetricKeyDetails?.namedCurve;
  const natural: readonly DelegationTokenAlg[] =
    type === "ec" && curve === "prime256v1" ? ["ES256"] : type === "ed25519" ? ["EdDSA"] : type === "rsa" ? ["RS256", "PS256"] : type === "rsa-pss" ? ["PS256"] : [];
  if (natural.length === 0) throw new SigningKeyError(file, `holds a ${type ?? "unknown"}${curve ? ` ${curve}` : ""} key; use EC P-256 (ES256, the default), Ed25519 (EdDSA) or RSA ≥ 2048 bits (RS256, PS256)`);
  if (declared !== undefined) {
    if (!isAllowedAlg(declared) || !natural.includes(declared)) throw new SigningKeyError(file, `declares alg ${JSON.stringify(declared)}, which does not fit its ${type} key`);
    return declared;
  }
  if (type === "rsa" || type === "rsa-pss") {
    const bits = key.asymmetricKeyDetails?.modulusLength ?? 0;
    if (bits < 2048) throw new SigningKeyError(file, `holds an RSA key of ${bits} bits; at least 2048 are required`);
  }
  return natural[0]!;
}

async function toSigningKey(privateKey: KeyObject, declaredAlg: unknown, declaredKid: unknown, source: string): Promise<SigningKey> {
  if (privateKey.type !== "private") throw new SigningKeyError(source, "holds a public key; the token service needs the private key");
  const alg = algFor(privateKey, declaredAlg, source);
  const full = createPublicKey(privateKey).export({ format: "jwk" }) as JWK;
  const members = PUBLIC_MEMBERS[full.kty ?? ""] ?? [];
  const bare: JWK = Object.fromEntries(members.map((m) => [m, (full as Record<string, unknown>)[m]]));
  // RFC 7638 thumbprint as the default kid: stable across restarts and copies of the file.
  const kid = typeof declaredKid === "string" && declaredKid.length > 0 ? declaredKid : await calculateJwkThumbprint(bare, "sha256");
  return { kid, alg, privateKey, publicJwk: { ...bare, kid, alg, use: "sig" }, source };
}

/** Parses one key file's text: PEM PKCS#8, a private JWK, or a JWK Set. */
export async function parseSigningKeys(text: string, source: string): Promise<SigningKey[]> {
  if (text.includes("-----BEGIN")) {
    if (!text.includes("-----BEGIN PRIVATE KEY-----")) throw new SigningKeyError(source, "is PEM but not PKCS#8 (\"BEGIN PRIVATE KEY\"); convert it with: openssl pkcs8 -topk8 -nocrypt");
    let key: KeyObject;
    try {
      key = createPrivateKey({ key: text, format: "pem" });
    } catch (err) {
      throw new SigningKeyError(source, `is not a readable PKCS#8 private key (${err instanceof Error ? err.message : String(err)})`);
    }
    return [await toSigningKey(key, undefined, undefined, source)];
  }
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch {
    throw new SigningKeyError(source, "is neither PEM nor JSON (a JWK or JWK Set)");
  }
  const jwks = typeof doc === "object" && doc !== null && Array.isArray((doc as { keys?: unknown }).keys) ? (doc as { keys: unknown[] }).keys : [doc];
  const out: SigningKey[] = [];
  for (const [i, item] of jwks.entries()) {
    const where = jwks.length === 1 ? source : `${source} keys[${i}]`;
    if (typeof item !== "object" || item === null || typeof (item as JWK).d !== "string") throw new SigningKeyError(where, "is not a private JWK (it has no \"d\")");
    const jwk = item as JWK;
    let key: KeyObject;
    try {
      key = createPrivateKey({ key: jwk as JsonWebKey, format: "jwk" });
    } catch (err) {
      throw new SigningKeyError(where, `is not a usable private JWK (${err instanceof Error ? err.message : String(err)})`);
    }
    out.push(await toSigningKey(key, jwk.alg, jwk.kid, where));
  }
  if (out.length === 0) throw new SigningKeyError(source, "holds no keys");
  return out;
}

/** Reads a key file, or every key file in a directory, oldest first. */
export async function readSigningKeys(path: string): Promise<SigningKey[]> {
  const info = await stat(path).catch((err: NodeJS.ErrnoException) => {
    throw new SigningKeyError(path, `cannot be read (${err.code ?? err.message})`);
  });
  const files: { file: string; mtimeMs: number }[] = [];
  if (info.isDirectory()) {
    for (const name of (await readdir(path)).sort()) {
      if (!KEY_FILE.test(name) || name.startsWith(".")) continue;
      const file = join(path, name);
      const s = await stat(file);
      if (s.isFile()) files.push({ file, mtimeMs: s.mtimeMs });
    }
    if (files.length === 0) throw new SigningKeyError(path, "holds no key files (*.pem, *.key, *.jwk, *.json)");
  } else {
    files.push({ file: path, mtimeMs: info.mtimeMs });
  }
  files.sort((a, b) => a.mtimeMs - b.mtimeMs);
  const keys: SigningKey[] = [];
  for (const { file } of files) keys.push(...(await parseSigningKeys(await readFile(file, "utf8"), file)));
  const seen = new Set<string>();
  for (const k of keys) {
    if (seen.has(k.kid)) throw new SigningKeyError(k.source, `repeats kid ${JSON.stringify(k.kid)}`);
    seen.add(k.kid);
  }
  return keys;
}

export class SigningKeyRing implements VerificationKeySource {
  private keys: readonly SigningKey[] = [];
  /** Keys no longer on disk, published until `untilMs`. */
  private readonly retired = new Map<string, { key: SigningKey; untilMs: number }>();
  private readonly lastSignedMs = new Map<string, number>();
  private published = JwksKeySet.fromObject({ keys: [] });

  /** `tokenLifetimeMs` plus verifiers' skew: how long a retired key must stay published after its last token. */
  constructor(private readonly retireAfterMs: number) {}

  /** Installs the keys read from disk (oldest first; the last one signs). */
  install(keys: readonly SigningKey[], nowMs: number): void {
    if (keys.length === 0) throw new Error("a signing key ring needs at least one key");
    const incoming = new Set(keys.map((k) => k.kid));
    for (const old of this.keys) {
      const last = this.lastSignedMs.get(old.kid);
      if (!incoming.has(old.kid) && last !== undefined) this.retired.set(old.kid, { key: old, untilMs: last + this.retireAfterMs });
    }
    for (const kid of incoming) this.retired.delete(kid);
    this.keys = keys;
    this.republish(nowMs, true);
  }

  get current(): SigningKey {
    const key = this.keys[this.keys.length - 1];
    if (key === undefined) throw new Error("no signing key installed");
    return key;
  }

  /** The JWK Set to publish at /.well-known/jwks.json. */
  jwks(nowMs: number): { keys: JWK[] } {
    this.republish(nowMs);
    return { keys: this.publishedKeys().map((k) => k.publicJwk) };
  }

  /** Signs `payload` as a delegation token with the newest key. */
  async sign(payload: Record<string, unknown>, typ: string, nowMs: number): Promise<string> {
    const key = this.current;
    this.lastSignedMs.set(key.kid, nowMs);
    return new CompactSign(new TextEncoder().encode(JSON.stringify(payload))).setProtectedHeader({ alg: key.alg, kid: key.kid, typ }).sign(key.privateKey);
  }

  lookup(kid: string, alg: string, nowMs: number): Promise<KeyLookup> {
    this.republish(nowMs);
    return this.published.lookup(kid, alg);
  }

  private publishedKeys(): SigningKey[] {
    return [...this.keys, ...[...this.retired.values()].map((r) => r.key)];
  }

  private republish(nowMs: number, changed = false): void {
    for (const [kid, r] of this.retired) {
      if (nowMs >= r.untilMs) {
        this.retired.delete(kid);
        changed = true;
      }
    }
    if (changed) this.published = JwksKeySet.fromObject({ keys: this.publishedKeys().map((k) => k.publicJwk) });
  }
}
