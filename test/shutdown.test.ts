// SPEC 7, graceful shutdown of the in-process service: a Check in flight when
// shutdown begins still gets its CheckResponse; health turns NOT_SERVING as
// soon as shutdown begins; a new connection afterwards is refused. And SPEC 2/4:
// a running server with no policy answers policy_unavailable (503, 14), never
// a gRPC error.

import { rm } from "node:fs/promises";
import { afterEach, describe, expect, it } from "vitest";
import { Client, credentials, Metadata, status as GrpcStatus, type ClientReadableStream, type ServiceError } from "@grpc/grpc-js";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { startHopwarden, type Hopwarden } from "../src/main.js";
import { silentLogger } from "../src/adapters/logging/logger.js";
import { authorizationImplementation } from "../src/adapters/grpc/authorization-service.js";
import { startCheckServer, type RunningCheckServer } from "../src/adapters/grpc/check-server.js";
import { ServingStatus } from "../src/adapters/grpc/health-service.js";
import { CachingCertificateParser } from "../src/adapters/x509/certificate-parser.js";
import { UlidGenerator } from "../src/adapters/ids/ulid.js";
import { CheckPipeline } from "../src/core/decision/check-pipeline.js";
import type { DecisionSink, DelegationTokenVerifier } from "../src/core/ports.js";
import type { Decision } from "../src/core/decision/decision.js";
import type { TokenCheckRequest, TokenCheckResult } from "../src/core/decision/token-check.js";
import { CheckRequestSchema } from "../src/gen/envoy/service/auth/v3/external_auth_pb.js";
import { HealthCheckRequestSchema, HealthCheckResponseSchema, type HealthCheckResponse } from "../src/gen/grpc/health/v1/health_pb.js";
import { CheckClient, outcome } from "./support/check-client.js";
import { writeTestPolicy, type TokensSpec } from "./support/policies.js";
import { PERSON, researchCallsDb, unverifiableToken } from "./support/hop-requests.js";
import { systemClock } from "../src/adapters/clock/system-clock.js";

const TOKENS: TokensSpec = { issuer: "https://sts.example.org", jwks: "jwks.json", required: false };

/** A verifier that holds every token until the test releases it, so a Check stays in flight. */
class HeldVerifier implements DelegationTokenVerifier {
  private release: () => void = () => undefined;
  private readonly released = new Promise<void>((resolve) => (this.release = resolve));
  private enteredResolve: () => void = () => undefined;
  /** Resolves when the first Check reaches the token phase. */
  readonly entered = new Promise<void>((resolve) => (this.enteredResolve = resolve));

  async verify(request: TokenCheckRequest): Promise<TokenCheckResult> {
    this.enteredResolve();
    await this.released;
    return { ok: true, jti: "held-1", scope: [], issuer: request.policy.issuer, tokenSha256: "held", prev: undefined };
  }

  finish(): void {
    this.release();
  }
}

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function startWithHeldTokens(sinks: DecisionSink[] = []): Promise<{ hopwarden: Hopwarden; verifier: HeldVerifier }> {
  const verifier = new HeldVerifier();
  const { dir, file } = await writeTestPolicy({ tokens: TOKENS });
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  const hopwarden = await startHopwarden({ policyFile: file, listen: "127.0.0.1:0", logger: silentLogger, tracing: false, watchPolicy: false, tokens: verifier, sinks });
  cleanups.push(async () => {
    verifier.finish();
    await hopwarden.shutdown(1000);
  });
  return { hopwarden, verifier };
}

function client(address: string): CheckClient {
  const c = new CheckClient(address);
  cleanups.push(() => c.close());
  return c;
}

/** grpc.health.v1.Health/Watch, collecting every status until the stream ends. */
function watchHealth(address: string): { statuses: ServingStatus[]; ended: Promise<void>; first: Promise<void> } {
  const raw = new Client(address, credentials.createInsecure());
  cleanups.push(() => raw.close());
  const statuses: ServingStatus[] = [];
  const stream: ClientReadableStream<HealthCheckResponse> = raw.makeServerStreamRequest(
    "/grpc.health.v1.Health/Watch",
    (m: ReturnType<typeof create<typeof HealthCheckRequestSchema>>) => Buffer.from(toBinary(HealthCheckRequestSchema, m)),
    (b: Buffer) => fromBinary(HealthCheckResponseSchema, b),
    create(HealthCheckRequestSchema, { service: "" }),
    new Metadata(),
    { deadline: Date.now() + 10_000 },
  );
  let firstSeen: () => void = () => undefined;
  const first = new Promise<void>((resolve) => (firstSeen = resolve));
  stream.on("data", (r: HealthCheckResponse) => {
    statuses.push(r.status);
    firstSeen();
  });
  const ended = new Promise<void>((resolve) => {
    stream.on("end", () => resolve());
    stream.on("error", () => resolve());
  });
  return { statuses, ended, first };
}

