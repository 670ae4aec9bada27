// Shared fixtures for the audit log tests: decisions shaped like the core's,
// throw-away key pairs and directories, a logger that keeps its lines, and a
// poll helper for the writer's asynchronous flushes.

import { generateKeyPairSync, type KeyObject } from "node:crypto";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Decision } from "../../src/core/decision/decision.js";
import { makeDecision, type DecisionFields } from "./decisions.js";
import { createLogger, type Logger } from "../../src/adapters/logging/logger.js";

export function auditKeyPair(): { privateKey: KeyObject; publicKey: KeyObject } {
  return generateKeyPairSync("ed25519");
}

let counter = 0;

export function sampleDecision(overrides: Partial<DecisionFields> = {}): Decision {
  counter++;
  return makeDecision({
    message: "allowed",
    decisionId: `01JTESTDECISION${String(counter).padStart(11, "0")}`,
    policyVersion: "2026-11-01.3",
    decidedAtMs: Date.UTC(2026, 10, 1, 12, 0, 0) + counter,
    caller: "spiffe://example.org/agent/research",
    callee: "spiffe://example.org/agent/db",
    onBehalfOf: "alice@example.com",
    chain: ["spiffe://example.org/agent/orchestrator", "spiffe://example.org/agent/research"],
    hops: [
      { from: "spiffe://example.org/agent/orchestrator", to: "spiffe://example.org/agent/research", rule: "hops[0]", result: "allow", cached: true, detail: "" },
      { from: "spiffe://example.org/agent/research", to: "spiffe://example.org/agent/db", rule: "hops[1]", result: "allow", cached: false, detail: "" },
    ],
    peerCertificateSha256: "AB".repeat(32),
    method: "GET",
    path: "/query",
    tokenId: undefined,
    tokenSha256: undefined,
    tokenPrev: undefined,
    callerBinding: undefined,
    mcp: undefined,
    txn: undefined,
    ...overrides,
  });
}

export interface TempDir {
  readonly path: string;
  remove(): Promise<void>;
}

export async function tempDir(): Promise<TempDir> {
  const path = await mkdtemp(join(tmpdir(), "hopwarden-audit-"));
  return { path, remove: () => rm(path, { recursive: true, force: true }) };
}

export interface CapturedLogger {
  readonly logger: Logger;
  readonly lines: Record<string, unknown>[];
  events(event: string): Record<string, unknown>[];
}

export function captureLogger(): CapturedLogger {
  const lines: Record<string, unknown>[] = [];
  const logger = createLogger("debug", (line) => lines.push(JSON.parse(line) as Record<string, unknown>));
  return { logger, lines, events: (event) => lines.filter((l) => l["event"] === event) };
}

export async function readLines(file: string): Promise<string[]> {
  const text = await readFile(file, "utf8");
  return text.split("\n").filter((line, i, all) => i < all.length - 1 || line !== "");
}

export async function waitFor(condition: () => boolean | Promise<boolean>, timeoutMs = 3000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error("condition not met in time");
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}
