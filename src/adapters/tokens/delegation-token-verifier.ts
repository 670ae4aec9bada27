// Check's phase 9 (SPEC 5): the DelegationTokenVerifier port, with jose and a
// JWKS. The signature and the claims' shapes are verified once per token and
// cached by the token's SHA-256; the rules against the request (cnf, chain,
// aud, sub, scope, replay) run on every call. Bad input never throws out of
// verify: everything becomes a token_* result, or internal_error when the
// single-use store cannot answer.

import type { TokenCheckRequest, TokenCheckResult } from "../../core/decision/token-check.js";
import type { DelegationTokenVerifier } from "../../core/ports.js";
import { checkDelegationClaims } from "./delegation-claim-rules.js";
import { DELEGATION_TOKEN_TYP, delegationTokenSha256, parseDelegationClaims, type DelegationClaims } from "./delegation-token-format.js";
import type { JwksRefreshOptions, VerificationKeySource } from "./jwks-key-source.js";
import { KeySourceRegistry } from "./key-source-registry.js";
import { ReplayMemory } from "./replay-memory.js";
import { replayKey, type ReplayStore } from "./replay-store.js";
import { readSignedToken } from "./signed-token-reader.js";
import { VerifiedTokenCache } from "./verified-token-cache.js";

export interface DelegationTokenVerifierOptions {
  /** The policy file's directory: a relative `tokens.jwks` path is resolved against it. */
  readonly baseDir: string;
  /** Refresh schedule and deadlines of JWKS loading. */
  readonly jwks?: JwksRefreshOptions;
  /** Verified tokens kept (LRU). Default 10 000. */
  readonly cacheSize?: number;
  /** Where `tokens.singleUse` records first uses; default a ReplayMemory of this process. */
  readonly replay?: ReplayStore;
  /** Capacity of the default ReplayMemory (unexpired jti values held). */
  readonly replayCapacity?: number;
  /** Told about JWKS load failures (the last good keys keep working meanwhile). */
  readonly onKeySourceError?: (message: string) => void;
  /** Replaces JWKS loading, e.g. with a StaticKeySource. */
  readonly keySourceFor?: (jwks: string, baseDir: string) => VerificationKeySource;
  /** Key sources shared with other verifiers (Transaction Tokens); when given, the four options above are the registry's business. */
  readonly keySources?: KeySourceRegistry;
}

type Failure = Extract<TokenCheckResult, { ok: false }>;

const invalid = (message: string): Failure => ({ ok: false, reason: "token_invalid", message });

export class JwksDelegationTokenVerifier implements DelegationTokenVerifier {
  private readonly keySources: KeySourceRegistry;
  private readonly verified: VerifiedTokenCache<DelegationClaims>;
  private readonly replay: ReplayStore;

  constructor(private readonly options: DelegationTokenVerifierOptions) {
    this.keySources = options.keySources ?? new KeySourceRegistry(options);
    this.verified = new VerifiedTokenCache<DelegationClaims>(options.cacheSize);
    this.replay = options.replay ?? new ReplayMemory(options.replayCapacity);
  }

  async verify(request: TokenCheckRequest): Promise<TokenCheckResult> {
    const tokenSha256 = delegationTokenSha256(request.token);
    let result: TokenCheckResult;
    try {
      result = await this.verifyUnsafe(request, tokenSha256);
    } catch (err) {
      // Nothing above should throw; if it does, the token is not trusted.
      result = invalid(`the delegation token could not be verified: ${err instanceof Error ? err.message : String(err)}`);
    }
    // A refused token is named by its hash too: the audit trail then shows which issued token (or which forgery) was refused.
    return result.ok ? result : { ...result, tokenSha256 };
  }

  /** The key source for one `tokens.jwks` value, created once: its cache must outlive a policy reload. */
  keySource(jwks: string): VerificationKeySource {
    return this.keySources.get(jwks);
  }

  private async verifyUnsafe(request: TokenCheckRequest, tokenSha256: string): Promise<TokenCheckResult> {
    const { token, policy, nowMs } = request;
    let claims: DelegationClaims;
    const hit = this.verified.get(tokenSha256, nowMs, policy.clockSkewSeconds);
    if (hit !== undefined && hit.jwks === policy.jwks && hit.issuer === policy.issuer) {
      claims = hit.claims;
    } else {
      const read = await readSignedToken(token, this.keySource(policy.jwks), nowMs, { typ: DELEGATION_TOKEN_TYP });
      if (!read.ok) return invalid(`the delegation token ${read.problem}`);
      const parsed = parseDelegationClaims(read.payload);
      if (!parsed.ok) return invalid(`the delegation token's claims are malformed: ${parsed.problem}`);
      claims = parsed.claims;
      // Cache only what the policy's issuer signed: a token failing iss is never worth remembering.
      if (claims.iss === policy.issuer) this.verified.set(tokenSha256, { claims, jwks: policy.jwks, issuer: policy.issuer }, nowMs, policy.clockSkewSeconds);
    }
    const failure = checkDelegationClaims(claims, request);
    if (failure !== undefined) return { ok: false, reason: failure.reason, message: failure.message };
    // Last of SPEC 5's order: a jti is spent only by a token that passed everything else.
    if (policy.singleUse) {
      const replayed = await this.recordFirstUse(claims, policy.clockSkewSeconds, nowMs);
      if (replayed !== undefined) return replayed;
    }
    return { ok: true, jti: claims.jti, scope: claims.scope, issuer: claims.iss, tokenSha256, prev: claims.prev };
  }

  private async recordFirstUse(claims: DelegationClaims, clockSkewSeconds: number, nowMs: number): Promise<Failure | undefined> {
    let verdict;
    try {
      verdict = await this.replay.firstUse(replayKey(claims.iss, claims.jti), (claims.exp + clockSkewSeconds) * 1000, nowMs);
    } catch (err) {
      // Not knowing whether the token was used is a deny, never an accept.
      return { ok: false, reason: "internal_error", message: `single use of the token cannot be checked: ${err instanceof Error ? err.message : String(err)}` };
    }
    if (verdict === "first") return undefined;
    if (verdict === "full") {
      return { ok: false, reason: "token_replayed", message: "the single-use memory is full of unexpired tokens, and refuses new ones rather than forget old ones (see replay.capacity)" };
    }
    return { ok: false, reason: "token_replayed", message: `the token's jti ${JSON.stringify(shorten(claims.jti))} was already used, and the policy allows each token once` };
  }
}

/** A claim quoted in a message: bounded, since the issuer decides its length. */
function shorten(value: string, max = 64): string {
  return value.length <= max ? value : `${value.slice(0, max)}…`;
}
