// `hopwarden audit verify|keygen`: check a tamper-evident audit log offline,
// and create the Ed25519 key pair that signs it. Exit codes (SPEC 6): 0 intact
// and every line covered by a signature (or keys written), 1 the log is not
// intact, 2 no tampering found in what is signed but some lines are not
// covered by any signature, 3 usage or input errors (never 2: a script that
// accepts 2 must not mistake a mistyped command for a verified log).

import { access } from "node:fs/promises";
import { basename } from "node:path";
import { loadAuditPublicKey, writeAuditKeyPair } from "../../adapters/audit/audit-keys.js";
import { verifyAuditLog, type ChainReport, type CoverageGap, type VerifyFinding, type VerifyReport } from "../../adapters/audit/audit-log-verifier.js";
import { runCommand } from "../exit.js";
import { parseCommandArgs, UsageError } from "../options.js";
import type { Command } from "./index.js";

export interface CommandOutput {
  out(text: string): void;
  err(text: string): void;
}

const processOutput: CommandOutput = {
  out: (text) => process.stdout.write(text),
  err: (text) => process.stderr.write(text),
};

const HELP = `Usage:
  hopwarden audit verify --public-key <file> [--allow-open-end] <log file>...
  hopwarden audit keygen --out <prefix>

verify
  Checks that audit log files written by \`hopwarden serve --audit-log\` are
  intact: every line carries the hash of the line before it, and checkpoint
  lines sign that running hash with the Ed25519 key given to --audit-key.
  Pass every file of the log (the active file and its rotated files
  <file>.<12-digit seq>); they are verified as one chain in the order of
  their first seq, whatever order you give them in. For example:

    hopwarden audit verify --public-key audit.pub /var/log/hopwarden/audit.log*

  With serve --workers N, each worker writes its own chain (audit.w1.log,
  audit.w2.log, ... and their rotated files) and the main log (audit.log)
  names them: pass every chain's files. Each chain is verified on its own,
  then all against the main log's roster: a chain missing, cut back or not
  named by it is a failure.

    hopwarden audit verify --public-key audit.pub /var/log/hopwarden/audit.log* /var/log/hopwarden/audit.w*.log*

  Exit 0 when intact and every line is covered by a signature. Exit 1 when a
  record was edited, deleted, duplicated or reordered, a signature fails, or
  the log does not end with the shutdown checkpoint a clean stop writes; the
  first bad record is printed as file:line: problem. Exit 2 when nothing
  signed was tampered with, but some lines are not covered by any signature:
  a restarted writer found lines it could not verify (a crash tail, or lines
  someone added) and named them in a signed recovery record, or it restarted
  after an end without a shutdown checkpoint; each is printed as
  file:first-last: why.

  --public-key <file>  the Ed25519 public key, PEM SubjectPublicKeyInfo
                       ("-----BEGIN PUBLIC KEY-----"), e.g. from keygen
  --allow-open-end     the log is still being written, or its writer crashed:
                       accept an end without a shutdown checkpoint (a
                       warning), and records not yet signed or a half-written
                       last line (not covered by any signature: exit 2)

keygen
  Writes a new Ed25519 key pair: <prefix>.key (PKCS#8 PEM, mode 0600, for
  serve --audit-key; keep it secret) and <prefix>.pub (SPKI PEM, for
  audit verify --public-key). Never overwrites existing files.

  --out <prefix>       path prefix of the two files

Exit codes: 0 intact and fully covered / keys written, 1 not intact,
2 intact in what is signed but some lines not covered, 3 usage or input error
(a key or log file missing or unreadable, or a log file that is not a regular
file: a directory, a FIFO, a socket, a device).
See docs/audit-log.md for the format and what verify proves.
`;

/** SPEC 6: intact in what is signed, but some lines are not covered by any signature. */
const NOT_COVERED = 2;
/** Usage and input errors: never 2, which a script may accept as "verified, partly uncovered". */
const INPUT_ERROR = 3;

export const auditCommand: Command = {
  run: (argv) => runAudit(argv, processOutput),
};

export function runAudit(argv: readonly string[], io: CommandOutput): Promise<number> {
  return runCommand("audit", () => audit(argv, io), { usageExit: INPUT_ERROR, failedExit: INPUT_ERROR, write: (text) => io.err(text) });
}

async function audit(argv: readonly string[], io: CommandOutput): Promise<number> {
  const [sub, ...rest] = argv;
  if (sub === undefined) {
    io.err(HELP);
    return INPUT_ERROR;
  }
  if (sub === "--help" || sub === "-h" || sub === "help") {
    io.out(HELP);
    return 0;
  }
  if (sub === "verify") return verify(rest, io);
  if (sub === "keygen") return keygen(rest, io);
  throw new UsageError(`unknown audit command "${sub}" (expected verify or keygen)`);
}

