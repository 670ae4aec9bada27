// Where grpc-js cannot be hooked (another grpc-js than the pinned one), every
// Check still gets its answer, through grpc-js's general path, and the
// service says so once at start: same answers, more CPU a call.

import { afterAll, describe, expect, it, vi } from "vitest";
import { startHopwarden, type Hopwarden } from "../src/main.js";
import { createLogger } from "../src/adapters/logging/logger.js";
import { CheckClient, outcome } from "./support/check-client.js";
import { writeTestPolicy } from "./support/policies.js";
import { researchCallsDb } from "./support/hop-requests.js";
import type * as DirectUnary from "../src/adapters/grpc/direct-unary.js";

vi.mock("../src/adapters/grpc/direct-unary.js", async (importOriginal) => ({
  ...(await importOriginal<typeof DirectUnary>()),
  answerDirectly: () => undefined,
}));

let hopwarden: Hopwarden | undefined;
let client: CheckClient | undefined;
afterAll(async () => {
  client?.close();
  await hopwarden?.shutdown(1000);
});

describe("a grpc-js the direct route cannot hook", () => {
  it("answers every Check through grpc-js and warns once at start", async () => {
    const lines: Record<string, unknown>[] = [];
    const logger = createLogger("info", (line) => lines.push(JSON.parse(line) as Record<string, unknown>));
    const { file } = await writeTestPolicy();
    hopwarden = await startHopwarden({ policyFile: file, listen: "127.0.0.1:0", logger, tracing: false, watchPolicy: false });
    expect(lines.filter((l) => l["event"] === "check_direct_route_off")).toEqual([expect.objectContaining({ level: "warn" })]);
    expect(hopwarden.check.directChecks()).toBeUndefined();
    client = new CheckClient(hopwarden.grpcAddress);
    expect(outcome(await client.check(researchCallsDb())).code).toBe(0);
  });
});
