// The gRPC fuzz: hopwarden started in-process (startHopwarden, 127.0.0.1:0,
// with the signed audit log and decision spans on), fed well-formed
// CheckRequests, protobuf-mutated ones and raw random bytes over several
// connections at once. Every call must get a CheckResponse that is
// consistent (SPEC 4's status table, body, headers, metadata), within a
// deadline; none may allow what the reference decider denies (for mutated
// bytes the reference reads them with protobuf-es, which shares no code with
// hopwarden's own wire decoder). At the end the server must still answer a
// known-good request, and the audit log must verify with one record per Check.

import { generateKeyPairSync } from "node:crypto";
import { readdir } from "node:fs/promises";
import { join } from "node:path";
import fc from "fast-check";
import { configureTextEncoding, getTextEncoding } from "@bufbuild/protobuf/wire";
import { create, fromBinary, ScalarType, toBinary, type DescField, type DescMessage } from "@bufbuild/protobuf";
import { Client, credentials, Metadata, type ServiceError } from "@grpc/grpc-js";
import { CheckRequestSchema, CheckResponseSchema, type CheckRequest, type CheckResponse } from "../../src/gen/envoy/service/auth/v3/external_auth_pb.js";
import { HealthCheckRequestSchema, HealthCheckResponseSchema } from "../../src/gen/grpc/health/v1/health_pb.js";
import { startHopwarden, type Hopwarden } from "../../src/main.js";
import { silentLogger } from "../../src/adapters/logging/logger.js";
import { AuditLogWriter } from "../../src/adapters/audit/audit-log-writer.js";
import { AuditLogSink } from "../../src/adapters/audit/audit-log-sink.js";
import { verifyAuditLog } from "../../src/adapters/audit/audit-log-verifier.js";
import type { OtlpTransport } from "../../src/adapters/telemetry/otlp-transport.js";
import { baseArb, fuzzCaseArb, type FuzzCase } from "./cases.js";
import type { FuzzFixture } from "./fixture.js";
import { judge, type ObservedDecision, type Verdict } from "./judge.js";
import { referenceDecide, type ReferenceDecision, type ReferenceWorld } from "./reference-decider.js";
import { renderView, toCheckRequest, type EnvoyView } from "./request-model.js";
import { FuzzStats, fmt } from "./fuzz-stats.js";
import { describeValue } from "./describe.js";
import { referenceWorld } from "./world.js";
import { mutateRequestBytes, parseTree, wireMutationPlanArb, type WireMutationPlan } from "./wire-mutations.js";
import type { FuzzOutcome, FuzzRunOptions } from "./core-fuzz.js";
import { ALLOWED_SCENARIOS } from "./scenarios.js";

export interface GrpcFuzzOptions extends FuzzRunOptions {
  /** TCP connections to the server. */
  readonly connections: number;
  /** Checks in flight at once (one fast-check run sends a batch of this many). */
  readonly batch: number;
  readonly deadlineMs: number;
}

export type GrpcCase =
  | { readonly kind: "call"; readonly fuzz: FuzzCase; readonly metadata: Readonly<Record<string, string>> }
  | { readonly kind: "mutated"; readonly fuzz: FuzzCase; readonly plan: WireMutationPlan; readonly metadata: Readonly<Record<string, string>> }
  | { readonly kind: "bytes"; readonly bytes: Uint8Array; readonly metadata: Readonly<Record<string, string>> };

const hex = (n: number) => fc.string({ unit: fc.constantFrom(..."0123456789abcdef"), minLength: n, maxLength: n });
const printable = fc.string({ unit: fc.constantFrom(..."abcdefABCDEF0123456789-_=;, "), maxLength: 80 });

const metadataArb: fc.Arbitrary<Record<string, string>> = fc.oneof(
  { arbitrary: fc.constant({}), weight: 6 },
  { arbitrary: fc.tuple(hex(32), hex(16)).map(([t, s]) => ({ traceparent: `00-${t}-${s}-01` })), weight: 2 },
  { arbitrary: printable.map((v) => ({ traceparent: v })), weight: 1 },
  { arbitrary: fc.tuple(hex(32), hex(16), printable).map(([t, s, junk]) => ({ b3: `${t}-${s}-1`, tracestate: junk })), weight: 1 },
  { arbitrary: printable.map((v) => ({ b3: v })), weight: 1 },
);

