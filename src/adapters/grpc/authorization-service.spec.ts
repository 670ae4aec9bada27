// The last-resort answer of Check (SPEC 2: any internal error is a deny, never
// a gRPC error): built at load by the same encoder as every other answer.

import { fromBinary } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import { CheckResponseSchema } from "../../gen/envoy/service/auth/v3/external_auth_pb.js";
import { toCheckResponse } from "../../../test/support/reference-codec.js";
import { FALLBACK_DECISION, FALLBACK_DENY } from "./authorization-service.js";

describe("the fallback deny", () => {
  const response = fromBinary(CheckResponseSchema, FALLBACK_DENY);

  it("is an internal_error deny: gRPC 14, HTTP 503, the JSON body and x-authz-reason", () => {
    expect(response.status).toMatchObject({ code: 14, message: "internal_error" });
    if (response.httpResponse.case !== "deniedResponse") throw new Error(`expected deniedResponse, got ${response.httpResponse.case}`);
    const denied = response.httpResponse.value;
    expect(denied.status?.code).toBe(503);
    expect(JSON.parse(denied.body)).toEqual({ error: "internal_error", message: "the authorization service failed to decide", decision_id: "" });
    expect(Object.fromEntries(denied.headers.map((h) => [h.header?.key, h.header?.value]))).toMatchObject({ "content-type": "application/json", "x-authz-reason": "internal_error" });
  });

  it("is exactly what the reference encodes for its decision", () => {
    expect(response).toStrictEqual(toCheckResponse(FALLBACK_DECISION));
  });
});
