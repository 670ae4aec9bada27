// The production CheckResponse encoder against the reference built with the
// generated schema (test/support/reference-codec.ts): for any Decision, its
// bytes decode with the generated CheckResponse schema to exactly the
// reference's CheckResponse.
//
// Two things no encoding can keep, tested apart at the end: a lone surrogate
// in a JS string has no UTF-8 form (both sides write U+FFFD), and protobuf-es
// drops a leading U+FEFF when it decodes a string (the encoder writes it).

import { fromBinary, toBinary } from "@bufbuild/protobuf";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { CheckResponseSchema } from "../../gen/envoy/service/auth/v3/external_auth_pb.js";
import { CALLER_BINDINGS, type CallerBinding, type Decision } from "../../core/decision/decision.js";
import { DENIAL_REASONS, type DenialReason } from "../../core/reasons.js";
import { makeDecision } from "../../../test/support/decisions.js";
import { toCheckResponse } from "../../../test/support/reference-codec.js";
import { encodeCheckResponse } from "./check-response-encoder.js";

const SEED = 20261201;

/** Odd strings: empty, any code point, JSON specials, separators; never a leading U+FEFF (see the header). */
const text = fc
  .oneof(
    fc.constantFrom("", "spiffe://example.org/agent/research", "alice@example.com", "2026-11-01.3", "01JBZ6Q6M3YV0V9F6X5K8T2R4A"),
    fc.string({ unit: "binary", maxLength: 40 }),
    fc.string({ unit: fc.constantFrom('"', "\\", "\n", "\0", ",", "→", "😀", "\uFEFF", "\u2028", "é", "a"), maxLength: 10 }),
    // Long enough for two-byte length prefixes, which the encoder widens after writing the content.
    fc.string({ unit: "grapheme", minLength: 100, maxLength: 300 }),
  )
  .filter((s) => !s.startsWith("\uFEFF"));

function decisionOf(fields: {
  reason: DenialReason | undefined;
  text: readonly string[];
  onBehalfOf: string | undefined;
  chain: readonly string[];
  present: readonly boolean[];
  callerBinding: CallerBinding | undefined;
}): Decision {
  const [message, decisionId, policyVersion, caller, callee] = fields.text as [string, string, string, string, string];
  return makeDecision({
    reason: fields.reason,
    message,
    decisionId,
    policyVersion,
    decidedAtMs: 0,
    caller: fields.present[0] ? caller : undefined,
    callee: fields.present[1] ? callee : undefined,
    onBehalfOf: fields.onBehalfOf,
    chain: fields.chain,
    hops: [],
    peerCertificateSha256: undefined,
    method: "GET",
    path: "/",
    tokenId: undefined,
    tokenSha256: undefined,
    tokenPrev: undefined,
    callerBinding: fields.callerBinding,
    mcp: undefined,
    txn: undefined,
  });
}

const decisions = (strings: fc.Arbitrary<string>): fc.Arbitrary<Decision> =>
  fc
    .record({
      allowed: fc.boolean(),
      reason: fc.constantFrom(...DENIAL_REASONS),
      text: fc.array(strings, { minLength: 5, maxLength: 5 }),
      onBehalfOf: fc.option(strings, { nil: undefined }),
      chain: fc.array(strings, { maxLength: 7 }),
      present: fc.array(fc.boolean(), { minLength: 2, maxLength: 2 }),
      callerBinding: fc.option(fc.constantFrom(...CALLER_BINDINGS), { nil: undefined }),
    })
    .map((f) => decisionOf({ ...f, reason: f.allowed ? undefined : f.reason }));

describe("the encoder writes every Decision as the generated schema does", () => {
  it("decodes, with the generated schema, to exactly the reference CheckResponse", () => {
    fc.assert(
      fc.property(decisions(text), (decision) => {
        expect(fromBinary(CheckResponseSchema, encodeCheckResponse(decision))).toStrictEqual(toCheckResponse(decision));
      }),
      { numRuns: 500, seed: SEED },
    );
  });

  it("answers a repeated allow from its cached template exactly as it would encode it afresh", () => {
    const ids = fc.oneof(
      fc.stringMatching(/^[0-9A-HJKMNP-TV-Z]{26}$/),
      fc.string({ unit: "binary-ascii", minLength: 8, maxLength: 40 }),
      text,
    );
    fc.assert(
      fc.property(decisions(text), fc.array(ids, { minLength: 2, maxLength: 4 }), (decision, otherIds) => {
        const allow = { ...decision, allowed: true as const, reason: undefined };
        for (const decisionId of [allow.decisionId, ...otherIds]) {
          const repeated = { ...allow, decisionId };
          expect(fromBinary(CheckResponseSchema, encodeCheckResponse(repeated))).toStrictEqual(toCheckResponse(repeated));
        }
      }),
      { numRuns: 300, seed: SEED + 3 },
    );
  });

  it("encodes a repeated allow too large for a template in full, every time", () => {
    const [decision] = fc.sample(decisions(text), { numRuns: 1, seed: SEED + 4 });
    const large = { ...decision!, allowed: true as const, reason: undefined, caller: "spiffe://example.org/agent/large", onBehalfOf: `${"p".repeat(5000)}@example.com` };
    for (const decisionId of ["01JBZ6Q6M3YV0V9F6X5K8T2R4A", "01JBZ6Q6M3YV0V9F6X5K8T2R4B", "01JBZ6Q6M3YV0V9F6X5K8T2R4C"]) {
      const repeated = { ...large, decisionId };
      expect(fromBinary(CheckResponseSchema, encodeCheckResponse(repeated))).toStrictEqual(toCheckResponse(repeated));
    }
  });

  it("with lone surrogates, which UTF-8 cannot carry, writes U+FFFD where the generated encoder does", () => {
    const withSurrogates = fc.string({ unit: fc.constantFrom("\uD800", "\uDFFF", "a", "😀"), maxLength: 6 });
    fc.assert(
      fc.property(decisions(withSurrogates), (decision) => {
        const reference = fromBinary(CheckResponseSchema, toBinary(CheckResponseSchema, toCheckResponse(decision)));
        expect(fromBinary(CheckResponseSchema, encodeCheckResponse(decision))).toStrictEqual(reference);
      }),
      { numRuns: 200, seed: SEED + 1 },
    );
  });

  it("writes a leading U+FEFF as it is (protobuf-es drops it when decoding, so the bytes are compared)", () => {
    const [decision] = fc.sample(decisions(text), { numRuns: 1, seed: SEED + 2 });
    const withBom = { ...decision!, allowed: true as const, reason: undefined, onBehalfOf: "\uFEFFalice@example.com" };
    expect(encodeCheckResponse(withBom).includes(Buffer.from("\uFEFFalice@example.com"))).toBe(true);
  });
});
