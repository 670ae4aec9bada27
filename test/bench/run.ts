// `npm run bench`: hopwarden's Check against a bare grpc-js server that does
// no work, measured in the same run with the same client (ghz, pinned), so the
// ratio is hopwarden's and not the machine's. Prints a table: max RPS in a
// closed loop (32 streams, fixed duration) and p50/p99/p99.9 at a fixed
// 1,000 RPS, for each server, and the ratios. Then the costs of the other
// paths, each against the header-only path of the same run: a reused
// delegation token (verified-token cache hit), a fresh ES256 token per request
// (signature verification), decision spans plus the signed audit log (one
// process, and --workers auto with one chain per worker), and --workers 2.
//
//   npm run bench                 # the standard table
//   BENCH_SECONDS=5 npm run bench # shorter runs

import { execFile, spawn, type ChildProcess } from "node:child_process";
import { mkdtemp, writeFile } from "node:fs/promises";
import { cpus, tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { createServer } from "node:http";
import { randomUUID } from "node:crypto";
import type { AddressInfo } from "node:net";
import { createTestPki, spiffe } from "../support/pki.js";
import { writeTestPolicy } from "../support/policies.js";
import { createSigningKey, jwksOf, signToken } from "../support/delegation-tokens.js";
import { nestActors } from "../../src/adapters/tokens/delegation-token-format.js";

const run = promisify(execFile);
const root = new URL("../..", import.meta.url).pathname;
const GHZ = join(root, ".tools/bin/ghz");
const GHZ_VERSION = "v0.121.0";
const SECONDS = Number(process.env.BENCH_SECONDS ?? 8);
const progress = (msg: string) => process.stderr.write(`[bench] ${msg}\n`);

interface GhzReport {
  rps: number;
  count: number;
  statusCodeDistribution?: Record<string, number>;
  details?: { latency: number; status: string }[];
}

interface Row {
  name: string;
  /** Median of the rounds. */
  maxRps: number;
  /** Every round's max RPS. */
  runs: string;
  p50: number;
  p99: number;
  p999: number;
}

function startServer(cmd: string, args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ child: ChildProcess; address: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd: root, env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    let err = "";
    const timer = setTimeout(() => reject(new Error(`${args.join(" ")} did not become ready:\n${err}`)), 20_000);
    child.stdout.on("data", (d: Buffer) => {
      out += d.toString();
      const m = /grpc=(\S+)/.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve({ child, address: m[1]! });
      }
    });
    child.stderr.on("data", (d: Buffer) => (err += d.toString()));
    child.on("exit", (code) => reject(new Error(`${cmd} exited ${code}:\n${err}`)));
  });
}

async function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null) return;
  const exited = new Promise((resolve) => child.once("exit", resolve));
  child.kill("SIGTERM");
  const timer = setTimeout(() => child.kill("SIGKILL"), 5000);
  await exited;
  clearTimeout(timer);
}

async function ghz(address: string, protoset: string, data: string, extra: string[]): Promise<GhzReport> {
  const { stdout } = await run(
    GHZ,
    ["--insecure", "--protoset", protoset, "--call", "envoy.service.auth.v3.Authorization/Check", "--data-file", data, "--format", "json", ...extra, address],
    { maxBuffer: 512 * 1024 * 1024 },
  );
  return JSON.parse(stdout) as GhzReport;
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}


/** One configuration measured: a server, the request data, and how ghz drives it. */
interface Case {
  readonly name: string;
  readonly address: string;
  /** The data file for round `r` (distinct tokens per round for the fresh-token case). */
  readonly data: (round: number) => string;
  /** ghz --connections (default 1); several spread calls over --workers. */
  readonly connections?: number;
  /** A fixed number of calls instead of a duration (data with that many distinct messages). */
  readonly total?: number;
  /** Warm up with this data (so that distinct tokens are not verified before they are measured). */
  readonly warmupData?: string;
  /** Measure latency at a fixed rate too. */
  readonly latency: boolean;
}

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);

/**
 * A run with failed calls measures failures, not Check: stop. With a fixed
 * duration ghz cuts the calls still in flight at the end and counts them as
 * Unavailable or Canceled (up to one per stream), which is expected.
 */
