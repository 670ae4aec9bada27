// Holds the policy in force and replaces it when the file changes: in-place
// edits, atomic renames and Kubernetes ConfigMap updates (which swap a
// `..data` symlink in the directory) are all seen by watching the directory,
// with a slow poll as a safety net for file systems whose events are lost.
// A new file that is missing or invalid is refused with a logged error, and
// the last good policy stays in force.

import { createHash } from "node:crypto";
import { watch, type FSWatcher } from "node:fs";
import { readFile } from "node:fs/promises";
import { basename, dirname, resolve } from "node:path";
import { compilePolicy } from "../../core/policy/compile.js";
import { parseCrl } from "../x509/crl.js";
import type { CompiledPolicy } from "../../core/policy/model.js";
import type { PolicySource } from "../../core/ports.js";
import type { Logger } from "../logging/logger.js";
import { loadPolicyText, policyTextOf } from "./policy-file.js";
import { HopwardenError } from "../../core/errors.js";

export interface ReloadOutcome {
  readonly ok: boolean;
  readonly changed: boolean;
  readonly version: string | undefined;
  readonly errors: readonly string[];
}

export interface PolicyStoreEvents {
  onReload?(outcome: ReloadOutcome): void;
}

/** What a read found of the files it refused: their paths, and a digest of their bytes (or of why one could not be read). */
export interface RefusedSources {
  readonly paths: readonly string[];
  readonly sha256: string;
}

/** A policy file (or the CRL it names) that cannot be read or is not valid; `errors` holds one `file:line:column: field: problem` line each. */
export class PolicyFileError extends HopwardenError {
  readonly code = "invalid_policy";
  constructor(
    readonly file: string,
    readonly errors: readonly string[],
    /** Set by readPolicyFile: the files the refused read saw, as they were then. */
    readonly sources?: RefusedSources,
  ) {
    super(`the policy file ${file} is not usable:\n${errors.join("\n")}`);
  }
}

/** One file as a read saw it: its bytes, or the reason it could not be read. */
interface SeenFile {
  readonly path: string;
  readonly bytes?: Buffer;
  readonly error?: string;
}

async function see(file: string): Promise<SeenFile> {
  const path = resolve(file);
  try {
    return { path, bytes: await readFile(path) };
  } catch (err) {
    return { path, error: (err as NodeJS.ErrnoException).code ?? String(err) };
  }
}

/** Paths, then bytes or the read error: a file that appears, vanishes or changes gives another digest. */
function digestOfSeen(seen: readonly SeenFile[]): string {
  const hash = createHash("sha256");
  for (const file of seen) hash.update(file.path).update("\u0000").update(file.bytes ?? `\u0001${file.error}`).update("\u0000");
  return hash.digest("hex");
}

async function readOrFail(file: string, what: string, policyFile: string, seen: SeenFile[]): Promise<Buffer> {
  const found = await see(file);
  seen.push(found);
  if (found.bytes === undefined) throw new PolicyFileError(policyFile, [`${policyFile}: ${what}: cannot read ${file} (${found.error})`]);
  return found.bytes;
}

export interface PolicyFileRead {
  readonly policy: CompiledPolicy;
  readonly warnings: readonly string[];
  /** Every file the policy was read from (the policy, then any CRL and CRL issuer), absolute. */
  readonly sources: readonly string[];
  /**
   * The digest (as digestOfFiles computes it) of the bytes this read parsed,
   * not of the files as they are afterwards: a file replaced while it was
   * read must still look changed to the next poll or event.
   */
  readonly sourcesSha256: string;
  /**
   * The digest of the parsed document, not of the CRL it names: what its
   * `version:` names. An edit of comments or layout leaves it as it was.
   */
  readonly documentSha256: string;
}

/**
 * Reads and validates a policy file, and the CRL it names (relative to the
 * policy's directory). A refusal carries the files it read as they were
 * then, so that an unattended reload can tell the same broken files from
 * new ones without parsing them again.
 */
export async function readPolicyFile(file: string): Promise<PolicyFileRead> {
  const seen: SeenFile[] = [];
  try {
    return await readPolicyFiles(file, seen);
  } catch (err) {
    if (!(err instanceof PolicyFileError)) throw err;
    throw new PolicyFileError(err.file, err.errors, { paths: seen.map((f) => f.path), sha256: digestOfSeen(seen) });
  }
}