/** Mutations start from calls that are allowed (most interesting) or already denied. */
const mutationSourceArb: fc.Arbitrary<FuzzCase> = fc.oneof(
  { arbitrary: fc.constantFrom(...ALLOWED_SCENARIOS).chain(baseArb).map((b): FuzzCase => ({ kind: "allowed", label: b.scenario.name, call: b.call, expect: { kind: "allow" } })), weight: 3 },
  { arbitrary: fuzzCaseArb, weight: 1 },
);

export const grpcCaseArb: fc.Arbitrary<GrpcCase> = fc.oneof(
  { arbitrary: fc.record({ kind: fc.constant("call" as const), fuzz: fuzzCaseArb, metadata: metadataArb }), weight: 5 },
  { arbitrary: fc.record({ kind: fc.constant("mutated" as const), fuzz: mutationSourceArb, plan: wireMutationPlanArb, metadata: metadataArb }), weight: 4 },
  {
    arbitrary: fc.record({
      kind: fc.constant("bytes" as const),
      bytes: fc.oneof(fc.uint8Array({ maxLength: 64 }), fc.uint8Array({ maxLength: 2048 }), fc.uint8Array({ minLength: 1, maxLength: 16 }).map((b) => Uint8Array.from([0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f, ...b]))),
      metadata: metadataArb,
    }),
    weight: 1,
  },
);

// --- the reference reading of arbitrary bytes -------------------------------

const lenientText = { ...getTextEncoding(), decodeUtf8: (bytes: Uint8Array) => Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("utf8") };

/**
 * Whether the bytes are well-formed protobuf for the schema, all the way
 * down: every tag, varint and length within its message's bounds, every
 * known field with its own wire type, every nested message well-formed too.
 * protobuf-es alone is lenient in places (a varint may run past the end of
 * a sub-message and shift what follows), so its reading of malformed bytes
 * is no reference.
 */
export function wellFormed(bytes: Uint8Array, schema: DescMessage | undefined, depth = 0): boolean {
  if (depth > 64) return false;
  let pos = 0;
  const varint = (maxBytes: number): bigint | undefined => {
    let v = 0n;
    for (let i = 0; i < maxBytes; i++) {
      if (pos >= bytes.length) return undefined;
      const b = bytes[pos++]!;
      v |= BigInt(b & 0x7f) << BigInt(7 * i);
      if ((b & 0x80) === 0) return v;
    }
    return undefined;
  };
  while (pos < bytes.length) {
    const tag = varint(5);
    if (tag === undefined || tag > 0xffffffffn) return false;
    const number = Number(tag >> 3n);
    const wireType = Number(tag & 7n);
    if (number === 0) return false;
    const field = schema?.fields.find((f) => f.number === number);
    if (field !== undefined && !wireTypeFits(field, wireType)) return false;
    if (wireType === 0) {
      if (varint(10) === undefined) return false;
    } else if (wireType === 1 || wireType === 5) {
      pos += wireType === 1 ? 8 : 4;
      if (pos > bytes.length) return false;
    } else if (wireType === 2) {
      const len = varint(10);
      if (len === undefined || BigInt(pos) + len > BigInt(bytes.length)) return false;
      const content = bytes.subarray(pos, pos + Number(len));
      pos += Number(len);
      if (field === undefined) continue;
      if ((field.fieldKind === "message" || (field.fieldKind === "list" && field.listKind === "message")) && !wellFormed(content, field.message, depth + 1)) return false;
      if (field.fieldKind === "map") {
        if (!wellFormed(content, undefined, depth + 1)) return false;
        // protobuf-es 2 does not skip an unknown field inside a map entry (it reads on from the
        // field's value as if it were the next tag), so such an entry has no reliable reading.
        if (!mapEntryHoldsOnlyKeyAndValue(content, field)) return false;
        if (field.mapKind === "message" && !mapValuesWellFormed(content, field.message, depth + 1)) return false;
      }
    } else return false; // groups (3, 4) and the wire types 6 and 7
  }
  return true;
}

