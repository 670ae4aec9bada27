// The one line `serve` prints on stdout when it is ready: stable key=value
// pairs that scripts and tests read (grpc=, admin=). tls= says what the gRPC
// port demands: off (plaintext), tls, or mtls (a client certificate too).

import type { TlsFiles } from "../../adapters/grpc/tls-file-set.js";

export function readyLine(fields: { grpc: string; admin: string | undefined; policy: string; version: string; workers: number; tls: TlsFiles | undefined }): string {
  const tls = fields.tls === undefined ? "off" : fields.tls.clientCa === undefined ? "tls" : "mtls";
  return `hopwarden ready grpc=${fields.grpc} admin=${fields.admin ?? "off"} workers=${fields.workers} tls=${tls} policy=${fields.policy} version=${JSON.stringify(fields.version)}\n`;
}
