// envoy.service.auth.v3.Authorization/Check on grpc-js: decode → core pipeline
// → CheckResponse, with the decision span and the decision sinks (audit log,
// metrics) around it. Every outcome, including a CheckRequest that does not
// decode and an exception anywhere here, is answered with a CheckResponse;
// grpc-js never sees a throw and Envoy never has to interpret a gRPC error.

import type { MethodDefinition, sendUnaryData, ServerUnaryCall, ServiceDefinition, UntypedServiceImplementation } from "@grpc/grpc-js";
import type { CheckInput } from "../../core/decision/check-input.js";
import type { Decision } from "../../core/decision/decision.js";
import type { CheckPipeline } from "../../core/decision/check-pipeline.js";
import type { DecisionSink } from "../../core/ports.js";
import { decodeCheckRequest, undecodableCheckRequest } from "../envoy/check-request-decoder.js";
import { encodeCheckResponse } from "../envoy/check-response-encoder.js";
import { CheckSpanRecorder } from "../telemetry/check-span.js";
import type { Logger } from "../logging/logger.js";
import { DecodeFailure } from "./protobuf-method.js";

export const AUTHORIZATION_SERVICE = "envoy.service.auth.v3.Authorization";

/** What the handler answers: a Decision (encoded on the wire by the serializer) or pre-encoded bytes. */
type CheckAnswer = Decision | Buffer;

// The hot path decodes straight into the core's CheckInput and encodes the
// Decision directly (envoy/check-request-decoder.ts, check-response-encoder.ts;
// their property tests hold them to the generated schemas).
function checkMethod(headersRead: ReadonlySet<string>): MethodDefinition<CheckInput | DecodeFailure, CheckAnswer> {
  return {
  path: `/${AUTHORIZATION_SERVICE}/Check`,
  requestStream: false,
  responseStream: false,
  requestSerialize: () => {
    throw new Error("the Check server never serializes requests");
  },
  requestDeserialize: (bytes: Buffer) => {
    try {
      return decodeCheckRequest(bytes, headersRead);
    } catch (err) {
      return new DecodeFailure(err instanceof Error ? err.message : String(err));
    }
  },
  responseSerialize: (answer: CheckAnswer) => (Buffer.isBuffer(answer) ? answer : encodeCheckResponse(answer)),
  responseDeserialize: () => {
    throw new Error("the Check server never deserializes responses");
  },
  };
}

/** The Check service definition; only the headers the pipeline reads are decoded. */
export function authorizationServiceDefinition(headersRead: ReadonlySet<string>): ServiceDefinition {
  return { Check: checkMethod(headersRead) };
}

export interface AuthorizationServiceDeps {
  readonly pipeline: CheckPipeline;
  readonly spans?: CheckSpanRecorder;
  readonly sinks?: readonly DecisionSink[];
  readonly logger: Logger;
  /**
   * Asked before each Check: false denies it with internal_error (the audit
   * log cannot take its record, so we refuse to decide without one). A
   * promise is a bounded wait for room.
   */
  readonly admit?: () => boolean | Promise<boolean>;
}

/**
 * The decision behind the last-resort answer, when even deciding failed: an
 * internal_error deny (503) with no decision id, since none could be made.
 */
export const FALLBACK_DECISION: Decision = {
  allowed: false,
  reason: "internal_error",
  message: "the authorization service failed to decide",
  decisionId: "",
  policyVersion: "",
  decidedAtMs: 0,
  caller: undefined,
  callee: undefined,
  onBehalfOf: undefined,
  chain: [],
  hops: [],
  peerCertificateSha256: undefined,
  method: "",
  path: "",
  tokenId: undefined,
};

/** FALLBACK_DECISION encoded once, at load, by the encoder every answer goes through. */
export const FALLBACK_DENY: Buffer = encodeCheckResponse(FALLBACK_DECISION);

export function authorizationImplementation(deps: AuthorizationServiceDeps): UntypedServiceImplementation {
  const sinks = deps.sinks ?? [];
  const { pipeline, spans, logger } = deps;

  const complete = (decision: Decision, started: number, span: ReturnType<CheckSpanRecorder["start"]> | undefined, callback: sendUnaryData<CheckAnswer>) => {
    let response: CheckAnswer;
    try {
      response = encodeCheckResponse(decision);
    } catch (err) {
      logger.error("encoding the CheckResponse failed; denying", { error: err, decision_id: decision.decisionId });
      response = FALLBACK_DENY;
    }
    callback(null, response);
    try {
      const latencyMs = performance.now() - started;
      let ids: { traceId: string; spanId: string } | undefined;
      if (span !== undefined) {
        spans!.end(span, decision);
        ids = CheckSpanRecorder.ids(span);
      }
      const context = { latencyMs, ...ids };
      for (const sink of sinks) sink.record(decision, context);
      if (logger.enabled("debug")) {
        logger.debug("decision", {
          decision_id: decision.decisionId,
          decision: decision.allowed ? "allow" : "deny",
          reason: decision.reason,
          caller: decision.caller,
          callee: decision.callee,
          on_behalf_of: decision.onBehalfOf,
          chain: decision.chain,
          policy_version: decision.policyVersion,
          latency_ms: Number(latencyMs.toFixed(3)),
          trace_id: ids?.traceId,
        });
      }
    } catch (err) {
      logger.error("recording a decision failed", { error: err, decision_id: decision.decisionId });
    }
  };

  /** An exception on the way: still a deny with a decision id, still recorded; only if even that fails, the fixed answer. */
  const failClosed = (err: unknown, started: number, span: ReturnType<CheckSpanRecorder["start"]> | undefined, callback: sendUnaryData<CheckAnswer>) => {
    logger.error("Check failed; denying", { error: err });
    try {
      const detail = err instanceof Error ? err.message : String(err);
      complete(pipeline.denyWithoutDeciding("internal_error", `internal error while deciding: ${detail}`), started, span, callback);
    } catch {
      span?.end();
      callback(null, FALLBACK_DENY);
    }
  };

  return {
    Check: (call: ServerUnaryCall<CheckInput | DecodeFailure, CheckAnswer>, callback: sendUnaryData<CheckAnswer>) => {
      const started = performance.now();
      let span: ReturnType<CheckSpanRecorder["start"]> | undefined;
      try {
        span = spans?.start(call.metadata);
        const request = call.request;
        const admitted = deps.admit?.() ?? true;
        const decideAdmitted = (ok: boolean): Decision | Promise<Decision> => {
          if (request instanceof DecodeFailure) {
            return pipeline.denyWithoutDeciding("internal_error", undecodableCheckRequest(request.problem));
          }
          if (!ok) return pipeline.denyWithoutDeciding("internal_error", "the audit log cannot take more records; denying rather than deciding without a record");
          return pipeline.decide(request);
        };
        const result = admitted instanceof Promise ? admitted.then(decideAdmitted) : decideAdmitted(admitted);
        if (result instanceof Promise) {
          result.then(
            (decision) => complete(decision, started, span, callback),
            (err: unknown) => failClosed(err, started, span, callback),
          );
        } else {
          complete(result, started, span, callback);
        }
      } catch (err) {
        failClosed(err, started, span, callback);
      }
    },
  };
}
