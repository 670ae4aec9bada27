// Matching in rules (SPEC 3): `*` matches any run of characters except "/",
// possibly none; everything else is exact and case-sensitive, nothing trimmed
// or normalized. Path rules: `*` within one segment, a trailing `/**` deeper.

import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { anyMatches, compileGlob, compileMatcherList, compilePathGlob } from "./glob.js";

// The obvious matcher, exponential in the worst case, kept only to check the real one against.
function referenceGlob(pattern: string, value: string): boolean {
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

/** A trailing "/**": the base matches some prefix that a "/" follows. */
function referencePathGlob(pattern: string, value: string): boolean {
  if (!pattern.endsWith("/**")) return referenceGlob(pattern, value);
  const base = pattern.slice(0, -3);
  for (let i = 0; i < value.length; i++) {
    if (value[i] === "/" && referenceGlob(base, value.slice(0, i))) return true;
  }
  return false;
}

const PATTERN_CHARS = fc.constantFrom("a", "b", "/", "*", "*", ".", "@", "\\", "(");
const VALUE_CHARS = fc.constantFrom("a", "b", "/", ".", "@", "\\", "(", "*");

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
    fc.assert(
      fc.property(fc.string({ unit: PATTERN_CHARS, maxLength: 10 }), fc.string({ unit: VALUE_CHARS, maxLength: 14 }), (pattern, value) => {
        return compileGlob(pattern).matches(value) === referenceGlob(pattern, value);
      }),
      { numRuns: 5000, seed: 20261129 },
    );
  });

  it("agree with the reference on values built from the pattern (property)", () => {
    // Random values rarely match; these are the pattern with each '*' replaced, so many do.
    const filled = fc.string({ unit: PATTERN_CHARS, maxLength: 10 }).chain((pattern) =>
      fc.tuple(fc.constant(pattern), fc.array(fc.string({ unit: VALUE_CHARS, maxLength: 4 }), { minLength: 10, maxLength: 10 })),
    );
    fc.assert(
      fc.property(filled, ([pattern, fills]) => {
        let i = 0;
        const value = pattern.replace(/\*/g, () => fills[i++ % fills.length]!);
        return compileGlob(pattern).matches(value) === referenceGlob(pattern, value);
      }),
      { numRuns: 5000, seed: 7 },
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

describe("path patterns against the reference", () => {
  it("agree on arbitrary path patterns, with and without a trailing '/**' (property)", () => {
    const pattern = fc.tuple(fc.string({ unit: PATTERN_CHARS, maxLength: 8 }), fc.boolean()).map(([p, deep]) => (deep ? `${p}/**` : p));
    fc.assert(
      fc.property(pattern, fc.string({ unit: VALUE_CHARS, maxLength: 14 }), (p, value) => {
        return compilePathGlob(p).matches(value) === referencePathGlob(p, value);
      }),
      { numRuns: 5000, seed: 3 },
    );
  });
});

describe("pattern lists (methods, paths, on-behalf-of)", () => {
  it("admit a value that an exact entry or any glob entry admits", () => {
    const list = compileMatcherList(["GET", "PO*"]);
    expect(list.matches("GET")).toBe(true);
    expect(list.matches("POST")).toBe(true);
    expect(list.matches("get")).toBe(false);
    expect(list.matches("DELETE")).toBe(false);
    expect(list.sources).toEqual(["GET", "PO*"]);
  });

  it("use the path rules' '/**' when compiled as paths", () => {
    const list = compileMatcherList(["/query", "/reports/**"], compilePathGlob);
    expect(list.matches("/reports/a/b")).toBe(true);
    expect(list.matches("/query")).toBe(true);
    expect(list.matches("/reports")).toBe(false);
  });
});

describe("matching time is linear in the value (SPEC 3, finding 4: quadratic patterns)", () => {
  // A backtracking RegExp took 381 ms for `*@*.example.com` against 20k "@" and
  // seconds at Envoy's 60 KiB header limit. These shapes are the classic
  // worst cases; each must stay far below a quadratic walk of 60 KiB.
  const SIZE = 60 * 1024;
  const cases: Array<[string, string]> = [
    ["*@*.example.com", "@".repeat(SIZE)],
    ["*@*.example.com", `${"@.".repeat(SIZE / 2)}x`],
    ["*a*a*a*a*a*b", "a".repeat(SIZE)],
    ["*aaaaaaaaab*c", "a".repeat(SIZE)],
    ["spiffe://example.org/*a*a*b/x", `spiffe://example.org/${"a".repeat(SIZE)}/x`],
    ["/reports/*a*b*/**", `/reports/${"ab".repeat(SIZE / 2)}`],
  ];

  it.each(cases)("%s against a %#-th 60 KiB adversarial value", (pattern, value) => {
    const matcher = pattern.endsWith("/**") ? compilePathGlob(pattern) : compileGlob(pattern);
    matcher.matches(value); // warm-up
    const started = performance.now();
    for (let i = 0; i < 5; i++) matcher.matches(value);
    const perMatchMs = (performance.now() - started) / 5;
    // Linear: well under a millisecond per 60 KiB here; quadratic would be seconds.
    expect(perMatchMs).toBeLessThan(50);
  });

  it("gives the reference's answers on those inputs, cut to a size the reference can walk", () => {
    for (const [pattern, value] of cases) {
      const small = value.slice(0, 24) + value.slice(-10);
      const matcher = pattern.endsWith("/**") ? compilePathGlob(pattern) : compileGlob(pattern);
      expect(matcher.matches(small), `${pattern} vs ${small}`).toBe(referencePathGlob(pattern, small));
    }
  });
});
