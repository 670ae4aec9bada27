// The policy file (SPEC 3): YAML, validated; unknown keys are errors, never
// ignored; every error is listed, one per line, as
// `file:line:column: field: problem`, an unknown key naming the key.

import { describe, expect, it } from "vitest";
import { loadPolicyText, MAX_POLICY_FILE_BYTES, policyTextOf, readPolicyDocument, type PolicyLoadResult } from "./policy-file.js";

const SPEC_EXAMPLE = `version: "2026-11-01.3"          # recorded in every decision
trustDomains: [example.org]
maxChainLength: 6
requireOnBehalfOf: true
onBehalfOf: ["*@example.com"]    # who may be represented at all (else on_behalf_of_not_allowed)
agents:                           # aliases usable in rules
  orchestrator: spiffe://example.org/agent/orchestrator
  research:     spiffe://example.org/agent/research
  db:           spiffe://example.org/agent/db
hops:                             # default deny; a hop needs a matching rule
  - from: orchestrator
    to: research
    onBehalfOf: ["*@example.com"]
  - from: research
    to: db
    methods: [GET, POST]
    paths: ["/query", "/schema/*"]
    scopes: ["db:read"]           # checked against the delegation token
requireVia:
  - to: db
    via: [research]
revoked:
  identities: [spiffe://example.org/agent/retired]
  serials: []
`;

const HEAD = `version: "1"\ntrustDomains: [example.org]\n`;
const LINE = /^policy\.yaml:\d+:\d+: [^\s:][^:]*: \S.*$/;

function errorsOf(text: string): readonly string[] {
  const result = loadPolicyText(text, "policy.yaml");
  if (result.ok) throw new Error("expected the policy to be refused");
  return result.errors;
}

function loaded(text: string): Extract<PolicyLoadResult, { ok: true }> {
  const result = loadPolicyText(text, "policy.yaml");
  if (!result.ok) throw new Error(result.errors.join("\n"));
  return result;
}

describe("a valid policy file", () => {
  it("takes a version of 128 printable characters, spaces and non-ASCII included", () => {
    const version = `${"é".repeat(60)} release ${"v".repeat(59)}`;
    expect(version).toHaveLength(128);
    expect(loaded(`version: "${version}"\ntrustDomains: [example.org]\n`).policy.version).toBe(version);
  });

  it("loads the SPEC 3 example, with aliases resolved and no warnings", () => {
    const { policy, warnings } = loaded(SPEC_EXAMPLE);
    expect(warnings).toEqual([]);
    expect(policy).toMatchObject({ version: "2026-11-01.3", maxChainLength: 6, requireOnBehalfOf: true });
    expect([...policy.trustDomains]).toEqual(["example.org"]);
    expect(policy.hops).toHaveLength(2);
    expect(policy.hops[1]?.from.matches("spiffe://example.org/agent/research")).toBe(true);
    expect(policy.hops[1]?.methods?.sources).toEqual(["GET", "POST"]);
    expect(policy.hops[1]?.methods?.matches("POST")).toBe(true);
    expect(policy.requireVia[0]?.via).toEqual(["spiffe://example.org/agent/research"]);
    expect([...policy.revokedIdentities]).toEqual(["spiffe://example.org/agent/retired"]);
  });

  it("needs only version and trustDomains", () => {
    expect(loaded(HEAD).policy).toMatchObject({ version: "1", hops: [], requireVia: [], maxChainLength: 6, requireOnBehalfOf: true });
  });

  it("gives the same text the same revision and a changed text a new one, even under the same version", () => {
    expect(loaded(HEAD).policy.revision).toBe(loaded(HEAD).policy.revision);
    expect(loaded(`${HEAD}maxChainLength: 3\n`).policy.revision).not.toBe(loaded(HEAD).policy.revision);
  });

  it("accepts SPIFFE ID globs and '*' in rules", () => {
    const { policy } = loaded(`${HEAD}hops:\n  - from: "spiffe://example.org/team/*"\n    to: "*"\n`);
    expect(policy.hops[0]?.from.matches("spiffe://example.org/team/a")).toBe(true);
  });

  it("accepts a token section with a loopback http:// JWKS and a duration skew", () => {
    const { policy } = loaded(`${HEAD}tokens:\n  issuer: https://sts.example.org\n  jwks: http://127.0.0.1:8080/jwks.json\n  required: true\n  singleUse: true\n  clockSkew: 2m\n`);
    expect(policy.tokens).toEqual({ issuer: "https://sts.example.org", jwks: "http://127.0.0.1:8080/jwks.json", required: true, singleUse: true, clockSkewSeconds: 120 });
  });
});