describe("graceful shutdown", () => {
  it("lets a Check in flight finish with its CheckResponse", async () => {
    const { hopwarden, verifier } = await startWithHeldTokens();
    const c = client(hopwarden.grpcAddress);
    const direct = hopwarden.check.directChecks()!;
    const inFlight = c.check(researchCallsDb({ "x-agent-delegation-token": unverifiableToken() }));
    await verifier.entered;
    // The drain below is the direct route's (direct-unary.ts), not only grpc-js's.
    expect(hopwarden.check.directChecks()).toBe(direct + 1);

    const stopped = hopwarden.shutdown(10_000);
    let stoppedYet = false;
    void stopped.then(() => (stoppedYet = true));
    await new Promise((r) => setTimeout(r, 200));
    expect(stoppedYet, "shutdown must wait for the Check in flight").toBe(false);

    verifier.finish();
    const response = await inFlight;
    const o = outcome(response);
    expect(o.code).toBe(0);
    expect(o.headers["x-agent-verified-on-behalf-of"]).toBe(PERSON);
    await stopped;
  });

  it("still decides and records a Check whose client gave up before the answer", async () => {
    const recorded: Decision[] = [];
    const { hopwarden, verifier } = await startWithHeldTokens([{ record: (d) => recorded.push(d) }]);
    const raw = new Client(hopwarden.grpcAddress, credentials.createInsecure());
    cleanups.push(() => raw.close());
    const gaveUp = new Promise<ServiceError | null>((resolve) => {
      raw.makeUnaryRequest(
        "/envoy.service.auth.v3.Authorization/Check",
        (m: ReturnType<typeof researchCallsDb>) => Buffer.from(toBinary(CheckRequestSchema, m)),
        (b: Buffer) => b,
        researchCallsDb({ "x-agent-delegation-token": unverifiableToken() }),
        new Metadata(),
        { deadline: Date.now() + 300 },
        (err: ServiceError | null) => resolve(err),
      );
    });
    await verifier.entered;
    expect((await gaveUp)?.code).toBe(GrpcStatus.DEADLINE_EXCEEDED);
    expect(recorded).toHaveLength(0);
    verifier.finish();
    await expect.poll(() => recorded.length).toBe(1);
    expect(recorded[0]).toMatchObject({ allowed: true, onBehalfOf: PERSON });
    expect(hopwarden.check.directChecks()).toBe(1);
  });

  it("reports NOT_SERVING as soon as shutdown begins, while a Check drains", async () => {
    const { hopwarden, verifier } = await startWithHeldTokens();
    const c = client(hopwarden.grpcAddress);
    expect((await c.health()).status).toBe(ServingStatus.SERVING);
    const watch = watchHealth(hopwarden.grpcAddress);
    await watch.first;
    const inFlight = c.check(researchCallsDb({ "x-agent-delegation-token": unverifiableToken() }));
    await verifier.entered;

    const stopped = hopwarden.shutdown(10_000);
    // The Check is still held: this is the drain. Health says NOT_SERVING to a watcher and to the process.
    await watch.ended;
    expect(watch.statuses).toEqual([ServingStatus.SERVING, ServingStatus.NOT_SERVING]);
    expect(hopwarden.check.health.get("")).toBe(ServingStatus.NOT_SERVING);
    expect(hopwarden.check.health.get("envoy.service.auth.v3.Authorization")).toBe(ServingStatus.NOT_SERVING);
    // A health probe during the drain either hears NOT_SERVING or is refused; it never hears SERVING.
    const probe = await c.health().then(
      (r) => r.status,
      (err: ServiceError) => err.code,
    );
    expect([ServingStatus.NOT_SERVING, GrpcStatus.UNAVAILABLE]).toContain(probe);

    verifier.finish();
    expect(outcome(await inFlight).code).toBe(0);
    await stopped;
  });

  it("refuses a new connection after shutdown", async () => {
    const { hopwarden } = await startWithHeldTokens();
    const before = client(hopwarden.grpcAddress);
    expect(outcome(await before.check(researchCallsDb())).code).toBe(0);
    await hopwarden.shutdown(2000);

    const after = client(hopwarden.grpcAddress);
    const error = await after.check(researchCallsDb()).then(
      () => undefined,
      (err: ServiceError) => err,
    );
    expect(error?.code).toBe(GrpcStatus.UNAVAILABLE);
  });

  it("forces the rest closed after the deadline", async () => {
    const { hopwarden, verifier } = await startWithHeldTokens();
    const c = client(hopwarden.grpcAddress);
    const inFlight = c.check(researchCallsDb({ "x-agent-delegation-token": unverifiableToken() })).then(
      () => "answered",
      (err: ServiceError) => err.code,
    );
    await verifier.entered;
    const started = Date.now();
    await hopwarden.shutdown(300);
    expect(Date.now() - started).toBeLessThan(2000);
    expect(await inFlight).not.toBe("answered");
  });
});

describe("policy_unavailable", () => {
  let server: RunningCheckServer | undefined;
  afterEach(async () => {
    await server?.shutdown(1000);
    server = undefined;
  });

  it("answers a Check with policy_unavailable (503, UNAVAILABLE) when no policy is loaded", async () => {
    const pipeline = new CheckPipeline({
      policies: { current: () => undefined },
      certificates: new CachingCertificateParser(),
      clock: systemClock,
      ids: new UlidGenerator(),
    });
    server = await startCheckServer({ listen: "127.0.0.1:0", headersRead: pipeline.headersRead, authorization: authorizationImplementation({ pipeline, logger: silentLogger }) });
    const c = client(server.address);
    const o = outcome(await c.check(researchCallsDb()));
    expect(o.reason).toBe("policy_unavailable");
    expect(o.http).toBe(503);
    expect(o.code).toBe(GrpcStatus.UNAVAILABLE);
    expect(o.headers["content-type"]).toBe("application/json");
    expect(o.body).toMatchObject({ error: "policy_unavailable" });
    expect(o.body?.["decision_id"]).toMatch(/^[0-9A-HJKMNP-TV-Z]{26}$/);
  });
});
