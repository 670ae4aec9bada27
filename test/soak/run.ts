// `npm run soak`: the built CLI (`hopwarden serve`, signed audit log on,
// decision spans to a real Jaeger) under a steady half of its measured
// maximum for SOAK_MINUTES (default 10), to show that nothing grows: RSS,
// open descriptors, caches, buffers and queues stay flat or at their
// bounds, no call fails, and the audit log verifies at the end.
//
//   1. a short closed-loop ghz run (32 streams, 4 connections) measures max RPS;
//   2. ghz then sends at half that rate, open loop, for the whole soak, from a
//      data file of thousands of distinct CheckRequests (13 agents' certificates,
//      chains of 1-4 agents, many people and query strings, a quarter of them
//      unique per call), while the soak opens a fresh connection every 2 s for
//      20 Checks (connections come and go, so a leaked socket would show);
//   3. every SOAK_SAMPLE_SECONDS it reads VmRSS and /proc/<pid>/fd of the
//      service's processes and the cache, buffer and queue gauges of /metrics;
//   4. at the end: SIGTERM (exit 0), `hopwarden audit verify` over every file of
//      the audit directory (exit 0), and one decision record per call made.
//
// The rules are in test/soak/verdict.ts. Exit 0 when every rule passes, 1 and
// the reasons otherwise.
//
//   npm run soak                                     # 10 minutes
//   SOAK_MINUTES=3 npm run soak                      # a shorter run
//   SOAK_WORKERS=2 npm run soak                      # serve --workers 2
//
// Also: SOAK_MEASURE_SECONDS (15), SOAK_SAMPLE_SECONDS (5), SOAK_VARIANTS (6000).

import { execFile } from "node:child_process";
import { createServer, type Server } from "node:http";
import { mkdir, mkdtemp, readFile, rm } from "node:fs/promises";
import { availableParallelism, tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { fromBinary, toBinary } from "@bufbuild/protobuf";
import { Client, credentials, Metadata, type ServiceError } from "@grpc/grpc-js";
import { CheckRequestSchema, CheckResponseSchema, type CheckRequest, type CheckResponse } from "../../src/gen/envoy/service/auth/v3/external_auth_pb.js";
import { REPO_ROOT, runCli, startServe, type ServeProcess } from "../support/cli-process.js";
import { startJaeger, type JaegerProcess } from "../support/jaeger.js";
import { treeUsage } from "../support/process-tree.js";
import { readAuditDirectory, verifyAuditDirectory } from "../support/audit-directory.js";
import { answeredCall } from "../support/check-load.js";
import { SOAK_AUDIT, SOAK_CACHE, SPAN_QUEUE_BOUND_BYTES, writeSoakWorkload } from "./workload.js";
import { afterWarmUp, cacheRules, fdRule, rssRule, WARM_UP_FRACTION, type RuleResult, type SoakBounds, type SoakSample } from "./verdict.js";

const run = promisify(execFile);
const GHZ = join(REPO_ROOT, ".tools/bin/ghz");
const GHZ_VERSION = "v0.121.0";
const MINUTES = Number(process.env.SOAK_MINUTES ?? 10);
const WORKERS = Number(process.env.SOAK_WORKERS ?? 1);
const MEASURE_SECONDS = Number(process.env.SOAK_MEASURE_SECONDS ?? 15);
const SAMPLE_SECONDS = Number(process.env.SOAK_SAMPLE_SECONDS ?? 5);
const VARIANTS = Number(process.env.SOAK_VARIANTS ?? 6000);
const CONNECTIONS = 4;
const SOAK_STREAMS = 16;
const CHURN_EVERY_MS = 2_000;
const CHURN_CALLS = 20;
const MiB = 1024 * 1024;

const progress = (msg: string) => process.stderr.write(`[soak] ${msg}\n`);

interface GhzReport {
  count: number;
  rps: number;
  average: number;
  statusCodeDistribution?: Record<string, number>;
  errorDistribution?: Record<string, number>;
  latencyDistribution?: { percentage: number; latency: number }[] | null;
}

async function ghz(address: string, protoset: string, data: string, extra: string[], outFile: string): Promise<GhzReport> {
  await run(
    GHZ,
    ["--insecure", "--protoset", protoset, "--call", "envoy.service.auth.v3.Authorization/Check", "--data-file", data, "--connections", String(CONNECTIONS), "--format", "json", "--output", outFile, ...extra, address],
    { maxBuffer: 64 * MiB },
  );
  return JSON.parse(await readFile(outFile, "utf8")) as GhzReport;
}

function ghzFailures(report: GhzReport): number {
  return Object.entries(report.statusCodeDistribution ?? {})
    .filter(([code]) => code !== "OK")
    .reduce((sum, [, n]) => sum + n, 0);
}

function latencyMs(report: GhzReport, percentage: number): number {
  const entry = (report.latencyDistribution ?? []).find((d) => d.percentage === percentage);
  return entry === undefined ? NaN : entry.latency / 1e6;
}

// ---- /metrics ----

interface MetricSums {
  readonly values: Map<string, number>;
  /** hopwarden_decisions_total by reason. */
  readonly byReason: Map<string, number>;
}

async function readMetrics(serve: ServeProcess): Promise<MetricSums> {
  const text = await (await fetch(`http://${serve.admin}/metrics`, { signal: AbortSignal.timeout(10_000) })).text();
  const values = new Map<string, number>();
  const byReason = new Map<string, number>();
  for (const line of text.split("\n")) {
    if (line.startsWith("#") || line === "") continue;
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)/.exec(line);
    if (match === null) continue;
    const [, name, labels, raw] = match;
    const value = Number(raw);
    values.set(name!, (values.get(name!) ?? 0) + value);
    if (name === "hopwarden_decisions_total") {
      const reason = /reason="([^"]*)"/.exec(labels ?? "")?.[1] ?? "?";
      byReason.set(reason, (byReason.get(reason) ?? 0) + value);
    }
  }
  return { values, byReason };
}

