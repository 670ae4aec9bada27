import { describe, expect, it } from "vitest";
import { ChainIdsMemo, parseChainIds } from "./chain-ids.js";

const A = "spiffe://example.org/agent/a";
const B = "spiffe://example.org/agent/b";

describe("parseChainIds", () => {
  it("reads the entries as SPIFFE IDs, in order", () => {
    const result = parseChainIds(`${A}, ${B}`);
    expect(result.ok && result.ids.map((id) => [id.trustDomain, id.path])).toEqual([
      ["example.org", "/agent/a"],
      ["example.org", "/agent/b"],
    ]);
    expect(result.ok && result.entries).toEqual([A, B]);
    expect(result.ok && result.repeated).toBeUndefined();
  });

  it("names the first ID that comes twice", () => {
    const result = parseChainIds(`${A},${B},${A},${B}`);
    expect(result.ok && result.repeated).toBe(A);
  });

  it("names the list problem, or the entry and its problem", () => {
    expect(parseChainIds(`${A},,${B}`)).toEqual({ ok: false, problem: ": entry 2 is empty" });
    const bad = parseChainIds(`${A},spiffe://Example.org/x`);
    expect(!bad.ok && bad.problem).toMatch(/^ entry 2 "spiffe:\/\/Example\.org\/x" has the character "E"/);
  });

  it("shares a frozen result: nothing downstream can change a memoized chain", () => {
    const result = parseChainIds(A);
    expect(result.ok && Object.isFrozen(result.entries) && Object.isFrozen(result.ids)).toBe(true);
  });
});

describe("ChainIdsMemo", () => {
  it("answers a repeated header with the same result, and agrees with the parser", () => {
    const memo = new ChainIdsMemo();
    const first = memo.parse(`${A}, ${B}`);
    expect(memo.parse(`${A}, ${B}`)).toBe(first);
    expect(first).toEqual(parseChainIds(`${A}, ${B}`));
    expect(memo.parse(`${A},,`)).toEqual(parseChainIds(`${A},,`));
  });

  it("stays bounded under a stream of distinct headers, and keeps no long one", () => {
    const memo = new ChainIdsMemo();
    for (let i = 0; i < 5000; i++) memo.parse(`spiffe://example.org/agent/${i}`);
    expect(memo.size).toBeLessThanOrEqual(512);
    const before = memo.size;
    const long = `spiffe://example.org/${"a".repeat(3000)}`;
    expect(memo.parse(long).ok).toBe(false);
    expect(memo.size).toBe(before);
    expect(memo.parse(long)).not.toBe(memo.parse(long));
  });
});