function scalarWireType(t: ScalarType): number {
  switch (t) {
    case ScalarType.STRING:
    case ScalarType.BYTES:
      return 2;
    case ScalarType.FIXED64:
    case ScalarType.SFIXED64:
    case ScalarType.DOUBLE:
      return 1;
    case ScalarType.FIXED32:
    case ScalarType.SFIXED32:
    case ScalarType.FLOAT:
      return 5;
    default:
      return 0;
  }
}

/** A known field must come with its own wire type (a list of numbers also packed, as LEN). */
function wireTypeFits(field: DescField, wireType: number): boolean {
  switch (field.fieldKind) {
    case "message":
    case "map":
      return wireType === 2;
    case "enum":
      return wireType === 0;
    case "scalar":
      return wireType === scalarWireType(field.scalar);
    case "list":
      if (field.listKind === "message") return wireType === 2;
      if (field.listKind === "enum") return wireType === 0 || wireType === 2;
      return wireType === scalarWireType(field.scalar) || wireType === 2;
  }
}

/** Only a key (1) and a value (2), each with its own wire type: protobuf-es reads a map entry by position, not by tag. */
function mapEntryHoldsOnlyKeyAndValue(entry: Uint8Array, map: DescField & { fieldKind: "map" }): boolean {
  const valueWireType = map.mapKind === "scalar" ? scalarWireType(map.scalar) : map.mapKind === "enum" ? 0 : 2;
  try {
    return parseTree(entry, "Leaf").every((f) => (f.field === 1 && f.wireType === scalarWireType(map.mapKey)) || (f.field === 2 && f.wireType === valueWireType));
  } catch {
    return false;
  }
}

function mapValuesWellFormed(entry: Uint8Array, value: DescMessage, depth: number): boolean {
  const tree = (() => {
    try {
      return parseTree(entry, "Leaf");
    } catch {
      return undefined;
    }
  })();
  if (tree === undefined) return false;
  return tree.filter((f) => f.field === 2).every((f) => f.wireType === 2 && wellFormed(f.bytes, value, depth));
}

/**
 * protobuf-es's reading of the bytes, with string fields decoded as Node
 * decodes them (U+FFFD for bad UTF-8, as hopwarden's decoder does), or
 * undefined when they are not a well-formed CheckRequest.
 */
export function decodeReference(bytes: Uint8Array): CheckRequest | undefined {
  if (!wellFormed(bytes, CheckRequestSchema)) return undefined;
  const strict = getTextEncoding();
  configureTextEncoding(lenientText);
  try {
    return fromBinary(CheckRequestSchema, bytes);
  } catch {
    return undefined;
  } finally {
    configureTextEncoding(strict);
  }
}

const utf8 = (b: Uint8Array): string => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString("utf8");

/** The facts of a decoded CheckRequest as the reference reads them (SPEC 1). */
export function viewOf(request: CheckRequest): EnvoyView {
  const a = request.attributes;
  const http = a?.request?.http;
  const headerMap = http?.headerMap;
  return {
    certificate: a?.source?.certificate ?? "",
    principal: a?.source?.principal ?? "",
    destinationPrincipal: a?.destination?.principal ?? "",
    contextExtensions: { ...(a?.contextExtensions ?? {}) },
    // With encode_raw_headers (or from proxyless clients) the headers are in header_map.
    transport: headerMap !== undefined ? "header_map" : "headers",
    headers: headerMap !== undefined ? headerMap.headers.map((h) => [h.key, h.rawValue.length > 0 ? utf8(h.rawValue) : h.value] as const) : Object.entries(http?.headers ?? {}),
    method: http?.method ?? "",
    path: http?.path ?? "",
  };
}

// --- what a response says -------------------------------------------------------

