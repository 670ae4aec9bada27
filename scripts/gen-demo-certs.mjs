#!/usr/bin/env node
// Demo PKI for docker-compose.yml: a CA for the SPIFFE trust domain
// example.org, a server certificate for the front proxy, and one X509-SVID
// (single spiffe:// URI SAN) per demo agent; and, apart from it, the Check
// port's PKI: a CA of its own (hopwarden-ca.crt) that issues hopwarden's
// server certificate (hopwarden.crt, DNS hopwarden) and Envoy's client
// certificate for the ext_authz cluster (hopwarden-client.crt). A separate CA,
// because hopwarden's --tls-client-ca must admit the proxy and no agent. Runs
// offline (node and the @peculiar/x509 devDependency, baked into the image's
// build stage).
//
//   node scripts/gen-demo-certs.mjs <out-dir> [--force]
//
// Existing certificates are kept unless --force, so restarting the demo does
// not invalidate the files a user copied out (a PKI from before the Check
// port's part existed gains just that part). DEMO ONLY: keys are written
// world-readable so that Envoy's unprivileged user can read them from the
// shared volume; never do that with real keys.

import "reflect-metadata";
import { webcrypto } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import * as x509 from "@peculiar/x509";

x509.cryptoProvider.set(webcrypto);

const TRUST_DOMAIN = process.env.TRUST_DOMAIN ?? "example.org";
const AGENTS = ["orchestrator", "research", "db", "planner", "worker"];
const ALG = { name: "ECDSA", namedCurve: "P-256", hash: "SHA-256" };
const DAY = 24 * 60 * 60 * 1000;

const [outDir, flag] = process.argv.slice(2);
if (outDir === undefined || (flag !== undefined && flag !== "--force")) {
  console.error("usage: node scripts/gen-demo-certs.mjs <out-dir> [--force]");
  process.exit(2);
}

const keepAgents = existsSync(join(outDir, "ca.crt")) && flag !== "--force";
const keepCheckPort = existsSync(join(outDir, "hopwarden-ca.crt")) && flag !== "--force";
if (keepAgents && keepCheckPort) {
  console.log(`gen-demo-certs: ${outDir}/ca.crt and hopwarden-ca.crt exist, keeping the demo PKI (--force to replace it)`);
  process.exit(0);
}

const pem = (label, der) => `-----BEGIN ${label}-----\n${Buffer.from(der).toString("base64").replace(/.{64}/g, "$&\n").replace(/\n$/, "")}\n-----END ${label}-----\n`;
const serial = () => Buffer.from(webcrypto.getRandomValues(new Uint8Array(12))).toString("hex").replace(/^./, "7");

async function createCa(commonName) {
  const keys = await webcrypto.subtle.generateKey(ALG, true, ["sign", "verify"]);
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serial(),
    name: `CN=${commonName},O=${TRUST_DOMAIN}`,
    notBefore: new Date(Date.now() - DAY),
    notAfter: new Date(Date.now() + 365 * DAY),
    keys,
    signingAlgorithm: ALG,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  return { cert, keys };
}

async function issue({ cert: ca, keys: caKeys }, name, { uris = [], dnsNames = [], server = false }) {
  const keys = await webcrypto.subtle.generateKey(ALG, true, ["sign", "verify"]);
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: serial(),
    subject: `CN=${name}`,
    issuer: ca.subject,
    notBefore: new Date(Date.now() - DAY),
    notAfter: new Date(Date.now() + 90 * DAY),
    signingAlgorithm: ALG,
    publicKey: keys.publicKey,
    signingKey: caKeys.privateKey,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyAgreement, true),
      new x509.ExtendedKeyUsageExtension(server ? [x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth] : [x509.ExtendedKeyUsage.clientAuth]),
      await x509.AuthorityKeyIdentifierExtension.create(ca),
      new x509.SubjectAlternativeNameExtension([...uris.map((value) => ({ type: "url", value })), ...dnsNames.map((value) => ({ type: "dns", value }))]),
    ],
  });
  await put(name, cert.toString("pem") + "\n", pem("PRIVATE KEY", await webcrypto.subtle.exportKey("pkcs8", keys.privateKey)));
}

async function put(name, certPem, keyPem) {
  await writeFile(join(outDir, `${name}.crt`), certPem, { mode: 0o644 });
  await writeFile(join(outDir, `${name}.key`), keyPem, { mode: 0o644 });
}

await mkdir(outDir, { recursive: true });
// The CA keys are not needed by anyone after this run; they are kept out of
// the shared volume so no demo container can mint identities.
if (!keepAgents) {
  const ca = await createCa("hopwarden demo CA");
  await writeFile(join(outDir, "ca.crt"), ca.cert.toString("pem") + "\n", { mode: 0o644 });
  // The front proxy: reachable as localhost (published port) and as envoy (inside
  // the Compose network); its own SPIFFE ID is what a sidecar behind it trusts.
  await issue(ca, "server", { uris: [`spiffe://${TRUST_DOMAIN}/agent/gateway`], dnsNames: ["localhost", "envoy"], server: true });
  for (const agent of AGENTS) await issue(ca, agent, { uris: [`spiffe://${TRUST_DOMAIN}/agent/${agent}`] });
  console.log(`gen-demo-certs: wrote ca.crt, server and ${AGENTS.join(", ")} certificates to ${outDir}`);
}
if (!keepCheckPort) {
  const checkPortCa = await createCa("hopwarden demo check-port CA");
  await writeFile(join(outDir, "hopwarden-ca.crt"), checkPortCa.cert.toString("pem") + "\n", { mode: 0o644 });
  // hopwarden as the Compose service name (Envoy's SNI) and as localhost (the published port, for grpcurl).
  await issue(checkPortCa, "hopwarden", { dnsNames: ["hopwarden", "localhost"], server: true });
  await issue(checkPortCa, "hopwarden-client", { uris: [`spiffe://${TRUST_DOMAIN}/proxy/envoy`] });
  console.log(`gen-demo-certs: wrote hopwarden-ca.crt, hopwarden and hopwarden-client certificates to ${outDir}`);
}
