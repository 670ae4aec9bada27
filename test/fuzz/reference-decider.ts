// A second, deliberately simple reading of SPEC 1–5 for the fuzz policy: it
// decides an EnvoyView with regular expressions, a textbook wildcard DP and
// plain loops, shares no code with src/, and favours being obviously right
// over being fast. The fuzz compares it with the real pipeline: the pipeline
// must never allow what this denies.
//
// Certificate and token facts come from the fixture (known by construction);
// a certificate string the fixture never made is read by a small DER walk of
// its own (no node:crypto, which hopwarden uses).

import { createHash } from "node:crypto";
import type { DenialReason } from "../../src/core/reasons.js";
import type { CertFacts, TokenFacts } from "./fixture.js";
import { HEADER, type EnvoyView } from "./request-model.js";
import type { FuzzHopRule, FuzzPolicy } from "./universe.js";

export type ReferenceDecision =
  | { readonly allowed: true; readonly caller: string; readonly callee: string; readonly chain: readonly string[]; readonly onBehalfOf: string | undefined }
  | { readonly allowed: false; readonly reason: DenialReason; readonly why: string };

export interface ReferenceWorld {
  readonly policy: FuzzPolicy;
  readonly nowMs: number;
  certFacts(raw: string): CertFacts | undefined;
  tokenFacts(raw: string): TokenFacts | undefined;
}

const MAX_ID_BYTES = 2048;
const MAX_TOKEN_BYTES = 16 * 1024;
const MAX_PATH_BYTES = 8 * 1024;

const bytes = (s: string): number => Buffer.byteLength(s, "utf8");

// --- SPIFFE IDs (the SPIFFE ID spec) ----------------------------------------

const SPIFFE_ID = /^spiffe:\/\/([a-z0-9._-]+)((?:\/[A-Za-z0-9._-]+)*)$/;

/** The trust domain of a valid SPIFFE ID, or undefined. */
export function spiffeTrustDomain(value: string): string | undefined {
  if (value.length > MAX_ID_BYTES || bytes(value) > MAX_ID_BYTES) return undefined;
  const m = SPIFFE_ID.exec(value);
  if (m === null || m[1]!.length > 255) return undefined;
  for (const segment of m[2]!.split("/")) if (segment === "." || segment === "..") return undefined;
  return m[1];
}

// --- Globs (SPEC 3): a wildcard DP, `*` never crossing "/" ------------------

type GlobToken = { kind: "char"; c: number } | { kind: "star" } | { kind: "rest" };

const SLASH = 0x2f;

function tokenize(pattern: string, pathRule: boolean): GlobToken[] {
  const deep = pathRule && pattern.endsWith("/**");
  const body = deep ? pattern.slice(0, -2) : pattern;
  const out: GlobToken[] = [];
  for (let i = 0; i < body.length; i++) out.push(body[i] === "*" ? { kind: "star" } : { kind: "char", c: body.charCodeAt(i) });
  if (deep) out.push({ kind: "rest" });
  return out;
}

const tokenized = new Map<string, GlobToken[]>();

/**
 * dp[j]: the tokens so far can match value[0, j). Linear in the value per
 * token. (UTF-16 units: `*` takes any unit but "/", so a surrogate pair is
 * matched alike whether counted as one character or two.)
 */
export function globMatches(pattern: string, value: string, pathRule = false): boolean {
  if (!pattern.includes("*")) return pattern === value;
  const key = `${pathRule ? "p" : "g"}${pattern}`;
  let tokens = tokenized.get(key);
  if (tokens === undefined) tokenized.set(key, (tokens = tokenize(pattern, pathRule)));
  const n = value.length;
  let dp = new Uint8Array(n + 1);
  dp[0] = 1;
  for (const t of tokens) {
    const next = new Uint8Array(n + 1);
    if (t.kind === "char") {
      for (let j = 0; j < n; j++) if (dp[j] === 1 && value.charCodeAt(j) === t.c) next[j + 1] = 1;
    } else if (t.kind === "star") {
      let carry = false;
      for (let j = 0; j <= n; j++) {
        if (dp[j] === 1) carry = true;
        if (carry) next[j] = 1;
        if (j < n && value.charCodeAt(j) === SLASH) carry = false;
      }
    } else {
      let seen = false;
      for (let j = 0; j <= n; j++) {
        if (dp[j] === 1) seen = true;
        if (seen) next[j] = 1;
      }
    }
    dp = next;
  }
  return dp[n] === 1;
}

