// What a CheckResponse says, apart from its wire encoding (SPEC 4): the names
// of the headers it sets and the JSON body of a deny. Allow sets the verified
// headers with OVERWRITE_IF_EXISTS_OR_ADD, so a client can never smuggle its
// own x-agent-verified-* value through, and removes any such header we have no
// value for. Deny is a denied_response with a JSON body; its gRPC status is
// the reason's, never a transport error.

import type { DeniedDecision } from "../../core/decision/decision.js";

export const VERIFIED_HEADERS = {
  subject: "x-agent-verified-subject",
  onBehalfOf: "x-agent-verified-on-behalf-of",
  chain: "x-agent-verified-chain",
  decisionId: "x-authz-decision-id",
} as const;
export const REASON_HEADER = "x-authz-reason";

/** HeaderValueOption.HeaderAppendAction (envoy/config/core/v3/base.proto). */
export const OVERWRITE_IF_EXISTS_OR_ADD = 2;

export function denialBody(decision: DeniedDecision): string {
  return JSON.stringify({ error: decision.reason, message: decision.message, decision_id: decision.decisionId });
}
