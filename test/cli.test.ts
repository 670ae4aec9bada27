// SPEC 7, the command line, run as users run it: the built dist/cli/bin.js in
// a child process. Exit codes and messages of --help, check-policy, explain
// and serve's start-up errors; serve's ready line, HOPWARDEN_* environment
// twins of its flags, SIGHUP reloading the policy, and SIGTERM letting a
// Check in flight finish before exiting 0.

import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { mkdir, mkdtemp, rename, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CheckClient, outcome } from "./support/check-client.js";
import { testPolicyYaml } from "./support/policies.js";
import { awaitExit, killAllServes, REPO_ROOT, requireBuiltCli, runCli, startServe, stopServe, eventually, type ServeProcess } from "./support/cli-process.js";
import { decisionOf, policyWithoutResearchToDb, policyWithUnknownKey, researchCallsDb, unverifiableToken } from "./support/hop-requests.js";

const EXAMPLE_POLICY = join(REPO_ROOT, "examples/policy.yaml");
/** One `file:line:column: field: problem` line of a policy error report. */
const ERROR_LINE = /^(.+):(\d+):(\d+): ([^:\s]+): (.+)$/;
const STACK_FRAME = /^\s+at /m;

let dir: string;
const clients: CheckClient[] = [];

function clientFor(serve: ServeProcess): CheckClient {
  const c = new CheckClient(serve.grpc);
  clients.push(c);
  return c;
}

beforeAll(async () => {
  requireBuiltCli();
  dir = await mkdtemp(join(tmpdir(), "hopwarden-cli-"));
});

afterAll(async () => {
  for (const c of clients) c.close();
  await killAllServes();
  await rm(dir, { recursive: true, force: true });
});