// Found in review: with `%YAML 1.1` first, `requireOnBehalfOf: no` was false and `maxChainLength: 010` was 8;
// an unknown tag was dropped and its value read as a plain string.
describe("YAML is read as 1.2, and nothing the parser would let pass quietly passes", () => {
  it("refuses a %YAML 1.1 directive, and accepts 1.2 written out", () => {
    expect(errorsOf(`%YAML 1.1\n---\n${HEAD}maxChainLength: 010\nrequireOnBehalfOf: no\n`)).toEqual([expect.stringMatching(/^policy\.yaml:1:1: \(yaml\): a %YAML 1\.1 directive/)]);
    expect(loaded(`%YAML 1.2\n---\n${HEAD}maxChainLength: 5\n`).policy.maxChainLength).toBe(5);
  });

  it.each([
    ["a local tag", `${HEAD}agents:\n  a: !foo spiffe://example.org/agent/a\n`],
    ["a tag of another language", `${HEAD}agents:\n  a: !!js/function "spiffe://example.org/agent/a"\n`],
  ])("refuses %s, naming its line", (_what, text) => {
    expect(errorsOf(text)).toEqual([expect.stringMatching(/^policy\.yaml:4:\d+: \(yaml\): /)]);
  });
});

describe("the file's bytes, before any parsing", () => {
  const bytes = (text: string) => new TextEncoder().encode(text);

  it("are the policy's text when UTF-8 and at most MAX_POLICY_FILE_BYTES", () => {
    expect(policyTextOf(bytes(`${HEAD}# é\n`), "policy.yaml")).toEqual({ ok: true, text: `${HEAD}# é\n` });
    expect(policyTextOf(new Uint8Array(MAX_POLICY_FILE_BYTES).fill(0x23), "policy.yaml").ok).toBe(true);
  });

  // A 5 MB file held the event loop about 5 s at each reload attempt (review finding).
  it("refuse a file over MAX_POLICY_FILE_BYTES unparsed, giving its size", () => {
    expect(policyTextOf(new Uint8Array(MAX_POLICY_FILE_BYTES + 1).fill(0x23), "policy.yaml")).toEqual({
      ok: false,
      errors: [`policy.yaml:1:1: (file): is ${MAX_POLICY_FILE_BYTES + 1} bytes, over the ${MAX_POLICY_FILE_BYTES} a policy file may be`],
    });
  });

  // Read as U+FFFD, a pattern could never match what a caller sends (review finding).
  it("refuse bytes that are not UTF-8", () => {
    expect(policyTextOf(Uint8Array.from([...bytes(HEAD), 0x61, 0xff, 0x0a]), "policy.yaml")).toEqual({ ok: false, errors: ["policy.yaml:1:1: (file): is not valid UTF-8"] });
  });

  it("quote a long bad value in an error up to 128 characters", () => {
    const [error] = errorsOf(`${HEAD}maxChainLength: "${"x".repeat(5000)}"\n`);
    expect(error).toContain("(5000 characters)");
    expect(error!.length).toBeLessThan(400);
  });
});

describe("unknown keys are errors, never ignored", () => {
  it("refuses a misspelt methds: rather than widen the rule, naming the key with its line and column", () => {
    const errors = errorsOf(`${HEAD}hops:\n  - from: spiffe://example.org/a\n    to: spiffe://example.org/b\n    methds: [GET]\n`);
    expect(errors).toEqual([expect.stringMatching(/^policy\.yaml:6:5: hops\[0\]\.methds: unknown key "methds"/)]);
  });

  it.each([
    ["at the top level", `${HEAD}maxChainLenght: 3\n`, /^policy\.yaml:3:1: maxChainLenght: unknown key "maxChainLenght"/],
    ["in requireVia", `${HEAD}requireVia:\n  - to: spiffe://example.org/a\n    via: [spiffe://example.org/b]\n    unless: x\n`, /^policy\.yaml:6:5: requireVia\[0\]\.unless: unknown key "unless"/],
    ["in revoked", `${HEAD}revoked:\n  serial: [ab]\n`, /^policy\.yaml:4:3: revoked\.serial: unknown key "serial"/],
    ["in tokens", `${HEAD}tokens:\n  issuer: x\n  jwks: j.json\n  singleuse: true\n`, /^policy\.yaml:6:3: tokens\.singleuse: unknown key "singleuse"/],
  ])("refuses an unknown key %s", (_where, text, expected) => {
    expect(errorsOf(text)).toEqual([expect.stringMatching(expected)]);
  });
});

