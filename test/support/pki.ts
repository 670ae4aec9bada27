// Test PKI, generated fresh at test start and never committed: a CA for
// example.org, agent certificates whose single URI SAN is a SPIFFE ID, and the
// bad cases Check must refuse (expired, two URI SANs, a foreign trust domain,
// a foreign CA). ECDSA P-256 keeps generation fast.

import "reflect-metadata";
import { webcrypto, X509Certificate as NodeX509 } from "node:crypto";
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import * as x509 from "@peculiar/x509";

x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);

const ALG = { name: "ECDSA", namedCurve: "P-256", hash: "SHA-256" } as const;
const DAY = 24 * 60 * 60 * 1000;

export interface IssuedCertificate {
  readonly name: string;
  readonly certPem: string;
  readonly keyPem: string;
  readonly serialHex: string;
  /** URL-encoded PEM, as Envoy puts it in attributes.source.certificate. */
  readonly urlEncodedPem: string;
  /** Upper-case hex SHA-256 of the DER. */
  readonly sha256Hex: string;
}

export interface CertificateAuthority {
  readonly certPem: string;
  readonly keyPem: string;
  issue(options: IssueOptions): Promise<IssuedCertificate>;
  /** A CRL signed by this CA revoking the given hex serials (PEM). */
  crl(serials: readonly string[], options?: { nextUpdate?: Date }): Promise<string>;
}

export interface IssueOptions {
  readonly name: string;
  readonly uris?: readonly string[];
  readonly dnsNames?: readonly string[];
  readonly notBefore?: Date;
  readonly notAfter?: Date;
  readonly serialHex?: string;
  /** Server certificates get serverAuth in their EKU as well. */
  readonly server?: boolean;
}

function toPem(label: string, der: ArrayBuffer): string {
  const b64 = Buffer.from(der).toString("base64").replace(/.{64}/g, "$&\n").replace(/\n$/, "");
  return `-----BEGIN ${label}-----\n${b64}\n-----END ${label}-----\n`;
}

let serialCounter = 0x1000;
function nextSerial(): string {
  serialCounter += 1;
  return `7a${Date.now().toString(16)}${serialCounter.toString(16)}`;
}

