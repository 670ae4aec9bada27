// `npm run demo` (scripts/demo.ts) as a user runs it, minus the build: it
// exits 0, its table shows the allowed workflow (each hop carrying a
// delegation token from `hopwarden sts`, obtained with hopwarden/client, and
// the Transaction Token the token service minted at the first hop), an MCP
// tool call that Envoy's MCP filter and hopwarden let through and one they
// refuse, and every attack with the reason Envoy answered; `hopwarden trace
// --txn` then lists the transaction's hops from Jaeger; and it leaves no
// Envoy, hopwarden or token service process and no temporary directory behind.

import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { beforeAll, describe, expect, it } from "vitest";
import { envoyBinary } from "./support/envoy.js";
import { JAEGER_BIN } from "./support/jaeger.js";

const repoRoot = join(dirname(fileURLToPath(import.meta.url)), "..");

interface DemoRun {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

function runDemo(): Promise<DemoRun> {
  const child = spawn(process.execPath, ["--import", "tsx", join(repoRoot, "scripts", "demo.ts")], { cwd: repoRoot, stdio: ["ignore", "pipe", "pipe"] });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
  return new Promise((ok, fail) => {
    child.once("error", fail);
    child.once("close", (code) => ok({ code, stdout, stderr }));
  });
}

interface TableRow {
  readonly call: string;
  readonly who: string;
  readonly chain: string;
  readonly token: string;
  readonly txn: string;
  readonly callee: string;
  readonly http: string;
  readonly decision: string;
  readonly reason: string;
  readonly decisionId: string;
  readonly expected: string;
}

/** The rows of the demo's table: lines starting with a step number. */
function tableRows(stdout: string): TableRow[] {
  return stdout
    .split("\n")
    .filter((line) => /^\d+ +\| /.test(line))
    .map((line) => {
      const [, call, who, chain, token, txn, callee, http, decision, reason, decisionId, expected] = line.split(" | ").map((cell) => cell.trim());
      return { call: call!, who: who!, chain: chain!, token: token!, txn: txn!, callee: callee!, http: http!, decision: decision!, reason: reason!, decisionId: decisionId!, expected: expected! };
    });
}

function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code !== "ESRCH";
  }
}

