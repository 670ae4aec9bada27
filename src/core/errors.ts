// The one error shape of hopwarden, the way jose shapes its errors: every
// error that can reach a user is a HopwardenError with a stable `code` (API:
// add codes, never rename them) beside a message for people that names the
// file or field at fault. The CLI maps them to exit codes in one place
// (cli/exit.ts); a thrown value that is not one is a bug.
//
// Pure: core code may throw these too.

export abstract class HopwardenError extends Error {
  /** Stable, machine-readable: e.g. "invalid_policy", "listen_failed". */
  abstract readonly code: string;

  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = new.target.name;
  }
}

export function isHopwardenError(value: unknown): value is HopwardenError {
  return value instanceof HopwardenError;
}
