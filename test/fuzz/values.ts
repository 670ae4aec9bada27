// Value pools and small arbitraries shared by the generators: spellings of
// identities that are not SPIFFE IDs, paths on both sides of SPEC 3's rules,
// methods, people, and names of the fixture's certificates and tokens (known
// without building the fixture, so generators need no keys).

import fc from "fast-check";
import { AGENT_NAMES, AGENTS, PEOPLE, SERIAL_REVOKED_AGENTS, type AgentName } from "./universe.js";
import { SCENARIOS, TOKEN_VARIANT_NAMES, tokenName, type PathRule } from "./scenarios.js";
import { CERT_VARIANTS } from "./fixture.js";
import type { CertEncoding, CertValue, TokenValue } from "./request-model.js";

export const ALL_IDS: readonly string[] = Object.values(AGENTS);

/** Spellings of `id` that are not valid SPIFFE IDs (SPIFFE ID spec), none of them fixed by trimming spaces or tabs. */
export function invalidSpellings(id: string): string[] {
  const rest = id.slice("spiffe://".length);
  const slash = rest.indexOf("/");
  const td = rest.slice(0, slash);
  const path = rest.slice(slash);
  return [
    `SPIFFE://${rest}`,
    `spiffe:/${rest}`,
    `spiffe://${td.toUpperCase()}${path}`,
    `${id}/`,
    `${id}/.`,
    `${id}/..`,
    `spiffe://${td}/./${path.slice(1)}`,
    `spiffe://${td}//${path.slice(1)}`,
    `${id}?x=1`,
    `${id}#frag`,
    `spiffe://user@${rest}`,
    `spiffe://${td}:443${path}`,
    `${id} x`,
    `${id}%2e`,
    `spiffe://${td}${path.replace("agent", "ag%65nt")}`,
    `${id}\u0000`,
    `${id}é`,
    `spiffe://${td}${path}\u200b`,
    `${id}\u00a0`,
    `\u00a0${id}`,
    `${id}\r\n`,
    "spiffe://",
    `spiffe:///${path.slice(1)}`,
  ];
}

export const PERSON_POOL: readonly string[] = [
  PEOPLE.alice,
  PEOPLE.bob,
  PEOPLE.carol,
  PEOPLE.mallory,
  "",
  "ALICE@EXAMPLE.COM",
  "alice@Example.com",
  "alice@example.com.evil.com",
  `${PEOPLE.mallory},${PEOPLE.alice}`,
  `${PEOPLE.alice} `,
  "@example.com",
  "x/y@example.com",
  "Carol@partner.example",
  `${"a".repeat(2036)}@example.com`,
];

/** A 2,048-byte on-behalf-of that `*@example.com` admits: the bound, not over it. */
export const LONGEST_PERSON = `${"a".repeat(2048 - "@example.com".length)}@example.com`;

export const METHOD_POOL: readonly string[] = ["GET", "POST", "PUT", "DELETE", "HEAD", "OPTIONS", "get", "Post", "", "GET "];

export const PATH_POOL: readonly string[] = [
  "/",
  "/query",
  "/query/",
  "/schema/a",
  "/schema/",
  "/schema/a/b",
  "/reports",
  "/reports/",
  "/reports/2026/q4",
  "/send",
  "/health",
  "/r/1/x",
  "/r/1/2/x",
  "/query/../admin",
  "/reports/..;/admin",
  "/reports/%2e%2e/admin",
  "/reports/%252e%252e/%252e%252e/admin",
  "/reports/%252F..%252Fadmin",
  "/reports/%2F..%2Fadmin",
  "/schema/%2E%2e",
  "/schema/.",
  "/schema/a;b",
  "/schema/é",
  "/schema/a\u0000",
  "/query?x=/../admin",
  "/query#/../admin",
  "/schema/x?q=%2F",
  "*",
  "",
];

const SEGMENT_CHARS = "abcXYZ019-._~!$&'()*+=:@";

/** A path segment that is not a dot-segment and holds no refused escape (SPEC 3). */
export const segmentArb: fc.Arbitrary<string> = fc
  .array(fc.oneof({ arbitrary: fc.constantFrom(...SEGMENT_CHARS), weight: 8 }, { arbitrary: fc.constantFrom("%41", "%2e", "%2E", "%7e", "%20"), weight: 1 }), { maxLength: 8 })
  .map((parts) => parts.join(""))
  .filter((seg) => {
    const decoded = seg.replace(/%2e/gi, ".");
    return decoded !== "." && decoded !== "..";
  });

/** A query string: anything printable, including what would be refused in a path. */
export const queryArb: fc.Arbitrary<string> = fc.oneof(
  { arbitrary: fc.constant(""), weight: 6 },
  { arbitrary: fc.constantFrom("?x=1", "?a=/../admin", "?p=%2F..%2F", "?q=;x", "?r=%252e", "?", "?x=é", "?#frag"), weight: 3 },
  { arbitrary: fc.string({ maxLength: 40 }).map((s) => `?${s}`), weight: 1 },
  { arbitrary: fc.integer({ min: 1, max: 12_000 }).map((n) => `?pad=${"q".repeat(n)}`), weight: 1 },
);

