// The one registry of CLI sub-commands. Each command lives in its own file and
// exports a `Command`; bin.ts only dispatches. Commands load lazily so that
// `hopwarden check-policy` does not pay for gRPC and OpenTelemetry.

export interface Command {
  /** Runs the command with the arguments after its name; resolves to the exit code. */
  run(argv: readonly string[]): Promise<number>;
}

interface CommandEntry {
  /** One line for the command list in `hopwarden --help`. */
  readonly summary: string;
  readonly load: () => Promise<Command>;
}

export const COMMANDS: Readonly<Record<string, CommandEntry>> = {
  serve: {
    summary: "run the ext_authz gRPC service (Check, health, reflection) and the admin API",
    load: async () => (await import("./serve.js")).serveCommand,
  },
  "check-policy": {
    summary: "validate a policy file: exit 0 when valid, 1 when not",
    load: async () => (await import("./check-policy.js")).checkPolicyCommand,
  },
  explain: {
    summary: "dry-run one request against a policy and print the hop-by-hop table",
    load: async () => (await import("./explain.js")).explainCommand,
  },
  trace: {
    summary: "print a delegation chain from Jaeger as a tree: by decision id, trace id or --on-behalf-of",
    load: async () => (await import("./trace.js")).traceCommand,
  },
  sts: {
    summary: "run the delegation token service (RFC 8693 token exchange over mTLS), or generate its signing key",
    load: async () => (await import("./sts.js")).stsCommand,
  },
  audit: {
    summary: "verify a tamper-evident audit log (audit verify), or create its signing key pair (audit keygen)",
    load: async () => (await import("./audit.js")).auditCommand,
  },
};
