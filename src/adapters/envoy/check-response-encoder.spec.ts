// The CheckResponse (SPEC 4), as the production encoder writes it and the
// generated schema reads it. Allow: status 0, the verified headers set with
// OVERWRITE_IF_EXISTS_OR_ADD, dynamic metadata. Deny: denied_response with a
// JSON body, content-type and x-authz-reason, statuses per reason.

import { fromBinary } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import { HeaderValueOption_HeaderAppendAction, type HeaderValueOption } from "../../gen/envoy/config/core/v3/base_pb.js";
import { CheckResponseSchema, type CheckResponse } from "../../gen/envoy/service/auth/v3/external_auth_pb.js";
import type { Decision, DeniedDecision } from "../../core/decision/decision.js";
import { makeDecision, type DecisionFields } from "../../../test/support/decisions.js";
import { DENIAL_REASONS, REASON_STATUS, type DenialReason } from "../../core/reasons.js";
import { denialBody } from "./check-response-fields.js";
import { encodeCheckResponse } from "./check-response-encoder.js";
import { boundText } from "../text/bounded-text.js";

/** The response Envoy receives for a decision. */
const responseFor = (decision: Decision): CheckResponse => fromBinary(CheckResponseSchema, encodeCheckResponse(decision));

const ORCH = "spiffe://example.org/agent/orchestrator";
const RESEARCH = "spiffe://example.org/agent/research";
const DB = "spiffe://example.org/agent/db";
const ID = "01JBZ6Q6M3YV0V9F6X5K8T2R4A";

function decision(overrides: Partial<DecisionFields> = {}): Decision {
  return makeDecision({
    message: "allowed",
    decisionId: ID,
    policyVersion: "2026-11-01.3",
    decidedAtMs: 0,
    caller: RESEARCH,
    callee: DB,
    onBehalfOf: "alice@example.com",
    chain: [ORCH, RESEARCH],
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
    ...overrides,
  });
}

function denial(reason: DenialReason, message = `denied: ${reason}`): DeniedDecision {
  return { ...decision({ message }), allowed: false, reason };
}

function headersOf(options: readonly HeaderValueOption[]): Record<string, string> {
  return Object.fromEntries(options.map((o) => [o.header?.key ?? "", o.header?.value ?? ""]));
}

function okOf(response: CheckResponse) {
  if (response.httpResponse.case !== "okResponse") throw new Error(`expected okResponse, got ${response.httpResponse.case}`);
  return response.httpResponse.value;
}

function deniedOf(response: CheckResponse) {
  if (response.httpResponse.case !== "deniedResponse") throw new Error(`expected deniedResponse, got ${response.httpResponse.case}`);
  return response.httpResponse.value;
}

describe("an allow", () => {
  it("has status code 0", () => {
    expect(responseFor(decision()).status?.code).toBe(0);
  });

  it("sets the verified subject, on-behalf-of, chain and decision id, in lower-case keys", () => {
    expect(headersOf(okOf(responseFor(decision())).headers)).toEqual({
      "x-agent-verified-subject": RESEARCH,
      "x-agent-verified-on-behalf-of": "alice@example.com",
      "x-agent-verified-chain": `${ORCH},${RESEARCH}`,
      "x-authz-decision-id": ID,
    });
  });

  it("overwrites any value the client sent, so none can be smuggled through", () => {
    for (const option of okOf(responseFor(decision())).headers) {
      expect(option.appendAction).toBe(HeaderValueOption_HeaderAppendAction.OVERWRITE_IF_EXISTS_OR_ADD);
    }
  });

  it("removes a client's x-agent-verified-on-behalf-of when the request had none", () => {
    const ok = okOf(responseFor(decision({ onBehalfOf: undefined })));
    expect(ok.headersToRemove).toEqual(["x-agent-verified-on-behalf-of"]);
    expect(Object.keys(headersOf(ok.headers))).not.toContain("x-agent-verified-on-behalf-of");
  });

  it("removes nothing when every verified header has a value", () => {
    expect(okOf(responseFor(decision())).headersToRemove).toEqual([]);
  });

  it("puts decision_id, policy_version, caller, callee, on_behalf_of, chain_depth and caller_binding in dynamic metadata", () => {
    expect(responseFor(decision({ callerBinding: "certificate" })).dynamicMetadata).toEqual({
      decision_id: ID,
      policy_version: "2026-11-01.3",
      caller: RESEARCH,
      callee: DB,
      on_behalf_of: "alice@example.com",
      chain_depth: 2,
      caller_binding: "certificate",
    });
    expect(responseFor(decision({ callerBinding: "principal" })).dynamicMetadata).toMatchObject({ caller_binding: "principal" });
    expect(responseFor(decision()).dynamicMetadata).toMatchObject({ caller_binding: "" });
  });
});

describe("a deny", () => {
  // A 1 MiB on-behalf-of came back whole in the deny's metadata (review finding); SPEC 6 bounds what records keep.
  it("bounds the refused on-behalf-of it names in its metadata, as records do", () => {
    const claimed = `${"m".repeat(1024 * 1024)}@example.com`;
    const response = responseFor({ ...denial("on_behalf_of_not_allowed"), onBehalfOf: claimed });
    const kept = (response.dynamicMetadata as { on_behalf_of: string }).on_behalf_of;
    expect(kept).toBe(boundText(claimed));
    expect(Buffer.byteLength(kept)).toBeLessThan(1200);
    expect(encodeCheckResponse({ ...denial("on_behalf_of_not_allowed"), onBehalfOf: claimed }).length).toBeLessThan(4096);
  });

  it("carries a JSON body with the reason, a message and the decision id", () => {
    const denied = deniedOf(responseFor(denial("hop_not_allowed", 'hop a → b is not allowed: "quoted"')));
    expect(JSON.parse(denied.body)).toEqual({ error: "hop_not_allowed", message: 'hop a → b is not allowed: "quoted"', decision_id: ID });
    expect(denied.body).toBe(denialBody(denial("hop_not_allowed", 'hop a → b is not allowed: "quoted"')));
  });

  it("sets content-type: application/json and x-authz-reason", () => {
    const headers = headersOf(deniedOf(responseFor(denial("chain_cycle"))).headers);
    expect(headers).toMatchObject({ "content-type": "application/json", "x-authz-reason": "chain_cycle" });
    for (const key of Object.keys(headers)) expect(key).toBe(key.toLowerCase());
  });

  it("never sets the verified identity headers", () => {
    const keys = Object.keys(headersOf(deniedOf(responseFor(denial("subject_mismatch"))).headers));
    expect(keys.filter((k) => k.startsWith("x-agent-verified-"))).toEqual([]);
  });

  it.each(DENIAL_REASONS.map((r) => [r, REASON_STATUS[r].http, REASON_STATUS[r].grpc] as const))("answers %s with HTTP %i and gRPC status %i", (reason, http, grpc) => {
    const response = responseFor(denial(reason));
    expect(response.status?.code).toBe(grpc);
    expect(deniedOf(response).status?.code).toBe(http);
    expect(response.dynamicMetadata).toMatchObject({ decision_id: ID, reason });
  });

});
