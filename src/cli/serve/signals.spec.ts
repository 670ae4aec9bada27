// serve's signals: SIGTERM stops gracefully, and a stop that fails (the audit
// log could not be flushed, say) is reported as such, not as a clean exit.

import { afterEach, describe, expect, it } from "vitest";
import { onShutdownSignal } from "./signals.js";

afterEach(() => {
  process.removeAllListeners("SIGTERM");
  process.removeAllListeners("SIGINT");
});

describe("onShutdownSignal", () => {
  it("resolves with the signal once the stop has finished", async () => {
    let stopped = false;
    const done = onShutdownSignal(async () => {
      await new Promise((r) => setTimeout(r, 10));
      stopped = true;
    });
    process.emit("SIGTERM", "SIGTERM");
    expect(await done).toEqual({ signal: "SIGTERM" });
    expect(stopped).toBe(true);
  });

  it("resolves with the failure when the stop fails, rather than leaving an unhandled rejection", async () => {
    const problem = new Error("audit log: close gave up with 3 record(s) unwritten");
    const done = onShutdownSignal(() => Promise.reject(problem));
    process.emit("SIGINT", "SIGINT");
    expect(await done).toEqual({ signal: "SIGINT", failure: problem });
  });
});
