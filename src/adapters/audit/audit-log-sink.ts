// The DecisionSink that audits every decision to the local log: it hands the
// Decision and its context, as they are, to a target that formats, chains and
// writes the record off the Check path.

import type { Decision } from "../../core/decision/decision.js";
import type { DecisionContext, DecisionSink } from "../../core/ports.js";
import { silentLogger, type Logger } from "../logging/logger.js";
import type { AuditLogStats, AuditRecordTarget } from "./audit-record-target.js";

export class AuditLogSink implements DecisionSink {
  private buildFailures = 0;

  constructor(
    private readonly target: AuditRecordTarget,
    private readonly logger: Logger = silentLogger,
  ) {}

  /** Never throws: the decision has been made and must reach Envoy whatever happens here. */
  record(decision: Decision, context: DecisionContext): void {
    try {
      this.target.enqueue(decision, context);
    } catch (error) {
      this.buildFailures++;
      this.logger.error("audit record could not be queued", { event: "audit_record_dropped", decision_id: decision.decisionId, error });
    }
  }

  /** Ask before deciding: false (now, or after the bounded wait of overflow "block") means deny with internal_error. */
  admit(): boolean | Promise<boolean> {
    return this.target.admit();
  }

  accepting(): boolean {
    return this.target.accepting();
  }

  healthy(): boolean {
    return this.target.healthy();
  }

  stats(): AuditLogStats {
    const stats = this.target.stats();
    return this.buildFailures === 0 ? stats : { ...stats, dropped: stats.dropped + this.buildFailures };
  }

  close(): Promise<void> {
    return this.target.close();
  }
}
