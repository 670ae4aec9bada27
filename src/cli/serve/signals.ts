// Process signals for serve: SIGTERM and SIGINT stop gracefully (once; a
// second signal while draining forces exit), SIGHUP reloads the policy.

/** How a graceful stop ended: `failure` is what went wrong while draining or flushing (records may be lost). */
export interface Stopped {
  readonly signal: string;
  readonly failure?: unknown;
}

export function onShutdownSignal(stop: (signal: string) => Promise<void>): Promise<Stopped> {
  return new Promise((resolve) => {
    let stopping = false;
    const handler = (signal: NodeJS.Signals) => {
      if (stopping) {
        process.stderr.write(`hopwarden: ${signal} again while draining; exiting now\n`);
        process.exit(1);
      }
      stopping = true;
      stop(signal).then(
        () => resolve({ signal }),
        (failure: unknown) => resolve({ signal, failure }),
      );
    };
    process.on("SIGTERM", handler);
    process.on("SIGINT", handler);
  });
}

export function onReloadSignal(reload: () => void): void {
  process.on("SIGHUP", () => reload());
}
