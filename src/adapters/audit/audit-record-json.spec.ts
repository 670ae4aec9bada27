import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { sampleDecision } from "../../../test/support/audit-fixtures.js";
import { CALLER_BINDINGS, type Decision, type HopRecord } from "../../core/decision/decision.js";
import { makeDecision } from "../../../test/support/decisions.js";
import type { DecisionContext } from "../../core/ports.js";
import { AuditRecordEncoder, estimateAuditRecordBytes } from "./audit-record-json.js";
import { buildAuditRecord } from "./audit-record.js";

/** Any UTF-16 code unit, lone surrogates and control characters included: what a header can hold once decoded. */
const anyUnit = fc.integer({ min: 0, max: 0xffff }).map((c) => String.fromCharCode(c));
const anyText = fc.oneof(
  fc.string({ maxLength: 40 }),
  fc.string({ unit: anyUnit, maxLength: 40 }),
  // Around and past the 1,024-byte bound, in ASCII and in 2- and 3-byte characters.
  fc.string({ unit: fc.constantFrom("a", "é", "€", "\u{1F600}", '"'), minLength: 300, maxLength: 1200 }),
);
const nullableText = fc.option(anyText, { nil: undefined });
/** A token hash as the verifier writes it (43 base64url characters). */
const SHA256_EXAMPLE = "47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU";
const hop: fc.Arbitrary<HopRecord> = fc.record({
  from: anyText,
  to: anyText,
  rule: fc.oneof(fc.constant(""), fc.nat(99).map((n) => `hops[${n}]`), anyText),
  result: fc.constantFrom("allow" as const, "deny" as const),
  cached: fc.boolean(),
  detail: fc.constant(""),
});
const decision: fc.Arbitrary<Decision> = fc.record({
  reason: fc.constantFrom(undefined, "hop_not_allowed" as const, "missing_peer_certificate" as const),
  message: anyText,
  decisionId: fc.string({ unit: fc.constantFrom(..."0123456789ABCDEFGHJKMNPQRSTVWXYZ"), minLength: 26, maxLength: 26 }),
  policyVersion: anyText,
  decidedAtMs: fc.oneof(fc.integer({ min: -8.64e15, max: 8.64e15 }), fc.integer({ min: Date.UTC(2020, 0), max: Date.UTC(2030, 0) })),
  caller: nullableText,
  callee: nullableText,
  onBehalfOf: nullableText,
  chain: fc.oneof(fc.array(anyText, { maxLength: 5 }), fc.array(fc.string({ minLength: 50, maxLength: 120 }), { minLength: 30, maxLength: 90 })),
  hops: fc.oneof(fc.array(hop, { maxLength: 5 }), fc.array(hop, { minLength: 60, maxLength: 90 })),
  peerCertificateSha256: fc.option(fc.string({ unit: fc.constantFrom(..."0123456789ABCDEF"), minLength: 64, maxLength: 64 }), { nil: undefined }),
  method: anyText,
  path: anyText,
  tokenId: nullableText,
  tokenSha256: fc.oneof(fc.constant(undefined), fc.constant(SHA256_EXAMPLE), anyText),
  tokenPrev: fc.oneof(fc.constant(undefined), fc.constant(SHA256_EXAMPLE), anyText),
  callerBinding: fc.constantFrom(undefined, ...CALLER_BINDINGS),
  mcp: fc.option(fc.record({ method: anyText, tool: nullableText, resource: nullableText }), { nil: undefined }),
  txn: nullableText,
}).map((fields) => makeDecision(fields));
const context: fc.Arbitrary<DecisionContext> = fc.record({
  traceId: nullableText,
  spanId: nullableText,
  latencyMs: fc.oneof(fc.double({ min: 0, max: 1e6, noNaN: true }), fc.constantFrom(0, 0.0004, 0.0005, 1e-7, 123.4565)),
});

/** What the writer must produce: the reference record, stringified and encoded. */
function reference(d: Decision, c: DecisionContext): string {
  return JSON.stringify(buildAuditRecord(d, c));
}

/** A record's bytes as text, through a fresh encoder. */
function auditRecordJson(d: Decision, c: DecisionContext): string {
  return new AuditRecordEncoder().encode(d, c).toString("utf8");
}

