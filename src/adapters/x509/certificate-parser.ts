// Parses the peer certificate Envoy sends (URL-encoded PEM) with Node's
// crypto.X509Certificate, and caches the result by the exact string: agents
// reuse one certificate for many calls, so a repeat costs one map lookup
// instead of a URL decode, a base64 decode, a DER parse and a SHA-256.

import { createHash, X509Certificate } from "node:crypto";
import { LRUCache } from "lru-cache";
import { normalizeSerial } from "../../core/identity/certificate-serial.js";
import type { CertificateParseResult } from "../../core/identity/peer-certificate.js";
import type { CertificateParser } from "../../core/ports.js";

const PEM_BLOCK = /-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g;
/** A certificate chain longer than this is not what Envoy sends for one peer. */
const MAX_RAW_LENGTH = 64 * 1024;

export function parsePeerCertificate(raw: string): CertificateParseResult {
  if (raw.length > MAX_RAW_LENGTH) return { ok: false, problem: `is ${raw.length} characters long, more than ${MAX_RAW_LENGTH}` };
  let pem: string;
  try {
    pem = raw.includes("%") ? decodeURIComponent(raw) : raw;
  } catch {
    return { ok: false, problem: "is not valid URL encoding" };
  }
  const blocks = pem.match(PEM_BLOCK);
  if (blocks === null) return { ok: false, problem: "holds no PEM CERTIFICATE block" };
  let cert: X509Certificate;
  try {
    // The first block is the peer's own certificate (Envoy's `certificate`
    // holds only the leaf; XFCC `Chain=` is never read here).
    cert = new X509Certificate(blocks[0]);
  } catch (err) {
    return { ok: false, problem: `is not a parsable X.509 certificate (${err instanceof Error ? err.message : String(err)})` };
  }
  const notBeforeMs = Date.parse(cert.validFrom);
  const notAfterMs = Date.parse(cert.validTo);
  if (Number.isNaN(notBeforeMs) || Number.isNaN(notAfterMs)) return { ok: false, problem: "has an unreadable validity window" };
  const serial = normalizeSerial(cert.serialNumber);
  if (serial === undefined) return { ok: false, problem: "has an unreadable serial number" };
  let sans: string[];
  try {
    // OpenSSL reads extensions lazily: a certificate can load and still fail here.
    sans = uriSans(cert.subjectAltName);
  } catch (err) {
    return { ok: false, problem: `has a subjectAltName that does not parse (${err instanceof Error ? err.message : String(err)})` };
  }
  const digest = createHash("sha256").update(cert.raw).digest();
  return {
    ok: true,
    certificate: {
      uriSans: sans,
      serial,
      notBeforeMs,
      notAfterMs,
      sha256Hex: digest.toString("hex").toUpperCase(),
      x5tS256: digest.toString("base64url"),
    },
  };
}

/**
 * Node renders subjectAltName as `URI:a, DNS:b`, quoting an entry (as a JSON
 * string) when it holds a character that would make that list ambiguous.
 */
function uriSans(subjectAltName: string | undefined): string[] {
  if (subjectAltName === undefined || subjectAltName.length === 0) return [];
  const out: string[] = [];
  let i = 0;
  const s = subjectAltName;
  while (i < s.length) {
    const colon = s.indexOf(":", i);
    if (colon === -1) break;
    const kind = s.slice(i, colon);
    let value: string;
    let next: number;
    if (s[colon + 1] === '"') {
      let j = colon + 2;
      while (j < s.length && s[j] !== '"') j += s[j] === "\\" ? 2 : 1;
      try {
        value = JSON.parse(s.slice(colon + 1, j + 1)) as string;
      } catch {
        value = s.slice(colon + 2, j);
      }
      next = s.indexOf(", ", j);
    } else {
      next = s.indexOf(", ", colon);
      value = s.slice(colon + 1, next === -1 ? s.length : next);
    }
    if (kind === "URI") out.push(value);
    if (next === -1) break;
    i = next + 2;
  }
  return out;
}

export const DEFAULT_CERTIFICATE_CACHE_ENTRIES = 4096;
export const DEFAULT_CERTIFICATE_CACHE_BYTES = 32 * 1024 * 1024;

/** What an entry holds: the raw string (one byte a character: URL-encoded PEM is ASCII, anything else is refused or rare), its key and the parsed fields. */
function entryBytes(result: CertificateParseResult, raw: string): number {
  const parsed = result.ok ? result.certificate.uriSans.reduce((n, s) => n + 2 * s.length, 320) : 2 * result.problem.length + 64;
  return raw.length + FINGERPRINT_CHARS + 16 + parsed;
}

/**
 * The CertificateParser port with a bounded LRU in front, keyed by the raw
 * string, bounded by count and by bytes (a caller chooses what it sends as a
 * certificate, up to MAX_RAW_LENGTH).
 */
export class CachingCertificateParser implements CertificateParser {
  private readonly cache: LRUCache<string, CachedParse>;
  hits = 0;
  misses = 0;

  constructor(maxEntries = DEFAULT_CERTIFICATE_CACHE_ENTRIES, maxBytes = DEFAULT_CERTIFICATE_CACHE_BYTES) {
    this.cache = new LRUCache({ max: maxEntries, maxSize: maxBytes, sizeCalculation: (entry) => entryBytes(entry.result, entry.raw) });
  }

  get size(): number {
    return this.cache.size;
  }

  get bytes(): number {
    return this.cache.calculatedSize;
  }

  parse(raw: string): CertificateParseResult {
    // Keyed by the length and the tail (the signature: high entropy) rather
    // than the whole ~2 KiB string, which a Map would hash in full on every
    // Check; a hit is confirmed against the whole string.
    const key = raw.length <= FINGERPRINT_CHARS ? raw : `${raw.length}:${raw.slice(-FINGERPRINT_CHARS)}`;
    const hit = this.cache.get(key);
    if (hit !== undefined && hit.raw === raw) {
      this.hits++;
      return hit.result;
    }
    this.misses++;
    const result = parsePeerCertificate(raw);
    this.cache.set(key, { raw, result });
    return result;
  }
}

interface CachedParse {
  readonly raw: string;
  readonly result: CertificateParseResult;
}

/** Characters of the tail that key the cache: well inside the signature of any certificate Envoy sends. */
const FINGERPRINT_CHARS = 96;
