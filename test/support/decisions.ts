// Decisions for adapter tests: the shape the pipeline produces, built from
// plain fields; `reason` decides whether it is an allow or a deny.

import type { AllowedDecision, Decision } from "../../src/core/decision/decision.js";
import type { DenialReason } from "../../src/core/reasons.js";

export type DecisionFields = Omit<AllowedDecision, "allowed" | "reason"> & { readonly reason?: DenialReason | undefined };

export function makeDecision(fields: DecisionFields): Decision {
  const { reason, ...rest } = fields;
  return reason === undefined ? { ...rest, allowed: true } : { ...rest, allowed: false, reason };
}

export const SAMPLE_DECISION_FIELDS: DecisionFields = {
  message: "allowed",
  decisionId: "01JBZ6Q6M3YV0V9F6X5K8T2R4A",
  policyVersion: "2026-11-01.3",
  decidedAtMs: 0,
  caller: "spiffe://example.org/agent/research",
  callee: "spiffe://example.org/agent/db",
  onBehalfOf: "alice@example.com",
  chain: ["spiffe://example.org/agent/orchestrator", "spiffe://example.org/agent/research"],
  hops: [],
  peerCertificateSha256: undefined,
  method: "GET",
  path: "/query",
  tokenId: undefined,
  tokenSha256: undefined,
  tokenPrev: undefined,
  callerBinding: undefined,
  mcp: undefined,
  txn: undefined,
};