describe("every error is listed, one per line, as file:line:column: field: problem", () => {
  const BROKEN = `version: 3
trustDomains: [Example.org]
maxChainLength: 0
requireOnBehalfOf: "yes"
agents:
  research: spiffe://example.org/agent/research/
hops:
  - from: nobody
    methods: ["GE T"]
    paths: ["query", "/a/**/b", "/q?x=1"]
    scopes: ["a b"]
revoked:
  identities: ["spiffe://example.org/*"]
  serials: ["0x1f"]
tokens:
  issuer: x
  jwks: http://example.org/jwks.json
  clockSkew: 10m
`;

  it("reports each problem of a file with many, each on its own line with its position", () => {
    const errors = errorsOf(BROKEN);
    for (const e of errors) expect(e).toMatch(LINE);
    const at = (prefix: string) => errors.filter((e) => e.startsWith(prefix));
    expect(at("policy.yaml:1:10: version: must be a string")).toHaveLength(1);
    expect(at("policy.yaml:2:16: trustDomains[0]: ")).toHaveLength(1);
    expect(at("policy.yaml:3:17: maxChainLength: must be between 1 and 64")).toHaveLength(1);
    expect(at("policy.yaml:4:20: requireOnBehalfOf: must be true or false")).toHaveLength(1);
    expect(at("policy.yaml:6:13: agents.research: ")).toHaveLength(1);
    expect(at("policy.yaml:8:5: hops[0].to: is required")).toHaveLength(1);
    expect(at("policy.yaml:8:11: hops[0].from: ")).toHaveLength(1);
    expect(at("policy.yaml:9:15: hops[0].methods[0]: ")).toHaveLength(1);
    expect(at("policy.yaml:10:13: hops[0].paths[0]: ")).toHaveLength(1);
    expect(at("policy.yaml:10:22: hops[0].paths[1]: ")).toHaveLength(1);
    expect(at("policy.yaml:10:33: hops[0].paths[2]: ")).toHaveLength(1);
    expect(at("policy.yaml:11:14: hops[0].scopes[0]: ")).toHaveLength(1);
    expect(at("policy.yaml:13:16: revoked.identities[0]: must name one identity, not a glob")).toHaveLength(1);
    expect(at("policy.yaml:14:13: revoked.serials[0]: ")).toHaveLength(1);
    expect(at("policy.yaml:17:9: tokens.jwks: ")).toHaveLength(1);
    expect(at("policy.yaml:18:14: tokens.clockSkew: ")).toHaveLength(1);
    // All entries of trustDomains were refused, so it is also reported empty.
    expect(at("policy.yaml:2:15: trustDomains: must name at least one trust domain")).toHaveLength(1);
    expect(errors).toHaveLength(17);
  });

  it("names the file as given", () => {
    const result = loadPolicyText("version: 1\n", "/etc/hopwarden/policy.yaml");
    expect(result.ok).toBe(false);
    if (!result.ok) for (const e of result.errors) expect(e.startsWith("/etc/hopwarden/policy.yaml:")).toBe(true);
  });

  it.each([
    ["an empty file", "", /^policy\.yaml:1:1: \(file\): is empty/],
    ["a list instead of a map", "- a\n", /^policy\.yaml:1:1: \(file\): must be a map/],
    ["a key that is not a string", `${HEAD}1: x\n`, /^policy\.yaml:3:1: \(file\): has a key that is not a string/],
    ["a YAML syntax error", `${HEAD}hops: [\n`, /^policy\.yaml:\d+:\d+: \(yaml\): /],
    ["a duplicate key", `${HEAD}version: "2"\n`, /^policy\.yaml:3:1: \(yaml\): Map keys must be unique/],
    ["a missing version", "trustDomains: [example.org]\n", /^policy\.yaml:1:1: version: is required/],
    ["a missing trustDomains", 'version: "1"\n', /^policy\.yaml:1:1: trustDomains: is required/],
    ["a version ending in a line break (a | block scalar)", "version: |\n  v1\ntrustDomains: [example.org]\n", /^policy\.yaml:1:10: version: must be printable text, not "v1\\n", which holds a control character/],
    ["a version holding a control character", 'version: "v1\\u0007"\ntrustDomains: [example.org]\n', /^policy\.yaml:1:10: version: must be printable text, not "v1\\u0007"/],
    ["a version of 129 characters", `version: "${"v".repeat(129)}"\ntrustDomains: [example.org]\n`, /^policy\.yaml:1:10: version: is 129 characters; at most 128, since every decision records it$/],
    ["an empty trustDomains", 'version: "1"\ntrustDomains: []\n', /^policy\.yaml:2:15: trustDomains: must name at least one/],
    ["an alias that does not start with a letter", `${HEAD}agents:\n  _x: spiffe://example.org/x\n`, /^policy\.yaml:4:3: agents\._x: alias/],
    ["a glob in requireVia.via", `${HEAD}requireVia:\n  - to: "*"\n    via: ["spiffe://example.org/*"]\n`, /^policy\.yaml:5:11: requireVia\[0\]\.via\[0\]: must name one agent/],
    ["a requireVia without via", `${HEAD}requireVia:\n  - to: "*"\n`, /^policy\.yaml:4:5: requireVia\[0\]\.via: is required/],
    ["a tokens section without jwks", `${HEAD}tokens:\n  issuer: x\n`, /^policy\.yaml:4:3: tokens\.jwks: is required/],
    ["a YAML alias where a list belongs", `${HEAD}onBehalfOf: &people ["*@example.com"]\nhops:\n  - from: "*"\n    to: "*"\n    onBehalfOf: *people\n`, /^policy\.yaml:7:17: hops\[0\]\.onBehalfOf: must be a list, not a YAML alias \(\*people\), which policy files do not resolve: write the value out$/],
    ["a YAML alias where a string belongs", `${HEAD}agents:\n  a: &a spiffe://example.org/a\n  b: *a\n`, /^policy\.yaml:5:6: agents\.b: must be a string, not a YAML alias \(\*a\), which policy files do not resolve: write the value out$/],
  ])("reports %s", (_what, text, expected) => {
    const errors = errorsOf(text);
    expect(errors).toEqual(expect.arrayContaining([expect.stringMatching(expected)]));
    for (const e of errors) expect(e).toMatch(/^policy\.yaml:\d+:\d+: \S+: \S/);
  });
});

