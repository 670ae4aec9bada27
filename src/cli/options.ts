// Shared CLI plumbing: parseArgs with errors that teach, environment variables
// that mirror flags (HOPWARDEN_<FLAG>, e.g. HOPWARDEN_ADMIN_LISTEN), and the
// usage error (exit.ts maps it to exit 2).

import { parseArgs, type ParseArgsConfig } from "node:util";
import { HopwardenError } from "../core/errors.js";

/** The command line itself is wrong (an unknown flag, a missing or malformed value): exit 2 with a pointer to --help. */
export class UsageError extends HopwardenError {
  readonly code = "usage";
}

type Options = NonNullable<ParseArgsConfig["options"]>;

type Parsed<O extends Options> = ReturnType<typeof parseArgs<{ args: string[]; options: O; allowPositionals: boolean; strict: true }>>;

export function parseCommandArgs<O extends Options>(argv: readonly string[], options: O, allowPositionals = false): Parsed<O> {
  try {
    return parseArgs({ args: [...argv], options, allowPositionals, strict: true });
  } catch (err) {
    throw new UsageError(err instanceof Error ? err.message.replace(/^TypeError \[[A-Z_]+\]: /, "") : String(err));
  }
}

/** HOPWARDEN_ + the flag in upper snake case: --admin-listen → HOPWARDEN_ADMIN_LISTEN. */
export function envName(flag: string): string {
  return `HOPWARDEN_${flag.replace(/-/g, "_").toUpperCase()}`;
}

export function fromEnv(flag: string, env: NodeJS.ProcessEnv = process.env): string | undefined {
  const value = env[envName(flag)];
  return value === undefined || value.length === 0 ? undefined : value;
}
