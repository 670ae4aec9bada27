// One request the test policy (support/policies.ts) allows — research calls
// db for alice through orchestrator → research — and the policy edit that
// turns it into a denial: the research → db hop rule removed. The reload,
// CLI, admin and worker suites use them to see a policy change take effect.

import { fromBinary, toBinary } from "@bufbuild/protobuf";
import { Client, credentials, Metadata, type ServiceError } from "@grpc/grpc-js";
import { CheckRequestSchema, CheckResponseSchema, type CheckRequest, type CheckResponse } from "../../src/gen/envoy/service/auth/v3/external_auth_pb.js";
import { checkRequest, outcome } from "./check-client.js";
import { spiffe } from "./pki.js";
import type { HopRuleDocument } from "../../src/core/policy/model.js";
import { HOP, TEST_HOPS, testPolicyYaml, type TestPolicyOptions } from "./policies.js";

export const PERSON = "alice@example.com";

/** The test policy without its research → db rule: research calling db becomes hop_not_allowed. */
export function policyWithoutResearchToDb(options: TestPolicyOptions = {}): string {
  return testPolicyYaml({ ...options, hops: TEST_HOPS.filter((hop) => hop !== HOP.researchToDb) });
}

/** The test policy with a misspelt key in the research → db rule, hops[1] (unknown keys are errors). */
export function policyWithUnknownKey(options: TestPolicyOptions = {}): string {
  const { methods, ...rule } = HOP.researchToDb;
  const misspelt = { ...rule, methds: methods } as unknown as HopRuleDocument;
  return testPolicyYaml({ ...options, hops: TEST_HOPS.map((hop) => (hop === HOP.researchToDb ? misspelt : hop)) });
}

/**
 * research → db, GET /query, caller proven by source.principal (as under
 * Istio, so no certificate is needed). `extraHeaders` adds e.g. a token.
 */
export function researchCallsDb(extraHeaders: Record<string, string> = {}): CheckRequest {
  return checkRequest({
    principal: spiffe("research"),
    callee: "db",
    method: "GET",
    path: "/query",
    headers: {
      "x-agent-subject": spiffe("research"),
      "x-agent-on-behalf-of": PERSON,
      "x-agent-delegation-chain": `${spiffe("orchestrator")},${spiffe("research")}`,
      ...extraHeaders,
    },
  });
}

/** What the helpers here need of a Check client (support/check-client.ts's CheckClient, or the one below). */
export interface Checker {
  check(request: CheckRequest): Promise<CheckResponse>;
}

/**
 * A Check client on a TCP connection of its own. grpc-js otherwise shares one
 * connection among all clients of the same address, so N CheckClients are
 * one connection, and with --workers one worker would answer them all.
 */
export class OwnConnectionCheckClient implements Checker {
  private readonly client: Client;

  constructor(address: string) {
    this.client = new Client(address, credentials.createInsecure(), { "grpc.use_local_subchannel_pool": 1 });
  }

  check(request: CheckRequest): Promise<CheckResponse> {
    return new Promise((resolve, reject) => {
      this.client.makeUnaryRequest(
        "/envoy.service.auth.v3.Authorization/Check",
        (r: CheckRequest) => Buffer.from(toBinary(CheckRequestSchema, r)),
        (b: Buffer) => fromBinary(CheckResponseSchema, b),
        request,
        new Metadata(),
        { deadline: Date.now() + 10_000 },
        (err: ServiceError | null, response?: CheckResponse) => (err ? reject(err) : resolve(response!)),
      );
    });
  }

  close(): void {
    this.client.close();
  }
}

/** "allow", or the deny reason. */
export async function decisionOf(client: Checker, request: CheckRequest = researchCallsDb()): Promise<string> {
  const o = outcome(await client.check(request));
  return o.code === 0 ? "allow" : (o.reason ?? `status ${o.code}`);
}

/** A compact JWS that parses (typ, alg, kid) but whose signature no key verifies: enough to make the verifier fetch keys. */
export function unverifiableToken(kid = "test-kid"): string {
  const b64 = (value: unknown) => Buffer.from(JSON.stringify(value)).toString("base64url");
  return `${b64({ alg: "ES256", kid, typ: "agent-delegation+jwt" })}.${b64({ sub: PERSON })}.${Buffer.alloc(64, 1).toString("base64url")}`;
}