/** SPEC 4's table, written out again here: reason → [HTTP status, gRPC status]. */
const SPEC4: Readonly<Record<string, readonly [number, number]>> = (() => {
  const t: Record<string, readonly [number, number]> = {};
  for (const r of ["missing_peer_certificate", "invalid_peer_certificate", "missing_subject_header", "token_missing", "token_invalid", "token_expired"]) t[r] = [401, 16];
  for (const r of ["untrusted_trust_domain", "revoked_identity", "subject_mismatch", "missing_on_behalf_of", "on_behalf_of_not_allowed", "malformed_chain", "chain_too_long", "chain_cycle", "chain_caller_mismatch", "unknown_callee", "hop_not_allowed", "required_hop_missing", "token_chain_mismatch", "token_scope_exceeded", "token_replayed"]) t[r] = [403, 7];
  for (const r of ["policy_unavailable", "internal_error"]) t[r] = [503, 14];
  return t;
})();

interface Observed extends ObservedDecision {
  readonly decisionId: string;
  /** Inconsistencies in the response itself (SPEC 4). */
  readonly problems: readonly string[];
}

function observe(response: CheckResponse): Observed {
  const problems: string[] = [];
  const code = response.status?.code ?? 0;
  const meta = response.dynamicMetadata ?? {};
  const metaString = (k: string): string | undefined => {
    const v = meta[k];
    return typeof v === "string" ? v : undefined;
  };
  const headers = new Map<string, string>();
  const r = response.httpResponse;
  if (r.case === "okResponse") {
    for (const h of r.value.headers) if (h.header !== undefined) headers.set(h.header.key, h.header.value);
    if (code !== 0) problems.push(`ok_response with status ${code}`);
    const decisionId = headers.get("x-authz-decision-id") ?? "";
    if (decisionId === "" || decisionId !== metaString("decision_id")) problems.push("allow without a matching x-authz-decision-id and dynamic metadata decision_id");
    for (const h of r.value.headers) if (Number(h.appendAction) !== 2) problems.push(`allow header ${h.header?.key ?? ""} not OVERWRITE_IF_EXISTS_OR_ADD`);
    const obo = headers.get("x-agent-verified-on-behalf-of");
    if (obo === undefined && !r.value.headersToRemove.includes("x-agent-verified-on-behalf-of")) problems.push("allow without on-behalf-of does not remove x-agent-verified-on-behalf-of");
    const chain = headers.get("x-agent-verified-chain");
    return {
      allowed: true,
      reason: undefined,
      caller: headers.get("x-agent-verified-subject"),
      callee: metaString("callee"),
      onBehalfOf: obo,
      chain: chain === undefined || chain === "" ? [] : chain.split(","),
      decisionId,
      problems,
    };
  }
  if (r.case !== "deniedResponse") return { allowed: false, reason: undefined, decisionId: "", problems: ["a CheckResponse that neither allows nor denies"] };
  for (const h of r.value.headers) if (h.header !== undefined) headers.set(h.header.key, h.header.value);
  const reason = headers.get("x-authz-reason");
  const expected = reason === undefined ? undefined : SPEC4[reason];
  if (expected === undefined) problems.push(`deny with x-authz-reason ${String(reason)}`);
  else {
    if (Number(r.value.status?.code) !== expected[0]) problems.push(`${String(reason)} with HTTP ${String(r.value.status?.code)}, SPEC 4 says ${expected[0]}`);
    if (code !== expected[1]) problems.push(`${String(reason)} with gRPC status ${code}, SPEC 4 says ${expected[1]}`);
  }
  if (headers.get("content-type") !== "application/json") problems.push("deny without content-type: application/json");
  let body: { error?: unknown; message?: unknown; decision_id?: unknown } = {};
  try {
    body = JSON.parse(r.value.body) as typeof body;
  } catch {
    problems.push("deny body is not JSON");
  }
  if (body.error !== reason) problems.push(`deny body error ${String(body.error)} is not the reason ${String(reason)}`);
  if (typeof body.message !== "string") problems.push("deny body without a message");
  const decisionId = typeof body.decision_id === "string" ? body.decision_id : "";
  if (decisionId === "" && reason !== "internal_error") problems.push("deny without a decision_id");
  return { allowed: false, reason, message: typeof body.message === "string" ? body.message : "", decisionId, problems };
}

// --- the client -----------------------------------------------------------------

