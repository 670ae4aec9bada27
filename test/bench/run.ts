// `npm run bench`: hopwarden's Check against a bare grpc-js server that does
// no work, measured in the same run with the same client (ghz, pinned), so the
// ratio is hopwarden's and not the machine's. Prints a table: max RPS in a
// closed loop (32 streams, fixed duration) and p50/p99/p99.9 at a fixed
// 1,000 RPS, for each server, and the ratios.
//
//   npm run bench                 # the standard table
//   BENCH_SECONDS=5 npm run bench # shorter runs

import { execFile, spawn, type ChildProcess } from "node:child_process";
import { mkdtemp, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { createTestPki, spiffe } from "../support/pki.js";
import { writeTestPolicy } from "../support/policies.js";

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
  maxRps: number;
  p50: number;
  p99: number;
  p999: number;
  errors: string;
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

function errorsOf(report: GhzReport): string {
  const bad = Object.entries(report.statusCodeDistribution ?? {}).filter(([k]) => k !== "OK");
  return bad.length === 0 ? "0" : bad.map(([k, v]) => `${k}:${v}`).join(" ");
}

async function measure(name: string, address: string, protoset: string, data: string): Promise<Row> {
  progress(`${name}: warm-up`);
  await ghz(address, protoset, data, ["--concurrency", "8", "--total", "3000", "--skipFirst", "0"]);
  progress(`${name}: max RPS, 32 streams, ${SECONDS}s`);
  const max = await ghz(address, protoset, data, ["--concurrency", "32", "--duration", `${SECONDS}s`]);
  progress(`${name}: latency at 1,000 RPS, 4 streams, ${SECONDS}s`);
  const fixed = await ghz(address, protoset, data, ["--concurrency", "4", "--rps", "1000", "--duration", `${SECONDS}s`]);
  const ok = (fixed.details ?? []).filter((d) => d.status === "OK").map((d) => d.latency / 1e6).sort((a, b) => a - b);
  return { name, maxRps: max.rps, p50: percentile(ok, 50), p99: percentile(ok, 99), p999: percentile(ok, 99.9), errors: `${errorsOf(max)} / ${errorsOf(fixed)}` };
}

function table(rows: Row[], baseline: Row): string {
  const head = ["server", "max RPS (c=32)", "vs bare", "p50 ms", "p99 ms", "p99.9 ms", "non-OK (max / fixed)"];
  const body = rows.map((r) => [r.name, r.maxRps.toFixed(0), `${((100 * r.maxRps) / baseline.maxRps).toFixed(0)}%`, r.p50.toFixed(3), r.p99.toFixed(3), r.p999.toFixed(3), r.errors]);
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

  progress("generating the bench PKI and policy");
  const pki = await createTestPki();
  const { file: policy } = await writeTestPolicy({ maxChainLength: 6 }, dir);
  // The realistic request: worker's certificate, a 3-agent chain, a person.
  const request = {
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
          },
        },
      },
    },
  };
  const data = join(dir, "request.json");
  await writeFile(data, JSON.stringify(request));

  const rows: Row[] = [];
  const bare = await startServer(process.execPath, [join(root, "test/bench/bare-server.mjs"), "127.0.0.1:0"]);
  try {
    rows.push(await measure("bare grpc-js (no work)", bare.address, protoset, data));
  } finally {
    await stop(bare.child);
  }
  const hop = await startServer(process.execPath, [join(root, "dist/cli/bin.js"), "serve", "--policy", policy, "--listen", "127.0.0.1:0", "--admin-listen", "off", "--log-level", "warn"], {
    OTEL_TRACES_EXPORTER: "none",
  });
  try {
    const row = await measure("hopwarden (1 process)", hop.address, protoset, data);
    rows.push(row);
  } finally {
    await stop(hop.child);
  }
  const baseline = rows[0]!;
  process.stdout.write(`\nghz ${GHZ_VERSION}, ${SECONDS}s per run, node ${process.version}, client and servers on the same machine\n\n${table(rows, baseline)}\n`);
  const main = rows[1]!;
  process.stdout.write(`\nratio: hopwarden reaches ${((100 * main.maxRps) / baseline.maxRps).toFixed(0)}% of the bare server's max RPS (target ≥ 60%); p99 at 1,000 RPS ${main.p99.toFixed(2)} ms (target < 3 ms)\n`);
}

main().catch((err: unknown) => {
  process.stderr.write(`bench failed: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
