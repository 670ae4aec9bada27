// Reads an X.509 CRL (RFC 5280 5.1, PEM or DER) into the set of revoked
// serials, and checks its signature against the issuing CA when one is
// configured. Node has no CRL parser, and a CRL needs only a few DER
// elements, so this walks the DER itself; anything that does not fit the
// CertificateList shape is an error, never a partial list.

import { createPublicKey, verify, X509Certificate, type KeyObject } from "node:crypto";
import { normalizeSerial } from "../../core/identity/certificate-serial.js";
import { HopwardenError } from "../../core/errors.js";

export interface ParsedCrl {
  /** Normalized serials (see normalizeSerial). */
  readonly serials: readonly string[];
  readonly thisUpdate: Date;
  readonly nextUpdate: Date | undefined;
}

/** A CRL that cannot be read or whose signature does not verify; the message says what is wrong with it. */
export class CrlError extends HopwardenError {
  readonly code = "invalid_crl";
}

interface Element {
  readonly tag: number;
  /** Offset of the tag byte. */
  readonly start: number;
  readonly contentStart: number;
  readonly end: number;
}

function readElement(der: Buffer, at: number, limit: number): Element {
  if (at + 2 > limit) throw new CrlError("truncated DER element");
  const tag = der[at]!;
  let length = der[at + 1]!;
  let contentStart = at + 2;
  if (length & 0x80) {
    const bytes = length & 0x7f;
    if (bytes === 0 || bytes > 4 || contentStart + bytes > limit) throw new CrlError("unsupported DER length");
    length = 0;
    for (let i = 0; i < bytes; i++) length = length * 256 + der[contentStart + i]!;
    contentStart += bytes;
  }
  const end = contentStart + length;
  if (end > limit) throw new CrlError("DER element runs past its parent");
  return { tag, start: at, contentStart, end };
}

function children(der: Buffer, parent: Element): Element[] {
  const out: Element[] = [];
  for (let at = parent.contentStart; at < parent.end; ) {
    const e = readElement(der, at, parent.end);
    out.push(e);
    at = e.end;
  }
  return out;
}

const SEQUENCE = 0x30;
const INTEGER = 0x02;
const UTC_TIME = 0x17;
const GENERALIZED_TIME = 0x18;
const BIT_STRING = 0x03;
const OID = 0x06;

function parseTime(der: Buffer, e: Element): Date {
  const text = der.toString("latin1", e.contentStart, e.end);
  const m = e.tag === UTC_TIME ? /^(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})Z$/.exec(text) : /^(\d{4})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})Z$/.exec(text);
  if (!m) throw new CrlError(`unreadable time ${JSON.stringify(text)}`);
  let year = Number(m[1]);
  if (e.tag === UTC_TIME) year += year < 50 ? 2000 : 1900;
  return new Date(Date.UTC(year, Number(m[2]) - 1, Number(m[3]), Number(m[4]), Number(m[5]), Number(m[6])));
}

function isTime(e: Element | undefined): e is Element {
  return e !== undefined && (e.tag === UTC_TIME || e.tag === GENERALIZED_TIME);
}

function oidText(der: Buffer, e: Element): string {
  const bytes = der.subarray(e.contentStart, e.end);
  const parts: number[] = [Math.floor(bytes[0]! / 40), bytes[0]! % 40];
  let value = 0;
  for (let i = 1; i < bytes.length; i++) {
    value = value * 128 + (bytes[i]! & 0x7f);
    if ((bytes[i]! & 0x80) === 0) {
      parts.push(value);
      value = 0;
    }
  }
  return parts.join(".");
}