class RawCheckClient {
  private readonly client: Client;

  constructor(address: string) {
    // A connection of its own: grpc-js otherwise shares one among clients of an address.
    this.client = new Client(address, credentials.createInsecure(), { "grpc.use_local_subchannel_pool": 1 });
  }

  check(bytes: Uint8Array, metadata: Readonly<Record<string, string>>, deadlineMs: number): Promise<{ response?: Buffer; error?: ServiceError }> {
    const md = new Metadata();
    for (const [k, v] of Object.entries(metadata)) md.set(k, v);
    return new Promise((resolve) => {
      this.client.makeUnaryRequest(
        "/envoy.service.auth.v3.Authorization/Check",
        (b: Buffer) => b,
        (b: Buffer) => b,
        Buffer.from(bytes),
        md,
        { deadline: Date.now() + deadlineMs },
        (error: ServiceError | null, response?: Buffer) => resolve(error ? { error } : { response: response! }),
      );
    });
  }

  health(): Promise<number> {
    return new Promise((resolve, reject) => {
      this.client.makeUnaryRequest(
        "/grpc.health.v1.Health/Check",
        (m: Uint8Array) => Buffer.from(m),
        (b: Buffer) => fromBinary(HealthCheckResponseSchema, b).status,
        toBinary(HealthCheckRequestSchema, create(HealthCheckRequestSchema, { service: "" })),
        new Metadata(),
        { deadline: Date.now() + 5000 },
        (error: ServiceError | null, status?: number) => (error ? reject(error) : resolve(status!)),
      );
    });
  }

  close(): void {
    this.client.close();
  }
}

// --- one case ---------------------------------------------------------------------

interface Prepared {
  readonly bytes: Uint8Array;
  /** The reference's reading: undefined when protobuf-es does not decode the bytes. */
  readonly view: EnvoyView | undefined;
  /** The case the oracle judges against (expectations only for well-formed calls). */
  readonly fuzz: FuzzCase | undefined;
  /** The certificate as read is not one the fixture made (byte damage reached it). */
  readonly damagedCertificate: boolean;
  /** The certificate as it was before the damage. */
  readonly originalCertificate: string;
}

function prepare(c: GrpcCase, fixture: FuzzFixture): Prepared {
  if (c.kind === "bytes") {
    const decoded = decodeReference(c.bytes);
    return { bytes: c.bytes, view: decoded === undefined ? undefined : viewOf(decoded), fuzz: undefined, damagedCertificate: false, originalCertificate: "" };
  }
  const view = renderView(c.fuzz.call, fixture.renderer);
  const valid = toBinary(CheckRequestSchema, toCheckRequest(view, c.fuzz.call.rawValues));
  if (!wellFormed(valid, CheckRequestSchema)) throw new Error("fuzz harness: protobuf-es wrote a CheckRequest the well-formedness walk refuses");
  if (c.kind === "call") return { bytes: valid, view, fuzz: c.fuzz, damagedCertificate: false, originalCertificate: view.certificate };
  const bytes = mutateRequestBytes(valid, c.plan);
  const decoded = decodeReference(bytes);
  const read = decoded === undefined ? undefined : viewOf(decoded);
  const damagedCertificate = read !== undefined && read.certificate !== "" && read.certificate !== view.certificate && fixture.certFacts(read.certificate) === undefined;
  return { bytes, view: read, fuzz: undefined, damagedCertificate, originalCertificate: view.certificate };
}

const UNDECODABLE: ReferenceDecision = { allowed: false, reason: "internal_error", why: "protobuf-es does not decode these bytes" };

function sameFacts(got: Observed, r: Extract<ReferenceDecision, { allowed: true }>): boolean {
  const chainOk = got.chain !== undefined && got.chain.length === r.chain.length && got.chain.every((x, i) => x === r.chain[i]);
  return got.caller === r.caller && got.callee === r.callee && got.onBehalfOf === r.onBehalfOf && chainOk;
}

