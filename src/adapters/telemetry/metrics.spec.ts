// hopwarden_decisions_total counts every decision by outcome, reason and
// caller binding (SPEC 8: certificate, xfcc, principal, or none when the
// request named no caller).

import { describe, expect, it } from "vitest";
import { makeDecision, SAMPLE_DECISION_FIELDS } from "../../../test/support/decisions.js";
import { HopwardenMetrics } from "./metrics.js";

function countsOf(text: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const m of text.matchAll(/^hopwarden_decisions_total\{([^}]*)\} (\d+)$/gm)) out[m[1]!.replace(/,otel_scope_name="[^"]*"/, "")] = Number(m[2]);
  return out;
}

describe("hopwarden_decisions_total", () => {
  it("counts by decision, reason and binding, and shows only what happened", async () => {
    const metrics = new HopwardenMetrics();
    const record = (fields: Partial<typeof SAMPLE_DECISION_FIELDS> & { reason?: "hop_not_allowed" | "missing_peer_certificate" }) =>
      metrics.record(makeDecision({ ...SAMPLE_DECISION_FIELDS, ...fields }), { latencyMs: 0.1 });
    record({ callerBinding: "certificate" });
    record({ callerBinding: "certificate" });
    record({ callerBinding: "principal" });
    record({ callerBinding: "xfcc", reason: "hop_not_allowed" });
    record({ callerBinding: undefined, reason: "missing_peer_certificate" });
    expect(countsOf(await metrics.text())).toEqual({
      'decision="allow",reason="allowed",binding="certificate"': 2,
      'decision="allow",reason="allowed",binding="principal"': 1,
      'decision="deny",reason="hop_not_allowed",binding="xfcc"': 1,
      'decision="deny",reason="missing_peer_certificate",binding="none"': 1,
    });
    await metrics.shutdown();
  });
});