/** Signature algorithms a CRL may use, as node:crypto digest names (null: the key decides, e.g. Ed25519). */
const SIGNATURE_DIGESTS: Readonly<Record<string, string | null>> = {
  "1.2.840.10045.4.3.2": "sha256", // ecdsa-with-SHA256
  "1.2.840.10045.4.3.3": "sha384",
  "1.2.840.10045.4.3.4": "sha512",
  "1.2.840.113549.1.1.11": "sha256", // sha256WithRSAEncryption
  "1.2.840.113549.1.1.12": "sha384",
  "1.2.840.113549.1.1.13": "sha512",
  "1.3.101.112": null, // Ed25519
};

function toDer(data: Buffer): Buffer {
  const text = data.toString("latin1");
  // RFC 7468 names the label "X509 CRL"; some tools write "CRL".
  const pem = /-----BEGIN (X509 )?CRL-----([\s\S]*?)-----END \1?CRL-----/.exec(text);
  if (pem) return Buffer.from(pem[2]!.replace(/\s+/g, ""), "base64");
  if (text.includes("-----BEGIN")) throw new CrlError("holds a PEM block that is not an X509 CRL");
  return data;
}

/**
 * Parses a CRL; with `issuer` (the CA certificate, PEM) its signature must
 * verify with that CA's key, else CrlError.
 */
export function parseCrl(data: Buffer, issuer?: string): ParsedCrl {
  const der = toDer(data);
  const outer = readElement(der, 0, der.length);
  if (outer.tag !== SEQUENCE || outer.end !== der.length) throw new CrlError("is not a DER CertificateList");
  const [tbs, algorithm, signature] = children(der, outer);
  if (tbs?.tag !== SEQUENCE || algorithm?.tag !== SEQUENCE || signature?.tag !== BIT_STRING) throw new CrlError("is not a CertificateList (tbsCertList, algorithm, signature)");
  const fields = children(der, tbs);
  let i = 0;
  if (fields[i]?.tag === INTEGER) i++; // version (v2)
  if (fields[i]?.tag !== SEQUENCE) throw new CrlError("has no signature algorithm in tbsCertList");
  i++;
  if (fields[i]?.tag !== SEQUENCE) throw new CrlError("has no issuer name");
  i++;
  const thisUpdateElement = fields[i];
  if (!isTime(thisUpdateElement)) throw new CrlError("has no thisUpdate time");
  const thisUpdate = parseTime(der, thisUpdateElement);
  i++;
  let nextUpdate: Date | undefined;
  const maybeNext = fields[i];
  if (isTime(maybeNext)) {
    nextUpdate = parseTime(der, maybeNext);
    i++;
  }
  const serials: string[] = [];
  if (fields[i]?.tag === SEQUENCE) {
    for (const entry of children(der, fields[i]!)) {
      const [serial] = children(der, entry);
      if (entry.tag !== SEQUENCE || serial?.tag !== INTEGER) throw new CrlError("has a revoked entry without a serial number");
      const normal = normalizeSerial(der.toString("hex", serial.contentStart, serial.end));
      if (normal === undefined) throw new CrlError("has an empty serial number");
      serials.push(normal);
    }
  }
  if (issuer !== undefined) verifyCrlSignature(der, tbs, algorithm, signature, createPublicKey(new X509Certificate(issuer).publicKey.export({ type: "spki", format: "pem" })));
  return { serials, thisUpdate, nextUpdate };
}

function verifyCrlSignature(der: Buffer, tbs: Element, algorithm: Element, signature: Element, key: KeyObject): void {
  const [oid] = children(der, algorithm);
  if (oid?.tag !== OID) throw new CrlError("has an unreadable signature algorithm");
  const name = oidText(der, oid);
  if (!Object.hasOwn(SIGNATURE_DIGESTS, name)) throw new CrlError(`is signed with an unsupported algorithm (${name})`);
  // BIT STRING content: one byte of unused bits (always 0 for signatures), then the signature.
  const sig = der.subarray(signature.contentStart + 1, signature.end);
  const ok = verify(SIGNATURE_DIGESTS[name] ?? null, der.subarray(tbs.start, tbs.end), key, sig);
  if (!ok) throw new CrlError("has a signature that does not verify with the configured issuer");
}