function judgeGrpc(c: GrpcCase, p: Prepared, got: Observed, ref: ReferenceDecision, world: ReferenceWorld): Verdict {
  if (got.problems.length > 0) return { violation: `inconsistent CheckResponse: ${got.problems.join("; ")}` };
  if (p.fuzz !== undefined) return judge(p.fuzz, got, ref);
  // Mutated or random bytes: no expectation by construction; the reference's reading judges.
  if (got.allowed && !ref.allowed) {
    // Bytes protobuf-es refuses have no reading to compare with. Envoy never sends them (only a
    // direct client of the Check port can), so an allow is reported, not failed.
    if (ref.reason === "internal_error") return { disagreement: `${c.kind}: malformed protobuf read and allowed (hopwarden skips fields it does not read)` };
    if (p.damagedCertificate && p.view !== undefined) {
      // node:crypto may read a damaged certificate that the DER walk refuses. That is no unsafe
      // allow only if the certificate, read as it was before the damage, is allowed with the same facts.
      const asBefore = referenceDecide({ ...p.view, certificate: p.originalCertificate }, world);
      if (asBefore.allowed && sameFacts(got, asBefore)) return { disagreement: `${c.kind}: a byte-damaged certificate the DER walk refuses, read by node:crypto as the undamaged one` };
    }
    return { violation: `UNSAFE ALLOW: allowed bytes the reference denies (${ref.reason}: ${ref.why})` };
  }
  if (got.allowed) {
    if (!sameFacts(got, ref as Extract<ReferenceDecision, { allowed: true }>)) return { violation: "allow with verified facts that are not the request's" };
    return {};
  }
  if (p.damagedCertificate && got.reason === "invalid_peer_certificate") {
    return { disagreement: `${c.kind}: a byte-damaged certificate node:crypto refuses and the reference's DER walk reads (reference: ${ref.allowed ? "allow" : "another deny"})` };
  }
  if (ref.allowed) return got.reason === "internal_error" && (got.message ?? "").includes("does not decode")
    ? { disagreement: `${c.kind}: well-formed protobuf refused as undecodable (reference: allow)` }
    : { disagreement: `${c.kind}: pipeline ${got.reason ?? ""}, reference allow` };
  if (got.reason === "internal_error") {
    if (ref.reason === "internal_error") return {};
    if ((got.message ?? "").includes("does not decode")) return { disagreement: `${c.kind}: well-formed protobuf refused as undecodable (reference: another deny)` };
    return { violation: `internal_error (an exception while deciding): ${got.message ?? ""}` };
  }
  if (ref.reason === "internal_error") return { disagreement: `${c.kind}: malformed protobuf read and denied (hopwarden skips fields it does not read)` };
  if (got.reason !== ref.reason) return { disagreement: `${c.kind}: pipeline ${got.reason ?? ""}, reference ${ref.reason}` };
  return {};
}

// --- the run ------------------------------------------------------------------------

export interface GrpcFuzzOutcome extends FuzzOutcome {
  readonly endChecks: string[];
}

