// Real Redis for the single-use suites (SPEC 5): `redis-server` on a free
// loopback port with no persistence, ready once it answers PING. It can be
// paused (SIGSTOP: a store that accepts connections and never answers),
// resumed, stopped and started again on the same port. Every server started
// here is stopped by stop(), by stopAllRedis(), or at the latest when the test
// process exits. Nothing here installs anything: redis-server comes from
// scripts/install-test-tools.sh redis (Debian's package).

import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { connect } from "node:net";
import { freePort } from "./envoy.js";

export interface RedisProcess {
  /** The plain-text port (the suites' own commands use it). */
  readonly port: number;
  /** The TLS port, when started with `tls`. */
  readonly tlsPort: number | undefined;
  /** redis://127.0.0.1:PORT/0 */
  readonly url: string;
  readonly pid: number;
  output(): string;
  /** SIGSTOP: connections are accepted, nothing is answered. */
  pause(): void;
  /** SIGCONT after pause(). */
  resume(): void;
  /** Sends a command (RESP) on a new connection and returns the raw reply, e.g. "+OK\r\n". */
  command(...args: string[]): Promise<string>;
  /** SIGTERM (resuming a paused server first), SIGKILL after `graceMs`; resolves once it has exited. Safe to call twice. */
  stop(graceMs?: number): Promise<void>;
}

const running = new Set<ChildProcess>();
process.once("exit", () => {
  for (const child of running) child.kill("SIGKILL");
});

/** Throws a clear message when redis-server is not installed. */
export function requireRedisServer(): void {
  const probe = spawnSync("redis-server", ["--version"], { encoding: "utf8" });
  if (probe.status !== 0) throw new Error("redis-server is not installed: run scripts/install-test-tools.sh redis (apt-get install redis-server); the README's test command does");
}

export interface StartRedisOptions {
  /** Default: a free one. */
  readonly port?: number;
  /** Also serve TLS on a free port with this certificate and key (PEM files); clients need no certificate. */
  readonly tls?: { readonly cert: string; readonly key: string };
  /** requirepass: clients must AUTH with it. */
  readonly password?: string;
  readonly readyTimeoutMs?: number;
}

/** Starts redis-server on loopback, without persistence. */
export async function startRedis(options: StartRedisOptions = {}): Promise<RedisProcess> {
  requireRedisServer();
  const port = options.port ?? (await freePort());
  const tlsPort = options.tls === undefined ? undefined : await freePort();
  const args = ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--loglevel", "warning"];
  if (options.tls !== undefined) {
    args.push("--tls-port", String(tlsPort), "--tls-cert-file", options.tls.cert, "--tls-key-file", options.tls.key, "--tls-auth-clients", "no");
  }
  if (options.password !== undefined) args.push("--requirepass", options.password);
  const child = spawn("redis-server", args, { stdio: ["ignore", "pipe", "pipe"] });
  running.add(child);
  let output = "";
  child.stdout.on("data", (chunk: Buffer) => (output += chunk.toString()));
  child.stderr.on("data", (chunk: Buffer) => (output += chunk.toString()));
  const exited = new Promise<void>((ok) => child.once("exit", () => ok()));
  void exited.then(() => running.delete(child));
  child.once("error", (err) => (output += `\nspawn failed: ${err.message}`));

  let stopping: Promise<void> | undefined;
  const stop = (graceMs = 3_000): Promise<void> => {
    stopping ??= (async () => {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill("SIGCONT");
        child.kill("SIGTERM");
        const timer = setTimeout(() => child.kill("SIGKILL"), graceMs);
        await exited;
        clearTimeout(timer);
      }
    })();
    return stopping;
  };
  const redis: RedisProcess = {
    port,
    tlsPort,
    url: `redis://127.0.0.1:${port}/0`,
    pid: child.pid!,
    output: () => output,
    pause: () => void child.kill("SIGSTOP"),
    resume: () => void child.kill("SIGCONT"),
    command: (...args) => sendCommand(port, args),
    stop,
  };

  const deadline = Date.now() + (options.readyTimeoutMs ?? 10_000);
  while (Date.now() < deadline) {
    if (child.exitCode !== null || child.signalCode !== null) {
      await stop();
      throw new Error(`redis-server exited (${child.exitCode ?? child.signalCode}) before it was ready on port ${port}:\n${output}`);
    }
    // With requirepass, PING is refused with NOAUTH: that answer shows it is ready too.
    if (/^(\+PONG|-NOAUTH)/.test(await sendCommand(port, ["PING"], 500).catch(() => ""))) return redis;
    await new Promise((r) => setTimeout(r, 50));
  }
  await stop(500);
  throw new Error(`redis-server did not answer PING on port ${port} in time:\n${output}`);
}

/** Stops every server started here (for afterAll). */
export async function stopAllRedis(): Promise<void> {
  await Promise.all(
    [...running].map(
      (child) =>
        new Promise<void>((ok) => {
          if (child.exitCode !== null || child.signalCode !== null) return ok();
          child.once("exit", () => ok());
          child.kill("SIGKILL");
        }),
    ),
  );
}

/** One command in RESP on a fresh connection; resolves with the first reply's raw bytes. */
function sendCommand(port: number, args: readonly string[], timeoutMs = 2_000): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, "127.0.0.1");
    let reply = "";
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`redis on port ${port} did not answer ${args[0]} within ${timeoutMs} ms`));
    }, timeoutMs);
    socket.once("error", (err) => {
      clearTimeout(timer);
      reject(err);
    });
    socket.on("data", (chunk: Buffer) => {
      reply += chunk.toString();
      if (!isCompleteReply(reply)) return;
      clearTimeout(timer);
      socket.end();
      resolve(reply);
    });
    socket.write(`*${args.length}\r\n${args.map((a) => `$${Buffer.byteLength(a)}\r\n${a}\r\n`).join("")}`);
  });
}

/** Enough of RESP for the replies the suites read: simple strings, errors, integers, bulk strings and nil. */
function isCompleteReply(reply: string): boolean {
  const end = reply.indexOf("\r\n");
  if (end < 0) return false;
  if (reply[0] !== "$") return true;
  const length = Number(reply.slice(1, end));
  return length < 0 || reply.length >= end + 2 + length + 2;
}
