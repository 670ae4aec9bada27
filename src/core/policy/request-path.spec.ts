// What path rules see (SPEC 3): the request path without its query string; a
// path holding dot-segments (also percent-encoded) or an encoded slash or
// backslash matches no path rule, since an upstream may resolve it otherwise.

import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { resourceUriProblem, toRulePath } from "./request-path.js";

describe("path rules match the path without its query string", () => {
  it("strips the query string", () => {
    expect(toRulePath("/query?sql=select%201")).toEqual({ ok: true, path: "/query" });
    expect(toRulePath("/query?")).toEqual({ ok: true, path: "/query" });
  });

  it("strips a fragment", () => {
    expect(toRulePath("/query#top")).toEqual({ ok: true, path: "/query" });
  });

  it("does not judge the query string", () => {
    expect(toRulePath("/query?next=/../admin&x=%2F")).toEqual({ ok: true, path: "/query" });
  });

  it("leaves any other path as sent", () => {
    expect(toRulePath("/schema/users")).toEqual({ ok: true, path: "/schema/users" });
    expect(toRulePath("/a//b")).toEqual({ ok: true, path: "/a//b" });
    expect(toRulePath("/a/.../b")).toEqual({ ok: true, path: "/a/.../b" });
    expect(toRulePath("/a/.hidden")).toEqual({ ok: true, path: "/a/.hidden" });
  });
});

describe("a path an upstream may resolve differently matches no path rule", () => {
  it.each([
    "/schema/../admin",
    "/schema/./users",
    "/schema/..",
    "/schema/.",
    "/..",
    "/schema/%2e%2e/admin",
    "/schema/%2E%2E/admin",
    "/schema/.%2e/admin",
    "/schema/%2e./admin",
    "/schema/%2e/users",
  ])("refuses the dot-segment in %j", (path) => {
    expect(toRulePath(path)).toMatchObject({ ok: false, problem: "holds a dot-segment" });
  });

  it.each(["/schema%2Fusers", "/schema%2fusers", "/schema%5Cusers", "/schema%5cusers"])("refuses the encoded separator in %j", (path) => {
    expect(toRulePath(path)).toMatchObject({ ok: false, problem: "holds an encoded slash or backslash" });
  });

  it("refuses a raw backslash", () => {
    expect(toRulePath("/schema\\..\\admin")).toMatchObject({ ok: false });
  });

  // Finding 6: each of these matched "/reports/**" before.
  it.each([
    ["/reports/..;/admin", 'holds a ";" (path parameters)'],
    ["/reports/%2e%2e;/admin", 'holds a ";" (path parameters)'],
    ["/reports/x;jsessionid=1", 'holds a ";" (path parameters)'],
    ["/reports/%252e%252e/%252e%252e/admin", 'holds "%25" (double percent-encoding)'],
    ["/reports/%252F..%252Fadmin", 'holds "%25" (double percent-encoding)'],
    ["/reports/a\u0000b", "holds a control or non-ASCII character"],
    ["/reports/a\tb", "holds a control or non-ASCII character"],
    ["/reports/\u007f", "holds a control or non-ASCII character"],
    ["/reports/caf\u00e9", "holds a control or non-ASCII character"],
    ["/reports/\u2215admin", "holds a control or non-ASCII character"],
    ["/reports/%00", "holds an encoded control or non-ASCII byte"],
    ["/reports/a%0ab", "holds an encoded control or non-ASCII byte"],
    ["/reports/%7F", "holds an encoded control or non-ASCII byte"],
    ["/reports/%ff", "holds an encoded control or non-ASCII byte"],
    ["/reports/%c0%ae%c0%ae/admin", "holds an encoded control or non-ASCII byte"],
  ])("refuses %j (finding 6)", (path, problem) => {
    expect(toRulePath(path)).toEqual({ ok: false, problem });
  });

  it("refuses a path over 8 KiB, and keeps one of exactly 8 KiB", () => {
    expect(toRulePath(`/${"a".repeat(8 * 1024)}`)).toMatchObject({ ok: false, tooLong: true });
    expect(toRulePath(`/${"é".repeat(4 * 1024)}`)).toMatchObject({ ok: false, tooLong: true });
    expect(toRulePath(`/${"a".repeat(8 * 1024 - 1)}`)).toMatchObject({ ok: true });
    expect(toRulePath(`/${"a".repeat(8 * 1024 - 1)}?${"q".repeat(50_000)}`)).toMatchObject({ ok: true });
  });

  it("keeps other escapes as sent (the rule sees them undecoded)", () => {
    expect(toRulePath("/reports/a%20b")).toEqual({ ok: true, path: "/reports/a%20b" });
    expect(toRulePath("/reports/%7e%41")).toEqual({ ok: true, path: "/reports/%7e%41" });
  });

  // Each of these matched "/public/**" before: servers read a "%" that starts no escape their own way.
  it.each(["/reports/100%", "/reports/%2", "/reports/%zz", "/public/%u002e%u002e/admin", "/public/.%u002e/admin", "/public/%%32%65%%32%65/admin"])(
    "refuses the '%%' that starts no escape in %j",
    (path) => {
      expect(toRulePath(path)).toEqual({ ok: false, problem: 'holds a "%" that is not followed by two hex digits' });
    },
  );
});