// --- Paths (SPEC 3) ---------------------------------------------------------

type RulePath = { kind: "ok"; path: string } | { kind: "refused" } | { kind: "tooLong" };

export function referenceRulePath(target: string): RulePath {
  const cut = target.search(/[?#]/);
  const path = cut === -1 ? target : target.slice(0, cut);
  if (bytes(path) > MAX_PATH_BYTES) return { kind: "tooLong" };
  if (/[^\x20-\x7e]/.test(path)) return { kind: "refused" }; // control or non-ASCII
  if (/[\\;]/.test(path)) return { kind: "refused" };
  if (/%25/.test(path)) return { kind: "refused" };
  if (/%(?![0-9a-f]{2})/i.test(path)) return { kind: "refused" }; // a "%" that starts no escape
  if (/%(?:[01][0-9a-f]|7f|[89a-f][0-9a-f])/i.test(path)) return { kind: "refused" }; // an encoded control or non-ASCII byte
  if (/%2f|%5c/i.test(path)) return { kind: "refused" };
  for (const segment of path.split("/")) {
    const decoded = segment.replace(/%2e/gi, ".");
    if (decoded === "." || decoded === "..") return { kind: "refused" };
  }
  return { kind: "ok", path };
}

// --- Headers ----------------------------------------------------------------

/**
 * The values of one header, one per occurrence. In the `headers` map Envoy's
 * proto requires lower-case keys, so only those are headers; header_map
 * names are matched case-insensitively.
 */
function headerValues(view: EnvoyView, name: string): string[] {
  if (view.transport === "headers") return view.headers.filter(([k]) => k === name).map(([, v]) => v);
  return view.headers.filter(([k]) => k.toLowerCase() === name).map(([, v]) => v);
}

// --- The decision -----------------------------------------------------------

class Deny {
  constructor(
    readonly reason: DenialReason,
    readonly why: string,
  ) {}
}

function serialValue(hex: string): bigint | undefined {
  const clean = hex.replace(/:/g, "");
  if (!/^[0-9a-fA-F]+$/.test(clean)) return undefined;
  return BigInt(`0x${clean}`);
}

const serialSets = new WeakMap<FuzzPolicy, Set<bigint>>();

function revokedSerialValues(p: FuzzPolicy): Set<bigint> {
  let set = serialSets.get(p);
  if (set === undefined) {
    set = new Set(p.revokedSerials.map(serialValue).filter((v): v is bigint => v !== undefined));
    serialSets.set(p, set);
  }
  return set;
}

export function referenceDecide(view: EnvoyView, world: ReferenceWorld): ReferenceDecision {
  const r = decide(view, world);
  return r instanceof Deny ? { allowed: false, reason: r.reason, why: r.why } : { allowed: true, ...r };
}

function decide(view: EnvoyView, w: ReferenceWorld): Deny | { caller: string; callee: string; chain: string[]; onBehalfOf: string | undefined } {
  const p = w.policy;
  const aliases = new Map(Object.entries(p.agents));
  const alias = (name: string): string => aliases.get(name) ?? name;

  // 1. caller identity
  let caller: string;
  let cert: CertFacts | undefined;
  if (view.certificate !== "") {
    cert = w.certFacts(view.certificate);
    if (cert === undefined) return new Deny("invalid_peer_certificate", "the certificate does not parse");
    if (w.nowMs < cert.notBeforeMs || w.nowMs > cert.notAfterMs) return new Deny("invalid_peer_certificate", "outside its validity window");
    if (cert.uris.length !== 1) return new Deny("invalid_peer_certificate", `${cert.uris.length} URI SANs`);
    if (spiffeTrustDomain(cert.uris[0]!) === undefined) return new Deny("invalid_peer_certificate", "its URI SAN is not a SPIFFE ID");
    caller = cert.uris[0]!;
  } else if (view.principal !== "") {
    if (spiffeTrustDomain(view.principal) === undefined) return new Deny("invalid_peer_certificate", "the principal is not a SPIFFE ID");
    caller = view.principal;
  } else {
    return new Deny("missing_peer_certificate", "no certificate, no principal");
  }
  if (!p.trustDomains.includes(spiffeTrustDomain(caller)!)) return new Deny("untrusted_trust_domain", "caller's trust domain");

  // 2. revocation
  const revokedIds = p.revokedIdentities.map(alias);
  if (revokedIds.includes(caller)) return new Deny("revoked_identity", "caller revoked");
  if (cert !== undefined) {
    const serial = serialValue(cert.serialHex);
    if (serial !== undefined && revokedSerialValues(p).has(serial)) return new Deny("revoked_identity", "serial revoked");
  }

  // 3. subject
  const subjects = headerValues(view, HEADER.subject);
  if (subjects.length === 0) return new Deny("missing_subject_header", "no subject");
  if (subjects.length > 1) return new Deny("subject_mismatch", "subject sent twice");
  if (bytes(subjects[0]!) > MAX_ID_BYTES) return new Deny("subject_mismatch", "subject too long");
  if (subjects[0] !== caller) return new Deny("subject_mismatch", "subject is not the caller");

  // 4. on-behalf-of
  const obos = headerValues(view, HEADER.onBehalfOf);
  let obo: string | undefined = obos.join(",");
  if (obos.length === 0 || obo === "") {
    if (p.requireOnBehalfOf) return new Deny("missing_on_behalf_of", "no on-behalf-of");
    obo = undefined;
  } else {
    if (obos.length > 1) return new Deny("on_behalf_of_not_allowed", "on-behalf-of sent twice");
    if (bytes(obo) > MAX_ID_BYTES) return new Deny("on_behalf_of_not_allowed", "on-behalf-of too long");
    if (/[,\s]|\p{Cc}/u.test(obo)) return new Deny("on_behalf_of_not_allowed", "on-behalf-of names more than one principal");
    if (/[\p{Cf}\p{Default_Ignorable_Code_Point}\p{Cs}\uFFFD]/u.test(obo)) return new Deny("on_behalf_of_not_allowed", "on-behalf-of holds an invisible character");
    const value = obo;
    if (!p.onBehalfOf.some((pattern) => globMatches(pattern, value))) return new Deny("on_behalf_of_not_allowed", "not a principal the policy represents");
  }

  // 5. chain
  const chains = headerValues(view, HEADER.chain);
  let chain: string[];
  if (chains.length === 0) chain = [caller];
  else {
    if (chains.length > 1) return new Deny("malformed_chain", "chain sent twice");
    // SPEC 1: bounded before any work: longer than maxChainLength IDs of 2,048 bytes, their commas and 1,024 of whitespace.
    if (chains[0]!.length > p.maxChainLength * 2049 + 1024) return new Deny("malformed_chain", "chain header too long to hold an allowed chain");
    const entries = chains[0]!.split(",").map((e) => e.replace(/^[ \t]+|[ \t]+$/g, ""));
    if (entries.some((e) => e === "")) return new Deny("malformed_chain", "an empty entry");
    const domains = entries.map(spiffeTrustDomain);
    if (domains.some((d) => d === undefined)) return new Deny("malformed_chain", "an entry is not a SPIFFE ID");
    if (domains.some((d) => !p.trustDomains.includes(d!))) return new Deny("untrusted_trust_domain", "an entry's trust domain");
    if (entries.length > p.maxChainLength) return new Deny("chain_too_long", "chain too long");
    if (new Set(entries).size !== entries.length) return new Deny("chain_cycle", "an agent twice");
    if (entries[entries.length - 1] !== caller) return new Deny("chain_caller_mismatch", "caller not last");
    if (entries.some((e) => revokedIds.includes(e))) return new Deny("revoked_identity", "a revoked entry");
    chain = entries;
  }

  // 6. callee
  let callee: string;
  const named = view.contextExtensions.agent;
  if (named !== undefined && named !== "") {
    if (named.startsWith("spiffe://")) {
      if (spiffeTrustDomain(named) === undefined) return new Deny("unknown_callee", "context agent is not a SPIFFE ID");
      callee = named;
    } else {
      const id = aliases.get(named);
      if (id === undefined) return new Deny("unknown_callee", "unknown alias");
      callee = id;
    }
  } else {
    if (view.destinationPrincipal === "") return new Deny("unknown_callee", "no callee");
    if (spiffeTrustDomain(view.destinationPrincipal) === undefined) return new Deny("unknown_callee", "destination is not a SPIFFE ID");
    callee = view.destinationPrincipal;
  }

  // 7. hops
  const rulePath = referenceRulePath(view.path);
  if (rulePath.kind === "tooLong") return new Deny("hop_not_allowed", "path over 8 KiB");
  const walk = [...chain, callee];
  let requireToken = false;
  let lastRule: FuzzHopRule | undefined;
  for (let i = 0; i + 1 < walk.length; i++) {
    const isLast = i + 2 === walk.length;
    const rule = p.hops.find((h) => admits(h, walk[i]!, walk[i + 1]!, obo, isLast ? { method: view.method, path: rulePath } : undefined, alias));
    if (rule === undefined) return new Deny("hop_not_allowed", `no rule for hop ${i + 1}`);
    if (rule.requireToken === true) requireToken = true;
    if (isLast) lastRule = rule;
  }

  // 8. requireVia
  for (const rv of p.requireVia) {
    if (!globMatches(alias(rv.to), callee)) continue;
    for (const via of rv.via) if (!chain.includes(alias(via))) return new Deny("required_hop_missing", `not via ${via}`);
  }

  // 9. delegation token
  const tokens = headerValues(view, HEADER.token);
  const tokenText = tokens.join(",");
  const required = requireToken || p.tokens.required;
  if (tokens.length === 0 || tokenText === "") {
    if (required) return new Deny("token_missing", "token required");
  } else {
    if (tokens.length > 1) return new Deny("token_invalid", "token sent twice");
    if (bytes(tokenText) > MAX_TOKEN_BYTES) return new Deny("token_invalid", "token too long");
    // Only a token the fixture signed, spelled as it was: a JWS part has one canonical base64url spelling.
    const t = w.tokenFacts(tokenText);
    if (t === undefined || !t.signatureOk || !t.shapeOk) return new Deny("token_invalid", "not a token this issuer signed");
    const skew = p.tokens.clockSkewSeconds;
    const now = w.nowMs / 1000;
    if (t.iss !== p.tokens.issuer) return new Deny("token_invalid", "iss");
    if (t.iat > now + skew || (t.nbf !== undefined && t.nbf > now + skew)) return new Deny("token_invalid", "iat/nbf in the future");
    if (cert === undefined || t.x5tS256 !== cert.x5tS256) return new Deny("token_invalid", "cnf");
    if (now >= t.exp + skew) return new Deny("token_expired", "exp");
    if (t.chain.length !== chain.length || t.chain.some((a, i) => a !== chain[i])) return new Deny("token_chain_mismatch", "act chain");
    if (t.aud !== callee) return new Deny("token_chain_mismatch", "aud");
    if (t.sub !== obo) return new Deny("token_chain_mismatch", "sub");
    const scopes = lastRule?.scopes;
    if (scopes !== undefined && t.scope.some((s) => !scopes.includes(s))) return new Deny("token_scope_exceeded", "scope");
  }
  return { caller, callee, chain, onBehalfOf: obo };
}

function admits(
  rule: FuzzHopRule,
  from: string,
  to: string,
  obo: string | undefined,
  last: { method: string; path: RulePath } | undefined,
  alias: (name: string) => string,
): boolean {
  if (!globMatches(alias(rule.from), from) || !globMatches(alias(rule.to), to)) return false;
  if (rule.onBehalfOf !== undefined && (obo === undefined || !rule.onBehalfOf.some((pattern) => globMatches(pattern, obo)))) return false;
  if (last === undefined) return true;
  if (rule.methods !== undefined && !rule.methods.some((m) => globMatches(m, last.method))) return false;
  if (rule.paths !== undefined) {
    if (last.path.kind !== "ok") return false;
    const path = last.path.path;
    if (!rule.paths.some((pattern) => globMatches(pattern, path, true))) return false;
  }
  return true;
}

// --- Certificates the fixture did not make ----------------------------------
//
// Only byte-mutated requests of the gRPC fuzz and junk strings get here. A
// small DER walk reads what the identity rules need (serial, validity, URI
// SANs) and nothing else, so a flipped bit in a public key or a signature,
// which hopwarden does not read either (Envoy verified the chain), does not
// make the reference refuse a certificate whose identity is intact.

const parsed = new Map<string, CertFacts | undefined>();

/** Reads a certificate string the way SPEC 1 describes it (URL-encoded PEM, the first block is the peer's). */
export function parseCertificateIndependently(raw: string): CertFacts | undefined {
  if (parsed.has(raw)) return parsed.get(raw);
  let result: CertFacts | undefined;
  try {
    result = parseUncached(raw);
  } catch {
    result = undefined;
  }
  if (parsed.size > 20_000) parsed.clear();
  parsed.set(raw, result);
  return result;
}

function parseUncached(raw: string): CertFacts | undefined {
  let pem = raw;
  if (raw.includes("%")) {
    try {
      pem = decodeURIComponent(raw);
    } catch {
      return undefined;
    }
  }
  const begin = pem.indexOf("-----BEGIN CERTIFICATE-----");
  if (begin === -1) return undefined;
  const end = pem.indexOf("-----END CERTIFICATE-----", begin);
  if (end === -1) return undefined;
  const body = pem.slice(begin + "-----BEGIN CERTIFICATE-----".length, end).replace(/[\r\n\t ]+/g, "");
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(body)) return undefined;
  const der = Buffer.from(body, "base64");
  const facts = readCertificateDer(der);
  return facts === undefined ? undefined : { ...facts, x5tS256: createHash("sha256").update(der).digest("base64url") };
}

interface Tlv {
  readonly tag: number;
  readonly start: number;
  readonly end: number;
}

function tlv(der: Uint8Array, pos: number, limit: number): Tlv {
  if (pos + 2 > limit) throw new Error("truncated");
  const tag = der[pos]!;
  let len = der[pos + 1]!;
  let start = pos + 2;
  if (len & 0x80) {
    const n = len & 0x7f;
    if (n === 0 || n > 4 || start + n > limit) throw new Error("bad length");
    len = 0;
    for (let i = 0; i < n; i++) len = len * 256 + der[start + i]!;
    start += n;
  }
  if (start + len > limit) throw new Error("overrun");
  return { tag, start, end: start + len };
}

function children(der: Uint8Array, parent: Tlv): Tlv[] {
  const out: Tlv[] = [];
  for (let pos = parent.start; pos < parent.end; ) {
    const t = tlv(der, pos, parent.end);
    out.push(t);
    pos = t.end;
  }
  return out;
}

function readTime(der: Uint8Array, t: Tlv): number {
  const text = Buffer.from(der.subarray(t.start, t.end)).toString("latin1");
  const m = t.tag === 0x17 ? /^(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})Z$/.exec(text) : t.tag === 0x18 ? /^(\d{4})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})Z$/.exec(text) : null;
  if (m === null) throw new Error("bad time");
  let year = Number(m[1]);
  if (t.tag === 0x17) year += year < 50 ? 2000 : 1900;
  const ms = Date.UTC(year, Number(m[2]) - 1, Number(m[3]), Number(m[4]), Number(m[5]), Number(m[6]));
  if (Number.isNaN(ms)) throw new Error("bad time");
  return ms;
}

