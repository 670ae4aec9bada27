import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { createCertificateAuthority } from "../../../test/support/pki.js";
import { CrlError, parseCrl } from "./crl.js";

describe("parseCrl (revocation from a loaded CRL, SPEC 2 check 2)", () => {
  it("reads every revoked serial, normalized, from a PEM CRL", async () => {
    const ca = await createCertificateAuthority();
    const crl = parseCrl(Buffer.from(await ca.crl(["0a1b2c", "00ff", "7a1a207feae631003"])));
    expect([...crl.serials].sort()).toEqual(["7a1a207feae631003", "a1b2c", "ff"].sort());
    expect(crl.nextUpdate?.getTime()).toBeGreaterThan(Date.now());
  });

  it("reads an empty CRL as no serials", async () => {
    const ca = await createCertificateAuthority();
    expect(parseCrl(Buffer.from(await ca.crl([]))).serials).toEqual([]);
  });

  it("accepts the signature of the configured issuer and refuses another CA's", async () => {
    const ca = await createCertificateAuthority();
    const other = await createCertificateAuthority("other CA");
    const pem = Buffer.from(await ca.crl(["01"]));
    expect(parseCrl(pem, ca.certPem).serials).toEqual(["1"]);
    expect(() => parseCrl(pem, other.certPem)).toThrow(/does not verify/);
  });

  it("refuses a CRL whose signed part was altered", async () => {
    const ca = await createCertificateAuthority();
    const pem = await ca.crl(["0abc"]);
    const der = Buffer.from(pem.replace(/-----[^-]+-----/g, "").replace(/\s+/g, ""), "base64");
    const at = der.indexOf(Buffer.from([0x0a, 0xbc]));
    der[at + 1] = 0xbd; // revoke 0abd instead of 0abc
    expect(() => parseCrl(der, ca.certPem)).toThrow(/does not verify/);
  });

  it("refuses input that is not a CRL, never returning a partial list", () => {
    expect(() => parseCrl(Buffer.from("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"))).toThrow(CrlError);
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), (bytes) => {
        try {
          parseCrl(Buffer.from(bytes));
          return true; // a random DER that happens to be a CertificateList is fine
        } catch (err) {
          return err instanceof CrlError;
        }
      }),
      { numRuns: 500 },
    );
  });
});
