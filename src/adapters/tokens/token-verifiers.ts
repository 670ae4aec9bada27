// The production token verifiers of one process: delegation tokens (SPEC 5)
// and Transaction Tokens (SPEC 8), on one set of key sources, for a policy
// file. serve (one process or each worker) and the dry-run pipelines build
// theirs here.

import { dirname, resolve } from "node:path";
import type { Logger } from "../logging/logger.js";
import { JwksDelegationTokenVerifier } from "./delegation-token-verifier.js";
import { KeySourceRegistry } from "./key-source-registry.js";
import type { ReplayStore } from "./replay-store.js";
import { JwksTxnTokenVerifier } from "./txn-token-verifier.js";

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