async function readPolicyFiles(file: string, seen: SeenFile[]): Promise<PolicyFileRead> {
  const bytes = await readOrFail(file, "(file)", file, seen);
  const text = policyTextOf(bytes, file);
  if (!text.ok) throw new PolicyFileError(file, text.errors);
  const result = loadPolicyText(text.text, file);
  if (!result.ok) throw new PolicyFileError(file, result.errors);
  const crlPath = result.document.revoked?.crl;
  const documentSha256 = createHash("sha256").update(JSON.stringify(result.document)).digest("hex");
  if (crlPath === undefined) return { policy: result.policy, warnings: result.warnings, sources: seen.map((f) => f.path), sourcesSha256: digestOfSeen(seen), documentSha256 };

  const dir = dirname(resolve(file));
  const crlBytes = await readOrFail(resolve(dir, crlPath), "revoked.crl", file, seen);
  const issuerPath = result.document.revoked?.crlIssuer;
  const issuerBytes = issuerPath === undefined ? undefined : await readOrFail(resolve(dir, issuerPath), "revoked.crlIssuer", file, seen);
  let crl;
  try {
    crl = parseCrl(crlBytes, issuerBytes?.toString("utf8"));
  } catch (err) {
    throw new PolicyFileError(file, [`${file}: revoked.crl: ${crlPath} ${err instanceof Error ? err.message : String(err)}`]);
  }
  const warnings = [...result.warnings];
  if (crl.nextUpdate !== undefined && crl.nextUpdate.getTime() < Date.now()) {
    warnings.push(`${file}: revoked.crl: ${crlPath} is past its nextUpdate (${crl.nextUpdate.toISOString()}); its serials stay revoked, but fetch a fresh CRL`);
  }
  // The content hash covers the CRL too, so a new CRL is a new revision (and a fresh cache).
  const sha256 = createHash("sha256").update(text.text).update("\u0000").update(crlBytes).update("\u0000").update(issuerBytes ?? "").digest("hex");
  return { policy: compilePolicy(result.document, sha256, crl.serials), warnings, sources: seen.map((f) => f.path), sourcesSha256: digestOfSeen(seen), documentSha256 };
}

/**
 * The digest digestOfSeen gives for `paths` as they are now. A poll or a
 * file event compares it with the last load's, or the last refusal's,
 * before parsing anything: the same bytes are the same policy (SPEC 7: not
 * a reload), and the same broken files the same refusal.
 */
async function digestOfFiles(paths: readonly string[]): Promise<string> {
  const seen: SeenFile[] = [];
  for (const path of paths) seen.push(await see(path));
  return digestOfSeen(seen);
}

/** A reload nobody asked for (the poll, a file event), as against SIGHUP or the admin API's Reload, which always read again. */
function unattended(trigger: string): boolean {
  return trigger === "poll" || trigger === "file-watch";
}

export class PolicyStore implements PolicySource {
  private policy: CompiledPolicy | undefined;
  private loadedAtMs = 0;
  private watcher: FSWatcher | undefined;
  private poll: NodeJS.Timeout | undefined;
  private debounce: NodeJS.Timeout | undefined;
  private reloading: Promise<ReloadOutcome> | undefined;
  /** The read that calls made during `reloading` wait for. */
  private nextReload: Promise<ReloadOutcome> | undefined;
  /**
   * The last refused reload, until a policy loads: its errors (a poll or watch event that finds the same ones stays
   * quiet) and, for a policy file refused, the files it read (a poll or watch event that finds them as they were
   * does not parse them again).
   */
  private refused: { readonly errors: readonly string[]; readonly errorsText: string; readonly sources: RefusedSources | undefined } | undefined;
  /** The files the policy in force was read from, and a digest of their bytes then. */
  private sources: readonly string[] = [];
  private sourcesSha256: string | undefined;
  private documentSha256: string | undefined;
  readonly file: string;

  constructor(
    file: string,
    private readonly logger: Logger,
    private readonly events: PolicyStoreEvents = {},
  ) {
    this.file = resolve(file);
  }

  current(): CompiledPolicy | undefined {
    return this.policy;
  }

  get loadedAt(): Date | undefined {
    return this.policy === undefined ? undefined : new Date(this.loadedAtMs);
  }

  /** Start-up load: a missing or invalid file is an error the caller reports and exits on. */
  async loadInitial(): Promise<readonly string[]> {
    const read = await readPolicyFile(this.file);
    this.install(read.policy);
    this.remember(read);
    return read.warnings;
  }

  /** What the next poll or event compares with: the files read and a digest of the very bytes parsed. */
  private remember(read: PolicyFileRead): void {
    this.sources = read.sources;
    this.sourcesSha256 = read.sourcesSha256;
    this.documentSha256 = read.documentSha256;
  }

  /** Installs a policy that was loaded elsewhere (a worker receiving it from the primary). */
  install(policy: CompiledPolicy): void {
    this.policy = policy;
    this.loadedAtMs = Date.now();
  }

  /**
   * Re-reads the file. A call made while a read is under way waits for the
   * next read, which starts once that one has ended (one read for all such
   * calls): the read under way may have begun before the caller's change, so
   * its outcome could name the file as it was before (an admin Reload that
   * answered with the old version while the new file waited for the next read).
   */
  reload(trigger: string): Promise<ReloadOutcome> {
    if (this.reloading === undefined) return this.startReload(trigger);
    if (this.nextReload === undefined) {
      const next = () => {
        this.nextReload = undefined;
        // A read started since the last one ended began after this call: share it.
        return this.reloading ?? this.startReload(trigger);
      };
      this.nextReload = this.reloading.then(next, next);
    }
    return this.nextReload;
  }

