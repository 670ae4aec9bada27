// SPIFFE IDs (SPEC 1, SPEC 2 check 5): the SPIFFE ID specification's rules,
// nothing normalized, so no two spellings can name one agent.

import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { isSpiffeId, parseSpiffeId } from "./spiffe-id.js";

const TRUST_DOMAIN_CHARS = "abcdefghijklmnopqrstuvwxyz0123456789.-_".split("");
const PATH_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_".split("");

const trustDomain = fc.string({ unit: fc.constantFrom(...TRUST_DOMAIN_CHARS), minLength: 1, maxLength: 20 });
const segment = fc
  .string({ unit: fc.constantFrom(...PATH_CHARS), minLength: 1, maxLength: 12 })
  .filter((s) => s !== "." && s !== "..");
const validId = fc
  .tuple(trustDomain, fc.array(segment, { maxLength: 5 }))
  .map(([td, segs]) => `spiffe://${td}${segs.map((s) => `/${s}`).join("")}`);

describe("a valid SPIFFE ID", () => {
  it("splits into trust domain and path, keeping the ID exactly as given", () => {
    expect(parseSpiffeId("spiffe://example.org/agent/research")).toEqual({
      ok: true,
      value: { id: "spiffe://example.org/agent/research", trustDomain: "example.org", path: "/agent/research" },
    });
  });

  it("accepts a trust-domain-only ID with an empty path", () => {
    expect(parseSpiffeId("spiffe://example.org")).toEqual({ ok: true, value: { id: "spiffe://example.org", trustDomain: "example.org", path: "" } });
  });

  it("accepts upper case, digits, '.', '-' and '_' in path segments", () => {
    expect(isSpiffeId("spiffe://ex-ample_1.org/Agent/R-2_x.y")).toBe(true);
    expect(isSpiffeId("spiffe://example.org/.../a..b")).toBe(true);
  });

  it("accepts every ID built from the specification's alphabet", () => {
    fc.assert(
      fc.property(validId, (id) => {
        const parsed = parseSpiffeId(id);
        expect(parsed.ok).toBe(true);
        if (parsed.ok) expect(`spiffe://${parsed.value.trustDomain}${parsed.value.path}`).toBe(id);
      }),
      { numRuns: 500 },
    );
  });
});

describe("an ID that is not in canonical form is refused, never normalized", () => {
  it.each([
    ["", "is empty"],
    ["SPIFFE://example.org/a", "scheme in upper case"],
    ["spiffe:/example.org/a", "one slash after the scheme"],
    ["https://example.org/a", "another scheme"],
    ["spiffe:///a", "an empty trust domain"],
    ["spiffe://Example.org/a", "an upper-case trust domain"],
    ["spiffe://example.org:8443/a", "a port"],
    ["spiffe://user@example.org/a", "userinfo"],
    ["spiffe://example.org/", "a trailing slash on the trust domain"],
    ["spiffe://example.org/agent/", "a trailing slash"],
    ["spiffe://example.org//agent", "an empty path segment"],
    ["spiffe://example.org/agent/./x", "a '.' segment"],
    ["spiffe://example.org/agent/../x", "a '..' segment"],
    ["spiffe://example.org/agent/%41", "percent-encoding"],
    ["spiffe://example.org/agent?x=1", "a query"],
    ["spiffe://example.org/agent#x", "a fragment"],
    ["spiffe://example.org/agent x", "a space"],
    [" spiffe://example.org/agent", "leading whitespace"],
    ["spiffe://example.org/agent ", "trailing whitespace"],
    ["spiffe://example.org/agent\n", "a trailing newline"],
    ["spiffe://exämple.org/agent", "a non-ASCII trust domain"],
    ["spiffe://example.org/agënt", "a non-ASCII path"],
    [`spiffe://${"a".repeat(256)}/x`, "a trust domain over 255 characters"],
    [`spiffe://example.org/${"a".repeat(2048)}`, "an ID over 2048 characters"],
  ])("refuses %j (%s)", (input) => {
    const parsed = parseSpiffeId(input);
    expect(parsed.ok).toBe(false);
    if (!parsed.ok) expect(parsed.problem.length).toBeGreaterThan(0);
  });

  it("accepts a trust domain of exactly 255 characters", () => {
    expect(isSpiffeId(`spiffe://${"a".repeat(255)}/x`)).toBe(true);
  });
});

describe("parsing untrusted input (property)", () => {
  it("never throws, and whatever it accepts is in the specification's alphabet", () => {
    const canonical = /^spiffe:\/\/[a-z0-9._-]+(\/[a-zA-Z0-9._-]+)*$/;
    fc.assert(
      fc.property(fc.oneof(fc.string(), fc.string({ unit: "binary" }), validId.map((id) => id + "/"), validId.chain((id) => fc.string().map((s) => id + s))), (input) => {
        const parsed = parseSpiffeId(input);
        if (!parsed.ok) return true;
        const segments = input.split("/").slice(3);
        return canonical.test(input) && !segments.includes(".") && !segments.includes("..");
      }),
      { numRuns: 400 },
    );
  });
});
