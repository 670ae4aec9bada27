// The audit log's hash chain and checkpoint signatures: how a line is hashed,
// how a decision line and a signed checkpoint line are laid out, and how a
// checkpoint's signature is checked. Shared by the writer and `audit verify`,
// so both agree byte for byte (docs/audit-log.md).

import { createHash, createPublicKey, sign, verify, type KeyObject } from "node:crypto";
import type { AuditRecord } from "./audit-record.js";

/** The `prev` of the very first record of a log: no record came before it. */
export const GENESIS_HASH = "0".repeat(64);

/** Prepended to every signed message so a checkpoint signature can never be replayed as any other Ed25519 signature made with the same key. */
const SIGNATURE_CONTEXT = "hopwarden-audit-checkpoint-v1\n";

const SIGNATURE_SUFFIX = /,"signature":"([A-Za-z0-9+/]+={0,2})"\}$/;

export type CheckpointReason = "interval" | "rotation" | "shutdown";

export interface ChainHead {
  /** The seq of the last line written, 0 before any. */
  readonly seq: number;
  /** The hash of the last line written, GENESIS_HASH before any. */
  readonly hash: string;
}

export const GENESIS_HEAD: ChainHead = { seq: 0, hash: GENESIS_HASH };

/** Hex SHA-256 over a line's exact bytes, without its terminating newline. */
export function hashLine(line: string | Uint8Array): string {
  return createHash("sha256").update(line).digest("hex");
}

/** A decision line, chained to `head`. The chain fields come first so that a reader sees them before the payload. */
export function formatDecisionLine(record: AuditRecord, head: ChainHead): string {
  return formatSerializedDecisionLine(JSON.stringify(record), head);
}

/** formatDecisionLine for a record already serialized with JSON.stringify (the writer sizes records when they are queued). */
export function formatSerializedDecisionLine(recordJson: string, head: ChainHead): string {
  // Byte for byte what JSON.stringify({ type, seq, prev, ...record }) gives
  // (the hash is hex, so it needs no escaping), without copying the record
  // into a new object first: this runs once per decision.
  return `{"type":"decision","seq":${head.seq + 1},"prev":"${head.hash}"${recordJson.length > 2 ? "," : ""}${recordJson.slice(1)}`;
}

/** Short, stable id of a signing key (hex SHA-256 of its SPKI DER, first 16 digits), so verify can say which key signed. */
export function auditKeyId(key: KeyObject): string {
  const publicKey = key.type === "private" ? createPublicKey(key) : key;
  return hashLine(publicKey.export({ type: "spki", format: "der" })).slice(0, 16);
}

export interface CheckpointFields {
  readonly time: string;
  readonly reason: CheckpointReason;
  readonly keyId: string;
}

/**
 * A checkpoint line, chained to `head` like any record. Its `prev` is the
 * running hash it vouches for; the signature covers the whole line up to the
 * signature field, so neither the hash nor the checkpoint's own fields can be
 * changed without the key.
 */
export function formatCheckpointLine(head: ChainHead, fields: CheckpointFields, privateKey: KeyObject): string {
  const body = JSON.stringify({
    type: "checkpoint",
    seq: head.seq + 1,
    prev: head.hash,
    time: fields.time,
    reason: fields.reason,
    key_id: fields.keyId,
  });
  const signature = sign(null, Buffer.from(SIGNATURE_CONTEXT + body, "utf8"), privateKey).toString("base64");
  return `${body.slice(0, -1)},"signature":"${signature}"}`;
}

/** True when the checkpoint line's signature is valid for `publicKey`. */
export function checkpointSignatureValid(line: string, publicKey: KeyObject): boolean {
  const match = SIGNATURE_SUFFIX.exec(line);
  if (!match) return false;
  const body = `${line.slice(0, match.index)}}`;
  try {
    return verify(null, Buffer.from(SIGNATURE_CONTEXT + body, "utf8"), publicKey, Buffer.from(match[1]!, "base64"));
  } catch {
    return false;
  }
}