describe("AuditRecordEncoder (the record written straight as JSON bytes, off the Check path)", () => {
  it("is byte for byte JSON.stringify(buildAuditRecord(…)) for random decisions, bounds included", () => {
    fc.assert(
      fc.property(decision, context, (d, c) => {
        expect(auditRecordJson(d, c)).toBe(reference(d, c));
      }),
      { numRuns: 400 },
    );
  });

  it("keeps every record of a long run intact in its views, across slabs outgrown mid-record", () => {
    // A small slab: most records move to a new one part-way through.
    const encoder = new AuditRecordEncoder(512);
    const written: [Buffer, string][] = [];
    fc.assert(
      fc.property(decision, context, (d, c) => {
        written.push([encoder.encode(d, c), reference(d, c)]);
      }),
      { numRuns: 300 },
    );
    for (const [bytes, expected] of written) expect(bytes.toString("utf8")).toBe(expected);
    expect(Buffer.concat(written.map(([bytes]) => bytes)).equals(Buffer.from(written.map(([, text]) => text).join(""), "utf8"))).toBe(true);
  });

  it("writes nothing for a record that fails, and the next record starts clean", () => {
    // A slab that holds all three records: the failed ones must leave no bytes between the other two.
    const encoder = new AuditRecordEncoder(64 * 1024);
    const first = sampleDecision();
    const next = sampleDecision({ path: "/after" });
    const before = encoder.encode(first, { latencyMs: 1 });
    expect(() => encoder.encode(sampleDecision({ decidedAtMs: Number.NaN }), { latencyMs: 1 })).toThrow(RangeError);
    // A string that cannot be written throws part-way through the record.
    expect(() => encoder.encode(sampleDecision({ path: 42 as unknown as string }), { latencyMs: 1 })).toThrow();
    const after = encoder.encode(next, { latencyMs: 2 });
    expect(before.toString()).toBe(reference(first, { latencyMs: 1 }));
    expect(after.toString()).toBe(reference(next, { latencyMs: 2 }));
    expect(after.byteOffset).toBe(before.byteOffset + before.length);
  });

  it("is still exactly that for decisions of one shape repeated with other ids, times, messages and request lines (the kept stretch)", () => {
    const encoder = new AuditRecordEncoder();
    fc.assert(
      fc.property(decision, fc.array(fc.tuple(decision, context), { minLength: 2, maxLength: 4 }), (first, others) => {
        for (const [other, c] of [[first, { latencyMs: 1 }] as const, ...others]) {
          const d = { ...other, allowed: first.allowed, reason: first.reason, callee: first.callee, caller: first.caller, onBehalfOf: first.onBehalfOf, policyVersion: first.policyVersion, callerBinding: first.callerBinding, chain: [...first.chain], hops: first.hops.map((h) => ({ ...h })) } as Decision;
          expect(encoder.encode(d, c).toString("utf8")).toBe(reference(d, c));
        }
      }),
      { numRuns: 200 },
    );
  });

  it("writes times of the same second and of other seconds as toISOString does", () => {
    const base = Date.UTC(2026, 10, 1, 12, 0, 0);
    for (const ms of [base, base + 1, base + 999, base + 1000, base - 1, base + 61_001, -1, 0, 1.5, 253402300799999]) {
      const d = sampleDecision({ decidedAtMs: ms });
      expect(auditRecordJson(d, { latencyMs: 1 })).toBe(reference(d, { latencyMs: 1 }));
    }
  });

  it("throws on an invalid time, as buildAuditRecord does (the writer counts the record as dropped)", () => {
    expect(() => auditRecordJson(sampleDecision({ decidedAtMs: Number.NaN }), { latencyMs: 1 })).toThrow(RangeError);
  });
});

describe("estimateAuditRecordBytes (what the Check path counts before the record exists)", () => {
  const plain = fc.string({ unit: fc.constantFrom(..."abcdefghijklmnopqrstuvwxyz0123456789:/.@-_"), maxLength: 80 });
  const plainHop = fc.record({ from: plain, to: plain, rule: plain, result: fc.constantFrom("allow" as const, "deny" as const), cached: fc.boolean(), detail: fc.constant("") });

  it("is at least the exact size, and at most 64 bytes above it, for ASCII records without escapes", () => {
    fc.assert(
      fc.property(
        decision.chain((d) =>
          fc.record({ message: plain, policyVersion: plain, caller: plain, path: plain, chain: fc.array(plain, { maxLength: 10 }), hops: fc.array(plainHop, { maxLength: 11 }) }).map((p) => ({
            ...d,
            ...p,
            decisionId: "01JTESTDECISION00000000001",
            decidedAtMs: Date.UTC(2026, 0, 1),
            callee: undefined,
            onBehalfOf: "alice@example.com",
            method: "GET",
            tokenId: undefined,
            tokenSha256: p.caller.length % 2 === 0 ? undefined : SHA256_EXAMPLE,
            tokenPrev: p.policyVersion.length % 2 === 0 ? undefined : SHA256_EXAMPLE,
            mcp: p.path.length % 2 === 0 ? undefined : { method: "tools/call", tool: p.caller, resource: undefined },
            txn: p.message.length % 2 === 0 ? undefined : "txn-7f3a",
          })),
        ),
        fc.record({ latencyMs: fc.double({ min: 0, max: 1000, noNaN: true }), traceId: fc.constant("4bf92f3577b34da6a3ce929d0e0e4736"), spanId: fc.constant(undefined) }),
        (d, c) => {
          const exact = Buffer.byteLength(auditRecordJson(d, c));
          const estimate = estimateAuditRecordBytes(d, c);
          expect(estimate).toBeGreaterThanOrEqual(exact);
          expect(estimate).toBeLessThanOrEqual(exact + 64);
        },
      ),
    );
  });

  it("counts a huge request string only up to what the record keeps of it", () => {
    const huge = sampleDecision({ path: `/${"p".repeat(1_000_000)}`, onBehalfOf: "o".repeat(1_000_000) });
    const exact = Buffer.byteLength(auditRecordJson(huge, { latencyMs: 1 }));
    expect(estimateAuditRecordBytes(huge, { latencyMs: 1 })).toBeLessThan(exact + 300);
    expect(estimateAuditRecordBytes(huge, { latencyMs: 1 })).toBeGreaterThanOrEqual(exact);
  });
});
