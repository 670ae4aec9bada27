// Encodes the CheckResponse for a Decision directly on the wire (see
// protobuf/wire.ts for why); what it says is in check-response-fields.ts.
// check-response-encoder.properties.spec.ts decodes its bytes with the
// generated schema and compares them with the reference built from that
// schema (test/support/reference-codec.ts).

import type { Decision } from "../../core/decision/decision.js";
import { REASON_STATUS } from "../../core/reasons.js";
import { WireWriter } from "../protobuf/wire.js";
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
  stringField(w, "on_behalf_of", d.onBehalfOf ?? "");
  // number_value = 2 (double)
  w.fork(1).string(1, "chain_depth").fork(2).double(2, d.chain.length).join().join();
  // SPEC 8: how the caller was bound ("" when the request named no caller).
  stringField(w, "caller_binding", d.callerBinding ?? "");
  if (d.reason !== undefined) stringField(w, "reason", d.reason);
  w.join();
}

export function encodeCheckResponse(d: Decision): Buffer {
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
