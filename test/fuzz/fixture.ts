// Everything a fuzz run needs that takes keys: X509-SVIDs for every agent of
// the universe in every shape the contract cares about (valid, expired, not
// yet valid, two URI SANs, none, an injected SAN, a revoked serial), the
// fuzz policy and its JWKS written to a temporary directory, and delegation
// tokens for the scenarios, valid and broken. The facts of each certificate
// and token are recorded as they are made, so the reference decider knows
// them by construction, not by parsing.

import { createHash } from "node:crypto";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createCertificateAuthority } from "../support/pki.js";
import { createSigningKey, jwksOf, respelledSignature, signToken, type TestSigningKey } from "../support/delegation-tokens.js";
import { nestActors } from "../../src/adapters/tokens/delegation-token-format.js";
import { AGENT_NAMES, AGENTS, fuzzPolicy, fuzzPolicyYaml, ISSUER, JWKS_FILE, PEOPLE, SERIAL_REVOKED_AGENTS, type AgentName, type FuzzPolicy, type PersonName } from "./universe.js";
import { callerOf, SCENARIOS, TOKEN_VARIANT_NAMES, tokenName, type Scenario, type TokenVariant } from "./scenarios.js";
import type { CertEncoding, CertValue, Renderer, TokenValue } from "./request-model.js";

const DAY_MS = 24 * 60 * 60 * 1000;

export const CERT_VARIANTS = ["valid", "expired", "notYetValid", "twoUris", "sanInjection", "dnsInjection", "revokedSerial"] as const;
export type CertVariant = (typeof CERT_VARIANTS)[number];

/** What the reference knows about a certificate string: as issued. */
export interface CertFacts {
  readonly uris: readonly string[];
  readonly notBeforeMs: number;
  readonly notAfterMs: number;
  readonly serialHex: string;
  /** base64url SHA-256 of the DER (RFC 8705 x5t#S256). */
  readonly x5tS256: string;
}

/** What the reference knows about a token string: how it was made. */
export interface TokenFacts {
  /** Signed by a key of the JWKS, with the right typ, an allowed alg and a known kid. */
  readonly signatureOk: boolean;
  /** Its claims have the shapes SPEC 5 requires (e.g. a jti). */
  readonly shapeOk: boolean;
  readonly iss: string;
  readonly sub: string;
  readonly aud: string;
  readonly iat: number;
  readonly nbf: number | undefined;
  readonly exp: number;
  readonly scope: readonly string[];
  readonly x5tS256: string;
  /** First agent first. */
  readonly chain: readonly string[];
}

export interface FuzzFixture {
  readonly dir: string;
  readonly policyFile: string;
  readonly policy: FuzzPolicy;
  /** The fixed clock of the run: whole seconds, inside every valid certificate's window. */
  readonly nowMs: number;
  readonly renderer: Renderer;
  /** Certificate names ("front:valid") that exist. */
  readonly certNames: readonly string[];
  /** Token names ("S5:alice:expired") that exist. */
  readonly tokenNames: readonly string[];
  certFacts(raw: string): CertFacts | undefined;
  tokenFacts(raw: string): TokenFacts | undefined;
  /** The valid certificate of an agent, URL-encoded as Envoy sends it. */
  validCertificate(agent: AgentName): string;
  /** Writes the keys' output (certificates, tokens, JWKS) to replay a run with FUZZ_FIXTURE. */
  save(file: string): Promise<void>;
  close(): Promise<void>;
}

function x5tOf(certPem: string): string {
  const body = certPem.replace(/-----(BEGIN|END) CERTIFICATE-----/g, "").replace(/\s+/g, "");
  return createHash("sha256").update(Buffer.from(body, "base64")).digest("base64url");
}

function lowerHexEncoding(urlEncoded: string): string {
  return urlEncoded.replace(/%[0-9A-F]{2}/g, (m) => m.toLowerCase());
}

/** A random-looking serial with its high bit clear (so DER adds no leading zero), unique per run. */
function serialMaker(): () => string {
  let n = 0;
  const base = createHash("sha256").update(String(process.hrtime.bigint())).digest("hex").slice(0, 12);
  return () => `5${base}${(++n).toString(16).padStart(4, "0")}`;
}

