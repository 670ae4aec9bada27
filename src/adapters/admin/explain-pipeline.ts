// Wiring of the pipelines that need no server: the dry-run pipeline behind
// admin Explain and `hopwarden explain`, and the per-process token verifiers
// (delegation tokens and Transaction Tokens, on one set of key sources).
// Kept apart from main.ts so the explain command does not load gRPC and
// OpenTelemetry.

import { dirname, resolve } from "node:path";
import { CheckPipeline } from "../../core/decision/check-pipeline.js";
import type { HeaderNames } from "../../core/decision/check-input.js";
import type { TxnTokenVerifier } from "../../core/decision/txn-token-check.js";
import type { McpMetadataKeys } from "../../core/mcp/mcp-metadata.js";
import type { Clock, DelegationTokenVerifier } from "../../core/ports.js";
import type { PolicyStore } from "../config/policy-store.js";
import type { Logger } from "../logging/logger.js";
import { UlidGenerator } from "../ids/ulid.js";
import { JwksDelegationTokenVerifier } from "../tokens/delegation-token-verifier.js";
import { KeySourceRegistry } from "../tokens/key-source-registry.js";
import type { ReplayStore } from "../tokens/replay-store.js";
import { JwksTxnTokenVerifier } from "../tokens/txn-token-verifier.js";
import { CachingCertificateParser } from "../x509/certificate-parser.js";

const systemClock: Clock = { nowMs: () => Date.now() };

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

export interface TokenVerifiers {
  readonly tokens: JwksDelegationTokenVerifier;
  readonly txnTokens: JwksTxnTokenVerifier;
}

/**
 * The delegation-token and Txn-Token verifiers for a policy file (relative
 * JWKS paths resolve beside it), sharing one set of key sources, so a JWKS
 * that `tokens` and `txnTokens` both name is fetched and cached once.
 * `replay` is the single-use store of delegation tokens (default: its own memory).
 */
export function tokenVerifiersFor(policyFile: string, logger: Logger | undefined, jwksRefreshes?: { ok: number; failed: number }, replay?: ReplayStore): TokenVerifiers {
  const baseDir = dirname(resolve(policyFile));
  const keySources = new KeySourceRegistry({
    baseDir,
    ...(logger !== undefined && { onKeySourceError: (message: string) => logger.warn("token keys", { problem: message }) }),
    ...(jwksRefreshes !== undefined && { jwks: { onRefresh: (result: "ok" | "failed") => void (jwksRefreshes[result] += 1) } }),
  });
  return {
    tokens: new JwksDelegationTokenVerifier({ baseDir, keySources, ...(replay !== undefined && { replay }) }),
    txnTokens: new JwksTxnTokenVerifier({ keySources }),
  };
}
