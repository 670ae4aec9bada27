// core → Envoy wire: a Decision becomes a CheckResponse (SPEC 4). Allow sets
// the verified headers with OVERWRITE_IF_EXISTS_OR_ADD, so a client can never
// smuggle its own x-agent-verified-* value through, and removes any such header
// we have no value for. Deny is a denied_response with a JSON body; its gRPC
// status is the reason's, never a transport error.

import { create, type JsonObject } from "@bufbuild/protobuf";
import { HeaderValueOption_HeaderAppendAction, HeaderValueOptionSchema, type HeaderValueOption } from "../../gen/envoy/config/core/v3/base_pb.js";
import { CheckResponseSchema, type CheckResponse } from "../../gen/envoy/service/auth/v3/external_auth_pb.js";
import { StatusSchema } from "../../gen/google/rpc/status_pb.js";
import type { Decision } from "../../core/decision/decision.js";
import { GrpcCode, REASON_STATUS } from "../../core/reasons.js";

export const VERIFIED_HEADERS = {
  subject: "x-agent-verified-subject",
  onBehalfOf: "x-agent-verified-on-behalf-of",
  chain: "x-agent-verified-chain",
  decisionId: "x-authz-decision-id",
} as const;
export const REASON_HEADER = "x-authz-reason";

function header(key: string, value: string): HeaderValueOption {
  return create(HeaderValueOptionSchema, {
    header: { key, value },
    appendAction: HeaderValueOption_HeaderAppendAction.OVERWRITE_IF_EXISTS_OR_ADD,
  });
}

/** Struct fields are plain JSON in protobuf-es; numbers become number_value. */
function decisionMetadata(decision: Decision): JsonObject {
  const metadata: JsonObject = {
    decision_id: decision.decisionId,
    policy_version: decision.policyVersion,
    caller: decision.caller ?? "",
    callee: decision.callee ?? "",
    on_behalf_of: decision.onBehalfOf ?? "",
    chain_depth: decision.chain.length,
  };
  if (decision.reason !== undefined) metadata.reason = decision.reason;
  return metadata;
}

export function denialBody(decision: Decision): string {
  return JSON.stringify({ error: decision.reason ?? "internal_error", message: decision.message, decision_id: decision.decisionId });
}

export function toCheckResponse(decision: Decision): CheckResponse {
  if (decision.allowed) {
    const headers = [
      header(VERIFIED_HEADERS.subject, decision.caller ?? ""),
      header(VERIFIED_HEADERS.chain, decision.chain.join(",")),
      header(VERIFIED_HEADERS.decisionId, decision.decisionId),
    ];
    const headersToRemove: string[] = [];
    if (decision.onBehalfOf !== undefined) headers.push(header(VERIFIED_HEADERS.onBehalfOf, decision.onBehalfOf));
    else headersToRemove.push(VERIFIED_HEADERS.onBehalfOf);
    return create(CheckResponseSchema, {
      status: create(StatusSchema, { code: GrpcCode.OK }),
      httpResponse: { case: "okResponse", value: { headers, headersToRemove } },
      dynamicMetadata: decisionMetadata(decision),
    });
  }
  const reason = decision.reason ?? "internal_error";
  const status = REASON_STATUS[reason];
  return create(CheckResponseSchema, {
    status: create(StatusSchema, { code: status.grpc, message: reason }),
    httpResponse: {
      case: "deniedResponse",
      value: {
        status: { code: status.http },
        headers: [header("content-type", "application/json"), header(REASON_HEADER, reason), header(VERIFIED_HEADERS.decisionId, decision.decisionId)],
        body: denialBody(decision),
      },
    },
    dynamicMetadata: decisionMetadata(decision),
  });
}
