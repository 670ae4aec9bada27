// The interfaces the core needs from the outside world. Adapters implement
// them; the core never touches the network, the file system or a clock itself.

import type { CompiledPolicy } from "./policy/model.js";
import type { HopOutcome } from "./policy/evaluate-hop.js";
import type { CertificateParseResult } from "./identity/peer-certificate.js";
import type { TokenCheckRequest, TokenCheckResult } from "./decision/token-check.js";
import type { Decision } from "./decision/decision.js";

export interface Clock {
  nowMs(): number;
}

export interface PolicySource {
  /** The policy in force, or undefined when none was ever loaded. */
  current(): CompiledPolicy | undefined;
}

export interface CertificateParser {
  /** `raw` is the certificate as Envoy sends it: URL-encoded PEM. */
  parse(raw: string): CertificateParseResult;
}

export interface HopDecisionCache {
  get(key: string): HopOutcome | undefined;
  set(key: string, outcome: HopOutcome): void;
}

export interface DecisionIdGenerator {
  /** Unique and sortable by time (ULID). */
  next(nowMs: number): string;
}

export interface DelegationTokenVerifier {
  verify(request: TokenCheckRequest): Promise<TokenCheckResult>;
}

/** Receives every decision, allow or deny, after it is made (audit log, metrics). Must not throw or block. */
export interface DecisionSink {
  record(decision: Decision, context: DecisionContext): void;
}

export interface DecisionContext {
  /** W3C trace id of the authz.check span, when tracing is on. */
  readonly traceId?: string;
  readonly spanId?: string;
  /** Time spent deciding, in milliseconds. */
  readonly latencyMs: number;
}
