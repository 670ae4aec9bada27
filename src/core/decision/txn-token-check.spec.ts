// SPEC 8: a Txn-Token whose sub differs from on-behalf-of is token_chain_mismatch.

import { describe, expect, it } from "vitest";
import { checkTxnTokenSubject, txnTokenRequired } from "./txn-token-check.js";

describe("the Txn-Token's sub against on-behalf-of", () => {
  it("passes when they are equal", () => {
    expect(checkTxnTokenSubject("alice@example.com", "alice@example.com")).toBeUndefined();
  });

  it.each([
    ["another person", "mallory@example.com"],
    ["a different case", "Alice@example.com"],
    ["trailing whitespace", "alice@example.com "],
    ["no on-behalf-of at all", undefined],
  ])("is token_chain_mismatch for %s", (_what, onBehalfOf) => {
    expect(checkTxnTokenSubject("alice@example.com", onBehalfOf)).toMatchObject({ reason: "token_chain_mismatch" });
  });
});

describe("whether a Txn-Token is required", () => {
  it("only when the policy has txnTokens with required: true", () => {
    const policy = { issuer: "i", jwks: "j", required: false, clockSkewSeconds: 30 };
    expect(txnTokenRequired(undefined)).toBe(false);
    expect(txnTokenRequired(policy)).toBe(false);
    expect(txnTokenRequired({ ...policy, required: true })).toBe(true);
  });
});