export async function runGrpcFuzz(fixture: FuzzFixture, options: GrpcFuzzOptions): Promise<GrpcFuzzOutcome> {
  const world: ReferenceWorld = referenceWorld(fixture);
  const { privateKey, publicKey } = generateKeyPairSync("ed25519");
  const auditPath = join(fixture.dir, "audit", "audit.log");
  const audit = new AuditLogSink(await AuditLogWriter.open({ path: auditPath, privateKey, logger: silentLogger, bufferRecords: 100_000 }), silentLogger);
  let spans = 0;
  let spanBytes = 0;
  const transport: OtlpTransport = {
    target: "fuzz",
    send: (pieces) => {
      for (const p of pieces) spanBytes += p.length;
      return Promise.resolve({ ok: true });
    },
    close: () => undefined,
  };
  const server: Hopwarden = await startHopwarden({
    policyFile: fixture.policyFile,
    listen: "127.0.0.1:0",
    logger: silentLogger,
    clock: { nowMs: () => fixture.nowMs },
    watchPolicy: false,
    tracing: { transport, observer: () => void spans++ },
    sinks: [audit],
    admit: () => audit.admit(),
  });
  const clients = Array.from({ length: options.connections }, () => new RawCheckClient(server.grpcAddress));
  const stats = new FuzzStats("grpc", options.log, options.progressEveryMs);
  const seenIds = new Set<string>();
  let failing = false;
  let failure: string[] | undefined;
  let next = 0;
  let crashed: unknown;
  const onCrash = (err: unknown) => {
    crashed = err;
  };
  process.on("uncaughtException", onCrash);
  process.on("unhandledRejection", onCrash);

  const one = async (c: GrpcCase): Promise<void> => {
    const p = prepare(c, fixture);
    const client = clients[next++ % clients.length]!;
    const started = performance.now();
    const { response, error } = await client.check(p.bytes, c.metadata, options.deadlineMs);
    const ms = performance.now() - started;
    const ref = p.view === undefined ? UNDECODABLE : referenceDecide(p.view, world);
    let verdict: Verdict;
    let got: Observed | undefined;
    if (error !== undefined) verdict = { violation: `a gRPC error instead of a CheckResponse: ${error.code} ${error.details} after ${ms.toFixed(0)} ms` };
    else {
      try {
        got = observe(fromBinary(CheckResponseSchema, response!));
        verdict = judgeGrpc(c, p, got, ref, world);
        if (verdict.violation === undefined && got.decisionId !== "") {
          if (seenIds.has(got.decisionId)) verdict = { violation: `decision id ${got.decisionId} given twice` };
          seenIds.add(got.decisionId);
        }
      } catch (err) {
        verdict = { violation: `the answer is not a CheckResponse: ${err instanceof Error ? err.message : String(err)}` };
      }
    }
    if (crashed !== undefined) verdict = { violation: `the process saw an uncaught exception: ${crashed instanceof Error ? (crashed.stack ?? crashed.message) : JSON.stringify(crashed)}` };
    if (!failing) {
      const kind = c.kind === "bytes" ? "random bytes" : c.kind === "mutated" ? "mutated bytes" : `call/${c.fuzz.kind}`;
      stats.record(kind, got?.allowed ?? false, got?.reason ?? "(gRPC error)", ms);
      if (verdict.disagreement !== undefined) stats.disagree(verdict.disagreement, c.kind === "bytes" ? describeValue(c.bytes) : c.kind === "mutated" ? `${c.fuzz.label} | ${describeValue(c.plan)}` : c.fuzz.label);
    }
    const problem = verdict.violation ?? (options.strict === true ? verdict.disagreement : undefined);
    if (problem !== undefined) {
      failing = true;
      failure = describeGrpcFailure(problem, c, p, got, ref, fixture);
      throw new Error(problem);
    }
  };

  const property = fc.asyncProperty(fc.array(grpcCaseArb, { minLength: options.batch, maxLength: options.batch }), async (batch) => {
    await Promise.all(batch.map(one));
    stats.tick(` (${fmt(spans)} spans, ${options.connections} connections)`);
  });
  const batches = Math.ceil(options.runs / options.batch);
  const result = await fc.check(property, {
    seed: options.seed,
    numRuns: options.path === undefined ? batches : 1,
    ...(options.path !== undefined && { path: options.path }),
    // Shrinking a batch of Checks against a live server takes long and shows little: the failing Check is printed whole.
    endOnFailure: true,
    plugins: [fc.interruptAfterTimeLimit(options.timeLimitMs)],
  });

  // Still up, still right: a known-good request allows, health says SERVING.
  const endChecks: string[] = [];
  const good = ALLOWED_SCENARIOS.find((s) => s.name === "S2")!;
  const goodCase = fc.sample(baseArb(good), { seed: options.seed, numRuns: 1 })[0]!;
  const goodBytes = toBinary(CheckRequestSchema, toCheckRequest(renderView(goodCase.call, fixture.renderer), false));
  const answer = await clients[0]!.check(goodBytes, {}, options.deadlineMs);
  const goodOutcome = answer.response === undefined ? undefined : observe(fromBinary(CheckResponseSchema, answer.response));
  const healthy = await clients[0]!.health().catch(() => -1);
  const endOk = goodOutcome?.allowed === true && healthy === 1;
  endChecks.push(`[fuzz grpc] after the run: known-good request ${goodOutcome?.allowed === true ? "allowed" : `NOT allowed (${answer.error?.details ?? goodOutcome?.reason ?? "?"})`}, health ${healthy === 1 ? "SERVING" : `not SERVING (${healthy})`}`);

  for (const c of clients) c.close();
  await server.shutdown(5000);
  await audit.close();
  process.off("uncaughtException", onCrash);
  process.off("unhandledRejection", onCrash);
  const files = (await readdir(join(fixture.dir, "audit"))).filter((f) => f.startsWith("audit.log")).map((f) => join(fixture.dir, "audit", f));
  const report = await verifyAuditLog(files, publicKey);
  const checks = stats.runs + 1;
  const auditOk = report.ok && report.uncovered.length === 0 && report.records === checks && spans === checks;
  endChecks.push(
    `[fuzz grpc] audit log: ${report.ok ? "verifies" : `DOES NOT VERIFY (${report.problem?.message ?? ""})`}, ${fmt(report.records)} records in ${files.length} file(s) for ${fmt(checks)} Checks; ${fmt(spans)} decision spans (${fmt(spanBytes)} bytes exported)`,
  );

  const ok = !result.failed && endOk && (options.path !== undefined || auditOk);
  const lines: string[] = [];
  if (result.failed) {
    lines.push(`[fuzz grpc] VIOLATION after ${stats.runs} calls — reproduce with: FUZZ_SEED=${result.seed} FUZZ_GRPC_PATH=${result.counterexamplePath ?? ""} npm run fuzz -- --grpc-only`);
    lines.push(...(failure ?? [`  ${String((result as { errorInstance?: unknown }).errorInstance)}`]));
  } else if (!endOk) lines.push("[fuzz grpc] VIOLATION: the server did not answer a known-good request correctly after the run");
  else if (!auditOk && options.path === undefined) lines.push("[fuzz grpc] VIOLATION: the audit log or the spans do not account for every Check");
  return { stats, ok, failure: lines.length > 0 ? lines : undefined, interrupted: result.interrupted, endChecks };
}

