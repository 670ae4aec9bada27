// Wiring of the pipelines that need no server: the dry-run pipeline behind
// admin Explain and `hopwarden explain`, and the per-process token verifier.
// Kept apart from main.ts so the explain command does not load gRPC and
// OpenTelemetry.

import { dirname, resolve } from "node:path";
import { CheckPipeline } from "../../core/decision/check-pipeline.js";
import type { HeaderNames } from "../../core/decision/check-input.js";
import type { Clock, DelegationTokenVerifier } from "../../core/ports.js";
import type { PolicyStore } from "../config/policy-store.js";
import type { Logger } from "../logging/logger.js";
import { UlidGenerator } from "../ids/ulid.js";
import { JwksDelegationTokenVerifier } from "../tokens/delegation-token-verifier.js";
import type { ReplayStore } from "../tokens/replay-store.js";
import { CachingCertificateParser } from "../x509/certificate-parser.js";

const systemClock: Clock = { nowMs: () => Date.now() };

/**
 * A pipeline for dry-runs (admin Explain, `hopwarden explain`): no hop cache,
 * and its own token verifier, so explaining a single-use token never spends
 * its jti.
 */
export function createExplainPipeline(
  policies: PolicyStore,
  options: { headerNames?: HeaderNames; trustForwardedClientCert?: boolean; tokens?: DelegationTokenVerifier; logger?: Logger; clock?: Clock } = {},
): CheckPipeline {
  return new CheckPipeline({
    policies,
    certificates: new CachingCertificateParser(),
    clock: options.clock ?? systemClock,
    ids: new UlidGenerator(),
    tokens: options.tokens ?? tokenVerifierFor(policies.file, options.logger),
    ...(options.headerNames !== undefined && { headerNames: options.headerNames }),
    trustForwardedClientCert: options.trustForwardedClientCert ?? false,
  });
}

/** The delegation-token verifier for a policy file (relative JWKS paths resolve beside it); `replay` is its single-use store (default: its own memory). */
export function tokenVerifierFor(policyFile: string, logger: Logger | undefined, jwksRefreshes?: { ok: number; failed: number }, replay?: ReplayStore): JwksDelegationTokenVerifier {
  return new JwksDelegationTokenVerifier({
    baseDir: dirname(resolve(policyFile)),
    ...(replay !== undefined && { replay }),
    ...(logger !== undefined && { onKeySourceError: (message: string) => logger.warn("delegation token keys", { problem: message }) }),
    ...(jwksRefreshes !== undefined && { jwks: { onRefresh: (result: "ok" | "failed") => void (jwksRefreshes[result] += 1) } }),
  });
}
