// Process signals for serve: SIGTERM and SIGINT stop gracefully (once; a
// second signal while draining forces exit), SIGHUP reloads the policy.

export function onShutdownSignal(stop: (signal: string) => Promise<void>): Promise<string> {
  return new Promise((resolve) => {
    let stopping = false;
    const handler = (signal: NodeJS.Signals) => {
      if (stopping) {
        process.stderr.write(`hopwarden: ${signal} again while draining; exiting now\n`);
        process.exit(1);
      }
      stopping = true;
      void stop(signal).finally(() => resolve(signal));
    };
    process.on("SIGTERM", handler);
    process.on("SIGINT", handler);
  });
}

export function onReloadSignal(reload: () => void): void {
  process.on("SIGHUP", () => reload());
}
