// The audit log's hash chain and signed lines: how a line is hashed, how a
// decision line, a signed checkpoint and a signed recovery record are laid
// out, and how a signature is checked. Shared by the writer and `audit
// verify`, so both agree byte for byte (docs/audit-log.md).

import { createPublicKey, hash, sign, verify, type KeyObject } from "node:crypto";
import type { AuditRecord } from "./audit-record.js";

/** The `prev` of the very first record of a log: no record came before it. */
export const GENESIS_HASH = "0".repeat(64);

/**
 * Prepended to every signed message so a signature can never be replayed as
 * any other Ed25519 signature made with the same key. Checkpoints and
 * recovery records share it: the signed body starts with its `type`.
 */
const SIGNATURE_CONTEXT = Buffer.from("hopwarden-audit-checkpoint-v1\n", "utf8");

/** Matched against the line's bytes read as latin1 (one character per byte), so offsets are byte offsets. */
const SIGNATURE_SUFFIX = /,"signature":"([A-Za-z0-9+/]+={0,2})"\}$/;

/** `start`: the first line a worker's chain writes in each run (--workers), so the chain is on disk before the main log names it. */
export type CheckpointReason = "interval" | "rotation" | "shutdown" | "start";

export interface ChainHead {
  /** The seq of the last line written, 0 before any. */
  readonly seq: number;
  /** The hash of the last line written, GENESIS_HASH before any. */
  readonly hash: string;
}

export const GENESIS_HEAD: ChainHead = { seq: 0, hash: GENESIS_HASH };

/** Hex SHA-256 over a line's exact bytes, without its terminating newline. */
export function hashLine(line: string | Uint8Array): string {
  // The one-shot form: about half the cost of a Hash object, once per line written or read.
  return hash("sha256", line, "hex");
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
  return decisionLinePrefix(head, recordJson.length) + recordJson.slice(1);
}

/**
 * The ASCII start of a decision (or roster) line, up to where the record's
 * own `{` is dropped; `recordLength` is the record's JSON length in
 * characters or bytes (only whether it is more than `{}` matters).
 */
export function decisionLinePrefix(head: ChainHead, recordLength: number, type: "decision" | "roster" = "decision"): string {
  return `{"type":"${type}","seq":${head.seq + 1},"prev":"${head.hash}"${recordLength > 2 ? "," : ""}`;
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
  /** A worker's chain ("w1", …); "" or absent for the main log, whose lines carry no `chain` field. */
  readonly chain?: string;
}

/**
 * A checkpoint line, chained to `head` like any record. Its `prev` is the
 * running hash it vouches for; the signature covers the whole line up to the
 * signature field, so neither the hash nor the checkpoint's own fields can be
 * changed without the key.
 */
export function formatCheckpointLine(head: ChainHead, fields: CheckpointFields, privateKey: KeyObject): string {
  return signBody(
    JSON.stringify({
      type: "checkpoint",
      seq: head.seq + 1,
      prev: head.hash,
      time: fields.time,
      reason: fields.reason,
      ...chainField(fields.chain),
      key_id: fields.keyId,
    }),
    privateKey,
  );
}

/** Signed lines of a worker's chain name it, so a file cannot pass for another chain's (the signature covers the name). */
function chainField(chain: string | undefined): { worker_chain?: string } {
  return chain === undefined || chain === "" ? {} : { worker_chain: chain };
}

/** Lines after a resume point that a restarted writer could not verify, in one file. */
export interface UnverifiedRange {
  /** The file's name (without its directory) when the writer read it. */
  readonly file: string;
  readonly firstLine: number;
  readonly lastLine: number;
  /** Their length in bytes, each line with its newline. */
  readonly bytes: number;
  /** Hex SHA-256 over the lines' own hex SHA-256 hashes, each followed by "\n" (see linesDigest). */
  readonly linesSha256: string;
}

export type RecoveryReason = "unverified_lines" | "no_shutdown_checkpoint";

export interface RecoveryFields {
  readonly time: string;
  readonly reason: RecoveryReason;
  /** The signed line the new segment chains from; null when it starts over from the genesis hash. */
  readonly resumedAfter: { readonly seq: number; readonly file: string; readonly line: number | null } | null;
  readonly unverified: readonly UnverifiedRange[];
  /** Why the lines could not be verified, for people. */
  readonly problem: string | null;
  readonly keyId: string;
  readonly chain?: string;
}

/**
 * The first line a writer writes when it resumes a log that did not end with
 * its shutdown checkpoint (SPEC 6): chained to the last line it could verify,
 * naming what it could not, and signed so that neither can be forged.
 */
export function formatRecoveryLine(head: ChainHead, fields: RecoveryFields, privateKey: KeyObject): string {
  return signBody(
    JSON.stringify({
      type: "recovery",
      seq: head.seq + 1,
      prev: head.hash,
      time: fields.time,
      reason: fields.reason,
      resumed_after: fields.resumedAfter,
      unverified: fields.unverified.map((r) => ({ file: r.file, first_line: r.firstLine, last_line: r.lastLine, bytes: r.bytes, lines_sha256: r.linesSha256 })),
      problem: fields.problem,
      ...chainField(fields.chain),
      key_id: fields.keyId,
    }),
    privateKey,
  );
}

function signBody(body: string, privateKey: KeyObject): string {
  const signature = sign(null, Buffer.concat([SIGNATURE_CONTEXT, Buffer.from(body, "utf8")]), privateKey).toString("base64");
  return `${body.slice(0, -1)},"signature":"${signature}"}`;
}

/**
 * True when a signed line's (checkpoint or recovery record) signature is valid
 * for `publicKey`. Checked over the line's exact bytes, never over a decoded
 * string, so the bytes that are hashed into the chain are the bytes that were signed.
 */
export function signedLineValid(line: string | Buffer, publicKey: KeyObject): boolean {
  const bytes = typeof line === "string" ? Buffer.from(line, "utf8") : line;
  const match = SIGNATURE_SUFFIX.exec(bytes.toString("latin1"));
  if (!match) return false;
  const signature = Buffer.from(match[1]!, "base64");
  // Only the spelling the writer emits (padded, no stray bits): base64
  // decoding ignores a missing padding and the unused low bits of the last
  // character, so other spellings of the same signature would verify too, and
  // the line (whose hash is the running hash a witness compares) could change.
  if (signature.toString("base64") !== match[1]) return false;
  const body = Buffer.concat([SIGNATURE_CONTEXT, bytes.subarray(0, match.index), Buffer.from("}")]);
  try {
    return verify(null, body, publicKey, signature);
  } catch {
    return false;
  }
}
