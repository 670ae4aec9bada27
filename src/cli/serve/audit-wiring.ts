// Opens the audit log sink when --audit-log/--audit-key are given. Filled in
// by the audit log adapter; until then serve refuses the flags clearly rather
// than run without the record the user asked for.

import type { DecisionSink } from "../../core/ports.js";
import type { Logger } from "../../adapters/logging/logger.js";
import type { ServeSettings } from "./settings.js";

export interface OpenAuditSink {
  readonly sink: DecisionSink;
  readonly accepting: () => boolean;
  close(): Promise<void>;
}

export function openAuditSink(settings: ServeSettings, _logger: Logger): Promise<OpenAuditSink | undefined> {
  if (settings.auditLog === undefined) return Promise.resolve(undefined);
  return Promise.reject(new Error("--audit-log is not available in this build"));
}
