// The audit writer alone: CPU per record through AuditLogSink → AuditLogWriter
// (queue on the Check path, drain, format, chain, hash, sign, append), at
// fixed rates and flat out, against a sink that drops everything (what the
// harness itself costs). The numbers behind docs/audit-log.md, "Writing".
//
//   npx tsx test/bench/audit-writer.ts            # 2,000/s, 5,000/s and flat out
//   AUDIT_BENCH_RATES=1000,8000 npx tsx test/bench/audit-writer.ts

import { generateKeyPairSync } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { AuditLogSink } from "../../src/adapters/audit/audit-log-sink.js";
import { AuditLogWriter } from "../../src/adapters/audit/audit-log-writer.js";
import type { Decision } from "../../src/core/decision/decision.js";
import type { DecisionContext, DecisionSink } from "../../src/core/ports.js";

const agent = (name: string) => `spiffe://example.org/agent/${name}`;
let counter = 0;

/** The bench's realistic decision: a certificate, a 3-agent chain, a person. */
function decision(): Decision {
  counter++;
  return {
    allowed: true,
    reason: undefined,
    message: "allowed",
    decisionId: `01JBENCHDECISION${String(counter).padStart(10, "0")}`,
    policyVersion: "2026-11-01.3",
    decidedAtMs: Date.now(),
    caller: agent("worker"),
    callee: agent("research"),
    onBehalfOf: "alice@example.com",
    chain: [agent("orchestrator"), agent("planner"), agent("worker")],
    hops: [
      { from: agent("orchestrator"), to: agent("planner"), rule: "hops[0]", result: "allow", cached: true, detail: "" },
      { from: agent("planner"), to: agent("worker"), rule: "hops[1]", result: "allow", cached: true, detail: "" },
      { from: agent("worker"), to: agent("research"), rule: "hops[2]", result: "allow", cached: true, detail: "" },
    ],
    peerCertificateSha256: "AB".repeat(32),
    method: "POST",
    path: "/v1/summarize?lang=en",
    tokenId: undefined,
    tokenSha256: undefined,
    tokenPrev: undefined,
    callerBinding: "certificate",
    mcp: undefined,
    txn: undefined,
  };
}

const CONTEXT: DecisionContext = { latencyMs: 0.412, traceId: "4bf92f3577b34da6a3ce929d0e0e4736", spanId: "00f067aa0ba902b7" };

interface Result {
  cpuUsPerRecord: number;
  checkPathUsPerRecord: number;
}

/** Feeds `total` decisions at `rate` a second (0: flat out, 8 per turn of the event loop), as the Check path would; CPU of the whole process. */
async function feed(sink: DecisionSink & { admit(): unknown; close(): Promise<void> }, total: number, rate: number): Promise<Result> {
  const cpu0 = process.cpuUsage();
  let onPath = 0;
  let sent = 0;
  const send = (upTo: number) => {
    // Decisions are made first, as the pipeline would: only what the sink does is timed.
    const batch = Array.from({ length: upTo - sent }, decision);
    const t0 = performance.now();
    for (const d of batch) {
      sink.admit();
      sink.record(d, CONTEXT);
    }
    onPath += performance.now() - t0;
    sent = upTo;
  };
  await new Promise<void>((resolve) => {
    if (rate === 0) {
      const turn = () => {
        send(Math.min(total, sent + 8));
        if (sent < total) setImmediate(turn);
        else resolve();
      };
      turn();
      return;
    }
    const start = performance.now();
    const timer = setInterval(() => {
      send(Math.min(total, Math.floor(((performance.now() - start) * rate) / 1000)));
      if (sent >= total) {
        clearInterval(timer);
        resolve();
      }
    }, 1);
  });
  await sink.close();
  const cpu = process.cpuUsage(cpu0);
  return { cpuUsPerRecord: (cpu.user + cpu.system) / total, checkPathUsPerRecord: (onPath * 1000) / total };
}

async function main(): Promise<void> {
  const rates = (process.env.AUDIT_BENCH_RATES ?? "2000,5000,0").split(",").map(Number);
  const seconds = Number(process.env.AUDIT_BENCH_SECONDS ?? 5);
  const { privateKey } = generateKeyPairSync("ed25519");
  const rows: string[] = [];
  for (const rate of rates) {
    const total = rate === 0 ? 50_000 : rate * seconds;
    const dir = await mkdtemp(join(tmpdir(), "hopwarden-audit-bench-"));
    try {
      const nothing = await feed({ admit: () => true, record: () => undefined, close: () => Promise.resolve() }, total, rate);
      const writer = await AuditLogWriter.open({ path: join(dir, "audit.log"), privateKey });
      const audited = await feed(new AuditLogSink(writer), total, rate);
      const label = rate === 0 ? "flat out" : `${rate}/s`;
      rows.push(
        `| ${label.padEnd(8)} | ${audited.cpuUsPerRecord.toFixed(1).padStart(6)} | ${nothing.cpuUsPerRecord.toFixed(1).padStart(6)} | ${(audited.cpuUsPerRecord - nothing.cpuUsPerRecord).toFixed(1).padStart(6)} | ${audited.checkPathUsPerRecord.toFixed(2).padStart(6)} |`,
      );
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }
  process.stdout.write(
    `audit writer, µs of CPU per record (node ${process.version}, the process's user + system time)\n\n| rate     | audited | no sink | writer | on the Check path |\n|----------|--------|--------|--------|--------|\n${rows.join("\n")}\n`,
  );
}

main().catch((err: unknown) => {
  process.stderr.write(`audit writer bench failed: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