async function verify(argv: readonly string[], io: CommandOutput): Promise<number> {
  const { values, positionals } = parseCommandArgs(
    argv,
    {
      "public-key": { type: "string" },
      "allow-open-end": { type: "boolean", default: false },
      help: { type: "boolean", short: "h", default: false },
    },
    true,
  );
  if (values.help) {
    io.out(HELP);
    return 0;
  }
  const keyFile = values["public-key"];
  if (keyFile === undefined) throw new UsageError("--public-key: required (the Ed25519 public key, PEM SPKI)");
  if (positionals.length === 0) throw new UsageError("no log files given");
  for (const file of positionals) {
    try {
      await access(file);
    } catch {
      throw new UsageError(`${file}: no such file`);
    }
  }
  // An unusable key is an AuditKeyError naming the file: an input error (exit 3).
  const publicKey = await loadAuditPublicKey(keyFile);

  // A log file that cannot be read or is not a regular file (a directory, a
  // FIFO) is an AuditLogFileError naming it: an input error (exit 3), no verdict.
  const report = await verifyAuditLog(positionals, publicKey, { allowOpenEnd: values["allow-open-end"] });
  for (const warning of report.warnings) io.err(`${formatFinding(warning)} (warning)\n`);
  if (report.problems.length > 0) {
    for (const problem of report.problems) io.err(`${formatFinding(problem)}\n`);
    io.err(
      report.problems.length === 1
        ? "audit log NOT intact: the line above names the first bad record\n"
        : "audit log NOT intact: each line above names the first bad record of a chain, or a chain that does not match the roster of the main log\n",
    );
    return 1;
  }
  const summary = report.chains.length === 1 ? chainSummary(report.chains[0]!) : multiChainSummary(report);
  if (report.uncovered.length > 0) {
    for (const gap of report.uncovered) io.err(`${formatGap(gap)}\n`);
    io.err("audit log NOT fully covered: no tampering found in what is signed, but the lines named above are not covered by any signature\n");
    io.out(`audit log intact in what is signed, not fully covered: ${summary}`);
    return NOT_COVERED;
  }
  io.out(`audit log intact: ${summary}`);
  return 0;
}

async function keygen(argv: readonly string[], io: CommandOutput): Promise<number> {
  const { values } = parseCommandArgs(argv, { out: { type: "string" }, help: { type: "boolean", short: "h", default: false } });
  if (values.help) {
    io.out(HELP);
    return 0;
  }
  const prefix = values.out;
  if (prefix === undefined || prefix === "") throw new UsageError("--out: required (path prefix for <prefix>.key and <prefix>.pub)");
  let files;
  try {
    files = await writeAuditKeyPair(prefix);
  } catch (error) {
    const e = error as NodeJS.ErrnoException;
    if (typeof e.code !== "string") throw error;
    const why = e.code === "EEXIST" ? "already exists, not overwritten" : (e.code ?? e.message);
    throw new UsageError(`--out: ${e.path ?? prefix}: ${why}`);
  }
  io.out(`private key: ${files.privateKeyFile} (secret; hopwarden serve --audit-key ${files.privateKeyFile})\n`);
  io.out(`public key:  ${files.publicKeyFile} (hopwarden audit verify --public-key ${files.publicKeyFile} <log files>)\n`);
  return 0;
}

function chainSummary(chain: ChainReport): string {
  const last = chain.lastCheckpoint;
  return (
    `${chain.files.length} file(s), ${chain.records} record(s), ${chain.checkpoints} checkpoint(s)` +
    (chain.recoveries > 0 ? `, ${chain.recoveries} recovery record(s)` : "") +
    `, last seq ${chain.lastSeq}` +
    (last ? `; last signed line: ${last.reason} at ${last.file}:${last.line}` : "") +
    `\nrunning hash ${chain.lastHash}\n`
  );
}

/** --workers: the totals, then each chain (the main log with the roster, then one per worker) with its own end and running hash. */
function multiChainSummary(report: VerifyReport): string {
  const workers = report.chains.filter((c) => c.chain !== "").length;
  const head =
    `${report.chains.length} chain(s) (${report.chains.length - workers === 1 ? "the main log and " : ""}${workers} worker chain(s)), ` +
    `${report.files.length} file(s), ${report.records} record(s), ${report.checkpoints} checkpoint(s)` +
    (report.recoveries > 0 ? `, ${report.recoveries} recovery record(s)` : "") +
    "\n";
  return head + report.chains.map((c) => `${c.chain === "" ? "main log" : `chain ${c.chain}`}: ${c.files.map((f) => basename(f)).join(" ")}: ${chainSummary(c).replace("\n", "; ")}`).join("");
}

function formatFinding(finding: VerifyFinding): string {
  return `${finding.file}:${finding.line}: ${finding.message}`;
}

function formatGap(gap: CoverageGap): string {
  const lines = gap.firstLine === gap.lastLine ? `${gap.firstLine}` : `${gap.firstLine}-${gap.lastLine}`;
  return `${gap.file}:${lines}: ${gap.message}`;
}