const metric = (m: MetricSums, name: string) => m.values.get(name) ?? 0;

async function sample(serve: ServeProcess, atSeconds: number): Promise<{ sample: SoakSample; metrics: MetricSums }> {
  const [usage, metrics] = await Promise.all([treeUsage(serve.pid), readMetrics(serve)]);
  return {
    metrics,
    sample: {
      atSeconds,
      processes: usage.processes,
      rssBytes: usage.rssBytes,
      fds: usage.fds,
      hopEntries: metric(metrics, "hopwarden_hop_cache_entries"),
      hopBytes: metric(metrics, "hopwarden_hop_cache_bytes"),
      certificateEntries: metric(metrics, "hopwarden_certificate_cache_entries"),
      certificateBytes: metric(metrics, "hopwarden_certificate_cache_bytes"),
      auditDepth: metric(metrics, "hopwarden_audit_buffer_depth"),
      spanQueueBytes: metric(metrics, "hopwarden_spans_queued_bytes"),
      decisions: metric(metrics, "hopwarden_decisions_total"),
    },
  };
}

const clock = (seconds: number) => `${String(Math.floor(seconds / 60)).padStart(2, "0")}:${String(Math.floor(seconds % 60)).padStart(2, "0")}`;

function sampleLine(s: SoakSample, rate: number): string {
  return (
    `${clock(s.atSeconds)} rss=${(s.rssBytes / MiB).toFixed(1)}MiB fds=${s.fds} ` +
    `hop=${s.hopEntries}/${(s.hopBytes / 1024).toFixed(0)}KiB cert=${s.certificateEntries}/${(s.certificateBytes / 1024).toFixed(0)}KiB ` +
    `audit_depth=${s.auditDepth} span_queue=${(s.spanQueueBytes / 1024).toFixed(0)}KiB decisions=${s.decisions} (${rate.toFixed(0)}/s)`
  );
}

