// Encodes the CheckResponse for a Decision directly on the wire (see
// protobuf/wire.ts for why); what it says is in check-response-fields.ts.
// check-response-encoder.properties.spec.ts decodes its bytes with the
// generated schema and compares them with the reference built from that
// schema (test/support/reference-codec.ts).
//
// An allow for a shape seen before (decision-shape-cache.ts) is its cached
// bytes with the new decision id written over the old: the id is the only
// part of an allow that changes from call to call.

import type { Decision } from "../../core/decision/decision.js";
import { DecisionShapeCache } from "../cache/decision-shape-cache.js";
import { REASON_STATUS } from "../../core/reasons.js";
import { WireWriter } from "../protobuf/wire.js";
import { boundText } from "../text/bounded-text.js";
import { isAscii, writeLatin1 } from "../text/latin1-bytes.js";
import { denialBody, OVERWRITE_IF_EXISTS_OR_ADD, REASON_HEADER, VERIFIED_HEADERS } from "./check-response-fields.js";

function header(w: WireWriter, field: number, key: string, value: string): void {
  // HeaderValueOption { header = 1 { key = 1; value = 2 }; append_action = 3 }
  w.fork(field).fork(1).string(1, key).string(2, value).join().varint(3, OVERWRITE_IF_EXISTS_OR_ADD).join();
}

function stringField(w: WireWriter, key: string, value: string): void {
  // Struct.fields entry { key = 1; value = 2: Value { string_value = 3 } }
  w.fork(1).string(1, key).fork(2).string(3, value).join().join();
}

function metadata(w: WireWriter, d: Decision): void {
  w.fork(4);
  stringField(w, "decision_id", d.decisionId);
  stringField(w, "policy_version", d.policyVersion);
  stringField(w, "caller", d.caller ?? "");
  stringField(w, "callee", d.callee ?? "");
  // A deny may carry the refused claim as sent (a 1 MiB header came back whole): bounded as records bound it (SPEC 6).
  // An allow's value passed the 2,048-byte bound and is given as verified.
  stringField(w, "on_behalf_of", d.allowed ? (d.onBehalfOf ?? "") : boundText(d.onBehalfOf ?? ""));
  // number_value = 2 (double)
  w.fork(1).string(1, "chain_depth").fork(2).double(2, d.chain.length).join().join();
  // SPEC 8: how the caller was bound ("" when the request named no caller).
  stringField(w, "caller_binding", d.callerBinding ?? "");
  if (d.reason !== undefined) stringField(w, "reason", d.reason);
  w.join();
}

/** An allow's bytes, and where its decision id sits in them (the header and the metadata). */
interface AllowTemplate {
  readonly bytes: Buffer;
  readonly idLength: number;
  readonly idAt: readonly [number, number];
}

/** Larger allows (long names, long chains) are encoded every time rather than kept. */
const MAX_TEMPLATE_BYTES = 4096;
/** Shorter ids are not templated: a short run of placeholder bytes could be mistaken for a length prefix. */
const MIN_TEMPLATE_ID_LENGTH = 8;
/** null: this shape has no template (too large, or its id could not be found again), so its allows are encoded in full. */
const allowTemplates = new DecisionShapeCache<AllowTemplate | null>();

export function encodeCheckResponse(d: Decision): Buffer {
  if (!d.allowed || !templatableId(d.decisionId)) return encodeFully(d);
  const template = allowTemplates.get(d);
  if (template === null) return encodeFully(d);
  if (template !== undefined && template.idLength === d.decisionId.length) return fromTemplate(template, d.decisionId);
  const bytes = encodeFully(d);
  allowTemplates.set(d, buildTemplate(d, bytes));
  return bytes;
}

/** ASCII (one byte a character in UTF-8) and long enough to find again. */
function templatableId(id: string): boolean {
  return id.length >= MIN_TEMPLATE_ID_LENGTH && isAscii(id);
}

function fromTemplate(t: AllowTemplate, id: string): Buffer {
  const out = Buffer.allocUnsafe(t.bytes.length);
  t.bytes.copy(out);
  // templatableId: the id is ASCII of the template's length.
  writeLatin1(out, t.idAt[0], id);
  writeLatin1(out, t.idAt[1], id);
  return out;
}

/**
 * Encodes the decision again with a placeholder id to find where the id
 * goes, and keeps the template only if it rebuilds `expected` exactly, so a
 * template can never say anything the full encoder would not.
 */
function buildTemplate(d: Decision, expected: Buffer): AllowTemplate | null {
  if (expected.length > MAX_TEMPLATE_BYTES) return null;
  const placeholder = "\u0001".repeat(d.decisionId.length);
  const bytes = Buffer.from(encodeFully({ ...d, decisionId: placeholder }));
  const marker = Buffer.from(placeholder, "latin1");
  const first = bytes.indexOf(marker);
  const second = first === -1 ? -1 : bytes.indexOf(marker, first + marker.length);
  if (second === -1 || bytes.indexOf(marker, second + marker.length) !== -1) return null;
  const template: AllowTemplate = { bytes, idLength: d.decisionId.length, idAt: [first, second] };
  return fromTemplate(template, d.decisionId).equals(expected) ? template : null;
}

function encodeFully(d: Decision): Buffer {
  const w = new WireWriter(768);
  if (d.allowed) {
    w.fork(1).join(); // status { code: OK }
    w.fork(3);
    header(w, 2, VERIFIED_HEADERS.subject, d.caller ?? "");
    header(w, 2, VERIFIED_HEADERS.chain, d.chain.join(","));
    header(w, 2, VERIFIED_HEADERS.decisionId, d.decisionId);
    if (d.onBehalfOf !== undefined) header(w, 2, VERIFIED_HEADERS.onBehalfOf, d.onBehalfOf);
    else w.string(5, VERIFIED_HEADERS.onBehalfOf);
    w.join();
  } else {
    const reason = d.reason;
    const status = REASON_STATUS[reason];
    w.fork(1).varint(1, status.grpc).string(2, reason).join();
    w.fork(2);
    w.fork(1).varint(1, status.http).join();
    header(w, 2, "content-type", "application/json");
    header(w, 2, REASON_HEADER, reason);
    header(w, 2, VERIFIED_HEADERS.decisionId, d.decisionId);
    w.string(3, denialBody(d));
    w.join();
  }
  metadata(w, d);
  return w.finish();
}
