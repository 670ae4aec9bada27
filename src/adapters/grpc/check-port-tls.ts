// TLS on the Check port (SPEC 7): server credentials that follow the files on
// disk. Rotation by cert-manager or SPIRE (atomic renames, Kubernetes `..data`
// symlink swaps, in-place writes) is seen by watching the files' directories,
// with a slow poll as a safety net. A new set is checked whole first
// (tls-file-set.ts); only then do new handshakes use it. Connections already
// open keep the context they were made with, so nothing is dropped. A set that
// is not usable (half written, key and certificate out of step) is refused
// with a logged error and the last good set stays in force.
//
// This is a grpc-js CertificateProvider that only ever hands out checked
// sets. grpc-js's own FileWatcherCertificateProvider does not do for us: it
// only polls, the server starts without credentials until its first
// asynchronous read (early handshakes are dropped), and an unreadable or
// invalid file becomes "no credentials", which refuses every new connection
// until the files are good again.

import { watch, type FSWatcher } from "node:fs";
import { dirname, resolve } from "node:path";
import { experimental, type ServerCredentials } from "@grpc/grpc-js";
import type { Logger } from "../logging/logger.js";
import { loadTlsFileSet, TlsFileError, type ServingCertificate, type TlsFiles, type TlsFileSet } from "./tls-file-set.js";

type CertificateProvider = experimental.CertificateProvider;
type CaListener = experimental.CaCertificateUpdateListener;
type IdentityListener = experimental.IdentityCertificateUpdateListener;

/** How soon after a file event the set is re-read: lets a cert and key renamed one after the other both land. */
const SETTLE_MS = 150;
const DEFAULT_POLL_MS = 5_000;

export interface TlsReloadOutcome {
  readonly ok: boolean;
  readonly changed: boolean;
  readonly serving: ServingCertificate;
  readonly error?: string;
}

export class CheckPortTls implements CertificateProvider {
  private set: TlsFileSet;
  private readonly caListeners = new Set<CaListener>();
  private readonly identityListeners = new Set<IdentityListener>();
  private readonly watchers: FSWatcher[] = [];
  private poll: NodeJS.Timeout | undefined;
  private settle: NodeJS.Timeout | undefined;
  private reloading: Promise<TlsReloadOutcome> | undefined;
  private pendingReload = false;
  /** The last refusal logged: a poll that finds the same broken file stays quiet. */
  private lastRefusal = "";
  readonly files: TlsFiles;
  /** grpc-js server credentials: TLS, and with a client CA a required client certificate. */
  readonly credentials: ServerCredentials;

  private constructor(
    first: TlsFileSet,
    private readonly logger: Logger,
  ) {
    this.set = first;
    this.files = first.files;
    const mutual = first.files.clientCa !== undefined;
    // Positional: (identity provider, CA provider or null, require a client certificate).
    // grpc-js 1.14 declares the first two parameters under each other's names.
    this.credentials = experimental.createCertificateProviderServerCredentials(this, mutual ? this : null, mutual);
  }

  /** Reads and checks the files; a TlsFileError names the one that is not usable (a start-up error). */
  static async open(files: TlsFiles, logger: Logger): Promise<CheckPortTls> {
    const tls = new CheckPortTls(await loadTlsFileSet(files), logger);
    tls.logLoaded("start");
    return tls;
  }

  /** The certificate new handshakes get. */
  get serving(): ServingCertificate {
    return this.set.serving;
  }

  get mutual(): boolean {
    return this.files.clientCa !== undefined;
  }

  /** Re-reads the set; concurrent calls share one read, and a call during a read triggers one more. */
  reload(trigger: string): Promise<TlsReloadOutcome> {
    if (this.reloading !== undefined) {
      this.pendingReload = true;
      return this.reloading;
    }
    this.reloading = this.doReload(trigger).finally(() => {
      this.reloading = undefined;
      if (this.pendingReload) {
        this.pendingReload = false;
        void this.reload(trigger);
      }
    });
    return this.reloading;
  }