// ---- connection churn: a new TCP connection every 2 s ----

interface ChurnStats {
  connections: number;
  answered: number;
  failed: string[];
}

async function churnOnce(address: string, requests: readonly CheckRequest[], stats: ChurnStats): Promise<void> {
  const client = new Client(address, credentials.createInsecure(), { "grpc.use_local_subchannel_pool": 1 });
  stats.connections++;
  try {
    for (const request of requests) {
      const response = await new Promise<CheckResponse | ServiceError>((resolve) =>
        client.makeUnaryRequest(
          "/envoy.service.auth.v3.Authorization/Check",
          (b: Buffer) => b,
          (b: Buffer) => fromBinary(CheckResponseSchema, b),
          Buffer.from(toBinary(CheckRequestSchema, request)),
          new Metadata(),
          { deadline: Date.now() + 10_000 },
          (err: ServiceError | null, r?: CheckResponse) => resolve(err ?? r!),
        ),
      );
      if (response instanceof Error) stats.failed.push(`code ${response.code}: ${response.details}`);
      else if (answeredCall(response).decisionId !== "") stats.answered++;
      else stats.failed.push("a CheckResponse without a decision id");
    }
  } finally {
    client.close();
  }
}

// ---- spans: a real Jaeger, else a local OTLP sink ----

interface SpanSink {
  readonly description: string;
  readonly env: Record<string, string>;
  stop(): Promise<void>;
}

async function spanSink(): Promise<SpanSink> {
  let jaeger: JaegerProcess | undefined;
  try {
    jaeger = await startJaeger();
  } catch (err) {
    progress(`Jaeger not available (${err instanceof Error ? err.message.split("\n")[0] : String(err)}): spans go to a local OTLP/HTTP sink instead`);
  }
  if (jaeger !== undefined) {
    const j = jaeger;
    return {
      description: `a real Jaeger (v2 all-in-one, memory storage) over OTLP/HTTP at ${j.otlpHttpTracesUrl}`,
      env: { OTEL_TRACES_EXPORTER: "otlp", OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: j.otlpHttpTracesUrl, OTEL_EXPORTER_OTLP_PROTOCOL: "http/protobuf" },
      stop: () => j.stop(),
    };
  }
  // Accepts every export with an empty ExportTraceServiceResponse, as a collector would.
  const server: Server = createServer((req, res) => {
    req.resume();
    req.on("end", () => res.writeHead(200, { "content-type": "application/x-protobuf" }).end());
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as { port: number }).port;
  return {
    description: `a local OTLP/HTTP sink at http://127.0.0.1:${port}/v1/traces (no Jaeger installed)`,
    env: { OTEL_TRACES_EXPORTER: "otlp", OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: `http://127.0.0.1:${port}/v1/traces`, OTEL_EXPORTER_OTLP_PROTOCOL: "http/protobuf" },
    stop: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

// ---- the run ----

function table(head: string[], body: string[][]): string {
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i]!.length)));
  const line = (cells: string[]) => "| " + cells.map((c, i) => c.padEnd(widths[i]!)).join(" | ") + " |";
  return [line(head), "|" + widths.map((w) => "-".repeat(w + 2)).join("|") + "|", ...body.map(line)].join("\n");
}

/** The samples nearest to 0%, 10%, ... 100% of the run. */
function milestones(samples: readonly SoakSample[], runSeconds: number): SoakSample[] {
  const picked: SoakSample[] = [];
  for (let p = 0; p <= 10; p++) {
    const target = (runSeconds * p) / 10;
    const nearest = samples.reduce((best, s) => (Math.abs(s.atSeconds - target) < Math.abs(best.atSeconds - target) ? s : best), samples[0]!);
    if (!picked.includes(nearest)) picked.push(nearest);
  }
  return picked;
}

