// What Check needs from a peer certificate, and the X509-SVID rules it must
// meet: exactly one URI SAN, a valid SPIFFE ID, inside its validity window.
// Parsing the DER is an adapter's job (CertificateParser port); the rules are here.

import { parseSpiffeId, type SpiffeId } from "./spiffe-id.js";

export interface ParsedPeerCertificate {
  readonly uriSans: readonly string[];
  /** Normalized serial (see normalizeSerial). */
  readonly serial: string;
  readonly notBeforeMs: number;
  readonly notAfterMs: number;
  /** Upper-case hex SHA-256 of the DER (OpenTelemetry tls.client.hash.sha256). */
  readonly sha256Hex: string;
  /** base64url SHA-256 of the DER (RFC 8705 x5t#S256). */
  readonly x5tS256: string;
}

export type CertificateParseResult =
  | { readonly ok: true; readonly certificate: ParsedPeerCertificate }
  | { readonly ok: false; readonly problem: string };

export type SvidResult = { readonly ok: true; readonly id: SpiffeId } | { readonly ok: false; readonly problem: string };

// A certificate's SAN rules give the same answer every time; parsers hand out
// one object per certificate (they cache by content), so the answer is kept
// with it. The validity window depends on the time and is checked per call.
const sanResults = new WeakMap<ParsedPeerCertificate, SvidResult>();

export function svidIdentity(certificate: ParsedPeerCertificate, nowMs: number): SvidResult {
  if (nowMs < certificate.notBeforeMs) {
    return { ok: false, problem: `is not valid before ${new Date(certificate.notBeforeMs).toISOString()}` };
  }
  if (nowMs > certificate.notAfterMs) {
    return { ok: false, problem: `expired at ${new Date(certificate.notAfterMs).toISOString()}` };
  }
  let result = sanResults.get(certificate);
  if (result === undefined) {
    result = sanIdentity(certificate);
    sanResults.set(certificate, result);
  }
  return result;
}

function sanIdentity(certificate: ParsedPeerCertificate): SvidResult {
  const spiffe = certificate.uriSans.filter((uri) => uri.startsWith("spiffe://"));
  if (certificate.uriSans.length !== 1 || spiffe.length !== 1) {
    return {
      ok: false,
      problem: `has ${certificate.uriSans.length} URI SANs (${spiffe.length} spiffe://); an X509-SVID has exactly one`,
    };
  }
  const parsed = parseSpiffeId(spiffe[0] ?? "");
  if (!parsed.ok) return { ok: false, problem: `URI SAN ${parsed.problem}` };
  return { ok: true, id: parsed.value };
}
