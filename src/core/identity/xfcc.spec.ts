// x-forwarded-client-cert (SPEC 1): read only when the config trusts it; the
// LAST element is the immediate hop; quoted values may hold , ; = and the
// escapes \" and \\. A header that cannot be read never becomes an identity.

import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { parseXfccLastElement, type XfccElement } from "./xfcc.js";

const RESEARCH = "spiffe://example.org/agent/research";
const GATEWAY = "spiffe://example.org/agent/gateway";

function lastOf(header: string): XfccElement {
  const parsed = parseXfccLastElement(header);
  if (!parsed.ok) throw new Error(`expected ${JSON.stringify(header)} to parse: ${parsed.problem}`);
  return parsed.last;
}

describe("the last element is the immediate hop", () => {
  it("reads By, Hash, Subject, URI and Cert of a single element", () => {
    expect(lastOf(`By=${GATEWAY};Hash=ab12;Cert="-----BEGIN%20CERTIFICATE-----";Subject="CN=research,O=Example";URI=${RESEARCH}`)).toEqual({
      by: GATEWAY,
      hash: "ab12",
      cert: "-----BEGIN%20CERTIFICATE-----",
      subject: "CN=research,O=Example",
      uris: [RESEARCH],
    });
  });

  it("returns only the last of several elements", () => {
    expect(lastOf(`By=a;URI=spiffe://example.org/agent/first,By=b;URI=${RESEARCH}`).uris).toEqual([RESEARCH]);
  });

  it("matches keys case-insensitively, as Envoy writes them", () => {
    expect(lastOf(`uri=${RESEARCH};HASH=ff`)).toEqual({ uris: [RESEARCH], hash: "ff" });
  });

  it("collects a repeated URI key, so that two URI SANs can be refused", () => {
    expect(lastOf(`URI=${RESEARCH};URI=${GATEWAY}`).uris).toEqual([RESEARCH, GATEWAY]);
  });

  it("ignores keys it does not decide on (DNS, Chain, future keys)", () => {
    expect(lastOf(`DNS=research.example.org;Chain="x";Future=1;URI=${RESEARCH}`)).toEqual({ uris: [RESEARCH] });
  });
});

describe("quoted values", () => {
  it("keep , ; and = literally inside quotes", () => {
    expect(lastOf(`Subject="CN=a,OU=b;c";URI=${RESEARCH}`).subject).toBe("CN=a,OU=b;c");
  });

  it('unescape \\" and \\\\', () => {
    expect(lastOf(String.raw`Subject="say \"hi\" \\ bye"`).subject).toBe(String.raw`say "hi" \ bye`);
  });

  it("hide a comma that would otherwise start a new element", () => {
    expect(lastOf(`URI="${GATEWAY},URI=${RESEARCH}"`).uris).toEqual([`${GATEWAY},URI=${RESEARCH}`]);
  });
});

describe("a header that does not fit the grammar is malformed", () => {
  it.each([
    ["", "an empty header"],
    ["   ", "a blank header"],
    [RESEARCH, "a bare value without a key"],
    [`URI=${RESEARCH},`, "a trailing comma"],
    [`URI=${RESEARCH};`, "a trailing semicolon"],
    [`URI=${RESEARCH},,URI=${GATEWAY}`, "an empty element"],
    [`=${RESEARCH}`, "an empty key"],
    [`URI="${RESEARCH}`, "an unterminated quote"],
    [`URI="${RESEARCH}"x`, "text after a closing quote"],
    [`URI=${RESEARCH}"`, "an unquoted double quote"],
    [`URI=a=b`, "an unquoted equals sign"],
    [String.raw`Subject="\n"`, "an unknown escape"],
    [`Cert="a";Cert="b"`, "two certificates in one element"],
  ])("refuses %j (%s)", (header) => {
    expect(parseXfccLastElement(header).ok).toBe(false);
  });
});

describe("parsing untrusted input (property)", () => {
  it("never throws on arbitrary strings", () => {
    fc.assert(
      fc.property(fc.oneof(fc.string(), fc.string({ unit: fc.constantFrom("U", "R", "I", "=", ";", ",", '"', "\\", " ", "x") })), (header) => {
        const parsed = parseXfccLastElement(header);
        return parsed.ok ? Array.isArray(parsed.last.uris) : parsed.problem.length > 0;
      }),
      { numRuns: 1000 },
    );
  });

  // A model of the grammar: render elements of key/value pairs the way Envoy
  // does (quoting values that need it) and expect the last one back.
  const key = fc.constantFrom("By", "Hash", "URI", "uri", "Subject", "DNS", "Cert");
  const value = fc.oneof(fc.constantFrom(RESEARCH, GATEWAY, "", "CN=a,O=b", 'say "x"', "a\\b;c"), fc.string({ maxLength: 12 }));
  const pair = fc.record({ key, value, forceQuotes: fc.boolean() });
  const element = fc.array(pair, { minLength: 1, maxLength: 4 });

  function render(v: string, forceQuotes: boolean): string {
    const needsQuotes = /[,;="]/.test(v) || (v.includes("\\") && forceQuotes);
    if (!needsQuotes && !forceQuotes) return v;
    return `"${v.replace(/[\\"]/g, "\\$&")}"`;
  }

  it("reads back the last element of any header rendered by the grammar", () => {
    fc.assert(
      fc.property(fc.array(element, { minLength: 1, maxLength: 3 }), (elements) => {
        const header = elements.map((pairs) => pairs.map((p) => `${p.key}=${render(p.value, p.forceQuotes)}`).join(";")).join(",");
        fc.pre(header.trim().length > 0);
        const last = elements[elements.length - 1]!;
        const parsed = parseXfccLastElement(header);
        const certs = last.filter((p) => p.key === "Cert");
        if (certs.length > 1) return !parsed.ok;
        if (!parsed.ok) return false;
        const lastValue = (k: string) => last.filter((p) => p.key === k).at(-1)?.value;
        return (
          JSON.stringify(parsed.last.uris) === JSON.stringify(last.filter((p) => p.key.toLowerCase() === "uri").map((p) => p.value)) &&
          parsed.last.cert === certs[0]?.value &&
          parsed.last.hash === lastValue("Hash") &&
          parsed.last.by === lastValue("By") &&
          parsed.last.subject === lastValue("Subject")
        );
      }),
      { numRuns: 600 },
    );
  });
});