export async function createCertificateAuthority(commonName = "hopwarden test CA"): Promise<CertificateAuthority> {
  const keys = (await webcrypto.subtle.generateKey(ALG, true, ["sign", "verify"]));
  const now = Date.now();
  const caCert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: nextSerial(),
    name: `CN=${commonName}`,
    notBefore: new Date(now - DAY),
    notAfter: new Date(now + 30 * DAY),
    keys,
    signingAlgorithm: ALG,
    extensions: [
      new x509.BasicConstraintsExtension(true, 1, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  const caKeyPem = toPem("PRIVATE KEY", await webcrypto.subtle.exportKey("pkcs8", keys.privateKey));

  return {
    certPem: caCert.toString("pem") + "\n",
    keyPem: caKeyPem,
    async crl(serials, options = {}) {
      const crl = await x509.X509CrlGenerator.create({
        issuer: caCert.subject,
        thisUpdate: new Date(Date.now() - DAY),
        nextUpdate: options.nextUpdate ?? new Date(Date.now() + DAY),
        entries: serials.map((serialNumber) => ({ serialNumber, revocationDate: new Date(Date.now() - 60_000) })),
        signingKey: keys.privateKey,
        signingAlgorithm: ALG,
      });
      return crl.toString("pem") + "\n";
    },
    async issue(options: IssueOptions): Promise<IssuedCertificate> {
      const leafKeys = (await webcrypto.subtle.generateKey(ALG, true, ["sign", "verify"]));
      const serialHex = options.serialHex ?? nextSerial();
      const altNames: x509.JsonGeneralName[] = [
        ...(options.uris ?? []).map((value) => ({ type: "url" as const, value })),
        ...(options.dnsNames ?? []).map((value) => ({ type: "dns" as const, value })),
      ];
      const extensions: x509.Extension[] = [
        new x509.BasicConstraintsExtension(false, undefined, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyAgreement, true),
        new x509.ExtendedKeyUsageExtension(options.server ? [x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth] : [x509.ExtendedKeyUsage.clientAuth]),
        await x509.AuthorityKeyIdentifierExtension.create(caCert),
      ];
      if (altNames.length > 0) extensions.push(new x509.SubjectAlternativeNameExtension(altNames, false));
      const cert = await x509.X509CertificateGenerator.create({
        serialNumber: serialHex,
        subject: `CN=${options.name}`,
        issuer: caCert.subject,
        notBefore: options.notBefore ?? new Date(Date.now() - DAY),
        notAfter: options.notAfter ?? new Date(Date.now() + 7 * DAY),
        signingAlgorithm: ALG,
        publicKey: leafKeys.publicKey,
        signingKey: keys.privateKey,
        extensions,
      });
      const certPem = cert.toString("pem") + "\n";
      const keyPem = toPem("PRIVATE KEY", await webcrypto.subtle.exportKey("pkcs8", leafKeys.privateKey));
      const nodeCert = new NodeX509(certPem);
      return {
        name: options.name,
        certPem,
        keyPem,
        serialHex: nodeCert.serialNumber,
        urlEncodedPem: encodeURIComponent(certPem),
        sha256Hex: nodeCert.fingerprint256.replace(/:/g, "").toUpperCase(),
      };
    },
  };
}

export const TRUST_DOMAIN = "example.org";
export const spiffe = (agent: string, trustDomain = TRUST_DOMAIN): string => `spiffe://${trustDomain}/agent/${agent}`;

export interface TestPki {
  readonly ca: CertificateAuthority;
  readonly foreignCa: CertificateAuthority;
  readonly agents: Readonly<Record<"orchestrator" | "research" | "db" | "retired" | "planner" | "worker", IssuedCertificate>>;
  readonly expired: IssuedCertificate;
  readonly notYetValid: IssuedCertificate;
  readonly twoUris: IssuedCertificate;
  readonly noUri: IssuedCertificate;
  readonly foreignDomain: IssuedCertificate;
  readonly foreignCaAgent: IssuedCertificate;
  /** Server certificate for loopback (Envoy's listener), DNS localhost and the orchestrator's SPIFFE ID. */
  readonly server: IssuedCertificate;
}

export async function createTestPki(): Promise<TestPki> {
  const ca = await createCertificateAuthority();
  const foreignCa = await createCertificateAuthority("foreign CA");
  const agent = (name: string) => ca.issue({ name, uris: [spiffe(name)] });
  const [orchestrator, research, db, retired, planner, worker] = await Promise.all(
    ["orchestrator", "research", "db", "retired", "planner", "worker"].map(agent),
  );
  const now = Date.now();
  return {
    ca,
    foreignCa,
    agents: { orchestrator: orchestrator!, research: research!, db: db!, retired: retired!, planner: planner!, worker: worker! },
    expired: await ca.issue({ name: "expired", uris: [spiffe("expired")], notBefore: new Date(now - 10 * DAY), notAfter: new Date(now - DAY) }),
    notYetValid: await ca.issue({ name: "future", uris: [spiffe("future")], notBefore: new Date(now + DAY), notAfter: new Date(now + 10 * DAY) }),
    twoUris: await ca.issue({ name: "two-uris", uris: [spiffe("research"), spiffe("db")] }),
    noUri: await ca.issue({ name: "no-uri", dnsNames: ["research.example.org"] }),
    foreignDomain: await ca.issue({ name: "foreign-domain", uris: [spiffe("research", "evil.example")] }),
    foreignCaAgent: await foreignCa.issue({ name: "research", uris: [spiffe("research")] }),
    server: await ca.issue({ name: "localhost", uris: [spiffe("gateway")], dnsNames: ["localhost"], server: true }),
  };
}

/** Writes the PKI as PEM files into `dir` (for Envoy and HTTPS clients) and returns the paths. */
export async function writePki(pki: TestPki, dir: string): Promise<Record<string, { cert: string; key: string }> & { ca: { cert: string; key: string } }> {
  await mkdir(dir, { recursive: true });
  const out: Record<string, { cert: string; key: string }> = {};
  const put = async (name: string, certPem: string, keyPem: string) => {
    const cert = join(dir, `${name}.crt`);
    const key = join(dir, `${name}.key`);
    await writeFile(cert, certPem);
    await writeFile(key, keyPem, { mode: 0o600 });
    out[name] = { cert, key };
  };
  await put("ca", pki.ca.certPem, pki.ca.keyPem);
  await put("foreign-ca", pki.foreignCa.certPem, pki.foreignCa.keyPem);
  for (const [name, c] of Object.entries(pki.agents)) await put(name, c.certPem, c.keyPem);
  await put("expired", pki.expired.certPem, pki.expired.keyPem);
  await put("foreign-domain", pki.foreignDomain.certPem, pki.foreignDomain.keyPem);
  await put("foreign-ca-agent", pki.foreignCaAgent.certPem, pki.foreignCaAgent.keyPem);
  await put("server", pki.server.certPem, pki.server.keyPem);
  return out as Record<string, { cert: string; key: string }> & { ca: { cert: string; key: string } };
}

/** Hostname on hopwarden's Check-port certificate (the Envoy templates' HOPWARDEN_SERVER_NAME default). */
export const CHECK_PORT_SERVER_NAME = "hopwarden";

export interface CheckPortPki {
  /** A CA of its own, as it should be in production: it issues to proxies only, never to agents. */
  readonly ca: CertificateAuthority;
  /** hopwarden's server certificate: DNS hopwarden and localhost. */
  readonly server: IssuedCertificate;
  /** Envoy's client certificate for the ext_authz cluster. */
  readonly envoy: IssuedCertificate;
  readonly files: {
    readonly ca: string;
    readonly server: { readonly cert: string; readonly key: string };
    readonly envoy: { readonly cert: string; readonly key: string };
  };
}

/** The Check port's PKI (serve --tls-cert/--tls-key/--tls-client-ca, Envoy's UpstreamTlsContext), written as PEM into `dir`. */
export async function writeCheckPortPki(dir: string): Promise<CheckPortPki> {
  await mkdir(dir, { recursive: true });
  const ca = await createCertificateAuthority("hopwarden check-port CA");
  const server = await ca.issue({ name: CHECK_PORT_SERVER_NAME, dnsNames: [CHECK_PORT_SERVER_NAME, "localhost"], server: true });
  const envoy = await ca.issue({ name: "front-envoy", uris: ["spiffe://example.org/proxy/front-envoy"] });
  const file = async (name: string, pem: string, mode = 0o644) => {
    const path = join(dir, name);
    await writeFile(path, pem, { mode });
    return path;
  };
  return {
    ca,
    server,
    envoy,
    files: {
      ca: await file("check-port-ca.crt", ca.certPem),
      server: { cert: await file("hopwarden.crt", server.certPem), key: await file("hopwarden.key", server.keyPem, 0o600) },
      envoy: { cert: await file("envoy-client.crt", envoy.certPem), key: await file("envoy-client.key", envoy.keyPem, 0o600) },
    },
  };
}
