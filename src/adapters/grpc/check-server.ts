// The gRPC server: Check, grpc.health.v1 and reflection on one port. Shutdown
// is graceful: health turns NOT_SERVING, the server stops accepting, in-flight
// Checks finish, and only a deadline forces the rest closed. A Check of the
// common shape is answered straight from its HTTP/2 stream (direct-unary.ts);
// grpc-js serves everything else, Check included, with the same handler.

import { Server, ServerCredentials, type sendUnaryData, type ServerUnaryCall } from "@grpc/grpc-js";
import type { DescFile } from "@bufbuild/protobuf";
import { file_envoy_service_auth_v3_external_auth } from "../../gen/envoy/service/auth/v3/external_auth_pb.js";
import { file_grpc_health_v1_health } from "../../gen/grpc/health/v1/health_pb.js";
import { AUTHORIZATION_SERVICE, authorizationServiceDefinition, type CheckHandler } from "./authorization-service.js";
import { answerDirectly } from "./direct-unary.js";
import type { DecodeFailure } from "./protobuf-method.js";
import type { CheckInput } from "../../core/decision/check-input.js";
import { HealthStatus, healthServiceDefinition, ServingStatus } from "./health-service.js";
import { reflectionFiles, reflectionImplementation, reflectionV1AlphaDefinition, reflectionV1Definition } from "./reflection-service.js";
import { ListenAddressError, ListenError } from "../net/listen-error.js";

export interface CheckServerOptions {
  /** host:port; port 0 picks a free one. */
  readonly listen: string;
  readonly authorization: CheckHandler;
  /** The request headers Check reads; the decoder keeps only these. */
  readonly headersRead: ReadonlySet<string>;
  /** The metadata_context namespace read into CheckInput.mcpMetadata (SPEC 8); none when absent. */
  readonly mcpNamespace?: string;
  readonly credentials?: ServerCredentials;
}

export interface RunningCheckServer {
  /** host:port actually bound. */
  readonly address: string;
  readonly port: number;
  readonly health: HealthStatus;
  /** Checks answered straight from the HTTP/2 stream; undefined when this grpc-js cannot be hooked (all go through grpc-js). */
  directChecks(): number | undefined;
  /** Graceful: NOT_SERVING, stop accepting, drain in-flight calls; force after `deadlineMs`. */
  shutdown(deadlineMs?: number): Promise<void>;
}

/** grpc.max_receive_message_length: a CheckRequest is a few KiB; Envoy's own default for a gRPC message is 4 MiB too. */
const MAX_CHECK_REQUEST_BYTES = 4 * 1024 * 1024;

const SERVICE_NAMES = [AUTHORIZATION_SERVICE, "grpc.health.v1.Health", "grpc.reflection.v1.ServerReflection", "grpc.reflection.v1alpha.ServerReflection"];
const DESCRIBED_FILES: readonly DescFile[] = [file_envoy_service_auth_v3_external_auth, file_grpc_health_v1_health, ...reflectionFiles];

export function splitHostPort(listen: string): { host: string; port: number } {
  const match = /^(\[[^\]]+\]|[^:]+):(\d{1,5})$/.exec(listen);
  const port = match ? Number(match[2]) : NaN;
  if (!match || port > 65535) throw new ListenAddressError(`listen address ${JSON.stringify(listen)} must be host:port (e.g. 0.0.0.0:9191)`);
  return { host: match[1]!, port };
}

export async function startCheckServer(options: CheckServerOptions): Promise<RunningCheckServer> {
  const { host } = splitHostPort(options.listen);
  const server = new Server({
    "grpc.max_receive_message_length": MAX_CHECK_REQUEST_BYTES,
    "grpc.keepalive_permit_without_calls": 1,
    // channelz keeps per-call counters and timestamps that nothing here reads; Check pays for them on every call.
    // Off is also what lets the direct route hook grpc-js's stream handler.
    "grpc.enable_channelz": 0,
  });
  const health = new HealthStatus([AUTHORIZATION_SERVICE]);
  const definition = authorizationServiceDefinition(options.headersRead, options.mcpNamespace);
  const handler = options.authorization;
  const direct = answerDirectly(server, {
    path: definition.Check.path,
    maxMessageBytes: MAX_CHECK_REQUEST_BYTES,
    decode: (message) => definition.Check.requestDeserialize(message),
    handle: (request, metadata, answer) => handler.check(request, metadata, answer),
  });
  server.addService(definition, {
    Check: (call: ServerUnaryCall<CheckInput | DecodeFailure, Buffer>, callback: sendUnaryData<Buffer>) => handler.check(call.request, call.metadata, (response) => callback(null, response)),
  });
  server.addService(healthServiceDefinition, health.implementation());
  const reflection = reflectionImplementation(SERVICE_NAMES, DESCRIBED_FILES);
  server.addService(reflectionV1Definition, reflection);
  server.addService(reflectionV1AlphaDefinition, reflection);
  const port = await new Promise<number>((resolve, reject) => {
    server.bindAsync(options.listen, options.credentials ?? ServerCredentials.createInsecure(), (err, bound) => (err ? reject(new ListenError("the gRPC port", options.listen, err)) : resolve(bound)));
  });
  let shuttingDown: Promise<void> | undefined;
  return {
    address: `${host}:${port}`,
    port,
    health,
    directChecks: () => direct?.served,
    shutdown(deadlineMs = 10_000) {
      shuttingDown ??= new Promise<void>((resolve) => {
        health.set(ServingStatus.NOT_SERVING);
        health.closeWatchers();
        const force = setTimeout(() => {
          server.forceShutdown();
          resolve();
        }, deadlineMs);
        force.unref();
        server.tryShutdown(() => {
          clearTimeout(force);
          resolve();
        });
      });
      return shuttingDown;
    },
  };
}