describe("matching stays exact: the loader normalizes nothing", () => {
  it("keeps methods as written, warning about lower case, so 'get' never matches GET", () => {
    const { policy, warnings } = loaded(`${HEAD}hops:\n  - from: "spiffe://example.org/*"\n    to: "spiffe://example.org/*"\n    methods: [get]\n`);
    expect(policy.hops[0]?.methods?.sources).toEqual(["get"]);
    expect(policy.hops[0]?.methods?.matches("GET")).toBe(false);
    expect(warnings).toEqual([expect.stringMatching(/^policy\.yaml:6:15: hops\[0\]\.methods\[0\]: "get" is not upper case/)]);
  });

  it("warns that a lone '*' matches no agent, since '*' never crosses '/'", () => {
    const { policy, warnings } = loaded(`${HEAD}hops:\n  - from: "*"\n    to: "spiffe://example.org/agent/db"\n`);
    expect(policy.hops[0]?.from.matches("spiffe://example.org/agent/research")).toBe(false);
    expect(warnings).toEqual([expect.stringMatching(/^policy\.yaml:4:11: hops\[0\]\.from: a lone "\*" matches no agent/)]);
  });

  it("refuses an agent ID that is not canonical rather than normalizing it", () => {
    expect(errorsOf(`${HEAD}agents:\n  research: spiffe://Example.org/agent/research\n`)).toEqual([expect.stringMatching(/^policy\.yaml:4:13: agents\.research: /)]);
  });

  it("refuses a rule naming an alias that is not defined", () => {
    expect(errorsOf(`${HEAD}hops:\n  - from: research\n    to: "*"\n`)).toEqual([expect.stringMatching(/hops\[0\]\.from: "research" is neither an alias/)]);
  });

  it("refuses a trust domain with a scheme or upper case", () => {
    const errors = errorsOf('version: "1"\ntrustDomains: ["spiffe://example.org", Example.org]\n');
    expect(errors.filter((e) => e.includes("is not a trust domain name"))).toHaveLength(2);
  });
});

