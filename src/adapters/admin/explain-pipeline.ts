// Wiring of the dry-run pipeline behind admin Explain and `hopwarden
// explain`. Kept apart from main.ts so the explain command does not load
// gRPC and OpenTelemetry.

import { CheckPipeline } from "../../core/decision/check-pipeline.js";
import type { HeaderNames } from "../../core/decision/check-input.js";
import type { TxnTokenVerifier } from "../../core/decision/txn-token-check.js";
import type { McpMetadataKeys } from "../../core/mcp/mcp-metadata.js";
import type { Clock, DelegationTokenVerifier } from "../../core/ports.js";
import type { PolicyStore } from "../config/policy-store.js";
import type { Logger } from "../logging/logger.js";
import { UlidGenerator } from "../ids/ulid.js";
import { tokenVerifiersFor } from "../tokens/token-verifiers.js";
import { CachingCertificateParser } from "../x509/certificate-parser.js";
import { systemClock } from "../clock/system-clock.js";

export interface ExplainPipelineOptions {
  readonly headerNames?: HeaderNames;
  readonly trustForwardedClientCert?: boolean;
  readonly tokens?: DelegationTokenVerifier;
  readonly txnTokens?: TxnTokenVerifier;
  readonly mcpKeys?: McpMetadataKeys;
  readonly logger?: Logger;
  readonly clock?: Clock;
}

/**
 * A pipeline for dry-runs (admin Explain, `hopwarden explain`): no hop cache,
 * and its own token verifiers, so explaining a single-use token never spends
 * its jti. It reads what serve reads (headers, MCP keys).
 */
export function createExplainPipeline(policies: PolicyStore, options: ExplainPipelineOptions = {}): CheckPipeline {
  const own = options.tokens === undefined || options.txnTokens === undefined ? tokenVerifiersFor(policies.file, options.logger) : undefined;
  return new CheckPipeline({
    policies,
    certificates: new CachingCertificateParser(),
    clock: options.clock ?? systemClock,
    ids: new UlidGenerator(),
    tokens: options.tokens ?? own!.tokens,
    txnTokens: options.txnTokens ?? own!.txnTokens,
    ...(options.headerNames !== undefined && { headerNames: options.headerNames }),
    ...(options.mcpKeys !== undefined && { mcpKeys: options.mcpKeys }),
    trustForwardedClientCert: options.trustForwardedClientCert ?? false,
  });
}
