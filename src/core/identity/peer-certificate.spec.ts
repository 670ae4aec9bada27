// X509-SVID rules for the caller's certificate (SPEC 1): exactly one URI SAN,
// a valid spiffe:// ID, inside its validity window; else invalid_peer_certificate.

import { describe, expect, it } from "vitest";
import { svidIdentity, type ParsedPeerCertificate } from "./peer-certificate.js";

const NOW = Date.UTC(2026, 10, 1, 12, 0, 0);
const RESEARCH = "spiffe://example.org/agent/research";

function certificate(overrides: Partial<ParsedPeerCertificate> = {}): ParsedPeerCertificate {
  return {
    uriSans: [RESEARCH],
    serial: "7a1b",
    notBeforeMs: NOW - 3_600_000,
    notAfterMs: NOW + 3_600_000,
    sha256Hex: "AB".repeat(32),
    x5tS256: "q".repeat(43),
    ...overrides,
  };
}

describe("the caller's identity is the certificate's single spiffe:// URI SAN", () => {
  it("reads the SPIFFE ID of a valid SVID", () => {
    const result = svidIdentity(certificate(), NOW);
    expect(result).toEqual({ ok: true, id: { id: RESEARCH, trustDomain: "example.org", path: "/agent/research" } });
  });

  it("refuses a certificate without a URI SAN", () => {
    expect(svidIdentity(certificate({ uriSans: [] }), NOW).ok).toBe(false);
  });

  it("refuses a certificate with two URI SANs, even if both are SPIFFE IDs", () => {
    expect(svidIdentity(certificate({ uriSans: [RESEARCH, "spiffe://example.org/agent/db"] }), NOW).ok).toBe(false);
  });

  it("refuses a second, non-SPIFFE URI SAN beside the SPIFFE ID", () => {
    expect(svidIdentity(certificate({ uriSans: [RESEARCH, "https://example.org/"] }), NOW).ok).toBe(false);
  });

  it("refuses a single URI SAN that is not spiffe://", () => {
    expect(svidIdentity(certificate({ uriSans: ["https://example.org/agent/research"] }), NOW).ok).toBe(false);
  });

  it("refuses a spiffe:// URI SAN that is not a valid SPIFFE ID", () => {
    expect(svidIdentity(certificate({ uriSans: ["spiffe://Example.org/agent/research/"] }), NOW).ok).toBe(false);
  });
});

describe("a certificate outside its validity window is invalid", () => {
  it("refuses a certificate before notBefore", () => {
    const result = svidIdentity(certificate({ notBeforeMs: NOW + 1 }), NOW);
    expect(result).toMatchObject({ ok: false, problem: expect.stringContaining("not valid before") as unknown });
  });

  it("refuses a certificate after notAfter", () => {
    const result = svidIdentity(certificate({ notAfterMs: NOW - 1 }), NOW);
    expect(result).toMatchObject({ ok: false, problem: expect.stringContaining("expired") as unknown });
  });

  it("accepts the boundaries of the window themselves", () => {
    expect(svidIdentity(certificate({ notBeforeMs: NOW }), NOW).ok).toBe(true);
    expect(svidIdentity(certificate({ notAfterMs: NOW }), NOW).ok).toBe(true);
  });
});

describe("the same certificate object, asked again (the SAN verdict is kept with it)", () => {
  it("still checks the validity window on every call", () => {
    const cert = certificate();
    expect(svidIdentity(cert, NOW).ok).toBe(true);
    expect(svidIdentity(cert, cert.notAfterMs + 1)).toMatchObject({ ok: false, problem: expect.stringContaining("expired") as unknown });
    expect(svidIdentity(cert, cert.notBeforeMs - 1)).toMatchObject({ ok: false, problem: expect.stringContaining("not valid before") as unknown });
    expect(svidIdentity(cert, NOW).ok).toBe(true);
  });

  it("gives a refused SAN the same refusal again", () => {
    const cert = certificate({ uriSans: [RESEARCH, "https://example.org/"] });
    const first = svidIdentity(cert, NOW);
    expect(first.ok).toBe(false);
    expect(svidIdentity(cert, NOW)).toEqual(first);
  });
});
