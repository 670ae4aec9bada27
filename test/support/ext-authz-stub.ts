// A stand-in ext_authz server (envoy.service.auth.v3.Authorization/Check plus
// grpc.health.v1, which the front proxy's cluster health-checks): it records
// every CheckRequest exactly as it arrived (decoded with the generated
// schemas, so nothing of hopwarden's decoder is involved) and allows it. The
// suites use it to pin what Envoy really sends, e.g. the MCP filter's
// metadata_context, independently of how hopwarden reads it.

import { create } from "@bufbuild/protobuf";
import { Server, ServerCredentials, status as GrpcStatus, type sendUnaryData, type ServerUnaryCall } from "@grpc/grpc-js";
import { CheckRequestSchema, CheckResponseSchema, type CheckRequest, type CheckResponse } from "../../src/gen/envoy/service/auth/v3/external_auth_pb.js";
import { HealthStatus, healthServiceDefinition } from "../../src/adapters/grpc/health-service.js";
import { DecodeFailure, protobufMethod } from "../../src/adapters/grpc/protobuf-method.js";

export interface ExtAuthzStub {
  readonly port: number;
  /** Every CheckRequest received, oldest first. */
  readonly requests: readonly CheckRequest[];
  close(): Promise<void>;
}

/** Starts the stub on 127.0.0.1 (a free port); every Check is answered OK. */
export async function startExtAuthzStub(): Promise<ExtAuthzStub> {
  const requests: CheckRequest[] = [];
  const server = new Server();
  server.addService(
    { Check: protobufMethod("/envoy.service.auth.v3.Authorization/Check", CheckRequestSchema, CheckResponseSchema) },
    {
      Check: (call: ServerUnaryCall<CheckRequest | DecodeFailure, CheckResponse>, callback: sendUnaryData<CheckResponse>) => {
        if (call.request instanceof DecodeFailure) {
          callback({ code: GrpcStatus.INVALID_ARGUMENT, details: call.request.problem });
          return;
        }
        requests.push(call.request);
        callback(null, create(CheckResponseSchema, { status: { code: 0 }, httpResponse: { case: "okResponse", value: {} } }));
      },
    },
  );
  server.addService(healthServiceDefinition, new HealthStatus(["envoy.service.auth.v3.Authorization"]).implementation());
  const port = await new Promise<number>((ok, fail) => server.bindAsync("127.0.0.1:0", ServerCredentials.createInsecure(), (err, bound) => (err ? fail(err) : ok(bound))));
  return {
    port,
    requests,
    close: () =>
      new Promise<void>((ok) => {
        server.tryShutdown(() => ok());
        setTimeout(() => {
          server.forceShutdown();
          ok();
        }, 1_000).unref();
      }),
  };
}