describe("revoked serials are hex, compared as numbers", () => {
  it("accepts serials in any case, with ':' separators and leading zeros, as one number each", () => {
    const { policy } = loaded(`${HEAD}revoked:\n  serials: ["0A:1B", "00a1b", "FF", "ff:00"]\n`);
    expect([...policy.revokedSerials]).toEqual(["a1b", "ff", "ff00"]);
  });

  it.each(['"0x1f"', '"g1"', '""', '":"', "31"])("refuses the serial %s", (serial) => {
    expect(errorsOf(`${HEAD}revoked:\n  serials: [${serial}]\n`)).toEqual([expect.stringMatching(/^policy\.yaml:4:13: revoked\.serials\[0\]: /)]);
  });
});

describe("warnings do not refuse the file", () => {
  it("warns about agents outside trustDomains, duplicate rules and empty lists", () => {
    const { warnings } = loaded(`${HEAD}agents:
  a: spiffe://other.org/a
  b: spiffe://example.org/b
hops:
  - {from: b, to: b}
  - {from: b, to: b}
  - {from: b, to: b, paths: []}
`);
    expect(warnings).toEqual([
      expect.stringMatching(/^policy\.yaml:4:6: agents\.a: .*trust domain "other\.org"/),
      expect.stringMatching(/^policy\.yaml:8:5: hops\[1\]: repeats hops\[0\]/),
      expect.stringMatching(/^policy\.yaml:9:29: hops\[2\]\.paths: is an empty list/),
    ]);
  });
});

// SPEC 8: `mcp:` on hop rules, `requireCertificate` (top level and per hop)
// and `txnTokens:` are validated like the rest of the file.
const AGENTS = `${HEAD}agents:\n  research: spiffe://example.org/agent/research\n  db: spiffe://example.org/agent/db\n`;

function documentOf(text: string) {
  const result = readPolicyDocument(text, "policy.yaml");
  if (!result.ok) throw new Error(result.errors.join("\n"));
  return result;
}

function documentErrorsOf(text: string): readonly string[] {
  const result = readPolicyDocument(text, "policy.yaml");
  if (result.ok) throw new Error("expected the policy to be refused");
  return result.errors;
}

