// The one place where the command line turns a failure into what it prints
// and its exit code. Every command runs its body through runCommand(); bin.ts
// maps what fails outside a command the same way.
//
//   exit  when                                            printed on stderr
//   0     success, or the command's positive answer       -
//   1     the command's negative answer (check-policy:    the command's own report
//         invalid, explain: deny, audit verify: not
//         intact, trace: nothing found), or a failure
//         the user can fix: a HopwardenError (policy,     hopwarden <command>: <message naming the file or field>
//         config, TLS file, key, CRL, listen, worker...),
//         or a file or socket the system refused
//   2     usage error                                     hopwarden <command>: <problem>
//                                                         Run 'hopwarden <command> --help' for usage.
//   70    internal error (EX_SOFTWARE, sysexits.h):       hopwarden <command>: internal error (a bug: please report it)
//         anything else that was thrown is a bug          and the stack trace
//
// Commands with documented codes of their own say so in their context: audit
// exits 3 for usage and input errors (its 2 means a verified log with lines
// no signature covers), trace exits 3 when Jaeger could not be queried,
// explain 2 for a policy it cannot load. 70 is outside every command's documented
// codes, so a script never mistakes a crash for an answer (explain's "deny",
// trace's "not found" or audit verify's "not intact").

import { isHopwardenError } from "../core/errors.js";
import { UsageError } from "./options.js";

export const EXIT = {
  ok: 0,
  failed: 1,
  usage: 2,
  /** EX_SOFTWARE: an error that is not a HopwardenError, i.e. a bug. */
  internal: 70,
} as const;

/** How one command reports its failures, beyond the defaults above. */
export interface FailureContext {
  /** `hopwarden <command>: …`; undefined outside a command. */
  readonly command?: string | undefined;
  /** Exit code of a usage error (default 2). */
  readonly usageExit?: number;
  /** Exit code of any other failure the user can fix (default 1). */
  readonly failedExit?: number;
  /** Put before the message of any other HopwardenError, e.g. serve's "cannot start: ". */
  readonly prefix?: string;
  /** Exit codes the command documents for particular error codes. */
  readonly exits?: Readonly<Record<string, number>>;
  /** A line printed after the message, by error code. */
  readonly hints?: Readonly<Record<string, string>>;
}

export interface Failure {
  readonly exitCode: number;
  /** What stderr gets, ending with a newline. */
  readonly text: string;
}

/** A Node system error (ENOENT, EACCES, EADDRINUSE...): the environment refused, so it is the user's to fix, not a bug. */
function isSystemError(err: unknown): err is NodeJS.ErrnoException {
  return err instanceof Error && typeof (err as NodeJS.ErrnoException).code === "string" && typeof (err as NodeJS.ErrnoException).syscall === "string";
}

export function failureOf(err: unknown, context: FailureContext = {}): Failure {
  const who = context.command === undefined ? "hopwarden" : `hopwarden ${context.command}`;
  if (err instanceof UsageError) {
    const help = context.command === undefined ? "hopwarden --help" : `hopwarden ${context.command} --help`;
    return { exitCode: context.usageExit ?? EXIT.usage, text: `${who}: ${err.message}\nRun '${help}' for usage.\n` };
  }
  if (isHopwardenError(err)) {
    const hint = context.hints?.[err.code];
    return { exitCode: context.exits?.[err.code] ?? context.failedExit ?? EXIT.failed, text: `${who}: ${context.prefix ?? ""}${err.message}\n${hint === undefined ? "" : `${hint}\n`}` };
  }
  if (isSystemError(err)) return { exitCode: context.failedExit ?? EXIT.failed, text: `${who}: ${context.prefix ?? ""}${err.message}\n` };
  const detail = err instanceof Error ? (err.stack ?? `${err.name}: ${err.message}`) : String(err);
  return { exitCode: EXIT.internal, text: `${who}: internal error (a bug: please report it)\n${detail}\n` };
}

/** Prints the failure on `write` (default stderr) and returns its exit code. */
export function reportFailure(err: unknown, context: FailureContext = {}, write: (text: string) => void = (text) => void process.stderr.write(text)): number {
  const failure = failureOf(err, context);
  write(failure.text);
  return failure.exitCode;
}

/** Runs a command's body: its result is the exit code, and whatever it throws is reported here. */
export async function runCommand(command: string, body: () => Promise<number>, context: Omit<FailureContext, "command"> & { readonly write?: (text: string) => void } = {}): Promise<number> {
  try {
    return await body();
  } catch (err) {
    return reportFailure(err, { ...context, command }, context.write);
  }
}