function assertNoFailures(name: string, report: GhzReport): void {
  const codes = Object.entries(report.statusCodeDistribution ?? {}).filter(([code]) => code !== "OK");
  const cut = codes.filter(([code]) => code === "Unavailable" || code === "Canceled").reduce((sum, [, n]) => sum + n, 0);
  const bad = codes.filter(([code]) => code !== "Unavailable" && code !== "Canceled");
  if (bad.length > 0 || cut > 64) throw new Error(`${name}: calls failed (${codes.map(([code, n]) => `${code}: ${n}`).join(", ")})`);
}

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

/**
 * Max RPS of every case in ROUNDS interleaved rounds (so that a slow moment of
 * the machine hits all cases alike), the median reported; then latency at a
 * fixed 1,000 RPS once per case.
 */
async function measureAll(cases: readonly Case[], protoset: string): Promise<Row[]> {
  const conn = (c: Case) => ["--connections", String(c.connections ?? 1)];
  for (const c of cases) {
    progress(`${c.name}: warm-up`);
    await ghz(c.address, protoset, c.warmupData ?? c.data(0), ["--concurrency", "8", "--total", "3000", ...conn(c)]);
  }
  const rps = new Map<string, number[]>();
  for (let round = 0; round < ROUNDS; round++) {
    for (const c of cases) {
      progress(`round ${round + 1}/${ROUNDS}: ${c.name}: max RPS, 32 streams, ${c.total === undefined ? `${SECONDS}s` : `${c.total} calls`}`);
      const report = await ghz(c.address, protoset, c.data(round), ["--concurrency", "32", ...conn(c), ...(c.total === undefined ? ["--duration", `${SECONDS}s`] : ["--total", String(c.total)])]);
      assertNoFailures(c.name, report);
      rps.set(c.name, [...(rps.get(c.name) ?? []), report.rps]);
    }
  }
  const measured: Row[] = [];
  for (const c of cases) {
    let p50 = NaN;
    let p99 = NaN;
    let p999 = NaN;
    if (c.latency) {
      progress(`${c.name}: latency at 1,000 RPS, 4 streams, ${SECONDS}s`);
      const fixed = await ghz(c.address, protoset, c.data(0), ["--concurrency", "4", "--rps", "1000", "--duration", `${SECONDS}s`, ...conn(c)]);
      const ok = (fixed.details ?? []).filter((d) => d.status === "OK").map((d) => d.latency / 1e6).sort((a, b) => a - b);
      [p50, p99, p999] = [percentile(ok, 50), percentile(ok, 99), percentile(ok, 99.9)];
    }
    const runs = rps.get(c.name) ?? [];
    measured.push({ name: c.name, maxRps: median(runs), runs: runs.map((r) => r.toFixed(0)).join(" / "), p50, p99, p999 });
  }
  return measured;
}

function table(rows: Row[], baseline: Row, versus = "vs bare"): string {
  const head = ["server", "max RPS (median)", versus, "rounds", "p50 ms", "p99 ms", "p99.9 ms"];
  const ms = (v: number) => (Number.isNaN(v) ? "-" : v.toFixed(3));
  const body = rows.map((r) => [r.name, r.maxRps.toFixed(0), `${((100 * r.maxRps) / baseline.maxRps).toFixed(0)}%`, r.runs, ms(r.p50), ms(r.p99), ms(r.p999)]);
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i]!.length)));
  const line = (cells: string[]) => "| " + cells.map((c, i) => c.padEnd(widths[i]!)).join(" | ") + " |";
  return [line(head), "|" + widths.map((w) => "-".repeat(w + 2)).join("|") + "|", ...body.map(line)].join("\n");
}