describe("mcp: on a hop rule", () => {
  const rule = (mcp: string) => `${AGENTS}hops:\n  - from: research\n    to: db\n    mcp:\n${mcp}`;

  it("keeps methods, tools and resources as written", () => {
    const { document, warnings } = documentOf(rule(`      methods: ["tools/call", "resources/read"]\n      tools: ["search_*"]\n      resources: ["file:///docs/*"]\n`));
    expect(document.hops?.[0]?.mcp).toEqual({ methods: ["tools/call", "resources/read"], tools: ["search_*"], resources: ["file:///docs/*"] });
    expect(warnings).toEqual([]);
  });

  it("refuses an unknown key inside mcp:, naming it with its line and column", () => {
    expect(documentErrorsOf(rule(`      methods: ["tools/call"]\n      tool: ["search_*"]\n`))).toEqual([
      expect.stringMatching(/^policy\.yaml:11:7: hops\[0\]\.mcp\.tool: unknown key "tool" \(known keys: methods, tools, resources\)$/),
    ]);
  });

  it("requires methods, so that a rule naming only tools cannot admit every other method", () => {
    expect(documentErrorsOf(rule(`      tools: ["search_*"]\n`))).toEqual([expect.stringMatching(/^policy\.yaml:10:7: hops\[0\]\.mcp\.methods: is required/)]);
    expect(documentErrorsOf(`${AGENTS}hops:\n  - from: research\n    to: db\n    mcp: {}\n`)).toEqual([expect.stringMatching(/^policy\.yaml:9:10: hops\[0\]\.mcp\.methods: is required/)]);
  });

  it.each([
    ["mcp is not a map", `${AGENTS}hops:\n  - from: research\n    to: db\n    mcp: [tools/call]\n`, /^policy\.yaml:9:10: hops\[0\]\.mcp: must be a map, not a list/],
    ["methods is not a list", rule(`      methods: tools/call\n`), /^policy\.yaml:10:16: hops\[0\]\.mcp\.methods: must be a list/],
    ["a method with a space", rule(`      methods: ["tools/ call"]\n`), /^policy\.yaml:10:17: hops\[0\]\.mcp\.methods\[0\]: "tools\/ call" holds whitespace/],
    ["a tool with a zero-width space", rule(`      methods: ["tools/call"]\n      tools: ["search\u200b_docs"]\n`), /^policy\.yaml:11:15: hops\[0\]\.mcp\.tools\[0\]: .* invisible character/],
    ["a resource with **", rule(`      methods: ["resources/read"]\n      resources: ["file:///docs/**"]\n`), /^policy\.yaml:11:19: hops\[0\]\.mcp\.resources\[0\]: .*uses "\*\*"/],
    ["an empty tool name", rule(`      methods: ["tools/call"]\n      tools: [""]\n`), /^policy\.yaml:11:15: hops\[0\]\.mcp\.tools\[0\]: must not be empty/],
    ["a number as a tool name", rule(`      methods: ["tools/call"]\n      tools: [42]\n`), /^policy\.yaml:11:15: hops\[0\]\.mcp\.tools\[0\]: must be a string, not the number 42 \(quote it\)/],
  ])("refuses %s", (_what, text, expected) => {
    expect(documentErrorsOf(text)).toEqual([expect.stringMatching(expected)]);
  });

  it("warns about lists that cannot act: tools without tools/call, tools/call without tools, a lone '*'", () => {
    const { warnings } = documentOf(rule(`      methods: ["*", "tools/*"]\n      resources: ["file:///a"]\n`));
    expect(warnings).toEqual([
      expect.stringMatching(/^policy\.yaml:10:16: hops\[0\]\.mcp\.methods\[0\]: a lone "\*" matches only methods without "\/"/),
      expect.stringMatching(/^policy\.yaml:10:7: hops\[0\]\.mcp\.methods: admits tools\/call without hops\[0\]\.mcp\.tools, so every tool is admitted/),
      expect.stringMatching(/^policy\.yaml:11:7: hops\[0\]\.mcp\.resources: applies only to resources\/read, which hops\[0\]\.mcp\.methods does not admit/),
    ]);
  });

  it("counts mcp: in the duplicate-rule check", () => {
    const a = `  - from: research\n    to: db\n    mcp: {methods: ["tools/list"]}\n`;
    const b = `  - from: research\n    to: db\n    mcp: {methods: ["tools/call"], tools: [x]}\n`;
    expect(documentOf(`${AGENTS}hops:\n${a}${b}`).warnings).toEqual([]);
    expect(documentOf(`${AGENTS}hops:\n${a}${a}`).warnings).toEqual([expect.stringMatching(/hops\[1\]: repeats hops\[0\]/)]);
  });
});

describe("requireCertificate, at the top level and on a hop rule", () => {
  it("reads both as booleans", () => {
    const { document } = documentOf(`${AGENTS}requireCertificate: true\nhops:\n  - from: research\n    to: db\n    requireCertificate: false\n`);
    expect(document.requireCertificate).toBe(true);
    expect(document.hops?.[0]?.requireCertificate).toBe(false);
  });

  it("refuses anything but true or false, naming the field", () => {
    expect(documentErrorsOf(`${AGENTS}requireCertificate: "yes"\nhops:\n  - from: research\n    to: db\n    requireCertificate: 1\n`)).toEqual([
      expect.stringMatching(/^policy\.yaml:10:25: hops\[0\]\.requireCertificate: must be true or false, not the number 1$/),
      expect.stringMatching(/^policy\.yaml:6:21: requireCertificate: must be true or false, not the string "yes"$/),
    ]);
  });
});