  private startReload(trigger: string): Promise<ReloadOutcome> {
    const reloading: Promise<ReloadOutcome> = this.doReload(trigger).finally(() => {
      if (this.reloading === reloading) this.reloading = undefined;
    });
    this.reloading = reloading;
    return reloading;
  }

  private async doReload(trigger: string): Promise<ReloadOutcome> {
    let outcome: ReloadOutcome;
    try {
      if (this.policy !== undefined && this.sourcesSha256 !== undefined && (await digestOfFiles(this.sources)) === this.sourcesSha256) {
        this.refused = undefined;
        return { ok: true, changed: false, version: this.policy.version, errors: [] };
      }
      // The same broken files as the last refusal: nothing new to parse. Parsing again would hold the event
      // loop (and every Check) for up to a second and a half at each poll, for a large invalid file.
      const refused = this.refused;
      if (unattended(trigger) && refused?.sources !== undefined && (await digestOfFiles(refused.sources.paths)) === refused.sources.sha256) {
        return { ok: false, changed: false, version: this.policy?.version, errors: refused.errors };
      }
      const read = await readPolicyFile(this.file);
      const { policy, warnings } = read;
      const previousDocumentSha256 = this.documentSha256;
      this.remember(read);
      const previous = this.policy;
      const changed = previous === undefined || previous.sha256 !== policy.sha256;
      if (changed) {
        this.install(policy);
        this.logger.info("policy loaded", { file: this.file, version: policy.version, sha256: policy.sha256, trigger, warnings });
        // Decisions name their policy by version, so two rule sets under one version leave an auditor unable to
        // tell which decided. A new CRL, or a comment edited, under the same version is routine: no warning.
        if (previous?.version === policy.version && previousDocumentSha256 !== read.documentSha256) {
          this.logger.warn("the policy file changed but its version did not: decisions under the old and the new rules record the same policy_version; give each edit its own version", {
            event: "policy_version_unchanged",
            file: this.file,
            version: policy.version,
            sha256: policy.sha256,
          });
        }
      }
      outcome = { ok: true, changed, version: policy.version, errors: [] };
      this.refused = undefined;
      // The same content is not a reload (SPEC 7): no log line, no reload event,
      // so hopwarden_policy_reloads_total counts real changes (finding 10).
      if (!changed) return outcome;
    } catch (err) {
      const errors = err instanceof PolicyFileError ? err.errors : [String(err)];
      const errorsText = JSON.stringify(errors);
      // Unattended triggers stay quiet about a refusal already logged: any write in the
      // policy's directory wakes the watcher, and a log written there would otherwise feed itself.
      const logged = unattended(trigger) && errorsText === this.refused?.errorsText;
      this.refused = { errors, errorsText, sources: err instanceof PolicyFileError ? err.sources : undefined };
      if (logged) return { ok: false, changed: false, version: this.policy?.version, errors };
      this.logger.error("policy reload refused; the last good policy stays in force", {
        file: this.file,
        trigger,
        errors,
        version_in_force: this.policy?.version,
      });
      outcome = { ok: false, changed: false, version: this.policy?.version, errors };
    }
    this.events.onReload?.(outcome);
    return outcome;
  }

  /** Watches the policy's directory (catches renames and symlink swaps) and polls every `pollMs` as a fallback. */
  watch(pollMs = 5000): void {
    const schedule = (trigger: string) => {
      if (this.debounce !== undefined) clearTimeout(this.debounce);
      this.debounce = setTimeout(() => {
        this.debounce = undefined;
        void this.reload(trigger);
      }, 100);
      this.debounce.unref();
    };
    // Only events for the policy's own files (or a Kubernetes ConfigMap's
    // "..data" swap) wake a reload: a log or audit file written beside the
    // policy must not make hopwarden re-read it on every write.
    const relevant = (name: string | Buffer | null): boolean => {
      if (name === null) return true;
      const entry = name.toString();
      return entry.startsWith("..") || this.sources.some((source) => dirname(source) === dirname(this.file) && basename(source) === entry) || entry === basename(this.file);
    };
    try {
      this.watcher = watch(dirname(this.file), { persistent: false }, (_event, name) => {
        if (relevant(name)) schedule("file-watch");
      });
      this.watcher.on("error", (err) => this.logger.warn("policy directory watch failed; polling continues", { error: err }));
    } catch (err) {
      this.logger.warn("cannot watch the policy directory; polling only", { file: this.file, error: err });
    }
    this.poll = setInterval(() => void this.pollReload(), pollMs);
    this.poll.unref();
  }

  /** The poll re-reads quietly: reload() logs only a change or a refusal, and the files are small. */
  private async pollReload(): Promise<void> {
    if (this.reloading === undefined) await this.reload("poll");
  }

  close(): void {
    this.watcher?.close();
    if (this.poll !== undefined) clearInterval(this.poll);
    if (this.debounce !== undefined) clearTimeout(this.debounce);
  }
}