  private async doReload(trigger: string): Promise<TlsReloadOutcome> {
    let next: TlsFileSet;
    try {
      next = await loadTlsFileSet(this.files);
    } catch (err) {
      const error = err instanceof TlsFileError ? err.message : String(err);
      if (!((trigger === "poll" || trigger === "file-watch") && error === this.lastRefusal)) {
        this.lastRefusal = error;
        this.logger.error("check port TLS files refused; the last good certificate stays in force", {
          trigger,
          error,
          serial_in_force: this.set.serving.serialNumber,
        });
      }
      return { ok: false, changed: false, serving: this.set.serving, error };
    }
    this.lastRefusal = "";
    if (next.digest === this.set.digest) return { ok: true, changed: false, serving: this.set.serving };
    const previous = this.set.serving.serialNumber;
    this.set = next;
    // CA before identity: each update re-keys the server's context, and every mix of old and new is a checked set.
    if (next.clientCa !== undefined) for (const listener of this.caListeners) listener({ caCertificate: next.clientCa });
    for (const listener of this.identityListeners) listener({ certificate: next.cert, privateKey: next.key });
    this.logLoaded(trigger, previous);
    return { ok: true, changed: true, serving: next.serving };
  }

  private logLoaded(trigger: string, previousSerial?: string): void {
    const { serving } = this.set;
    this.logger.info(previousSerial === undefined ? "check port TLS certificate loaded" : "check port TLS certificate rotated; new handshakes use it", {
      trigger,
      serial: serving.serialNumber,
      sha256: serving.fingerprint256,
      subject_alt_name: serving.subjectAltName,
      not_after: serving.validTo.toISOString(),
      client_certificate: this.mutual ? `required, issued by ${this.files.clientCa}` : "not asked for",
      ...(previousSerial !== undefined && { previous_serial: previousSerial }),
    });
    const now = Date.now();
    if (serving.validTo.getTime() < now || serving.validFrom.getTime() > now) {
      this.logger.warn("check port TLS certificate is outside its validity period; clients will refuse it", {
        file: this.files.cert,
        not_before: serving.validFrom.toISOString(),
        not_after: serving.validTo.toISOString(),
      });
    }
  }

  /** Watches the files' directories (renames, symlink swaps, writes) and polls every `pollMs` as a fallback. */
  watch(pollMs = DEFAULT_POLL_MS): void {
    const schedule = () => {
      if (this.settle !== undefined) clearTimeout(this.settle);
      this.settle = setTimeout(() => {
        this.settle = undefined;
        void this.reload("file-watch");
      }, SETTLE_MS);
      this.settle.unref();
    };
    const dirs = new Set([this.files.cert, this.files.key, this.files.clientCa].filter((f): f is string => f !== undefined).map((f) => dirname(resolve(f))));
    for (const dir of dirs) {
      try {
        const watcher = watch(dir, { persistent: false }, schedule);
        watcher.on("error", (err) => this.logger.warn("check port TLS directory watch failed; polling continues", { dir, error: err }));
        this.watchers.push(watcher);
      } catch (err) {
        this.logger.warn("cannot watch a check port TLS directory; polling only", { dir, error: err });
      }
    }
    this.poll = setInterval(() => {
      if (this.reloading === undefined) void this.reload("poll");
    }, pollMs);
    this.poll.unref();
  }

  close(): void {
    for (const watcher of this.watchers.splice(0)) watcher.close();
    if (this.poll !== undefined) clearInterval(this.poll);
    if (this.settle !== undefined) clearTimeout(this.settle);
  }

  // --- grpc-js CertificateProvider -------------------------------------------
  // The credentials subscribe when the server binds. The first update goes out
  // on the next tick, as grpc-js expects: by then the server's own watcher is
  // registered, and no connection can have been accepted yet.

  addCaCertificateListener(listener: CaListener): void {
    this.caListeners.add(listener);
    process.nextTick(() => {
      if (this.caListeners.has(listener) && this.set.clientCa !== undefined) listener({ caCertificate: this.set.clientCa });
    });
  }

  removeCaCertificateListener(listener: CaListener): void {
    this.caListeners.delete(listener);
  }

  addIdentityCertificateListener(listener: IdentityListener): void {
    this.identityListeners.add(listener);
    process.nextTick(() => {
      if (this.identityListeners.has(listener)) listener({ certificate: this.set.cert, privateKey: this.set.key });
    });
  }

  removeIdentityCertificateListener(listener: IdentityListener): void {
    this.identityListeners.delete(listener);
  }
}