/** An allowed path (no query) for a scenario's last-hop path rule. */
export function pathArb(rule: PathRule): fc.Arbitrary<string> {
  switch (rule) {
    case "any":
      return fc.oneof(
        { arbitrary: fc.array(segmentArb, { maxLength: 4 }).map((segs) => `/${segs.join("/")}`), weight: 6 },
        // No path rule on this hop: even paths SPEC 3 refuses are allowed here.
        { arbitrary: fc.constantFrom("/../etc/passwd", "/a;b", "/%2e%2e/", "/%252e", "/é", "/a%2Fb", "\\x", "relative", "", "/" + "a".repeat(8191)), weight: 2 },
      );
    case "worker-db":
      return fc.oneof(fc.constant("/query"), segmentArb.map((s) => `/schema/${s}`));
    case "research-db":
      return fc.oneof(fc.constant("/query"), fc.array(segmentArb, { maxLength: 3 }).map((segs) => `/reports/${segs.join("/")}`));
    case "send":
      return fc.constant("/send");
    case "bridge-research":
      return segmentArb.map((s) => `/r/${s}/x`);
    case "health":
      return fc.constant("/health");
  }
}

export const ENCODINGS: readonly CertEncoding[] = ["url", "raw", "withCa", "lowerHex"];
export const encodingArb: fc.Arbitrary<CertEncoding> = fc.oneof({ arbitrary: fc.constant<CertEncoding>("url"), weight: 6 }, { arbitrary: fc.constantFrom<CertEncoding>("raw", "withCa", "lowerHex"), weight: 1 });

export function validCert(agent: AgentName, encoding: CertEncoding = "url"): CertValue {
  return { cert: `${agent}:valid`, encoding };
}

export const CERT_NAMES: readonly string[] = [
  ...AGENT_NAMES.flatMap((a) => CERT_VARIANTS.filter((v) => v !== "revokedSerial").map((v) => `${a}:${v}`)),
  ...SERIAL_REVOKED_AGENTS.map((a) => `${a}:revokedSerial`),
  "anon:noUri",
];

export const TOKEN_NAMES: readonly string[] = SCENARIOS.flatMap((s) =>
  s.people.flatMap((p) => (s.tokenVariants ? TOKEN_VARIANT_NAMES : (["valid"] as const)).map((v) => tokenName(s, p, v))),
);

/** Literal strings sent as a certificate that are no certificate. */
export const JUNK_CERTS: readonly string[] = [
  "garbage",
  "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
  "-----BEGIN CERTIFICATE-----%0AMIIB%0A-----END CERTIFICATE-----%0A",
  "%ZZ",
  "%E0%A4%A",
  "-----BEGIN X509 CRL-----\nAAAA\n-----END X509 CRL-----\n",
];

export const anyCertArb: fc.Arbitrary<CertValue> = fc.oneof(
  { arbitrary: fc.record({ cert: fc.constantFrom(...CERT_NAMES), encoding: fc.constantFrom<CertEncoding>("url", "raw", "withCa", "caFirst", "lowerHex", "truncated") }), weight: 8 },
  { arbitrary: fc.constantFrom(...JUNK_CERTS).map((raw) => ({ raw })), weight: 1 },
  { arbitrary: fc.string({ minLength: 1, maxLength: 60 }).map((raw) => ({ raw })), weight: 1 },
);

export const anyTokenArb: fc.Arbitrary<TokenValue> = fc.oneof(
  { arbitrary: fc.constantFrom(...TOKEN_NAMES).map((token) => ({ token })), weight: 8 },
  { arbitrary: fc.string({ minLength: 1, maxLength: 80 }).map((raw) => ({ raw })), weight: 1 },
  { arbitrary: fc.constantFrom("a.b.c", "eyJhbGciOiJub25lIn0.e30.", "x".repeat(16_385)).map((raw) => ({ raw })), weight: 1 },
);

/** Very long or very odd strings for the fields that must bound untrusted input. */
export const hugeStringArb: fc.Arbitrary<string> = fc
  .tuple(fc.constantFrom("a", "/", "%2e", "@", ",", "é", "\u0000", "*", "spiffe://example.org/agent/front,"), fc.integer({ min: 500, max: 70_000 }))
  .map(([unit, n]) => unit.repeat(Math.ceil(n / unit.length)));

export const junkStringArb: fc.Arbitrary<string> = fc.oneof(
  { arbitrary: fc.string({ maxLength: 40 }), weight: 5 },
  { arbitrary: fc.string({ unit: "binary", maxLength: 40 }), weight: 3 },
  { arbitrary: fc.constantFrom(...ALL_IDS, ...PERSON_POOL, ...PATH_POOL), weight: 3 },
  { arbitrary: hugeStringArb, weight: 1 },
);