describe("txnTokens", () => {
  it("reads issuer, jwks, required and clockSkew", () => {
    const { document } = documentOf(`${HEAD}txnTokens:\n  issuer: https://tts.example.org\n  jwks: tts-jwks.json\n  required: true\n  clockSkew: 10s\n`);
    expect(document.txnTokens).toEqual({ issuer: "https://tts.example.org", jwks: "tts-jwks.json", required: true, clockSkew: 10 });
  });

  it.each([
    ["singleUse (Txn-Tokens travel the whole chain)", `${HEAD}txnTokens:\n  issuer: x\n  jwks: j.json\n  singleUse: true\n`, /^policy\.yaml:6:3: txnTokens\.singleUse: unknown key "singleUse" \(known keys: issuer, jwks, required, clockSkew\)$/],
    ["a missing jwks", `${HEAD}txnTokens:\n  issuer: x\n`, /^policy\.yaml:4:3: txnTokens\.jwks: is required$/],
    ["a plain http:// JWKS off loopback", `${HEAD}txnTokens:\n  issuer: x\n  jwks: http://tts.example.org/jwks\n`, /^policy\.yaml:5:9: txnTokens\.jwks: /],
    ["a skew over 5m", `${HEAD}txnTokens:\n  issuer: x\n  jwks: j.json\n  clockSkew: 6m\n`, /^policy\.yaml:6:14: txnTokens\.clockSkew: /],
    ["a required that is not a boolean", `${HEAD}txnTokens:\n  issuer: x\n  jwks: j.json\n  required: "no"\n`, /^policy\.yaml:6:13: txnTokens\.required: must be true or false/],
  ])("refuses %s", (_what, text, expected) => {
    expect(documentErrorsOf(text)).toEqual([expect.stringMatching(expected)]);
  });
});

describe("SPEC 8's keys reach the compiled policy that Check walks", () => {
  const load = (text: string) => {
    const result = loadPolicyText(text, "policy.yaml");
    if (!result.ok) throw new Error(result.errors.join("\n"));
    return result.policy;
  };

  it("compiles mcp: into the rule, with globs, and notes that the policy has MCP rules", () => {
    const policy = load(`${AGENTS}hops:\n  - from: research\n    to: db\n    mcp: {methods: ["tools/call"], tools: ["search_*"], resources: ["file:///docs/*"]}\n  - from: db\n    to: research\n`);
    expect(policy.hasMcpRules).toBe(true);
    const mcp = policy.hops[0]!.mcp!;
    expect(mcp.methods.map((m) => m.source)).toEqual(["tools/call"]);
    expect(mcp.tools!.some((m) => m.matches("search_docs"))).toBe(true);
    expect(mcp.tools!.some((m) => m.matches("delete_index"))).toBe(false);
    expect(mcp.resources!.map((m) => m.source)).toEqual(["file:///docs/*"]);
    expect(policy.hops[1]!.mcp).toBeUndefined();
  });

  it("has no MCP rules, and requires no certificate or Txn-Token, when the file says nothing of them", () => {
    const policy = load(`${AGENTS}hops:\n  - from: research\n    to: db\n`);
    expect(policy).toMatchObject({ hasMcpRules: false, requireCertificate: false, txnTokens: undefined });
    expect(policy.hops[0]).toMatchObject({ mcp: undefined, requireCertificate: false });
  });

  it("carries requireCertificate at the top level and per hop rule", () => {
    expect(load(`${HEAD}requireCertificate: true\n`).requireCertificate).toBe(true);
    expect(load(`${AGENTS}hops:\n  - from: research\n    to: db\n    requireCertificate: true\n`).hops[0]!.requireCertificate).toBe(true);
  });

  it("carries txnTokens, with the default clock skew", () => {
    expect(load(`${HEAD}txnTokens:\n  issuer: https://sts.example.org\n  jwks: j.json\n`).txnTokens).toEqual({ issuer: "https://sts.example.org", jwks: "j.json", required: false, clockSkewSeconds: 30 });
    expect(load(`${HEAD}txnTokens:\n  issuer: x\n  jwks: j.json\n  required: true\n  clockSkew: 10s\n`).txnTokens).toEqual({ issuer: "x", jwks: "j.json", required: true, clockSkewSeconds: 10 });
  });
});