describe("npm run demo", () => {
  let run: DemoRun;

  beforeAll(async () => {
    envoyBinary(); // the demo would install it; the suites expect it installed already
    run = await runDemo();
  }, 60_000);

  it("exits 0, every call ending as expected", () => {
    expect(run.code, `${run.stdout}\n${run.stderr}`).toBe(0);
    expect(run.stdout).toMatch(/done: every call ended as expected/);
  });

  it("prints a progress line per step", () => {
    for (const step of [
      /Envoy found|installing/,
      /generating a throw-away PKI/,
      /sts --generate-key/,
      /sts ready pid=\d+ url=https:\/\/127\.0\.0\.1:\d+/,
      /saved the token service's JWKS beside the policy/,
      /hopwarden ready pid=\d+/,
      /envoy ready pid=\d+/,
      /stopping Envoy, hopwarden, the token service, Jaeger/,
    ]) {
      expect(run.stdout).toMatch(step);
    }
  });

  it("shows the allowed orchestrator → research → db workflow with tokens, the MCP tool calls and each attack with its reason", () => {
    const rows = tableRows(run.stdout);
    expect(rows.map((r) => [r.call, r.who, r.chain, r.token, r.callee, r.http, r.decision, r.reason])).toEqual([
      ["workflow", "orchestrator", "orchestrator", "own", "research", "200", "allow", "—"],
      ["workflow", "research", "orchestrator → research", "own", "db", "200", "allow", "—"],
      ["mcp tool", "research", "orchestrator → research", "own", "db", "200", "allow", "—"],
      ["forbidden tool", "research", "orchestrator → research", "own", "db", "403", "deny", "hop_not_allowed"],
      ["spoofed subject", "orchestrator", "orchestrator → research", "—", "db", "403", "deny", "subject_mismatch"],
      ["skipped hop", "orchestrator", "orchestrator", "—", "db", "403", "deny", "hop_not_allowed"],
      ["revoked agent", "retired", "retired", "—", "research", "403", "deny", "revoked_identity"],
      ["chain cycle", "research", "orchestrator → research → orchestrator → research", "—", "db", "403", "deny", "chain_cycle"],
      ["forged chain", "research", "research", "own", "db", "403", "deny", "token_chain_mismatch"],
      ["stolen token", "orchestrator", "orchestrator", "research's", "research", "401", "deny", "token_invalid"],
      ["no certificate", "(no certificate)", "orchestrator → research", "—", "db", "—", "refused (TLS)", "certificate required"],
    ]);
    for (const row of rows.slice(0, -1)) expect(row.decisionId).toMatch(/^[0-9A-HJKMNP-TV-Z]{26}$/);
    expect(rows.every((r) => r.expected === "yes")).toBe(true);
    expect(run.stdout).toMatch(/x-agent-verified-chain: spiffe:\/\/example\.org\/agent\/orchestrator,spiffe:\/\/example\.org\/agent\/research/);
    // db got the token research obtained for this hop: issued by the STS, naming the whole chain.
    expect(run.stdout).toMatch(/x-agent-delegation-token: eyJ\S+… \(iss https:\/\/sts\.example\.org, sub alice@example\.com, aud db, act orchestrator → research, scope db:read\)/);
    expect(run.stdout).toMatch(/requests that reached an agent: 3 /);
  });

  it("carries one transaction through the workflow: the Txn-Token minted at the first hop, forwarded by every hop", () => {
    const rows = tableRows(run.stdout);
    const txn = /^transaction \(the Txn-Token the token service minted at the first hop, carried unmodified by every hop\): ([0-9a-f-]{36})$/m.exec(run.stdout)?.[1];
    expect(txn).toBeDefined();
    const short = `${txn!.slice(0, 8)}…`;
    expect(rows.map((r) => r.txn)).toEqual([short, short, short, short, "—", "—", "—", "—", short, short, "—"]);
  });

  it("lists every hop of that transaction with hopwarden trace --txn, from Jaeger: the forbidden tool too", () => {
    const txn = /^transaction \(.*\): ([0-9a-f-]{36})$/m.exec(run.stdout)![1]!;
    if (!existsSync(JAEGER_BIN)) {
      expect(run.stdout).toContain(`trace --txn ${txn} --jaeger-url`);
      return;
    }
    expect(run.stdout).toMatch(/jaeger ready query=http:\/\/127\.0\.0\.1:\d+/);
    expect(run.stdout).toContain(`transaction ${txn}, on behalf of alice@example.com`);
    const ids = tableRows(run.stdout).map((r) => r.decisionId);
    const traced = run.stdout.split("\n").filter((line) => /^\d+\s+\d{4}-\d{2}-\d{2}T/.test(line));
    expect(traced.map((line) => line.split(/\s{2,}/).slice(5, 10))).toEqual([
      ["GET /search", "-", "ALLOW", "allowed", ids[0]],
      ["GET /query", "-", "ALLOW", "allowed", ids[1]],
      ["POST /mcp", "tools/call search_docs", "ALLOW", "allowed", ids[2]],
      ["POST /mcp", "tools/call delete_index", "DENY", "hop_not_allowed", ids[3]],
      ["GET /query", "-", "DENY", "token_chain_mismatch", ids[8]],
      ["GET /search", "-", "DENY", "token_invalid", ids[9]],
    ]);
  });

  it("leaves no Envoy, hopwarden or token service process and no temporary directory behind", () => {
    const pids = [...run.stdout.matchAll(/(sts|hopwarden|envoy) ready pid=(\d+)/g)].map((m) => Number(m[2]));
    expect(pids).toHaveLength(3);
    for (const pid of pids) expect(isRunning(pid), `pid ${pid} still running`).toBe(false);
    const dir = / in (\S*hopwarden-demo-\S+)/.exec(run.stdout)?.[1];
    expect(dir).toBeDefined();
    expect(existsSync(dir!)).toBe(false);
  });
});