/** Assorted spellings of one hex serial: SPEC 3 compares them as numbers. */
function spellSerial(hex: string, i: number): string {
  const pairs = hex.length % 2 === 0 ? hex : `0${hex}`;
  const colon = pairs.match(/../g)!.join(":");
  switch (i % 4) {
    case 0:
      return colon.toUpperCase();
    case 1:
      return `00${hex}`;
    case 2:
      return hex.toUpperCase();
    default:
      return colon;
  }
}

/** Everything made with keys, as data: a failing run saves it, so that its counterexample replays on the same bytes. */
export interface FixtureMaterial {
  readonly nowMs: number;
  readonly caPem: string;
  readonly certs: Readonly<Record<string, { readonly certPem: string; readonly urlEncodedPem: string; readonly facts: CertFacts }>>;
  readonly revokedSerials: readonly string[];
  readonly jwks: unknown;
  readonly tokens: Readonly<Record<string, { readonly text: string; readonly facts: TokenFacts }>>;
}

/**
 * A fresh fixture, or with `FUZZ_FIXTURE=<file>` (or `load`) the one a
 * failing run saved: byte-level mutations of the gRPC fuzz land on the same
 * certificate and token bytes only with the same keys.
 */
export async function createFuzzFixture(load: string | undefined = process.env.FUZZ_FIXTURE): Promise<FuzzFixture> {
  const material = load !== undefined && load !== "" ? (JSON.parse(await readFile(load, "utf8")) as FixtureMaterial) : await generateMaterial();
  return fixtureFrom(material);
}

async function generateMaterial(): Promise<FixtureMaterial> {
  const nowMs = Math.floor(Date.now() / 1000) * 1000;
  const ca = await createCertificateAuthority("hopwarden fuzz CA");
  const nextSerial = serialMaker();
  const certs: Record<string, { certPem: string; urlEncodedPem: string; facts: CertFacts }> = {};

  const issue = async (name: string, uris: string[], options: { dns?: string[]; from?: number; to?: number } = {}): Promise<string> => {
    const serialHex = nextSerial();
    const notBeforeMs = options.from ?? nowMs - DAY_MS;
    const notAfterMs = options.to ?? nowMs + 30 * DAY_MS;
    const cert = await ca.issue({ name: name.replace(/:/g, "-"), uris, ...(options.dns && { dnsNames: options.dns }), notBefore: new Date(notBeforeMs), notAfter: new Date(notAfterMs), serialHex });
    certs[name] = { certPem: cert.certPem, urlEncodedPem: cert.urlEncodedPem, facts: { uris, notBeforeMs, notAfterMs, serialHex, x5tS256: x5tOf(cert.certPem) } };
    return serialHex;
  };

  const jobs: Promise<string>[] = [];
  for (const agent of AGENT_NAMES) {
    const id = AGENTS[agent];
    const other = agent === "db" ? AGENTS.front : AGENTS.db;
    jobs.push(
      issue(`${agent}:valid`, [id]),
      issue(`${agent}:expired`, [id], { from: nowMs - 10 * DAY_MS, to: nowMs - DAY_MS }),
      issue(`${agent}:notYetValid`, [id], { from: nowMs + DAY_MS, to: nowMs + 10 * DAY_MS }),
      issue(`${agent}:twoUris`, [id, other]),
      // One URI that, printed the way Node prints SANs, reads like two.
      issue(`${agent}:sanInjection`, [`spiffe://example.org/agent/x, URI:${id}`]),
      issue(`${agent}:dnsInjection`, [], { dns: [`x.example.org, URI:${id}`] }),
    );
  }
  jobs.push(issue("anon:noUri", [], { dns: ["research.example.org"] }));
  await Promise.all(jobs);
  const serials = await Promise.all(SERIAL_REVOKED_AGENTS.map((agent) => issue(`${agent}:revokedSerial`, [AGENTS[agent]])));
  const revokedSerials = serials.map((hex, i) => spellSerial(hex, i));

  const key = await createSigningKey("ES256", "fuzz-key-1");
  // Same kid, not in the JWKS: a token it signs must not verify.
  const rogue = await createSigningKey("ES256", "fuzz-key-1");
  const tokens: Record<string, { text: string; facts: TokenFacts }> = {};
  const x5t = (agent: AgentName): string => certs[`${agent}:valid`]!.facts.x5tS256;
  const signing: Promise<void>[] = [];
  for (const s of SCENARIOS) {
    for (const person of s.people) {
      const variants: readonly TokenVariant[] = s.tokenVariants ? TOKEN_VARIANT_NAMES : ["valid"];
      for (const variant of variants) {
        signing.push(
          makeToken(s, person, variant, { key, rogue, nowMs, x5t }).then(({ text, fact }) => {
            tokens[tokenName(s, person, variant)] = { text, facts: fact };
          }),
        );
      }
    }
  }
  await Promise.all(signing);
  return { nowMs, caPem: ca.certPem, certs, revokedSerials, jwks: jwksOf(key), tokens };
}