/** Where two strings differ, briefly (a mutated certificate or token against the one sent before). */
function difference(before: string, after: string): string {
  let i = 0;
  while (i < before.length && i < after.length && before[i] === after[i]) i++;
  if (i === before.length && i === after.length) return "identical";
  return `length ${before.length} -> ${after.length}, first difference at ${i}: ${JSON.stringify(before.slice(Math.max(0, i - 12), i + 12))} -> ${JSON.stringify(after.slice(Math.max(0, i - 12), i + 12))}`;
}

function describeGrpcFailure(problem: string, c: GrpcCase, p: Prepared, got: Observed | undefined, ref: ReferenceDecision, fixture: FuzzFixture): string[] {
  const lines = [`  problem:   ${problem}`, `  case:      ${c.kind}${c.kind === "bytes" ? "" : ` of ${c.fuzz.kind} — ${c.fuzz.label}`}`];
  if (c.kind === "mutated") lines.push(`  mutations: ${describeValue(c.plan)}`);
  if (c.kind !== "bytes") lines.push(`  call:      ${describeValue(c.fuzz.call)}`);
  lines.push(`  bytes:     ${describeValue(p.bytes)}`, `  metadata:  ${JSON.stringify(c.metadata)}`);
  lines.push(`  hopwarden: ${got === undefined ? "(no CheckResponse)" : got.allowed ? "allow" : `deny ${got.reason ?? ""} — ${describeValue(got.message ?? "")}`}`);
  lines.push(`  reference: ${ref.allowed ? "allow" : `deny ${ref.reason} (${ref.why})`}`);
  if (p.view !== undefined) {
    lines.push(`  as read:   ${describeValue({ ...p.view, certificate: `(${p.view.certificate.length} chars)` })}`);
    if (c.kind === "mutated") {
      const sent = renderView(c.fuzz.call, fixture.renderer);
      if (sent.certificate !== p.view.certificate) lines.push(`  certificate mutated: ${difference(sent.certificate, p.view.certificate)}`);
    }
  }
  return lines;
}
