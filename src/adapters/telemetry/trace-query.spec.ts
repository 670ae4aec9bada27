import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { UlidGenerator } from "../ids/ulid.js";
import {
  classifyId,
  decisionSearchWindow,
  parseDurationMs,
  parseTimeBound,
  ulidTimeMs,
  workflowSearchWindow,
  DECISION_DEFAULT_LOOKBACK_MS,
  DECISION_SEARCH_MARGIN_MS,
  WORKFLOW_MARGIN_MS,
} from "./trace-query.js";

const NOW = Date.parse("2026-11-23T12:00:00Z");

describe("classifyId: trace ids are hex of trace-id length, anything else is a decision id", () => {
  it("tells a W3C/B3 trace id from a ULID decision id", () => {
    expect(classifyId("4bf92f3577b34da6a3ce929d0e0e4736")).toBe("trace");
    expect(classifyId("4BF92F3577B34DA6A3CE929D0E0E4736")).toBe("trace");
    expect(classifyId("a3ce929d0e0e4736")).toBe("trace");
    expect(classifyId(new UlidGenerator().next(NOW))).toBe("decision");
    expect(classifyId("4bf92f3577b34da6a3ce929d0e0e473")).toBe("decision");
  });
});

describe("ulidTimeMs: the time inside a decision id", () => {
  it("reads back the millisecond the generator encoded", () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 2 ** 48 - 1 }), (ms) => {
        expect(ulidTimeMs(new UlidGenerator().next(ms))).toBe(ms);
      }),
    );
  });

  it("is undefined for anything that is not a ULID", () => {
    for (const bad of ["", "01ABC", "8ZZZZZZZZZZZZZZZZZZZZZZZZZ", "01KAPQ3Z5B4X1S0M7Y6W2V8T9I", "01kapq3z5b4x1s0m7y6w2v8t9r"]) expect(ulidTimeMs(bad)).toBeUndefined();
  });
});

describe("parseTimeBound: --since and --until", () => {
  it("takes a duration back from now", () => {
    expect(parseTimeBound("90s", NOW)).toBe(NOW - 90_000);
    expect(parseTimeBound("15m", NOW)).toBe(NOW - 900_000);
    expect(parseTimeBound("2h", NOW)).toBe(NOW - 7_200_000);
    expect(parseTimeBound("7d", NOW)).toBe(NOW - 7 * 86_400_000);
    expect(parseTimeBound("1w", NOW)).toBe(NOW - 7 * 86_400_000);
    expect(parseTimeBound("500ms", NOW)).toBe(NOW - 500);
  });

  it("takes an ISO 8601 time", () => {
    expect(parseTimeBound("2026-11-23T10:00:00Z", NOW)).toBe(Date.parse("2026-11-23T10:00:00Z"));
    expect(parseTimeBound("2026-11-23T10:00:00.250+01:00", NOW)).toBe(Date.parse("2026-11-23T09:00:00.250Z"));
    expect(parseTimeBound("2026-11-23", NOW)).toBe(Date.parse("2026-11-23"));
  });

  it("refuses what is neither", () => {
    for (const bad of ["", "1", "15", "15 minutes", "-5m", "yesterday", "May 3", "2026-13-45T99:00:00Z", "m"]) expect(parseTimeBound(bad, NOW)).toBeUndefined();
  });

  it("never throws on any input", () => {
    fc.assert(fc.property(fc.string(), (s) => void parseTimeBound(s, NOW)));
    expect(parseDurationMs("10s")).toBe(10_000);
    expect(parseDurationMs("ten")).toBeUndefined();
  });
});

describe("search windows", () => {
  it("looks for a decision around the time in its id, unless told otherwise", () => {
    const at = NOW - 3_600_000;
    const idAt = new UlidGenerator().next(at);
    expect(decisionSearchWindow(idAt, NOW)).toEqual({ startMs: at - DECISION_SEARCH_MARGIN_MS, endMs: at + DECISION_SEARCH_MARGIN_MS });
    expect(decisionSearchWindow(idAt, NOW, { startMs: 5 })).toEqual({ startMs: 5, endMs: NOW });
    expect(decisionSearchWindow("not-a-ulid", NOW)).toEqual({ startMs: NOW - DECISION_DEFAULT_LOOKBACK_MS, endMs: NOW });
  });

  it("looks for the rest of a workflow around the decision", () => {
    expect(workflowSearchWindow(NOW)).toEqual({ startMs: NOW - WORKFLOW_MARGIN_MS, endMs: NOW + WORKFLOW_MARGIN_MS });
    expect(workflowSearchWindow(NOW, { startMs: 1, endMs: 2 })).toEqual({ startMs: 1, endMs: 2 });
  });
});
