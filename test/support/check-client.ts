// A real gRPC client for hopwarden's Check (grpc-js with the protobuf-es
// codecs from src/gen), plus builders for the CheckRequests Envoy sends.

import { create, fromBinary, toBinary, type MessageInitShape } from "@bufbuild/protobuf";
import { Client, credentials, Metadata, type ChannelCredentials, type ChannelOptions, type ServiceError } from "@grpc/grpc-js";
import { CheckRequestSchema, CheckResponseSchema, type CheckRequest, type CheckResponse } from "../../src/gen/envoy/service/auth/v3/external_auth_pb.js";
import { HealthCheckRequestSchema, HealthCheckResponseSchema, type HealthCheckResponse } from "../../src/gen/grpc/health/v1/health_pb.js";

export class CheckClient {
  private readonly client: Client;

  /** Plaintext unless `channelCredentials` say otherwise (credentials.createSsl for a TLS Check port). */
  constructor(address: string, channelCredentials: ChannelCredentials = credentials.createInsecure(), options: ChannelOptions = {}) {
    this.client = new Client(address, channelCredentials, options);
  }

  check(request: CheckRequest, metadata: Record<string, string> = {}): Promise<CheckResponse> {
    return this.raw(Buffer.from(toBinary(CheckRequestSchema, request)), metadata);
  }

  /** Sends bytes as they are: for requests that are not valid protobuf. */
  raw(bytes: Buffer, metadata: Record<string, string> = {}): Promise<CheckResponse> {
    const md = new Metadata();
    for (const [k, v] of Object.entries(metadata)) md.set(k, v);
    return new Promise((resolve, reject) => {
      this.client.makeUnaryRequest(
        "/envoy.service.auth.v3.Authorization/Check",
        (b: Buffer) => b,
        (b: Buffer) => fromBinary(CheckResponseSchema, b),
        bytes,
        md,
        { deadline: Date.now() + 10_000 },
        (err: ServiceError | null, response?: CheckResponse) => (err ? reject(err) : resolve(response!)),
      );
    });
  }

  health(service = ""): Promise<HealthCheckResponse> {
    return new Promise((resolve, reject) => {
      this.client.makeUnaryRequest(
        "/grpc.health.v1.Health/Check",
        (m: ReturnType<typeof create<typeof HealthCheckRequestSchema>>) => Buffer.from(toBinary(HealthCheckRequestSchema, m)),
        (b: Buffer) => fromBinary(HealthCheckResponseSchema, b),
        create(HealthCheckRequestSchema, { service }),
        new Metadata(),
        { deadline: Date.now() + 5_000 },
        (err: ServiceError | null, response?: HealthCheckResponse) => (err ? reject(err) : resolve(response!)),
      );
    });
  }

  close(): void {
    this.client.close();
  }
}

export interface RequestSpec {
  readonly certificate?: string;
  readonly principal?: string;
  readonly destinationPrincipal?: string;
  readonly callee?: string;
  readonly headers?: Record<string, string>;
  readonly method?: string;
  readonly path?: string;
}

export function checkRequest(spec: RequestSpec): CheckRequest {
  const init: MessageInitShape<typeof CheckRequestSchema> = {
    attributes: {
      source: { certificate: spec.certificate ?? "", principal: spec.principal ?? "" },
      destination: { principal: spec.destinationPrincipal ?? "" },
      contextExtensions: spec.callee === undefined ? {} : { agent: spec.callee },
      request: { http: { method: spec.method ?? "GET", path: spec.path ?? "/", headers: spec.headers ?? {}, protocol: "HTTP/1.1" } },
    },
  };
  return create(CheckRequestSchema, init);
}

/** The denial fields a test asserts on, read back from a CheckResponse. */
export function outcome(response: CheckResponse): { code: number; reason: string | undefined; http: number | undefined; body: Record<string, unknown> | undefined; headers: Record<string, string> } {
  const headers: Record<string, string> = {};
  if (response.httpResponse.case === "okResponse") {
    for (const h of response.httpResponse.value.headers) if (h.header) headers[h.header.key] = h.header.value;
    return { code: response.status?.code ?? -1, reason: undefined, http: undefined, body: undefined, headers };
  }
  if (response.httpResponse.case === "deniedResponse") {
    const denied = response.httpResponse.value;
    for (const h of denied.headers) if (h.header) headers[h.header.key] = h.header.value;
    return { code: response.status?.code ?? -1, reason: headers["x-authz-reason"], http: denied.status?.code, body: JSON.parse(denied.body) as Record<string, unknown>, headers };
  }
  return { code: response.status?.code ?? -1, reason: undefined, http: undefined, body: undefined, headers };
}
