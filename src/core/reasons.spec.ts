// SPEC 4's table of reasons: each reason's HTTP status and gRPC status code.
// Written out here from the contract, independently of the implementation.

import { describe, expect, it } from "vitest";
import { DENIAL_REASONS, isDenialReason, REASON_STATUS } from "./reasons.js";

const SPEC_TABLE: Record<string, { http: number; grpc: number }> = {};
for (const r of ["missing_peer_certificate", "invalid_peer_certificate", "missing_subject_header", "token_missing", "token_invalid", "token_expired"]) {
  SPEC_TABLE[r] = { http: 401, grpc: 16 };
}
for (const r of [
  "untrusted_trust_domain",
  "revoked_identity",
  "subject_mismatch",
  "missing_on_behalf_of",
  "on_behalf_of_not_allowed",
  "malformed_chain",
  "chain_too_long",
  "chain_cycle",
  "chain_caller_mismatch",
  "unknown_callee",
  "hop_not_allowed",
  "required_hop_missing",
  "token_chain_mismatch",
  "token_scope_exceeded",
  "token_replayed",
]) {
  SPEC_TABLE[r] = { http: 403, grpc: 7 };
}
for (const r of ["policy_unavailable", "internal_error"]) SPEC_TABLE[r] = { http: 503, grpc: 14 };

describe("the reason codes are stable API", () => {
  it("holds exactly the reasons of SPEC 4", () => {
    expect([...DENIAL_REASONS].sort()).toEqual(Object.keys(SPEC_TABLE).sort());
  });

  it.each(Object.entries(SPEC_TABLE))("maps %s to its HTTP and gRPC status", (reason, status) => {
    expect(REASON_STATUS[reason as keyof typeof REASON_STATUS]).toEqual(status);
  });

  it("recognizes reasons and nothing else", () => {
    expect(isDenialReason("hop_not_allowed")).toBe(true);
    expect(isDenialReason("allowed")).toBe(false);
    expect(isDenialReason("toString")).toBe(false);
    expect(isDenialReason("__proto__")).toBe(false);
    expect(isDenialReason("HOP_NOT_ALLOWED")).toBe(false);
  });
});