async function main(): Promise<number> {
  progress(`installing ghz ${GHZ_VERSION} and Jaeger if needed`);
  await run(join(REPO_ROOT, "scripts/install-test-tools.sh"), ["ghz", "jaeger"]);
  const dir = await mkdtemp(join(tmpdir(), "hopwarden-soak-"));
  const protoset = join(dir, "hopwarden.binpb");
  await run(join(REPO_ROOT, "node_modules/.bin/buf"), ["build", "-o", protoset], { cwd: REPO_ROOT });
  progress(`writing the workload: ${VARIANTS} distinct CheckRequests`);
  const workload = await writeSoakWorkload(dir, VARIANTS);
  const keys = join(dir, "keys", "audit");
  await mkdir(join(dir, "keys"));
  const auditDir = join(dir, "audit");
  await mkdir(auditDir);
  const keygen = await runCli(["audit", "keygen", "--out", keys]);
  if (keygen.code !== 0) throw new Error(`audit keygen failed: ${keygen.stderr}`);

  const sink = await spanSink();
  progress(`spans go to ${sink.description}`);
  let serve: ServeProcess | undefined;
  const runSeconds = MINUTES * 60;
  const samples: SoakSample[] = [];
  const results: RuleResult[] = [];
  const churn: ChurnStats = { connections: 0, answered: 0, failed: [] };
  let measured: GhzReport;
  let soak: GhzReport;
  let warm: GhzReport;
  let finalMetrics: MetricSums;
  let targetRps: number;
  try {
    serve = await startServe(
      [
        "--policy", workload.policyFile,
        "--config", workload.configFile,
        "--listen", "127.0.0.1:0",
        "--admin-listen", "127.0.0.1:0",
        "--workers", String(WORKERS),
        "--audit-log", join(auditDir, "audit.log"),
        "--audit-key", `${keys}.key`,
        "--log-level", "warn",
      ],
      { env: sink.env, readyTimeoutMs: 30_000 },
    );
    progress(serve.readyLine);

    progress("warm-up: 5,000 calls");
    warm = await ghz(serve.grpc, protoset, workload.dataFile, ["--concurrency", "8", "--total", "5000"], join(dir, "ghz-warm.json"));
    progress(`max RPS: closed loop, 32 streams over ${CONNECTIONS} connections, ${MEASURE_SECONDS} s`);
    measured = await ghz(serve.grpc, protoset, workload.dataFile, ["--concurrency", "32", "--duration", `${MEASURE_SECONDS}s`, "--duration-stop", "wait"], join(dir, "ghz-max.json"));
    targetRps = Math.max(1, Math.floor(measured.rps / 2));
    progress(`max ${measured.rps.toFixed(0)} RPS; soaking at ${targetRps} RPS (half) for ${MINUTES} min, ${SOAK_STREAMS} streams over ${CONNECTIONS} connections, plus a new connection every ${CHURN_EVERY_MS / 1000} s`);

    const started = Date.now();
    const elapsed = () => (Date.now() - started) / 1000;
    const soakRun = ghz(
      serve.grpc,
      protoset,
      workload.dataFile,
      ["--rps", String(targetRps), "--concurrency", String(SOAK_STREAMS), "--duration", `${runSeconds}s`, "--duration-stop", "wait"],
      join(dir, "ghz-soak.json"),
    );
    let soakDone = false;
    void soakRun.then(
      () => (soakDone = true),
      () => (soakDone = true),
    );
    const churning = (async () => {
      let offset = 0;
      while (!soakDone) {
        await churnOnce(serve.grpc, workload.churnRequests(CHURN_CALLS, offset), churn);
        offset += CHURN_CALLS;
        await new Promise((r) => setTimeout(r, CHURN_EVERY_MS));
      }
    })();
    let last = { at: 0, decisions: (await readMetrics(serve)).values.get("hopwarden_decisions_total") ?? 0 };
    while (!soakDone) {
      await new Promise((r) => setTimeout(r, SAMPLE_SECONDS * 1000));
      if (soakDone) break;
      const { sample: s } = await sample(serve, elapsed());
      samples.push(s);
      const rate = (s.decisions - last.decisions) / Math.max(0.001, s.atSeconds - last.at);
      last = { at: s.atSeconds, decisions: s.decisions };
      progress(sampleLine(s, rate) + (s.atSeconds < runSeconds * WARM_UP_FRACTION ? " (warm-up)" : ""));
    }
    soak = await soakRun;
    await churning;
    const end = await sample(serve, elapsed());
    samples.push(end.sample);
    finalMetrics = end.metrics;
    progress(`load ended at ${clock(end.sample.atSeconds)}: ${sampleLine(end.sample, 0)}`);

    progress("SIGTERM");
    serve.child.kill("SIGTERM");
    const forced = setTimeout(() => serve?.child.kill("SIGKILL"), 30_000);
    const exit = await serve.exited;
    clearTimeout(forced);
    results.push({ rule: "SIGTERM: exit 0", pass: exit.code === 0, detail: `code ${exit.code}, signal ${exit.signal}` });
  } finally {
    if (serve !== undefined && serve.child.exitCode === null && serve.child.signalCode === null) serve.child.kill("SIGKILL");
    await sink.stop();
  }

  progress(`audit verify over every file of ${auditDir}`);
  const verify = await verifyAuditDirectory(auditDir, `${keys}.pub`, 30 * 60_000);
  results.push({ rule: "audit verify: exit 0", pass: verify.code === 0, detail: `exit ${verify.code}, ${verify.files.length} files: ${(verify.stdout + verify.stderr).trim().split("\n")[0]}` });
  const audit = await readAuditDirectory(auditDir);
  const calls = warm.count + measured.count + soak.count + churn.answered + churn.failed.length;
  const decisions = metric(finalMetrics, "hopwarden_decisions_total");
  results.push({
    rule: "one audit record per call made",
    pass: audit.decisionIds.length === calls && decisions === calls,
    detail: `${calls} calls made (ghz ${warm.count} + ${measured.count} + ${soak.count}, churn ${churn.answered + churn.failed.length}); ${audit.decisionIds.length} decision records; hopwarden_decisions_total ${decisions}`,
  });

  // Failed calls: any non-OK gRPC status, and any Check denied because the service could not decide (fail-closed answers).
  const failedCalls = ghzFailures(warm) + ghzFailures(measured) + ghzFailures(soak) + churn.failed.length;
  const internal = (finalMetrics.byReason.get("internal_error") ?? 0) + (finalMetrics.byReason.get("policy_unavailable") ?? 0);
  results.push({
    rule: "zero failed calls",
    pass: failedCalls === 0 && internal === 0,
    detail:
      `gRPC errors ${failedCalls} (soak: ${JSON.stringify(soak.statusCodeDistribution ?? {})}${churn.failed.length > 0 ? `; churn: ${churn.failed.slice(0, 3).join("; ")}` : ""}), ` +
      `internal_error/policy_unavailable decisions ${internal}; audit dropped ${metric(finalMetrics, "hopwarden_audit_dropped_total")}, refused ${metric(finalMetrics, "hopwarden_audit_refused_total")}`,
  });

  const processes = Math.max(...samples.map((s) => s.processes));
  const workerProcesses = WORKERS > 1 ? WORKERS : 1;
  const bounds: SoakBounds = {
    hopEntries: SOAK_CACHE.hopDecisions * workerProcesses,
    hopBytes: SOAK_CACHE.hopDecisionBytes * workerProcesses,
    certificateEntries: SOAK_CACHE.certificates * workerProcesses,
    certificateBytes: SOAK_CACHE.certificateBytes * workerProcesses,
    // Records of admitted Checks are kept up to twice bufferRecords (docs/audit-log.md); admission stops at bufferRecords.
    auditDepth: 2 * SOAK_AUDIT.bufferRecords * workerProcesses,
    spanQueueBytes: SPAN_QUEUE_BOUND_BYTES * workerProcesses,
  };
  results.push(rssRule(samples, runSeconds), fdRule(samples, runSeconds), ...cacheRules(samples, bounds, runSeconds));

  // ---- the report ----
  const post = afterWarmUp(samples, runSeconds);
  const soakedRps = soak.rps;
  const header =
    `hopwarden soak: ${MINUTES} min at half of max RPS; ghz ${GHZ_VERSION}; node ${process.version}; ${availableParallelism()} cores shared by ghz, the service and Jaeger; ` +
    `serve --workers ${WORKERS} (${processes} process${processes === 1 ? "" : "es"}), signed audit log, spans to ${sink.description.split(" over ")[0]}`;
  const figures = [
    `max RPS (closed loop, 32 streams, ${MEASURE_SECONDS} s): ${measured.rps.toFixed(0)}; soak target ${targetRps} RPS, achieved ${soakedRps.toFixed(0)} RPS, ${soak.count} calls, p50 ${latencyMs(soak, 50).toFixed(2)} ms, p99 ${latencyMs(soak, 99).toFixed(2)} ms`,
    `${workload.variants} distinct requests (a quarter with a per-call person and query string), ${workload.agents} agents' certificates; ${churn.connections} short-lived connections (${churn.answered} Checks)`,
    `decisions: ${[...finalMetrics.byReason].sort((a, b) => b[1] - a[1]).map(([r, n]) => `${r} ${n}`).join(", ")}`,
    `spans exported ${metric(finalMetrics, "hopwarden_spans_exported_total")}, lost ${metric(finalMetrics, "hopwarden_spans_failed_total")}; audit records written ${metric(finalMetrics, "hopwarden_audit_records_written_total")}, checkpoints ${metric(finalMetrics, "hopwarden_audit_checkpoints_total")}, files ${verify.files.length}`,
    `warm-up: the first ${(runSeconds * WARM_UP_FRACTION).toFixed(0)} s (${(WARM_UP_FRACTION * 100).toFixed(0)}%); ${post.length} samples after it, one every ${SAMPLE_SECONDS} s`,
  ];
  const rows = milestones(samples, runSeconds).map((s) => [
    clock(s.atSeconds),
    (s.rssBytes / MiB).toFixed(1),
    String(s.fds),
    `${s.hopEntries} / ${(s.hopBytes / 1024).toFixed(0)} KiB`,
    `${s.certificateEntries} / ${(s.certificateBytes / 1024).toFixed(0)} KiB`,
    String(s.auditDepth),
    `${(s.spanQueueBytes / 1024).toFixed(0)} KiB`,
    String(s.decisions),
  ]);
  rows.push([
    "bound",
    "±10%",
    "stable",
    `${bounds.hopEntries} / ${(bounds.hopBytes / 1024).toFixed(0)} KiB`,
    `${bounds.certificateEntries} / ${(bounds.certificateBytes / 1024).toFixed(0)} KiB`,
    String(bounds.auditDepth),
    `${(bounds.spanQueueBytes / 1024).toFixed(0)} KiB`,
    "",
  ]);
  const sampleTable = table(["time", "RSS MiB", "fds", "hop cache (entries / bytes)", "cert cache", "audit buffer", "span queue", "decisions"], rows);
  const verdict = table(["rule", "result", "seen"], results.map((r) => [r.rule, r.pass ? "PASS" : "FAIL", r.detail]));
  const failed = results.filter((r) => !r.pass);
  process.stdout.write(`\n${header}\n\n${figures.map((f) => `- ${f}`).join("\n")}\n\n${sampleTable}\n\n${verdict}\n\n${failed.length === 0 ? "SOAK PASSED" : `SOAK FAILED: ${failed.map((r) => `${r.rule} (${r.detail})`).join("; ")}`}\n`);
  if (failed.length === 0) await rm(dir, { recursive: true, force: true });
  else process.stdout.write(`(kept ${dir} for inspection)\n`);
  return failed.length === 0 ? 0 : 1;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`soak failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(1);
  },
);