describe("hopwarden", () => {
  it("lists its commands with --help and exits 0", async () => {
    const r = await runCli(["--help"]);
    expect(r.code).toBe(0);
    for (const command of ["serve", "check-policy", "explain", "audit", "trace", "sts"]) expect(r.stdout).toMatch(new RegExp(`^  ${command}\\s`, "m"));
  });

  it("exits 2 on an unknown command, naming it", async () => {
    const r = await runCli(["frobnicate"]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('unknown command "frobnicate"');
  });
});

describe("check-policy", () => {
  it("exits 0 for the example policy", async () => {
    const r = await runCli(["check-policy", EXAMPLE_POLICY]);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("valid policy");
  });

  it("exits 1 for an invalid policy, one file:line:column: field: problem line per error", async () => {
    const file = join(dir, "bad.yaml");
    // Two problems: a misspelt key, and an agent whose trust domain is upper case.
    await writeFile(file, policyWithUnknownKey().replace("db: spiffe://example.org/agent/db", "db: spiffe://Example.org/agent/db"));
    const r = await runCli(["check-policy", file]);
    expect(r.code).toBe(1);
    const lines = r.stderr.trimEnd().split("\n");
    const summary = lines.pop();
    expect(summary).toMatch(/invalid policy \(\d+ errors\)$/);
    expect(lines.length).toBeGreaterThanOrEqual(2);
    for (const line of lines) expect(line).toMatch(ERROR_LINE);
    const unknown = lines.map((l) => ERROR_LINE.exec(l)!).find((m) => m[4] === "hops[1].methds");
    expect(unknown, r.stderr).toBeDefined();
    expect(unknown![1]).toBe(file);
    expect(unknown![5]).toContain('unknown key "methds"');
    expect(lines.some((l) => ERROR_LINE.exec(l)?.[4] === "agents.db")).toBe(true);
  });

  it("exits 2 when no file is named", async () => {
    const r = await runCli(["check-policy"]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("name the policy file");
  });
});

describe("serve start-up errors", () => {
  it("exits non-zero naming a missing policy file, without a stack trace", async () => {
    const missing = join(dir, "no-such-policy.yaml");
    const r = await runCli(["serve", "--policy", missing, "--listen", "127.0.0.1:0", "--admin-listen", "off"]);
    expect(r.code).not.toBe(0);
    expect(r.code).not.toBeNull();
    expect(r.stderr).toContain(missing);
    expect(r.stderr).not.toMatch(STACK_FRAME);
    expect(r.stdout).not.toContain("hopwarden ready");
  });

  it("exits non-zero naming an invalid policy file and its errors, without a stack trace", async () => {
    const file = join(dir, "invalid-at-start.yaml");
    await writeFile(file, policyWithUnknownKey());
    const r = await runCli(["serve", "--policy", file, "--listen", "127.0.0.1:0", "--admin-listen", "off"]);
    expect(r.code).not.toBe(0);
    expect(r.code).not.toBeNull();
    expect(r.stderr).toContain(file);
    expect(r.stderr).toMatch(/:\d+:\d+: hops\[1\]\.methds: unknown key "methds"/);
    expect(r.stderr).not.toMatch(STACK_FRAME);
  });

  it.each([
    ["the gRPC port", (port: number) => ["--listen", `127.0.0.1:${port}`, "--admin-listen", "off"]],
    ["the admin API", (port: number) => ["--listen", "127.0.0.1:0", "--admin-listen", `127.0.0.1:${port}`]],
  ])("exits 1 naming the address when %s is taken, without a stack trace", async (server, flags) => {
    const blocker = createServer();
    await new Promise<void>((resolve) => blocker.listen(0, "127.0.0.1", resolve));
    const port = (blocker.address() as AddressInfo).port;
    try {
      const r = await runCli(["serve", "--policy", EXAMPLE_POLICY, ...flags(port)]);
      expect(r.code, r.stderr).toBe(1);
      expect(r.stderr).toContain(`hopwarden serve: cannot start: cannot listen on 127.0.0.1:${port} (${server}): `);
      expect(r.stderr).not.toMatch(STACK_FRAME);
      expect(r.stdout).not.toContain("hopwarden ready");
    } finally {
      blocker.close();
    }
  });

  it("exits 1 naming the --config file and field, without a stack trace", async () => {
    const config = join(dir, "bad-config.yaml");
    await writeFile(config, "cache:\n  hopDecisions: 0\n");
    const r = await runCli(["serve", "--policy", EXAMPLE_POLICY, "--config", config, "--listen", "127.0.0.1:0", "--admin-listen", "off"]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(new RegExp(`^hopwarden serve: cannot start: the config file is not usable:\n${config.replace(/[.]/g, "\\.")}:2:17: cache\\.hopDecisions: `));
    expect(r.stderr).not.toMatch(STACK_FRAME);
  });

  it("exits 2 with usage for --listen that is not host:port", async () => {
    const r = await runCli(["serve", "--policy", EXAMPLE_POLICY, "--listen", "bad"]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("--listen");
    expect(r.stderr).toContain("hopwarden serve --help");
  });
});

describe("serve", () => {
  let serve: ServeProcess;
  let live: string;

  beforeAll(async () => {
    // The policy sits behind a directory symlink: swapping the symlink changes the
    // file at the path without an event in the directory the service watches, so
    // only SIGHUP (or the 5 s poll, long after this suite) can pick it up.
    await mkdir(join(dir, "gen1"));
    await mkdir(join(dir, "gen2"));
    await writeFile(join(dir, "gen1", "policy.yaml"), testPolicyYaml({ version: "gen-1" }));
    await writeFile(join(dir, "gen2", "policy.yaml"), policyWithoutResearchToDb({ version: "gen-2" }));
    live = join(dir, "live");
    await symlink("gen1", live);
    serve = await startServe(["--policy", join(live, "policy.yaml"), "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"]);
  });

  afterAll(async () => {
    if (serve !== undefined) await stopServe(serve);
  });

  it("prints exactly one ready line with the bound addresses", async () => {
    expect(serve.readyLine).toMatch(/^hopwarden ready grpc=127\.0\.0\.1:\d+ admin=127\.0\.0\.1:\d+/);
    expect(serve.grpc).not.toBe("127.0.0.1:0");
    expect(serve.admin).not.toBe("127.0.0.1:0");
    expect(serve.stdout().split("\n").filter((l) => l.startsWith("hopwarden ready"))).toHaveLength(1);
    expect(await decisionOf(clientFor(serve))).toBe("allow");
  });

  it("reloads the policy on SIGHUP", async () => {
    const client = clientFor(serve);
    expect(await decisionOf(client)).toBe("allow");
    await symlink("gen2", join(dir, "live.tmp"));
    await rename(join(dir, "live.tmp"), live);
    serve.child.kill("SIGHUP");
    let last = "";
    const changed = await eventually(async () => (last = await decisionOf(client)) === "hop_not_allowed", 5_000);
    expect(changed, `decision still ${last}`).toBe(true);
    const loaded = serve
      .stderr()
      .split("\n")
      .filter((l) => l.includes('"policy loaded"'))
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(loaded.at(-1)).toMatchObject({ trigger: "SIGHUP", version: "gen-2" });
  });
});

describe("serve configured by environment variables", () => {
  it("takes HOPWARDEN_POLICY, HOPWARDEN_LISTEN and HOPWARDEN_ADMIN_LISTEN in place of flags", async () => {
    const file = join(dir, "from-env.yaml");
    await writeFile(file, testPolicyYaml({ version: "from-env" }));
    const serve = await startServe([], { env: { HOPWARDEN_POLICY: file, HOPWARDEN_LISTEN: "127.0.0.1:0", HOPWARDEN_ADMIN_LISTEN: "off" } });
    try {
      expect(serve.readyLine).toMatch(/^hopwarden ready grpc=127\.0\.0\.1:\d+ admin=off/);
      expect(serve.stdout()).toContain('version="from-env"');
      expect(await decisionOf(clientFor(serve))).toBe("allow");
    } finally {
      expect(await stopServe(serve)).toEqual({ code: 0, signal: null });
    }
  });
});

describe("serve on SIGTERM", () => {
  let jwks: Server;
  let jwksRequested: () => void = () => undefined;
  const requested = new Promise<void>((resolve) => (jwksRequested = resolve));

  beforeAll(async () => {
    // A key server that answers after 1 s: the Check that needs its keys stays in flight that long.
    jwks = createServer((_req, res) => {
      jwksRequested();
      setTimeout(() => res.writeHead(200, { "content-type": "application/json" }).end('{"keys":[]}'), 1000);
    });
    await new Promise<void>((resolve) => jwks.listen(0, "127.0.0.1", resolve));
  });

  afterAll(async () => {
    jwks.closeAllConnections();
    await new Promise<void>((resolve) => jwks.close(() => resolve()));
  });

  it("answers the Check in flight, then exits 0", async () => {
    const file = join(dir, "slow-keys.yaml");
    const port = (jwks.address() as AddressInfo).port;
    await writeFile(file, testPolicyYaml({ tokens: { issuer: "https://sts.example.org", jwks: `http://127.0.0.1:${port}/jwks.json`, required: false } }));
    const serve = await startServe(["--policy", file, "--listen", "127.0.0.1:0", "--admin-listen", "off", "--log-level", "debug"]);
    try {
      const inFlight = clientFor(serve).check(researchCallsDb({ "x-agent-delegation-token": unverifiableToken() }));
      await requested;
      serve.child.kill("SIGTERM");
      // The keys arrive without the token's kid: a deny, but an answer, not UNAVAILABLE.
      const o = outcome(await inFlight);
      expect(o.reason).toBe("token_invalid");
      expect(o.code).toBe(16);
    } finally {
      // Only one SIGTERM: a second one while draining forces exit 1 by design.
      if (serve.child.signalCode === null && serve.child.exitCode === null && !serve.child.killed) serve.child.kill("SIGTERM");
      expect(await awaitExit(serve)).toEqual({ code: 0, signal: null });
    }
    const log = serve.stderr();
    expect(log).toContain("draining in-flight Checks");
    // The Check was decided after the drain began, and the process stopped after that.
    expect(log.indexOf("draining in-flight Checks")).toBeLessThan(log.indexOf('"reason":"token_invalid"'));
    expect(log.indexOf('"reason":"token_invalid"')).toBeLessThan(log.indexOf('"msg":"stopped"'));
  });
});

describe("explain", () => {
  const request = (method: string) => [
    "explain",
    "--policy",
    EXAMPLE_POLICY,
    "--caller",
    "spiffe://example.org/agent/research",
    "--callee",
    "db",
    "--on-behalf-of",
    "alice@example.com",
    "--chain",
    "spiffe://example.org/agent/orchestrator,spiffe://example.org/agent/research",
    "--method",
    method,
    "--path",
    "/query",
  ];

  it("exits 0 for an allowed request and shows each hop with its rule", async () => {
    const r = await runCli(request("GET"));
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^1\s+spiffe:\/\/example\.org\/agent\/orchestrator\s+spiffe:\/\/example\.org\/agent\/research\s+hops\[0\]\s+allow/m);
    expect(r.stdout).toMatch(/^2\s+spiffe:\/\/example\.org\/agent\/research\s+spiffe:\/\/example\.org\/agent\/db\s+hops\[1\]\s+allow/m);
    expect(r.stdout).toContain("decision: ALLOW");
  });

  it("exits 1 for a denied request and names the reason", async () => {
    const r = await runCli(request("DELETE"));
    expect(r.code).toBe(1);
    expect(r.stdout).toContain("hop_not_allowed");
    expect(r.stdout).toMatch(/^2\s+spiffe:\/\/example\.org\/agent\/research\s+spiffe:\/\/example\.org\/agent\/db\s+.*deny/m);
  });

  it("exits 2 naming the file for a policy it cannot load, a --request that is not readable or not a CheckRequest", async () => {
    const missing = join(dir, "no-such-request.json");
    const notJson = join(dir, "not-a-request.json");
    await writeFile(notJson, "{ attributes: ");
    const cases: Array<[string[], string]> = [
      [["explain", "--policy", join(dir, "no-such-policy.yaml")], `hopwarden explain: the policy file ${join(dir, "no-such-policy.yaml")} is not usable:`],
      [["explain", "--policy", EXAMPLE_POLICY, "--request", missing], `hopwarden explain: --request ${missing}: cannot be read (ENOENT)`],
      [["explain", "--policy", EXAMPLE_POLICY, "--request", notJson], `hopwarden explain: --request ${notJson}: not a CheckRequest in protobuf JSON`],
    ];
    for (const [args, message] of cases) {
      const r = await runCli(args);
      expect(r.code, r.stderr).toBe(2);
      expect(r.stderr).toContain(message);
      expect(r.stderr).not.toMatch(STACK_FRAME);
    }
  });

  it("decides a CheckRequest given in JSON (--request) as serve does, through the same decoder", async () => {
    const research = "spiffe://example.org/agent/research";
    const chain = Buffer.from(`spiffe://example.org/agent/orchestrator,${research}`);
    const requestFile = async (name: string, chainBytes: Buffer) => {
      const file = join(dir, name);
      const headers = [
        { key: "X-Agent-Subject", value: research },
        { key: "x-agent-on-behalf-of", value: "alice@example.com" },
        { key: "x-agent-delegation-chain", rawValue: chainBytes.toString("base64") },
      ];
      const request = { attributes: { source: { principal: research }, contextExtensions: { agent: "db" }, request: { http: { method: "GET", path: "/query", headerMap: { headers } } } } };
      await writeFile(file, JSON.stringify(request));
      return file;
    };
    const allowed = await runCli(["explain", "--policy", EXAMPLE_POLICY, "--request", await requestFile("explain-ok.json", chain), "--json"]);
    expect(allowed.code).toBe(0);
    expect(JSON.parse(allowed.stdout)).toMatchObject({ decision: "allow", caller: research, callee: "spiffe://example.org/agent/db" });
    // A raw_value that is not UTF-8: serve refuses it with the header's reason, naming the caller, and so does explain.
    const refused = await runCli(["explain", "--policy", EXAMPLE_POLICY, "--request", await requestFile("explain-bad.json", Buffer.concat([chain, Buffer.from([0xff])])), "--json"]);
    expect(refused.code).toBe(1);
    const explanation = JSON.parse(refused.stdout) as { decision: string; reason: string; message: string };
    expect(explanation).toMatchObject({ decision: "deny", reason: "malformed_chain", caller: research });
    expect(explanation.message).toContain("x-agent-delegation-chain header is not valid UTF-8");
  });

  it("reads the header names of serve's --config, so a fleet with renamed headers gets serve's answer", async () => {
    const research = "spiffe://example.org/agent/research";
    const config = join(dir, "explain-config.yaml");
    await writeFile(config, `policy: ${EXAMPLE_POLICY}\nheaders:\n  subject: x-caller\n  chain: x-chain\n`);
    const request = join(dir, "explain-renamed.json");
    const headers = { "x-caller": research, "x-agent-on-behalf-of": "alice@example.com", "x-chain": `spiffe://example.org/agent/orchestrator,${research}` };
    await writeFile(request, JSON.stringify({ attributes: { source: { principal: research }, contextExtensions: { agent: "db" }, request: { http: { method: "GET", path: "/query", headers } } } }));
    // The policy comes from the config's policy: when --policy is not given.
    const withConfig = await runCli(["explain", "--config", config, "--request", request, "--json"]);
    expect(withConfig.code, withConfig.stderr).toBe(0);
    expect(JSON.parse(withConfig.stdout)).toMatchObject({ decision: "allow", chain: [`spiffe://example.org/agent/orchestrator`, research] });
    // Without it the default names are read, and the renamed subject header is not there.
    const without = await runCli(["explain", "--policy", EXAMPLE_POLICY, "--request", request, "--json"]);
    expect(without.code).toBe(1);
    expect(JSON.parse(without.stdout)).toMatchObject({ decision: "deny", reason: "missing_subject_header" });
    // The shorthand flags put their values under the config's names too.
    const shorthand = await runCli(["explain", "--config", config, "--caller", research, "--callee", "db", "--on-behalf-of", "alice@example.com", "--chain", headers["x-chain"], "--path", "/query", "--json"]);
    expect(shorthand.code, shorthand.stdout).toBe(0);
    const broken = join(dir, "explain-broken-config.yaml");
    await writeFile(broken, "headers:\n  subject: [1]\n");
    const refused = await runCli(["explain", "--config", broken, "--policy", EXAMPLE_POLICY, "--caller", research]);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toContain(`hopwarden explain: the config file is not usable:\n${broken}:2:`);
    expect(refused.stderr).not.toMatch(STACK_FRAME);
  });

  describe("SPEC 8: MCP facts, the caller binding and the transaction", () => {
    const MCP_POLICY = join(REPO_ROOT, "examples", "mcp", "policy.yaml");
    const mcpCall = (...more: string[]) => [
      "explain",
      "--policy",
      MCP_POLICY,
      "--caller",
      "spiffe://example.org/agent/research",
      "--callee",
      "db",
      "--on-behalf-of",
      "alice@example.com",
      "--chain",
      "spiffe://example.org/agent/orchestrator,spiffe://example.org/agent/research",
      "--method",
      "POST",
      "--path",
      "/mcp",
      ...more,
    ];

    it("judges --mcp-method/--mcp-tool with the mcp: rules and shows them, and the binding", async () => {
      const allowed = await runCli(mcpCall("--mcp-method", "tools/call", "--mcp-tool", "search_docs"));
      expect(allowed.code, allowed.stderr).toBe(0);
      expect(allowed.stdout).toMatch(/^caller: +spiffe:\/\/example\.org\/agent\/research {2}\(bound by principal\)$/m);
      expect(allowed.stdout).toMatch(/^mcp: +tools\/call tool search_docs$/m);
      const denied = await runCli(mcpCall("--mcp-method", "tools/call", "--mcp-tool", "delete_index", "--json"));
      expect(denied.code).toBe(1);
      expect(JSON.parse(denied.stdout)).toMatchObject({ reason: "hop_not_allowed", callerBinding: "principal", mcpMethod: "tools/call", mcpTool: "delete_index", txn: "" });
      const noMcp = await runCli(mcpCall("--json"));
      expect(JSON.parse(noMcp.stdout)).toMatchObject({ reason: "hop_not_allowed", mcpMethod: "" });
      expect((JSON.parse(noMcp.stdout) as { hops: { detail: string }[] }).hops[1]!.detail).toContain("no readable MCP metadata");
    });

    it("refuses --mcp-tool without --mcp-method (exit 2)", async () => {
      const r = await runCli(mcpCall("--mcp-tool", "search_docs"));
      expect(r.code).toBe(2);
      expect(r.stderr).toContain("--mcp-tool and --mcp-resource need --mcp-method");
    });

    it("sends --txn-token as the txn-token header: a policy without txnTokens refuses it", async () => {
      const r = await runCli(mcpCall("--mcp-method", "tools/list", "--txn-token", "a.b.c", "--json"));
      expect(r.code).toBe(1);
      expect(JSON.parse(r.stdout)).toMatchObject({ reason: "token_invalid" });
    });
  });

  it("prints JSON with decision, reason and hops under --json", async () => {
    const r = await runCli([...request("DELETE"), "--json"]);
    expect(r.code).toBe(1);
    const parsed = JSON.parse(r.stdout) as { decision: string; reason: string; hops: { from: string; to: string; rule: string; result: string }[] };
    expect(parsed.decision).toBe("deny");
    expect(parsed.reason).toBe("hop_not_allowed");
    expect(parsed.hops).toHaveLength(2);
    expect(parsed.hops[0]).toMatchObject({ from: "spiffe://example.org/agent/orchestrator", to: "spiffe://example.org/agent/research", rule: "hops[0]", result: "allow" });
    expect(parsed.hops[1]).toMatchObject({ from: "spiffe://example.org/agent/research", to: "spiffe://example.org/agent/db", result: "deny" });
  });
});
