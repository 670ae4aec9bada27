import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { validClaims } from "../../../test/support/delegation-tokens.js";
import { actorChain, MAX_ACT_DEPTH, nestActors, parseDelegationClaims, parseScope } from "./delegation-token-format.js";

describe("act nesting (RFC 8693 4.1, current actor outermost)", () => {
  it("nests front → planner → worker as worker { planner { front } }", () => {
    expect(nestActors(["front", "planner", "worker"])).toEqual({ sub: "worker", act: { sub: "planner", act: { sub: "front" } } });
  });

  it("flattens back to the chain, first agent first, for any chain", () => {
    fc.assert(
      fc.property(fc.array(fc.string({ minLength: 1 }), { minLength: 1, maxLength: 20 }), (chain) => {
        expect(actorChain(nestActors(chain))).toEqual({ ok: true, chain });
      }),
    );
  });

  it("refuses nesting deeper than the limit without recursing", () => {
    const deep = nestActors(Array.from({ length: MAX_ACT_DEPTH + 1 }, (_, i) => `a${i}`));
    expect(actorChain(deep).ok).toBe(false);
  });
});

describe("scope (RFC 6749 3.3)", () => {
  it("splits on single spaces and refuses anything else", () => {
    expect(parseScope("")).toEqual([]);
    expect(parseScope("a b:c")).toEqual(["a", "b:c"]);
    for (const bad of [" a", "a ", "a  b", "a\tb", 'a"', "a\\b", "é"]) expect(parseScope(bad)).toBeUndefined();
  });
});

describe("claim shapes", () => {
  it("reads the valid fixture", () => {
    const result = parseDelegationClaims(validClaims());
    expect(result.ok).toBe(true);
  });

  it("never throws on any JSON value, at the top or in any claim", () => {
    fc.assert(
      fc.property(fc.jsonValue(), fc.constantFrom("iss", "sub", "aud", "iat", "nbf", "exp", "jti", "scope", "cnf", "act", "prev"), (junk, claim) => {
        expect(() => parseDelegationClaims(junk)).not.toThrow();
        expect(() => parseDelegationClaims(validClaims({ [claim]: junk }))).not.toThrow();
      }),
    );
  });
});