describe("reading untrusted request targets (property)", () => {
  const pieces = fc.constantFrom("/", ".", "..", "%2e", "%2E", "%2f", "%5C", "\\", "a", "?", "#", "%", "query", ";", "%25", "%252e", "\u0000", "\u00e9", "\t");
  const targets = fc.oneof(fc.string(), fc.array(pieces, { maxLength: 10 }).map((p) => p.join("")));

  it("never throws, and what it accepts holds no query, dot-segment, encoded separator, ';', '%25', control or non-ASCII", () => {
    fc.assert(
      fc.property(targets, (target) => {
        const result = toRulePath(target);
        if (!result.ok) return true;
        const { path } = result;
        const segments = path.split("/").map((s) => s.replace(/%2e/gi, "."));
        return (
          target.startsWith(path) &&
          !path.includes("?") &&
          !path.includes("#") &&
          !/%2f|%5c/i.test(path) &&
          !path.includes("\\") &&
          !path.includes(";") &&
          !/%25/.test(path) &&
          !/%(?![0-9a-f]{2})/i.test(path) &&
          !/[^\x20-\x7e]/.test(path) &&
          !/%(?:[01][0-9a-f]|7f|[89a-f][0-9a-f])/i.test(path) &&
          !segments.includes(".") &&
          !segments.includes("..")
        );
      }),
      { numRuns: 5000, seed: 6 },
    );
  });
});

describe("an MCP resource URI gets the path safeguards (SPEC 8, docs/mcp.md)", () => {
  it.each(["file:///docs/readme.md", "file:///docs/a/b.md?rev=2", "db://reports/q3#summary", "https://example.org/x?next=/..x&y=%2F", "db://q?a=.b#...", "db://q?a=%20b", "https://example.org/search?q=caf%C3%A9", "db://x?next=%2Fhome", "db://x?a=1;b=2", "db://x?q=100%25", "db://x?q=%25ab"])("leaves %s to the globs", (uri) => {
    expect(resourceUriProblem(uri)).toBeUndefined();
  });

  it.each([
    ["file:///docs/..", "holds a dot-segment"],
    ["file:///docs/../etc/passwd", "holds a dot-segment"],
    ["file:///docs/%2e%2e", "holds a dot-segment"],
    ["file:///docs/.", "holds a dot-segment"],
    ["file:///docs/a%2Fb", "holds an encoded slash or backslash"],
    ["file:///docs/a%5cb", "holds an encoded slash or backslash"],
    ["file:///docs\\..\\x", "holds a backslash"],
    ["file:///docs/..;/x", 'holds a ";" (path parameters)'],
    ["file:///docs/a;b", 'holds a ";" (path parameters)'],
    ["file:///docs/%252e%252e", 'holds "%25" (double percent-encoding)'],
    ["file:///docs/\u00e9", "holds a control or non-ASCII character"],
    ["file:///docs/a?x=\u0000", "holds a control or non-ASCII character"],
    ["file:///docs/100%", 'holds a "%" that is not followed by two hex digits'],
    // Globs see the whole URI: each of these matched "file:///docs/*/*/*" before.
    ["file:///docs/a?/../..", "holds a dot-segment"],
    ["file:///docs/a#/../..", "holds a dot-segment"],
    ["file:///docs/a?..", "holds a dot-segment"],
    ["https://example.org/x?next=/../admin", "holds a dot-segment"],
    ["file:///docs/a?%2e%2e/x", "holds a dot-segment"],
    ["file:///docs/a?/..%2F..", "holds a dot-segment"],
    ["file:///docs/a?%2F..%5C..", "holds a dot-segment"],
    ["file:///docs/a?/%252e%252e", "holds a double-encoded dot, slash or backslash"],
    ["file:///docs/a?x%252Fy", "holds a double-encoded dot, slash or backslash"],
    ["file:///docs/a?/%%32%65%%32%65", 'holds a "%" that is not followed by two hex digits'],
    ["file:///docs/a?\\..\\..", "holds a dot-segment"],
    ["file:///docs/a?x=caf\u00e9", "holds a control or non-ASCII character"],
  ])("refuses %s", (uri, problem) => {
    expect(resourceUriProblem(uri)).toBe(problem);
  });

  it("is linear: a long URI of dots and escapes is judged at once", () => {
    const started = performance.now();
    expect(resourceUriProblem(`file:///${"%2e.".repeat(50_000)}`)).toBeUndefined();
    expect(performance.now() - started).toBeLessThan(200);
  });
});
