// The peer certificate as Envoy sends it (SPEC 1: URL-encoded PEM), read into
// what the X509-SVID rules need. Untrusted input: it never throws, and a URI
// SAN is never split or invented from text inside another SAN.

import fc from "fast-check";
import { beforeAll, describe, expect, it } from "vitest";
import { createTestPki, spiffe, type TestPki } from "../../../test/support/pki.js";
import { normalizeSerial } from "../../core/identity/certificate-serial.js";
import { CachingCertificateParser, parsePeerCertificate } from "./certificate-parser.js";

let pki: TestPki;
beforeAll(async () => {
  pki = await createTestPki();
});

function derOf(pem: string): Buffer {
  return Buffer.from(pem.replace(/-----[A-Z ]+-----|\s/g, ""), "base64");
}

function pemOf(der: Buffer): string {
  return `-----BEGIN CERTIFICATE-----\n${der.toString("base64").replace(/.{64}/g, "$&\n")}\n-----END CERTIFICATE-----\n`;
}

function parsed(raw: string) {
  const result = parsePeerCertificate(raw);
  if (!result.ok) throw new Error(result.problem);
  return result.certificate;
}

describe("reading a peer certificate", () => {
  it("reads the URI SAN, serial, validity window and thumbprints of an SVID", () => {
    const research = pki.agents.research;
    const cert = parsed(research.urlEncodedPem);
    expect(cert.uriSans).toEqual([spiffe("research")]);
    expect(cert.serial).toBe(normalizeSerial(research.serialHex));
    expect(cert.notBeforeMs).toBeLessThan(Date.now());
    expect(cert.notAfterMs).toBeGreaterThan(Date.now());
    expect(cert.sha256Hex).toBe(research.sha256Hex);
    expect(cert.x5tS256).toBe(Buffer.from(research.sha256Hex, "hex").toString("base64url"));
  });

  it("reads a PEM that is not URL-encoded", () => {
    expect(parsed(pki.agents.db.certPem).uriSans).toEqual([spiffe("db")]);
  });

  it("reads the first certificate when a chain is sent", () => {
    expect(parsed(encodeURIComponent(pki.agents.db.certPem + pki.ca.certPem)).uriSans).toEqual([spiffe("db")]);
  });

  it("reports every URI SAN, so that two can be refused", () => {
    expect(parsed(pki.twoUris.urlEncodedPem).uriSans).toEqual([spiffe("research"), spiffe("db")]);
  });

  it("reports no URI SAN for a certificate with only a DNS name", () => {
    expect(parsed(pki.noUri.urlEncodedPem).uriSans).toEqual([]);
  });

  it("reads the validity window of an expired certificate (the rules, not the parser, refuse it)", () => {
    expect(parsed(pki.expired.urlEncodedPem).notAfterMs).toBeLessThan(Date.now());
  });

  it("never splits one URI SAN that holds the text of another", async () => {
    const tricky = `${spiffe("x")}, URI:${spiffe("db")}`;
    const cert = await pki.ca.issue({ name: "tricky", uris: [tricky] });
    expect(parsed(cert.urlEncodedPem).uriSans).toEqual([tricky]);
  });

  it("never reads a URI SAN out of a DNS name", async () => {
    const cert = await pki.ca.issue({ name: "tricky-dns", dnsNames: [`a, URI:${spiffe("db")}`] });
    expect(parsed(cert.urlEncodedPem).uriSans).toEqual([]);
  });
});