async function fixtureFrom(material: FixtureMaterial): Promise<FuzzFixture> {
  const { nowMs, caPem } = material;
  const facts = new Map<string, CertFacts>();
  const encode = (cert: { certPem: string; urlEncodedPem: string }, encoding: CertEncoding): string => {
    switch (encoding) {
      case "url":
        return cert.urlEncodedPem;
      case "raw":
        return cert.certPem;
      case "withCa":
        return encodeURIComponent(cert.certPem + caPem);
      case "caFirst":
        return encodeURIComponent(caPem + cert.certPem);
      case "lowerHex":
        return lowerHexEncoding(cert.urlEncodedPem);
      case "truncated":
        return cert.urlEncodedPem.slice(0, Math.floor(cert.urlEncodedPem.length / 2));
    }
  };
  const caFacts: CertFacts = { uris: [], notBeforeMs: nowMs - DAY_MS, notAfterMs: nowMs + 30 * DAY_MS, serialHex: "1", x5tS256: x5tOf(caPem) };
  for (const cert of Object.values(material.certs)) {
    for (const encoding of ["url", "raw", "withCa", "lowerHex"] as const) facts.set(encode(cert, encoding), cert.facts);
    facts.set(encode(cert, "caFirst"), caFacts);
  }
  const tokenFacts = new Map<string, TokenFacts>(Object.values(material.tokens).map((t) => [t.text, t.facts]));

  const policy = fuzzPolicy(material.revokedSerials);
  const dir = await mkdtemp(join(tmpdir(), "hopwarden-fuzz-"));
  const policyFile = join(dir, "policy.yaml");
  await writeFile(join(dir, JWKS_FILE), JSON.stringify(material.jwks));
  await writeFile(policyFile, fuzzPolicyYaml(policy));

  const renderer: Renderer = {
    certificate(value: CertValue): string {
      if ("raw" in value) return value.raw;
      const cert = material.certs[value.cert];
      if (cert === undefined) throw new Error(`the fuzz fixture has no certificate ${value.cert}`);
      return encode(cert, value.encoding);
    },
    token(value: TokenValue): string {
      if ("raw" in value) return value.raw;
      const token = material.tokens[value.token];
      if (token === undefined) throw new Error(`the fuzz fixture has no token ${value.token}`);
      return token.text;
    },
  };

  return {
    dir,
    policyFile,
    policy,
    nowMs,
    renderer,
    certNames: Object.keys(material.certs),
    tokenNames: Object.keys(material.tokens),
    certFacts: (raw) => facts.get(raw),
    tokenFacts: (raw) => tokenFacts.get(raw),
    validCertificate: (agent) => material.certs[`${agent}:valid`]!.urlEncodedPem,
    save: (file) => writeFile(file, JSON.stringify(material)),
    close: () => rm(dir, { recursive: true, force: true }),
  };
}

interface Signers {
  readonly key: TestSigningKey;
  readonly rogue: TestSigningKey;
  readonly nowMs: number;
  x5t(agent: AgentName): string;
}

let jtiCounter = 0;

