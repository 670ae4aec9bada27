// The Check latency histogram as Prometheus reads it: cumulative buckets by
// outcome, a sum in seconds and a count.

import { describe, expect, it } from "vitest";
import { LatencyHistogram } from "./latency-histogram.js";

describe("the Check latency histogram", () => {
  it("counts each latency in the first bucket whose bound it does not exceed, cumulatively, by outcome", () => {
    const h = new LatencyHistogram("h_seconds", "help");
    h.record(0.05, true); // 50 µs
    h.record(0.1, true); // exactly 100 µs: le="0.0001"
    h.record(0.3, true);
    h.record(900, true); // above every bound: +Inf only
    h.record(2, false);
    const text = h.text();
    expect(text).toContain("# TYPE h_seconds histogram");
    expect(text).toContain('h_seconds_bucket{decision="allow",le="0.0001"} 2');
    expect(text).toContain('h_seconds_bucket{decision="allow",le="0.0005"} 3');
    expect(text).toContain('h_seconds_bucket{decision="allow",le="0.5"} 3');
    expect(text).toContain('h_seconds_bucket{decision="allow",le="+Inf"} 4');
    expect(text).toContain('h_seconds_count{decision="allow"} 4');
    expect(text).toContain('h_seconds_bucket{decision="deny",le="0.001"} 0');
    expect(text).toContain('h_seconds_bucket{decision="deny",le="0.0025"} 1');
    expect(Number(/h_seconds_sum\{decision="allow"\} (\S+)/.exec(text)?.[1])).toBeCloseTo(0.90045, 6);
  });

  it("leaves out an outcome that never happened", () => {
    const h = new LatencyHistogram("h_seconds", "help");
    h.record(1, false);
    expect(h.text()).not.toContain('decision="allow"');
  });
});