describe("refusing what is not a certificate", () => {
  it.each([
    ["an empty string", ""],
    ["text", "hello"],
    ["broken URL encoding", "-----BEGIN%20CERTIFICATE-----%ZZ"],
    ["a PEM block of garbage", "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"],
    ["a private key", "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"],
    ["something too long", "A".repeat(64 * 1024 + 1)],
  ])("refuses %s", (_what, raw) => {
    const result = parsePeerCertificate(raw);
    expect(result.ok).toBe(false);
  });

  it("refuses a certificate whose subjectAltName does not parse (found by npm run fuzz)", () => {
    // OpenSSL reads extensions lazily: the certificate loads, and only reading
    // its SANs fails. Here the URI's length runs past the extension.
    const der = derOf(pki.agents.research.certPem);
    const uri = der.indexOf(Buffer.from("spiffe://"));
    expect(der[uri - 2]).toBe(0x86);
    der[uri - 1] = der[uri - 1]! | 0x40;
    const result = parsePeerCertificate(encodeURIComponent(pemOf(der)));
    expect(result.ok).toBe(false);
  });

  it("never throws for any bit flipped in a certificate's DER (property)", () => {
    const der = derOf(pki.agents.research.certPem);
    fc.assert(
      fc.property(fc.nat(der.length * 8 - 1), (bit) => {
        const flipped = Buffer.from(der);
        flipped[bit >> 3]! ^= 1 << (bit & 7);
        const result = parsePeerCertificate(encodeURIComponent(pemOf(flipped)));
        return result.ok ? Array.isArray(result.certificate.uriSans) : result.problem.length > 0;
      }),
      { numRuns: 1000 },
    );
  });

  it("refuses a truncated certificate", () => {
    const pem = pki.agents.research.urlEncodedPem;
    expect(parsePeerCertificate(pem.slice(0, pem.length / 2)).ok).toBe(false);
  });

  it("never throws, whatever the string (property)", () => {
    const valid = pki.agents.research.urlEncodedPem;
    const inputs = fc.oneof(
      fc.string(),
      fc.string({ unit: fc.constantFrom("%", "0", "A", "-", "\n", "=", "/", "+", "E") }),
      fc.tuple(fc.nat(valid.length), fc.string({ maxLength: 4 }), fc.nat(valid.length)).map(([a, s, b]) => valid.slice(0, a) + s + valid.slice(Math.max(a, b))),
      fc.string().map((s) => `-----BEGIN CERTIFICATE-----\n${s}\n-----END CERTIFICATE-----`),
    );
    fc.assert(
      fc.property(inputs, (raw) => {
        const result = parsePeerCertificate(raw);
        return result.ok ? Array.isArray(result.certificate.uriSans) : result.problem.length > 0;
      }),
      { numRuns: 400 },
    );
  });
});

describe("the parse cache", () => {
  it("parses a repeated certificate once", () => {
    const parser = new CachingCertificateParser(8);
    const first = parser.parse(pki.agents.research.urlEncodedPem);
    const second = parser.parse(pki.agents.research.urlEncodedPem);
    expect(second).toBe(first);
    expect({ hits: parser.hits, misses: parser.misses }).toEqual({ hits: 1, misses: 1 });
  });

  it("caches refusals too, keyed by the exact string", () => {
    const parser = new CachingCertificateParser(8);
    expect(parser.parse("junk").ok).toBe(false);
    expect(parser.parse("junk").ok).toBe(false);
    expect(parser.parse("junk ").ok).toBe(false);
    expect({ hits: parser.hits, misses: parser.misses }).toEqual({ hits: 1, misses: 2 });
  });

  it("never answers for another certificate that shares its length and tail", () => {
    const parser = new CachingCertificateParser(8);
    const real = pki.agents.research.urlEncodedPem;
    // Same length, same last characters (the signature), different body.
    const forged = `X${real.slice(1)}`;
    expect(parser.parse(real).ok).toBe(true);
    expect(parser.parse(forged).ok).toBe(false);
    expect(parser.parse(real).ok).toBe(true);
    expect(parser.misses).toBe(3);
  });

  it("stays within its byte bound whatever callers send", () => {
    const parser = new CachingCertificateParser(10_000, 256 * 1024);
    for (let i = 0; i < 500; i++) parser.parse(`${i}${"x".repeat(4000)}`);
    expect(parser.bytes).toBeLessThanOrEqual(256 * 1024);
    expect(parser.size).toBeLessThan(500);
  });
});
