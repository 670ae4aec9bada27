import { describe, expect, it } from "vitest";
import { createLogger } from "./logger.js";

function capture() {
  const lines: Record<string, unknown>[] = [];
  const logger = createLogger("info", (line) => lines.push(JSON.parse(line) as Record<string, unknown>), { service: "hopwarden" });
  return { logger, lines };
}

describe("createLogger", () => {
  it("writes one JSON line with the level, message, base fields and fields; errors by name and message", () => {
    const { logger, lines } = capture();
    logger.error("Check failed", { error: new TypeError("boom"), size: 10n });
    expect(lines).toEqual([expect.objectContaining({ level: "error", msg: "Check failed", service: "hopwarden", error: { name: "TypeError", message: "boom" }, size: "10" })]);
  });

  it("never throws into its caller: fields JSON cannot write leave the line without them", () => {
    const { logger, lines } = capture();
    const cycle: Record<string, unknown> = {};
    cycle["self"] = cycle;
    expect(() => logger.error("Check failed; denying", { error: cycle })).not.toThrow();
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({ level: "error", msg: "Check failed; denying", service: "hopwarden" });
    expect(lines[0]!["log_fields_error"]).toMatch(/circular/i);
    expect(lines[0]).not.toHaveProperty("error");
  });

  it("drops lines below its level", () => {
    const { logger, lines } = capture();
    logger.debug("decision");
    expect(lines).toHaveLength(0);
  });
});