async function makeToken(s: Scenario, person: PersonName, variant: TokenVariant, k: Signers): Promise<{ text: string; fact: TokenFacts }> {
  const now = k.nowMs / 1000;
  const chain = s.chain.map((a) => AGENTS[a]);
  const caller = callerOf(s);
  const otherAgent: AgentName = caller === "worker" ? "research" : "worker";
  const otherPerson = person === "alice" ? PEOPLE.bob : PEOPLE.alice;
  const claims = {
    iss: ISSUER,
    sub: PEOPLE[person],
    aud: AGENTS[s.callee],
    iat: now - 10,
    nbf: undefined as number | undefined,
    exp: now + 3600,
    jti: `fuzz-${++jtiCounter}`,
    scope: "db:read",
    x5t: k.x5t(caller),
    chain,
  };
  let header: Record<string, unknown> = {};
  let signer = k.key;
  let signatureOk = true;
  let shapeOk = true;
  let post: ((text: string) => string) | undefined;
  switch (variant) {
    case "valid":
      break;
    case "wideScope":
      claims.scope = "db:read db:write";
      break;
    case "emptyScope":
      claims.scope = "";
      break;
    case "unknownKey":
      signer = k.rogue;
      signatureOk = false;
      break;
    case "unknownKid":
      header = { kid: "no-such-key" };
      signatureOk = false;
      break;
    case "typJwt":
      header = { typ: "JWT" };
      signatureOk = false;
      break;
    case "noTyp":
      header = { typ: undefined };
      signatureOk = false;
      break;
    case "algNone":
    case "algHs256":
      signatureOk = false;
      break;
    case "wrongIss":
      claims.iss = "https://sts.evil.example";
      break;
    case "futureIat":
      claims.iat = now + 600;
      break;
    case "futureNbf":
      claims.nbf = now + 600;
      break;
    case "otherCnf":
      claims.x5t = k.x5t(otherAgent);
      break;
    case "noJti":
      shapeOk = false;
      break;
    case "truncated":
      post = (t) => t.slice(0, -4);
      signatureOk = false;
      break;
    case "payloadFlip":
      post = (t) => {
        const dot = t.indexOf(".");
        const i = dot + 10;
        return t.slice(0, i) + (t[i] === "A" ? "B" : "A") + t.slice(i + 1);
      };
      signatureOk = false;
      break;
    case "respelledSignature":
      post = respelledSignature;
      signatureOk = false;
      break;
    case "bearer":
      post = (t) => `Bearer ${t}`;
      signatureOk = false;
      break;
    case "expired":
      claims.iat = now - 7200;
      claims.exp = now - 3600;
      break;
    case "expiredOtherCnf":
      claims.iat = now - 7200;
      claims.exp = now - 3600;
      claims.x5t = k.x5t(otherAgent);
      break;
    case "expiredOtherChain":
      claims.iat = now - 7200;
      claims.exp = now - 3600;
      claims.chain = chain.slice(1).length > 0 ? chain.slice(1) : [AGENTS.ghost, ...chain];
      break;
    case "otherChain":
      claims.chain = chain.slice(1).length > 0 ? chain.slice(1) : [AGENTS.ghost, ...chain];
      break;
    case "reversedChain":
      claims.chain = chain.length > 1 ? [...chain].reverse() : [...chain, AGENTS.ghost];
      break;
    case "otherAud":
      claims.aud = AGENTS.ghost;
      break;
    case "otherSub":
      claims.sub = otherPerson;
      break;
    case "otherChainWideScope":
      claims.chain = chain.slice(1).length > 0 ? chain.slice(1) : [AGENTS.ghost, ...chain];
      claims.scope = "db:read db:admin";
      break;
    case "scopeExceeded":
      claims.scope = "db:read db:admin";
      break;
  }
  const payload: Record<string, unknown> = {
    iss: claims.iss,
    sub: claims.sub,
    aud: claims.aud,
    iat: claims.iat,
    ...(claims.nbf !== undefined && { nbf: claims.nbf }),
    exp: claims.exp,
    ...(variant !== "noJti" && { jti: claims.jti }),
    scope: claims.scope,
    cnf: { "x5t#S256": claims.x5t },
    act: nestActors(claims.chain),
  };
  let text: string;
  if (variant === "algNone" || variant === "algHs256") {
    const b64 = (v: unknown) => Buffer.from(JSON.stringify(v)).toString("base64url");
    const alg = variant === "algNone" ? "none" : "HS256";
    text = `${b64({ alg, kid: k.key.kid, typ: "agent-delegation+jwt" })}.${b64(payload)}.${Buffer.alloc(32, 9).toString("base64url")}`;
  } else {
    text = await signToken(signer, payload, header);
  }
  if (post !== undefined) text = post(text);
  const fact: TokenFacts = {
    signatureOk,
    shapeOk,
    iss: claims.iss,
    sub: claims.sub,
    aud: claims.aud,
    iat: claims.iat,
    nbf: claims.nbf,
    exp: claims.exp,
    scope: claims.scope === "" ? [] : claims.scope.split(" "),
    x5tS256: claims.x5t,
    chain: claims.chain,
  };
  return { text, fact };
}
