// Closed-loop Check load for the under-load suites: N TCP connections (each
// its own grpc-js subchannel, so that --workers sees several), each with M
// calls in flight, every call recorded with when it started and ended and
// what came back: the decision (id, policy version, allow or reason) or the
// gRPC error. Requests are encoded once; the loop picks them by index.

import { fromBinary, toBinary } from "@bufbuild/protobuf";
import { Client, credentials, Metadata, type ServiceError } from "@grpc/grpc-js";
import { performance } from "node:perf_hooks";
import { CheckRequestSchema, CheckResponseSchema, type CheckRequest, type CheckResponse } from "../../src/gen/envoy/service/auth/v3/external_auth_pb.js";

export interface AnsweredCall {
  readonly kind: "answered";
  readonly decisionId: string;
  readonly policyVersion: string;
  /** "allow", or the denial reason. */
  readonly decision: string;
}

export interface FailedCall {
  readonly kind: "failed";
  readonly code: number;
  readonly details: string;
}

export interface CallRecord {
  readonly connection: number;
  /** Index of the request in the load's request list. */
  readonly request: number;
  /** performance.now() when the call was made and when its callback ran. */
  readonly startedAt: number;
  readonly endedAt: number;
  /** LoadOptions.before() just before the call, LoadOptions.after() just after its answer (e.g. reload generations). */
  readonly before: number;
  readonly after: number;
  readonly outcome: AnsweredCall | FailedCall;
}

/** Reads what a CheckResponse decided. */
export function answeredCall(response: CheckResponse): AnsweredCall {
  const metadata = response.dynamicMetadata ?? {};
  const text = (key: string) => {
    const value = metadata[key];
    return typeof value === "string" ? value : "";
  };
  const decision = response.status?.code === 0 && response.httpResponse.case === "okResponse" ? "allow" : text("reason") || `status ${response.status?.code ?? "?"}`;
  return { kind: "answered", decisionId: text("decision_id"), policyVersion: text("policy_version"), decision };
}

export interface LoadOptions {
  readonly address: string;
  readonly connections: number;
  readonly inFlightPerConnection: number;
  readonly requests: readonly CheckRequest[];
  /** Sampled just before each call and just after each answer (CallRecord.before/after); default 0. */
  readonly before?: () => number;
  readonly after?: () => number;
  /** Per-call deadline (default 10 s). */
  readonly deadlineMs?: number;
  /** A connection makes no new call after one of its calls failed (a server that stopped): no tight loop of refusals. */
  readonly stopConnectionOnFailure?: boolean;
}

export interface RunningLoad {
  readonly calls: CallRecord[];
  /** Stops making new calls; resolves when every call made has ended. */
  stop(): Promise<void>;
  /** Resolves once every loop has stopped by itself or after stop(). */
  readonly done: Promise<void>;
  close(): void;
}

export function startCheckLoad(options: LoadOptions): RunningLoad {
  const encoded = options.requests.map((r) => Buffer.from(toBinary(CheckRequestSchema, r)));
  const sampleBefore = options.before ?? (() => 0);
  const sampleAfter = options.after ?? (() => 0);
  const deadlineMs = options.deadlineMs ?? 10_000;
  const calls: CallRecord[] = [];
  const clients: Client[] = [];
  let stopping = false;
  let next = 0;
  const failedConnections = new Set<number>();

  const call = (client: Client, connection: number): Promise<void> =>
    new Promise((resolve) => {
      const request = next++ % encoded.length;
      const before = sampleBefore();
      const startedAt = performance.now();
      client.makeUnaryRequest(
        "/envoy.service.auth.v3.Authorization/Check",
        (b: Buffer) => b,
        (b: Buffer) => fromBinary(CheckResponseSchema, b),
        encoded[request]!,
        new Metadata(),
        { deadline: Date.now() + deadlineMs },
        (err: ServiceError | null, response?: CheckResponse) => {
          const endedAt = performance.now();
          const outcome: AnsweredCall | FailedCall = err ? { kind: "failed", code: err.code, details: err.details } : answeredCall(response!);
          calls.push({ connection, request, startedAt, endedAt, before, after: sampleAfter(), outcome });
          if (err) failedConnections.add(connection);
          resolve();
        },
      );
    });

  const loops: Promise<void>[] = [];
  for (let c = 0; c < options.connections; c++) {
    // A subchannel pool per client: a TCP connection of its own.
    const client = new Client(options.address, credentials.createInsecure(), { "grpc.use_local_subchannel_pool": 1 });
    clients.push(client);
    for (let i = 0; i < options.inFlightPerConnection; i++) {
      loops.push(
        (async () => {
          while (!stopping && !(options.stopConnectionOnFailure === true && failedConnections.has(c))) await call(client, c);
        })(),
      );
    }
  }
  const done = Promise.all(loops).then(() => undefined);
  return {
    calls,
    done,
    stop: async () => {
      stopping = true;
      await done;
    },
    close: () => {
      for (const c of clients) c.close();
    },
  };
}
