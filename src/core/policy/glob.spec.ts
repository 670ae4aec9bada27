// Matching in rules (SPEC 3): `*` matches any run of characters except "/",
// possibly none; everything else is exact and case-sensitive, nothing trimmed
// or normalized. Path rules: `*` within one segment, a trailing `/**` deeper.

import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { anyMatches, compileGlob, compilePathGlob } from "./glob.js";

describe("identity, alias and on-behalf-of patterns", () => {
  it("match exactly a pattern without '*'", () => {
    const m = compileGlob("spiffe://example.org/agent/research");
    expect(m.matches("spiffe://example.org/agent/research")).toBe(true);
    expect(m.matches("spiffe://example.org/agent/research2")).toBe(false);
    expect(m.matches("spiffe://example.org/agent/researc")).toBe(false);
  });

  it("are case-sensitive", () => {
    expect(compileGlob("alice@example.com").matches("Alice@example.com")).toBe(false);
    expect(compileGlob("*@example.com").matches("alice@Example.com")).toBe(false);
    expect(compileGlob("spiffe://example.org/agent/*").matches("spiffe://example.org/Agent/x")).toBe(false);
  });

  it("trim nothing", () => {
    expect(compileGlob("alice@example.com").matches(" alice@example.com")).toBe(false);
    expect(compileGlob("alice@example.com").matches("alice@example.com\t")).toBe(false);
    expect(compileGlob("*@example.com").matches("alice@example.com ")).toBe(false);
    expect(compileGlob("*@example.com").matches("alice@example.com\n")).toBe(false);
  });

  it("let '*' match any run of characters, possibly none", () => {
    const m = compileGlob("*@example.com");
    expect(m.matches("alice@example.com")).toBe(true);
    expect(m.matches("@example.com")).toBe(true);
    expect(m.matches("a.b+c@x@example.com")).toBe(true);
    expect(m.matches("alice\n@example.com")).toBe(true);
  });

  it("never let '*' match a '/'", () => {
    const m = compileGlob("spiffe://example.org/agent/*");
    expect(m.matches("spiffe://example.org/agent/research")).toBe(true);
    expect(m.matches("spiffe://example.org/agent/")).toBe(true);
    expect(m.matches("spiffe://example.org/agent/team/research")).toBe(false);
    expect(compileGlob("*@example.com").matches("a/b@example.com")).toBe(false);
  });

  it("treat regular-expression characters literally", () => {
    const m = compileGlob("a.b+c?(d)[e]{1}|^$\\-*");
    expect(m.matches("a.b+c?(d)[e]{1}|^$\\-xyz")).toBe(true);
    expect(m.matches("aXb+c?(d)[e]{1}|^$\\-")).toBe(false);
    expect(compileGlob("a.b").matches("axb")).toBe(false);
  });

  it("keep the pattern as written for audit", () => {
    expect(compileGlob("*@example.com").source).toBe("*@example.com");
  });

  it("admit a value when any of several patterns does", () => {
    const ms = ["alice@example.com", "*@example.net"].map(compileGlob);
    expect(anyMatches(ms, "bob@example.net")).toBe(true);
    expect(anyMatches(ms, "bob@example.com")).toBe(false);
    expect(anyMatches([], "anyone")).toBe(false);
  });

  it("agree with a reference matcher on arbitrary patterns and values (property)", () => {
    // Reference: split on '*', then greedy-free recursive matching of the parts.
    function reference(pattern: string, value: string): boolean {
      const parts = pattern.split("*");
      const walk = (p: number, at: number): boolean => {
        const part = parts[p]!;
        if (!value.startsWith(part, at)) return false;
        const after = at + part.length;
        if (p === parts.length - 1) return after === value.length;
        for (let end = after; end <= value.length; end++) {
          if (walk(p + 1, end)) return true;
          if (value[end] === "/") break;
        }
        return false;
      };
      return walk(0, 0);
    }
    const alphabet = fc.constantFrom("a", "b", "/", "*", ".", "@", "\\", "(");
    fc.assert(
      fc.property(fc.string({ unit: alphabet, maxLength: 8 }), fc.string({ unit: fc.constantFrom("a", "b", "/", ".", "@", "\\", "(", "*"), maxLength: 10 }), (pattern, value) => {
        return compileGlob(pattern).matches(value) === reference(pattern, value);
      }),
      { numRuns: 1000 },
    );
  });
});

describe("path patterns", () => {
  it("match an exact path exactly and case-sensitively", () => {
    const m = compilePathGlob("/query");
    expect(m.matches("/query")).toBe(true);
    expect(m.matches("/Query")).toBe(false);
    expect(m.matches("/query/")).toBe(false);
    expect(m.matches("/query/x")).toBe(false);
  });

  it("let '*' match within one segment only", () => {
    const m = compilePathGlob("/schema/*");
    expect(m.matches("/schema/users")).toBe(true);
    expect(m.matches("/schema/")).toBe(true);
    expect(m.matches("/schema/users/columns")).toBe(false);
    expect(m.matches("/schema")).toBe(false);
    expect(compilePathGlob("/v*/items").matches("/v2/items")).toBe(true);
    expect(compilePathGlob("/v*/items").matches("/v2/x/items")).toBe(false);
  });

  it("let a trailing '/**' match any deeper path, but not the prefix alone", () => {
    const m = compilePathGlob("/files/**");
    expect(m.matches("/files/a")).toBe(true);
    expect(m.matches("/files/a/b/c")).toBe(true);
    expect(m.matches("/files/")).toBe(true);
    expect(m.matches("/files")).toBe(false);
    expect(m.matches("/filesystem/a")).toBe(false);
  });

  it("combine '*' in a segment with a trailing '/**'", () => {
    const m = compilePathGlob("/tenants/*/docs/**");
    expect(m.matches("/tenants/acme/docs/a/b")).toBe(true);
    expect(m.matches("/tenants/acme/x/docs/a")).toBe(false);
  });

  it("let '/**' alone match every absolute path", () => {
    const m = compilePathGlob("/**");
    expect(m.matches("/")).toBe(true);
    expect(m.matches("/a/b")).toBe(true);
    expect(m.matches("a/b")).toBe(false);
  });
});
