// The built CLI (dist/cli/bin.js) as the suites run it: one-shot commands
// with their exit code and output, and `serve` as a child process that is
// ready once it prints its ready line. Every wait is bounded, and every
// process started here is killed by stopAll() whatever happened.

import { spawn, type ChildProcess } from "node:child_process";
import { existsSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
export const CLI_BIN = join(REPO_ROOT, "dist/cli/bin.js");

/** Throws a clear message when `npm run build` has not been run. */
export function requireBuiltCli(): void {
  if (!existsSync(CLI_BIN)) throw new Error(`${CLI_BIN} is missing: run \`npm run build\` before these tests (the README's test command does)`);
}

/** No decision spans leave a spawned service: no collector runs in these suites. */
const QUIET_ENV = { OTEL_TRACES_EXPORTER: "none" };

export interface CliResult {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs `hopwarden <args>` to completion (killed after `timeoutMs`). */
export function runCli(args: readonly string[], options: { env?: Record<string, string>; timeoutMs?: number; cwd?: string } = {}): Promise<CliResult> {
  requireBuiltCli();
  return new Promise((resolvePromise, reject) => {
    const child = spawn(process.execPath, [CLI_BIN, ...args], {
      cwd: options.cwd ?? REPO_ROOT,
      env: { ...process.env, ...QUIET_ENV, ...options.env },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.setEncoding("utf8").on("data", (d: string) => (stdout += d));
    child.stderr.setEncoding("utf8").on("data", (d: string) => (stderr += d));
    const timer = setTimeout(() => child.kill("SIGKILL"), options.timeoutMs ?? 15_000);
    child.on("error", (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      resolvePromise({ code, signal, stdout, stderr });
    });
  });
}

export interface ServeProcess {
  readonly child: ChildProcess;
  readonly pid: number;
  /** host:port of the gRPC listener, from the ready line. */
  readonly grpc: string;
  /** host:port of the admin listener, or "off". */
  readonly admin: string;
  readonly readyLine: string;
  stdout(): string;
  stderr(): string;
  /** Resolves when the process has exited (code, signal). */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

const running = new Set<ChildProcess>();

const READY = /^hopwarden ready grpc=(\S+) admin=(\S+)/m;

/**
 * Starts `hopwarden serve <args>` and waits (bounded) for its ready line.
 * Rejects with the process's output when it exits or stays silent instead.
 */
export function startServe(args: readonly string[], options: { env?: Record<string, string>; readyTimeoutMs?: number } = {}): Promise<ServeProcess> {
  requireBuiltCli();
  const child = spawn(process.execPath, [CLI_BIN, "serve", ...args], {
    cwd: REPO_ROOT,
    env: { ...process.env, ...QUIET_ENV, ...options.env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  running.add(child);
  let stdout = "";
  let stderr = "";
  child.stdout.setEncoding("utf8").on("data", (d: string) => (stdout += d));
  child.stderr.setEncoding("utf8").on("data", (d: string) => (stderr += d));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolveExit) => {
    child.on("exit", (code, signal) => {
      running.delete(child);
      resolveExit({ code, signal });
    });
  });
  return new Promise((resolvePromise, reject) => {
    const timeoutMs = options.readyTimeoutMs ?? 20_000;
    const fail = (why: string) => {
      clearInterval(poll);
      clearTimeout(timer);
      child.kill("SIGKILL");
      reject(new Error(`hopwarden serve ${why}\nstdout:\n${stdout}\nstderr:\n${stderr}`));
    };
    const timer = setTimeout(() => fail(`printed no ready line within ${timeoutMs} ms`), timeoutMs);
    const poll = setInterval(() => {
      const match = READY.exec(stdout);
      if (match === null) return;
      clearInterval(poll);
      clearTimeout(timer);
      resolvePromise({
        child,
        pid: child.pid!,
        grpc: match[1]!,
        admin: match[2]!,
        readyLine: match[0],
        stdout: () => stdout,
        stderr: () => stderr,
        exited,
      });
    }, 20);
    void exited.then(({ code, signal }) => {
      if (READY.test(stdout)) return;
      fail(`exited (code ${code}, signal ${signal}) before it was ready`);
    });
  });
}

/** Sends SIGTERM and waits up to `timeoutMs` for the exit; SIGKILL after that. */
export async function stopServe(serve: ServeProcess, timeoutMs = 10_000): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  if (serve.child.exitCode === null && serve.child.signalCode === null) serve.child.kill("SIGTERM");
  return awaitExit(serve, timeoutMs);
}

/** Waits up to `timeoutMs` for a process already told to stop (a second SIGTERM would force it); SIGKILL after that. */
export async function awaitExit(serve: ServeProcess, timeoutMs = 10_000): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  const timer = setTimeout(() => serve.child.kill("SIGKILL"), timeoutMs);
  try {
    return await serve.exited;
  } finally {
    clearTimeout(timer);
  }
}

/** Kills every serve process still running (for afterAll), waiting for each exit. */
export async function killAllServes(): Promise<void> {
  const children = [...running];
  await Promise.all(
    children.map(
      (child) =>
        new Promise<void>((resolveExit) => {
          if (child.exitCode !== null || child.signalCode !== null) return resolveExit();
          child.once("exit", () => resolveExit());
          child.kill("SIGKILL");
        }),
    ),
  );
}

/** Polls `probe` every `intervalMs` until it returns true; false when `timeoutMs` passes first. */
export async function eventually(probe: () => boolean | Promise<boolean>, timeoutMs = 5_000, intervalMs = 50): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await probe()) return true;
    if (Date.now() >= deadline) return false;
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}
