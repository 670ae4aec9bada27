// planResume reads the log through a generator that holds a file open; when
// a step of the chain walk throws, the file must still be closed, or every
// refused start-up leaks a descriptor. The walk is made to fail here, which
// the real one only does on a bug.

import { readdirSync } from "node:fs";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { auditKeyPair, sampleDecision, tempDir, type TempDir } from "../../../test/support/audit-fixtures.js";
import type * as chainWalk from "./audit-chain-walk.js";
import { planResume } from "./audit-log-resume.js";
import { AuditLogWriter } from "./audit-log-writer.js";

const control = vi.hoisted(() => ({ failSteps: false }));

vi.mock("./audit-chain-walk.js", async (importOriginal) => {
  const original = await importOriginal<typeof chainWalk>();
  class FailingWalk extends original.ChainWalk {
    override step(...args: Parameters<chainWalk.ChainWalk["step"]>): void {
      if (control.failSteps) throw new Error("a step of the walk failed");
      super.step(...args);
    }
  }
  return { ...original, ChainWalk: FailingWalk };
});

const { privateKey } = auditKeyPair();
const openDescriptors = (): number => readdirSync("/proc/self/fd").length;

let dir: TempDir;
let file: string;
beforeEach(async () => {
  dir = await tempDir();
  file = join(dir.path, "audit.log");
  control.failSteps = false;
});
afterEach(() => dir.remove());

describe.runIf(process.platform === "linux")("planResume when a step throws", () => {
  it("rejects with the step's error and leaves no file open", async () => {
    const writer = await AuditLogWriter.open({ path: file, privateKey, flushDelayMs: 1 });
    for (let i = 0; i < 5; i++) writer.enqueue(sampleDecision(), { latencyMs: 1 });
    await writer.close();
    expect((await planResume(file, privateKey)).refusal).toBeUndefined();

    const before = openDescriptors();
    control.failSteps = true;
    for (let attempt = 0; attempt < 3; attempt++) await expect(planResume(file, privateKey)).rejects.toThrow("a step of the walk failed");
    expect(openDescriptors()).toBe(before);
  });
});
