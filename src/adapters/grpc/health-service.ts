// grpc.health.v1.Health: SERVING while the service decides, NOT_SERVING once
// shutdown begins (so Envoy's and Kubernetes' probes stop sending traffic
// while in-flight Checks finish). Watch streams every change.

import { create } from "@bufbuild/protobuf";
import { status as GrpcStatus, type ServerUnaryCall, type ServerWritableStream, type ServiceDefinition, type sendUnaryData, type UntypedServiceImplementation } from "@grpc/grpc-js";
import {
  HealthCheckRequestSchema,
  HealthCheckResponse_ServingStatus as ServingStatus,
  HealthCheckResponseSchema,
  type HealthCheckRequest,
  type HealthCheckResponse,
} from "../../gen/grpc/health/v1/health_pb.js";
import { DecodeFailure, protobufMethod } from "./protobuf-method.js";

export { ServingStatus };

export const healthServiceDefinition: ServiceDefinition = {
  Check: protobufMethod("/grpc.health.v1.Health/Check", HealthCheckRequestSchema, HealthCheckResponseSchema),
  Watch: protobufMethod("/grpc.health.v1.Health/Watch", HealthCheckRequestSchema, HealthCheckResponseSchema, { responseStream: true }),
};

export class HealthStatus {
  private readonly statuses = new Map<string, ServingStatus>();
  private readonly watchers = new Set<{ service: string; send: (s: ServingStatus) => void; end: () => void }>();

  constructor(services: readonly string[]) {
    for (const s of ["", ...services]) this.statuses.set(s, ServingStatus.SERVING);
  }

  set(status: ServingStatus): void {
    for (const key of this.statuses.keys()) this.statuses.set(key, status);
    for (const w of this.watchers) w.send(status);
  }

  get(service: string): ServingStatus | undefined {
    return this.statuses.get(service);
  }

  implementation(): UntypedServiceImplementation {
    return {
      Check: (call: ServerUnaryCall<HealthCheckRequest | DecodeFailure, HealthCheckResponse>, callback: sendUnaryData<HealthCheckResponse>) => {
        if (call.request instanceof DecodeFailure) {
          callback({ code: GrpcStatus.INVALID_ARGUMENT, details: `HealthCheckRequest does not decode: ${call.request.problem}` });
          return;
        }
        const status = this.statuses.get(call.request.service);
        if (status === undefined) {
          callback({ code: GrpcStatus.NOT_FOUND, details: `unknown service ${JSON.stringify(call.request.service)}` });
          return;
        }
        callback(null, create(HealthCheckResponseSchema, { status }));
      },
      Watch: (call: ServerWritableStream<HealthCheckRequest | DecodeFailure, HealthCheckResponse>) => {
        const service = call.request instanceof DecodeFailure ? "\u0000" : call.request.service;
        const send = (status: ServingStatus) => call.write(create(HealthCheckResponseSchema, { status }));
        send(this.statuses.get(service) ?? ServingStatus.SERVICE_UNKNOWN);
        const watcher = { service, send: (s: ServingStatus) => (this.statuses.has(service) ? send(s) : undefined), end: () => call.end() };
        this.watchers.add(watcher);
        call.on("cancelled", () => this.watchers.delete(watcher));
        call.on("close", () => this.watchers.delete(watcher));
      },
    };
  }

  /** Ends open Watch streams so that a graceful shutdown is not held open by them. */
  closeWatchers(): void {
    for (const w of this.watchers) w.end();
    this.watchers.clear();
  }
}
