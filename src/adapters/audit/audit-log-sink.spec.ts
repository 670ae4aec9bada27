import { describe, expect, it } from "vitest";
import { captureLogger, sampleDecision } from "../../../test/support/audit-fixtures.js";
import { AuditLogSink } from "./audit-log-sink.js";
import type { AuditRecord } from "./audit-record.js";
import type { AuditRecordTarget } from "./audit-record-target.js";

function target(overrides: Partial<AuditRecordTarget> = {}): AuditRecordTarget & { records: AuditRecord[] } {
  const records: AuditRecord[] = [];
  return {
    records,
    append: (r) => records.push(r),
    admit: () => true,
    accepting: () => true,
    healthy: () => true,
    stats: () => ({ depth: 0, dropped: 0, blocked: 0, refused: 0, written: 0, checkpoints: 0, writeErrors: 0, rotations: 0 }),
    close: () => Promise.resolve(),
    ...overrides,
  };
}

describe("AuditLogSink (DecisionSink for the local audit log)", () => {
  it("hands one record per decision, with its decision_id, to the target", () => {
    const t = target();
    const decision = sampleDecision({ reason: "hop_not_allowed" });
    new AuditLogSink(t).record(decision, { latencyMs: 3 });
    expect(t.records).toHaveLength(1);
    expect(t.records[0]).toMatchObject({ decision_id: decision.decisionId, decision: "deny", reason: "hop_not_allowed" });
  });

  it("never throws into the Check path; a failure is counted as dropped and logged", () => {
    const log = captureLogger();
    const sink = new AuditLogSink(
      target({
        append: () => {
          throw new Error("boom");
        },
      }),
      log.logger,
    );
    expect(() => sink.record(sampleDecision(), { latencyMs: 1 })).not.toThrow();
    expect(sink.stats().dropped).toBe(1);
    expect(log.events("audit_record_dropped")).toHaveLength(1);
  });

  it("passes admission (fail closed) and health through from its target", () => {
    const sink = new AuditLogSink(target({ admit: () => false, accepting: () => false, healthy: () => false }));
    expect(sink.admit()).toBe(false);
    expect(sink.accepting()).toBe(false);
    expect(sink.healthy()).toBe(false);
  });
});
