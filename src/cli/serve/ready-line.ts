// The one line `serve` prints on stdout when it is ready: stable key=value
// pairs that scripts and tests read (grpc=, admin=).

export function readyLine(fields: { grpc: string; admin: string | undefined; policy: string; version: string; workers: number }): string {
  return `hopwarden ready grpc=${fields.grpc} admin=${fields.admin ?? "off"} workers=${fields.workers} policy=${fields.policy} version=${JSON.stringify(fields.version)}\n`;
}
