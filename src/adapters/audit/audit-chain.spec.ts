import { generateKeyPairSync } from "node:crypto";
import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { sampleDecision } from "../../../test/support/audit-fixtures.js";
import { auditKeyId, signedLineValid, formatCheckpointLine, formatDecisionLine, GENESIS_HEAD, hashLine } from "./audit-chain.js";
import { buildAuditRecord } from "./audit-record.js";

const { privateKey, publicKey } = generateKeyPairSync("ed25519");
const fields = { time: "2026-11-01T12:00:00.000Z", reason: "interval" as const, keyId: auditKeyId(privateKey) };

describe("the hash chain", () => {
  it("hashes a line's exact bytes as lower-case hex SHA-256", () => {
    expect(hashLine("abc")).toBe("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  });

  it("chains the first record to the genesis hash with seq 1, chain fields first", () => {
    const line = formatDecisionLine(buildAuditRecord(sampleDecision(), { latencyMs: 1 }), GENESIS_HEAD);
    expect(line.startsWith(`{"type":"decision","seq":1,"prev":"${"0".repeat(64)}","decision_id":`)).toBe(true);
  });

  it("chains each record to the hash of the line before it", () => {
    const first = formatDecisionLine(buildAuditRecord(sampleDecision(), { latencyMs: 1 }), GENESIS_HEAD);
    const second = formatDecisionLine(buildAuditRecord(sampleDecision(), { latencyMs: 1 }), { seq: 1, hash: hashLine(first) });
    expect(JSON.parse(second)).toMatchObject({ seq: 2, prev: hashLine(first) });
  });
});

describe("checkpoint signatures", () => {
  const head = { seq: 41, hash: "c".repeat(64) };
  const line = formatCheckpointLine(head, fields, privateKey);

  it("signs the running hash and verifies with the public key", () => {
    expect(JSON.parse(line)).toMatchObject({ type: "checkpoint", seq: 42, prev: head.hash, reason: "interval", key_id: fields.keyId });
    expect(signedLineValid(line, publicKey)).toBe(true);
  });

  it("fails with another key", () => {
    expect(signedLineValid(line, generateKeyPairSync("ed25519").publicKey)).toBe(false);
  });

  it.each([
    ["the running hash", line.replace(head.hash, "d".repeat(64))],
    ["the seq", line.replace('"seq":42', '"seq":43')],
    ["the reason", line.replace('"interval"', '"shutdown"')],
    ["the time", line.replace("12:00:00", "12:00:01")],
    ["an added field", line.replace('{"type"', '{"x":1,"type"')],
    ["the signature", line.replace(/"signature":"(.)/, (_m, c: string) => `"signature":"${c === "A" ? "B" : "A"}`)],
    ["a removed signature", line.replace(/,"signature":"[^"]*"/, "")],
  ])("fails when %s is changed", (_what, tampered) => {
    expect(tampered).not.toBe(line);
    expect(signedLineValid(tampered, publicKey)).toBe(false);
  });

  it("writes the signature as padded base64 (what verify requires)", () => {
    expect(signatureOf(line)).toMatch(/^[A-Za-z0-9+/]{86}==$/);
  });

  // Ed25519 signatures are 64 bytes: 86 characters and "==", the last of which holds 4 bits that decoding drops.
  it.each([
    ["its padding dropped", (s: string) => s.replace(/=+$/, "")],
    ["unused low bits set in its last character", (s: string) => s.slice(0, 85) + lowBitsSet(s[85]!) + "=="],
  ])("fails when the signature is spelled another way that decodes to the same bytes: %s", (_what, respell) => {
    const signature = signatureOf(line);
    const other = respell(signature);
    expect(other).not.toBe(signature);
    expect(Buffer.from(other, "base64").equals(Buffer.from(signature, "base64"))).toBe(true);
    const respelled = line.replace(signature, other);
    // Another spelling is another line, with another hash: the running hash an outside witness holds would not match.
    expect(hashLine(respelled)).not.toBe(hashLine(line));
    expect(signedLineValid(respelled, publicKey)).toBe(false);
  });

  it("identifies the key by a stable id shared by its private and public halves", () => {
    expect(auditKeyId(publicKey)).toBe(auditKeyId(privateKey));
    expect(auditKeyId(publicKey)).toMatch(/^[0-9a-f]{16}$/);
  });
});

function signatureOf(signed: string): string {
  return (JSON.parse(signed) as { signature: string }).signature;
}

/** The base64 character with the same top 2 bits as `c` (the 2 bits that carry the signature's last byte), and the low 4 bits set. */
function lowBitsSet(c: string): string {
  const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  return alphabet[(alphabet.indexOf(c) & 0b110000) | 0b001111]!;
}

describe("formatDecisionLine's layout", () => {
  // Record keys are fixed names; integer-like keys (which objects order first) never occur.
  it("is exactly JSON of { type, seq, prev, ...record } for any record", () => {
    fc.assert(
      fc.property(
        fc.dictionary(fc.string({ minLength: 1 }).filter((k) => !["type", "seq", "prev", "__proto__"].includes(k) && !/^\d+$/.test(k)), fc.jsonValue()),
        fc.nat(),
        fc.string({ unit: fc.constantFrom(..."0123456789abcdef"), minLength: 64, maxLength: 64 }),
        (record, seq, hash) => {
          const line = formatDecisionLine(record as never, { seq, hash });
          expect(line).toBe(JSON.stringify({ type: "decision", seq: seq + 1, prev: hash, ...record }));
        },
      ),
      { numRuns: 300 },
    );
  });
});
