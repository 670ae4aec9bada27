// A signed audit log as the load suites and the soak check it: every file of
// the log's directory (the active file, rotated files, and with --workers
// any per-worker chains written beside them) is handed to `hopwarden audit
// verify`, and the decision ids it holds are read back to compare with what
// the clients were told. Keep the keys outside that directory.

import { readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { runCli, type CliResult } from "./cli-process.js";

/** Every file in the audit directory, sorted by name (rotated files sort in chain order). */
export async function auditFiles(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { withFileTypes: true });
  return entries
    .filter((e) => e.isFile())
    .map((e) => join(dir, e.name))
    .sort();
}

/** `hopwarden audit verify --public-key <pub> <every file in dir>`. */
export async function verifyAuditDirectory(dir: string, publicKey: string, timeoutMs = 120_000): Promise<CliResult & { files: string[] }> {
  const files = await auditFiles(dir);
  const result = await runCli(["audit", "verify", "--public-key", publicKey, ...files], { timeoutMs });
  return { ...result, files };
}

export interface AuditContents {
  /** decision_id of every decision record, in file and line order (duplicates kept). */
  readonly decisionIds: string[];
  /** policy_version by decision_id. */
  readonly versions: Map<string, string>;
  /** Lines of each type (decision, checkpoint, recovery, ...). */
  readonly lineTypes: Record<string, number>;
}

/** Reads the decision records of every file in the audit directory. */
export async function readAuditDirectory(dir: string): Promise<AuditContents> {
  const decisionIds: string[] = [];
  const versions = new Map<string, string>();
  const lineTypes: Record<string, number> = {};
  for (const file of await auditFiles(dir)) {
    const text = await readFile(file, "utf8");
    for (const line of text.split("\n")) {
      if (line === "") continue;
      const record = JSON.parse(line) as { type?: string; decision_id?: string; policy_version?: string };
      const type = record.type ?? "(none)";
      lineTypes[type] = (lineTypes[type] ?? 0) + 1;
      if (type === "decision" && record.decision_id !== undefined) {
        decisionIds.push(record.decision_id);
        versions.set(record.decision_id, record.policy_version ?? "");
      }
    }
  }
  return { decisionIds, versions, lineTypes };
}

/** Ids the clients were told that the log holds other than exactly once, and ids the log holds that no client was told. */
export function compareDecisionIds(answered: readonly string[], logged: readonly string[]): { missing: string[]; duplicated: string[]; unanswered: string[] } {
  const counts = new Map<string, number>();
  for (const id of logged) counts.set(id, (counts.get(id) ?? 0) + 1);
  const told = new Set(answered);
  return {
    missing: answered.filter((id) => !counts.has(id)),
    duplicated: [...counts].filter(([, n]) => n > 1).map(([id]) => id),
    unanswered: [...counts.keys()].filter((id) => !told.has(id)),
  };
}
