// envoy.service.auth.v3.Authorization/Check: decode → core pipeline →
// CheckResponse, with the decision span and the decision sinks (audit log,
// metrics) around it. Every outcome, including a CheckRequest that does not
// decode and an exception anywhere here, is answered with a CheckResponse;
// the server never sees a throw and Envoy never has to interpret a gRPC error.
// The same handler serves a call answered straight from the HTTP/2 stream
// (direct-unary.ts) and one that went through grpc-js (check-server.ts).

import type { MethodDefinition, ServiceDefinition } from "@grpc/grpc-js";
import type { CheckInput } from "../../core/decision/check-input.js";
import type { Decision } from "../../core/decision/decision.js";
import type { CheckPipeline } from "../../core/decision/check-pipeline.js";
import type { DecisionContext, DecisionSink } from "../../core/ports.js";
import { decodeCheckRequest, undecodableCheckRequest } from "../envoy/check-request-decoder.js";
import { encodeCheckResponse } from "../envoy/check-response-encoder.js";
import type { DecisionTracing } from "../telemetry/decision-tracing.js";
import type { MetadataReader } from "../telemetry/trace-parent.js";
import type { DecisionSpanIds } from "../telemetry/decision-span.js";
import type { Logger } from "../logging/logger.js";
import { DecodeFailure } from "./protobuf-method.js";

export const AUTHORIZATION_SERVICE = "envoy.service.auth.v3.Authorization";

// The hot path decodes straight into the core's CheckInput and encodes the
// Decision directly (envoy/check-request-decoder.ts, check-response-encoder.ts;
// their property tests hold them to the generated schemas).
function checkMethod(headersRead: ReadonlySet<string>, mcpNamespace: string | undefined): MethodDefinition<CheckInput | DecodeFailure, Buffer> {
  return {
  path: `/${AUTHORIZATION_SERVICE}/Check`,
  requestStream: false,
  responseStream: false,
  requestSerialize: () => {
    throw new Error("the Check server never serializes requests");
  },
  requestDeserialize: (bytes: Buffer) => {
    try {
      return decodeCheckRequest(bytes, headersRead, mcpNamespace);
    } catch (err) {
      return new DecodeFailure(err instanceof Error ? err.message : String(err));
    }
  },
  // The handler answers with the encoded CheckResponse.
  responseSerialize: (answer: Buffer) => answer,
  responseDeserialize: () => {
    throw new Error("the Check server never deserializes responses");
  },
  };
}

/** The Check service definition; only the headers the pipeline reads are decoded, and of metadata_context only the MCP namespace (SPEC 8). */
export function authorizationServiceDefinition(headersRead: ReadonlySet<string>, mcpNamespace?: string): ServiceDefinition & { readonly Check: MethodDefinition<CheckInput | DecodeFailure, Buffer> } {
  return { Check: checkMethod(headersRead, mcpNamespace) };
}

export interface AuthorizationServiceDeps {
  readonly pipeline: CheckPipeline;
  readonly tracing?: DecisionTracing;
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
  tokenSha256: undefined,
  tokenPrev: undefined,
  callerBinding: undefined,
  mcp: undefined,
  txn: undefined,
};

/** FALLBACK_DECISION encoded once, at load, by the encoder every answer goes through. */
export const FALLBACK_DENY: Buffer = encodeCheckResponse(FALLBACK_DECISION);

const NO_SPAN: undefined = undefined;

/**
 * One Check in flight: what the answer and the records need once the
 * decision is known. The synchronous path (no token to verify, room in the
 * audit log) creates this object and nothing else per call: no closures, no
 * SDK span.
 */
class CheckCall {
  constructor(
    readonly service: AuthorizationHandler,
    readonly answer: (response: Buffer) => void,
    readonly started: number,
    readonly span: DecisionSpanIds | undefined,
    readonly request: CheckInput | DecodeFailure,
  ) {}

  /** Decides once admitted (the audit log has room, or said no). */
  decideAdmitted(admitted: boolean): Decision | Promise<Decision> {
    const { pipeline } = this.service.deps;
    if (this.request instanceof DecodeFailure) {
      return pipeline.denyWithoutDeciding("internal_error", undecodableCheckRequest(this.request.problem));
    }
    if (!admitted) return pipeline.denyWithoutDeciding("internal_error", "the audit log cannot take more records; denying rather than deciding without a record");
    return pipeline.decide(this.request);
  }

  settle(result: Decision | Promise<Decision>): void {
    if (result instanceof Promise) {
      result.then(
        (decision) => this.service.complete(this, decision),
        (err: unknown) => this.service.failClosed(this, err),
      );
    } else {
      this.service.complete(this, result);
    }
  }
}

/** Check, whichever way the call arrived: the decoded request and the call's metadata in, the encoded CheckResponse out, always. */
export interface CheckHandler {
  check(request: CheckInput | DecodeFailure, metadata: MetadataReader, answer: (response: Buffer) => void): void;
}

class AuthorizationHandler implements CheckHandler {
  private readonly sinks: readonly DecisionSink[];

  constructor(readonly deps: AuthorizationServiceDeps) {
    this.sinks = deps.sinks ?? [];
  }

  check(request: CheckInput | DecodeFailure, metadata: MetadataReader, answer: (response: Buffer) => void): void {
    const started = performance.now();
    let pending: CheckCall | undefined;
    try {
      const span = this.deps.tracing?.begin(metadata) ?? NO_SPAN;
      pending = new CheckCall(this, answer, started, span, request);
      const admitted = this.deps.admit?.() ?? true;
      if (admitted instanceof Promise) {
        const p = pending;
        admitted.then(
          (ok) => p.settle(p.decideAdmitted(ok)),
          (err: unknown) => this.failClosed(p, err),
        );
      } else {
        pending.settle(pending.decideAdmitted(admitted));
      }
    } catch (err) {
      this.failClosed(pending ?? new CheckCall(this, answer, started, NO_SPAN, request), err);
    }
  }

  complete(call: CheckCall, decision: Decision): void {
    const { logger, tracing } = this.deps;
    let response: Buffer;
    try {
      response = encodeCheckResponse(decision);
    } catch (err) {
      logger.error("encoding the CheckResponse failed; denying", { error: err, decision_id: decision.decisionId });
      response = FALLBACK_DENY;
    }
    call.answer(response);
    try {
      const latencyMs = performance.now() - call.started;
      const span = call.span;
      if (span !== undefined) tracing?.end(span, decision);
      const context: DecisionContext = span === undefined ? { latencyMs } : { latencyMs, traceId: span.traceId, spanId: span.spanId };
      for (const sink of this.sinks) sink.record(decision, context);
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
          trace_id: span?.traceId,
        });
      }
    } catch (err) {
      logger.error("recording a decision failed", { error: err, decision_id: decision.decisionId });
    }
  }

  /** An exception on the way: still a deny with a decision id, still recorded; only if even that fails, the fixed answer. */
  failClosed(call: CheckCall, err: unknown): void {
    this.deps.logger.error("Check failed; denying", { error: err });
    try {
      const detail = err instanceof Error ? err.message : String(err);
      this.complete(call, this.deps.pipeline.denyWithoutDeciding("internal_error", `internal error while deciding: ${detail}`));
    } catch {
      call.answer(FALLBACK_DENY);
    }
  }
}

export function authorizationImplementation(deps: AuthorizationServiceDeps): CheckHandler {
  return new AuthorizationHandler(deps);
}
