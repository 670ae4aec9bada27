import { describe, expect, it } from "vitest";
import { mergePrometheusTexts } from "./prometheus-merge.js";

const worker = (allow: number, bucket: number, entries: number) => `# HELP target_info Target metadata
# TYPE target_info gauge
target_info{service_name="hopwarden"} 1
# HELP hopwarden_decisions_total Check decisions by outcome and reason
# TYPE hopwarden_decisions_total counter
hopwarden_decisions_total{decision="allow",reason="allowed"} ${allow}
# HELP hopwarden_check_duration Time to decide one Check
# TYPE hopwarden_check_duration histogram
hopwarden_check_duration_count{decision="allow"} ${bucket}
hopwarden_check_duration_sum{decision="allow"} 0.5
hopwarden_check_duration_bucket{decision="allow",le="0.001"} ${bucket}
# HELP hopwarden_hop_cache_entries Entries
# TYPE hopwarden_hop_cache_entries gauge
hopwarden_hop_cache_entries ${entries}
# HELP hopwarden_policy_info 1 for the policy version in force
# TYPE hopwarden_policy_info gauge
hopwarden_policy_info{version="v1"} 1
`;

describe("mergePrometheusTexts (serve --workers N /metrics)", () => {
  it("adds counters, histograms and size gauges across workers, keeping *_info series once", () => {
    const merged = mergePrometheusTexts([worker(3, 4, 10), worker(5, 6, 7)]);
    expect(merged).toContain('hopwarden_decisions_total{decision="allow",reason="allowed"} 8');
    expect(merged).toContain('hopwarden_check_duration_count{decision="allow"} 10');
    expect(merged).toContain('hopwarden_check_duration_sum{decision="allow"} 1');
    expect(merged).toContain('hopwarden_check_duration_bucket{decision="allow",le="0.001"} 10');
    expect(merged).toContain("hopwarden_hop_cache_entries 17");
    expect(merged).toContain('hopwarden_policy_info{version="v1"} 1');
    expect(merged).toContain('target_info{service_name="hopwarden"} 1');
    expect(merged.match(/# TYPE hopwarden_decisions_total counter/g)).toHaveLength(1);
  });

  it("keeps series only one worker has, under their family's comments", () => {
    const merged = mergePrometheusTexts([worker(1, 1, 1), `${worker(1, 1, 1)}# HELP hopwarden_decisions_total Check decisions by outcome and reason\n# TYPE hopwarden_decisions_total counter\nhopwarden_decisions_total{decision="deny",reason="hop_not_allowed"} 2\n`]);
    const lines = merged.split("\n");
    const type = lines.indexOf("# TYPE hopwarden_decisions_total counter");
    const deny = lines.indexOf('hopwarden_decisions_total{decision="deny",reason="hop_not_allowed"} 2');
    expect(type).toBeGreaterThan(-1);
    expect(deny).toBeGreaterThan(type);
  });

  it("counts a policy reload once, not once per worker that carried it out", () => {
    const reloads = (ok: number, refused: number) =>
      `# HELP hopwarden_policy_reloads_total Policy reload attempts by result\n# TYPE hopwarden_policy_reloads_total counter\nhopwarden_policy_reloads_total{result="ok"} ${ok}\nhopwarden_policy_reloads_total{result="refused"} ${refused}\n`;
    // A worker replaced after the first reload has seen only the second.
    const merged = mergePrometheusTexts([reloads(2, 1), reloads(2, 1), reloads(1, 0)]);
    expect(merged).toContain('hopwarden_policy_reloads_total{result="ok"} 2');
    expect(merged).toContain('hopwarden_policy_reloads_total{result="refused"} 1');
  });

  it("returns an empty exposition for no workers", () => {
    expect(mergePrometheusTexts([])).toBe("\n");
  });
});