async function main(): Promise<void> {
  progress(`installing ghz ${GHZ_VERSION} if needed`);
  await run(join(root, "scripts/install-test-tools.sh"), ["ghz"]);
  const dir = await mkdtemp(join(tmpdir(), "hopwarden-bench-"));
  const protoset = join(dir, "hopwarden.binpb");
  await run(join(root, "node_modules/.bin/buf"), ["build", "-o", protoset], { cwd: root });

  progress("generating the bench PKI, policy, signing key and tokens");
  const pki = await createTestPki();
  const signingKey = await createSigningKey("ES256");
  const ISSUER = "https://sts.example.org";
  const { file: policy } = await writeTestPolicy(
    { maxChainLength: 6, extra: `tokens:\n  issuer: ${ISSUER}\n  jwks: jwks.json\n  required: false\n  clockSkew: 30s\n` },
    dir,
  );
  await writeFile(join(dir, "jwks.json"), JSON.stringify(jwksOf(signingKey)));
  // The realistic request: worker's certificate, a 3-agent chain, a person.
  const request = (token?: string) => ({
    attributes: {
      source: { certificate: pki.agents.worker.urlEncodedPem, address: { socketAddress: { address: "10.0.0.7", portValue: 43512 } } },
      destination: { address: { socketAddress: { address: "10.0.0.9", portValue: 8443 } } },
      contextExtensions: { agent: "research" },
      request: {
        http: {
          id: "3f2c6a1e-9d4b-4c1a-8f7e-2b5d9c0e1a47",
          method: "POST",
          path: "/v1/summarize?lang=en",
          host: "research.agents.example.org",
          scheme: "https",
          protocol: "HTTP/2",
          headers: {
            ":authority": "research.agents.example.org",
            ":method": "POST",
            ":path": "/v1/summarize?lang=en",
            "content-type": "application/json",
            "user-agent": "agent-sdk/1.4",
            "x-request-id": "3f2c6a1e-9d4b-4c1a-8f7e-2b5d9c0e1a47",
            traceparent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "x-agent-subject": spiffe("worker"),
            "x-agent-on-behalf-of": "alice@example.com",
            "x-agent-delegation-chain": [spiffe("orchestrator"), spiffe("planner"), spiffe("worker")].join(", "),
            ...(token !== undefined && { "x-agent-delegation-token": token }),
          },
        },
      },
    },
  });
  const now = Math.floor(Date.now() / 1000);
  const token = () =>
    signToken(signingKey, {
      iss: ISSUER,
      sub: "alice@example.com",
      aud: spiffe("research"),
      iat: now - 5,
      exp: now + 3600,
      jti: randomUUID(),
      scope: "research:read",
      cnf: { "x5t#S256": Buffer.from(pki.agents.worker.sha256Hex, "hex").toString("base64url") },
      act: nestActors([spiffe("orchestrator"), spiffe("planner"), spiffe("worker")]),
    });
  const data = join(dir, "request.json");
  await writeFile(data, JSON.stringify(request()));
  const reusedTokenData = join(dir, "request-token.json");
  await writeFile(reusedTokenData, JSON.stringify(request(await token())));
  const FRESH = Number(process.env.BENCH_FRESH_TOKENS ?? 4_000);
  const freshTokenData: string[] = [];
  for (let round = 0; round < ROUNDS; round++) {
    const fresh: unknown[] = [];
    for (let i = 0; i < FRESH; i++) fresh.push(request(await token()));
    const file = join(dir, `request-fresh-tokens-${round}.json`);
    await writeFile(file, JSON.stringify(fresh));
    freshTokenData.push(file);
  }

  // A collector stand-in that accepts OTLP/HTTP and discards it, so the span
  // path does its full work (batch, encode, send) without Jaeger's CPU cost.
  const collector = createServer((req, res) => {
    req.resume();
    req.on("end", () => res.writeHead(200, { "content-type": "application/x-protobuf" }).end());
  });
  await new Promise<void>((resolve) => collector.listen(0, "127.0.0.1", resolve));
  const collectorUrl = `http://127.0.0.1:${(collector.address() as AddressInfo).port}`;

  const serve = (extra: string[], env: NodeJS.ProcessEnv) =>
    startServer(process.execPath, [join(root, "dist/cli/bin.js"), "serve", "--policy", policy, "--listen", "127.0.0.1:0", "--admin-listen", "off", "--log-level", "warn", ...extra], env);
  const quiet = { OTEL_TRACES_EXPORTER: "none" };

  const servers: ChildProcess[] = [];
  let rows: Row[];
  let paths: Row[];
  try {
    const bare = await startServer(process.execPath, [join(root, "test/bench/bare-server.mjs"), "127.0.0.1:0"]);
    servers.push(bare.child);
    const hop = await serve([], quiet);
    servers.push(hop.child);
    const keys = join(dir, "audit");
    await run(process.execPath, [join(root, "dist/cli/bin.js"), "audit", "keygen", "--out", keys]);
    const audited = await serve(["--audit-log", join(dir, "audit.log"), "--audit-key", `${keys}.key`], {
      OTEL_EXPORTER_OTLP_ENDPOINT: collectorUrl,
      OTEL_EXPORTER_OTLP_PROTOCOL: "http/protobuf",
    });
    servers.push(audited.child);
    const auditedWorkers = await serve(["--workers", "auto", "--audit-log", join(dir, "workers", "audit.log"), "--audit-key", `${keys}.key`], {
      OTEL_EXPORTER_OTLP_ENDPOINT: collectorUrl,
      OTEL_EXPORTER_OTLP_PROTOCOL: "http/protobuf",
    });
    servers.push(auditedWorkers.child);
    const workers = await serve(["--workers", "2"], quiet);
    servers.push(workers.child);
    // Idle servers cost nothing while another is measured; all run at once so the rounds can interleave.
    const measured = await measureAll(
      [
        { name: "bare grpc-js (no work)", address: bare.address, data: () => data, latency: true },
        { name: "hopwarden (1 process)", address: hop.address, data: () => data, latency: true },
        { name: "+ reused token (cache hit)", address: hop.address, data: () => reusedTokenData, latency: true },
        { name: "+ fresh ES256 token per call", address: hop.address, data: (r) => freshTokenData[r]!, total: FRESH, warmupData: reusedTokenData, latency: false },
        { name: "+ spans + signed audit log", address: audited.address, data: () => data, latency: true },
        { name: "+ spans + signed audit log, --workers auto (4 conns)", address: auditedWorkers.address, data: () => data, connections: 4, latency: true },
        { name: "headers only, --workers 2 (4 conns)", address: workers.address, data: () => data, connections: 4, latency: true },
      ],
      protoset,
    );
    rows = measured.slice(0, 2);
    paths = [{ ...measured[1]!, name: "headers only (spans, audit off)" }, ...measured.slice(2)];
  } finally {
    await Promise.all(servers.map(stop));
    collector.close();
  }

  const baseline = rows[0]!;
  const hopRow = rows[1]!;
  const pct = (a: Row | undefined, b: Row) => (a === undefined ? "n/a" : `${((100 * a.maxRps) / b.maxRps).toFixed(0)}%`);
  process.stdout.write(`\nghz ${GHZ_VERSION}, max RPS: median of ${ROUNDS} interleaved rounds of ${SECONDS}s (c=32); node ${process.version}, ${cpus().length} cores, client and servers on the same machine\n\n${table(rows, baseline)}\n`);
  process.stdout.write(`\nPaths, against the header-only path of this run:\n\n${table(paths, paths[0]!, "vs headers only")}\n`);
  process.stdout.write(
    [
      "",
      `hopwarden reaches ${pct(hopRow, baseline)} of the bare server's max RPS (target ≥ 60%); p99 at 1,000 RPS ${hopRow.p99.toFixed(2)} ms (target < 3 ms)`,
      `reused token ${pct(paths[1], paths[0]!)} of header-only (target ≥ 90%); fresh ES256 token ${pct(paths[2], paths[0]!)} (target ≥ 50%)`,
      `spans + audit log ${pct(paths[3], paths[0]!)} of audit-off (target ≥ 85%); --workers 2 ${pct(paths[5], paths[0]!)}`,
      `spans + audit log, --workers auto: ${pct(paths[4], paths[3]!)} of one process with spans + audit log (should be above 100%)`,
      "",
    ].join("\n"),
  );
}

main().catch((err: unknown) => {
  process.stderr.write(`bench failed: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