const SAN_OID = "551d11";

/** Certificate ::= SEQUENCE { tbsCertificate, signatureAlgorithm, signature }; only tbsCertificate is read. */
function readCertificateDer(der: Uint8Array): Omit<CertFacts, "x5tS256"> | undefined {
  const cert = tlv(der, 0, der.length);
  if (cert.tag !== 0x30) return undefined;
  const tbs = children(der, cert)[0];
  if (tbs === undefined || tbs.tag !== 0x30) return undefined;
  const fields = children(der, tbs);
  let i = fields[0]?.tag === 0xa0 ? 1 : 0;
  const serial = fields[i++];
  i++; // signature algorithm
  i++; // issuer
  const validity = fields[i++];
  if (serial?.tag !== 0x02 || validity?.tag !== 0x30) return undefined;
  const [notBefore, notAfter] = children(der, validity);
  if (notBefore === undefined || notAfter === undefined) return undefined;
  const uris: string[] = [];
  const extensions = fields.find((f) => f.tag === 0xa3);
  if (extensions !== undefined) {
    const list = children(der, extensions)[0];
    if (list?.tag !== 0x30) return undefined;
    for (const ext of children(der, list)) {
      const parts = children(der, ext);
      if (parts[0]?.tag !== 0x06 || Buffer.from(der.subarray(parts[0].start, parts[0].end)).toString("hex") !== SAN_OID) continue;
      const value = parts[parts.length - 1]!;
      if (value.tag !== 0x04) return undefined;
      const names = tlv(der, value.start, value.end);
      if (names.tag !== 0x30) return undefined;
      for (const name of children(der, names)) if (name.tag === 0x86) uris.push(Buffer.from(der.subarray(name.start, name.end)).toString("latin1"));
    }
  }
  return {
    uris,
    notBeforeMs: readTime(der, notBefore),
    notAfterMs: readTime(der, notAfter),
    serialHex: Buffer.from(der.subarray(serial.start, serial.end)).toString("hex") || "0",
  };
}
