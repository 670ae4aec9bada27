// The TxnTokenVerifier port (SPEC 8) with jose and a JWKS: the same key
// sources, alg allowlist, signature check and verified-token cache as
// delegation tokens, its own `typ` (txntoken+jwt) and claims. Order of the
// rules, mirroring SPEC 5: anything wrong with the token itself (shape, typ,
// alg, kid, signature, iss, iat/nbf in the future, aud not one of the
// policy's trust domains) is token_invalid; then past exp (+ clockSkew) is
// token_expired. `sub` against on-behalf-of is the pipeline's
// (checkTxnTokenSubject). Bad input never throws out of verify.

import { createHash } from "node:crypto";
import type { TxnTokenCheckRequest, TxnTokenCheckResult, TxnTokenVerifier } from "../../core/decision/txn-token-check.js";
import type { JwksRefreshOptions, VerificationKeySource } from "./jwks-key-source.js";
import { KeySourceRegistry } from "./key-source-registry.js";
import { readSignedToken } from "./signed-token-reader.js";
import { parseTxnTokenClaims, TXN_TOKEN_TYP, type TxnTokenClaims } from "./txn-token-format.js";
import { VerifiedTokenCache } from "./verified-token-cache.js";
import { quotedValue } from "../../core/input/untrusted-bounds.js";

export interface TxnTokenVerifierOptions {
  /** Shared with the delegation token verifier, so that one JWKS is fetched and cached once. */
  readonly keySources?: KeySourceRegistry;
  /** Used to make a registry when none is shared. */
  readonly baseDir?: string;
  readonly jwks?: JwksRefreshOptions;
  readonly onKeySourceError?: (message: string) => void;
  readonly keySourceFor?: (jwks: string, baseDir: string) => VerificationKeySource;
  /** Verified tokens kept (LRU). Default 10 000. */
  readonly cacheSize?: number;
}

type Failure = Extract<TxnTokenCheckResult, { ok: false }>;

const invalid = (message: string): Failure => ({ ok: false, reason: "token_invalid", message });

export class JwksTxnTokenVerifier implements TxnTokenVerifier {
  private readonly keySources: KeySourceRegistry;
  private readonly verified: VerifiedTokenCache<TxnTokenClaims>;

  constructor(options: TxnTokenVerifierOptions = {}) {
    this.keySources =
      options.keySources ??
      new KeySourceRegistry({
        baseDir: options.baseDir ?? process.cwd(),
        ...(options.jwks !== undefined && { jwks: options.jwks }),
        ...(options.onKeySourceError !== undefined && { onKeySourceError: options.onKeySourceError }),
        ...(options.keySourceFor !== undefined && { keySourceFor: options.keySourceFor }),
      });
    this.verified = new VerifiedTokenCache<TxnTokenClaims>(options.cacheSize);
  }

  async verify(request: TxnTokenCheckRequest): Promise<TxnTokenCheckResult> {
    try {
      return await this.verifyUnsafe(request);
    } catch (err) {
      return invalid(`the Txn-Token could not be verified: ${err instanceof Error ? err.message : String(err)}`);
    }
  }

  private async verifyUnsafe(request: TxnTokenCheckRequest): Promise<TxnTokenCheckResult> {
    const { token, policy, nowMs } = request;
    const tokenSha256 = createHash("sha256").update(token).digest("base64url");
    let claims: TxnTokenClaims;
    const hit = this.verified.get(tokenSha256, nowMs, policy.clockSkewSeconds);
    if (hit !== undefined && hit.jwks === policy.jwks && hit.issuer === policy.issuer) {
      claims = hit.claims;
    } else {
      const read = await readSignedToken(token, this.keySources.get(policy.jwks), nowMs, { typ: TXN_TOKEN_TYP });
      if (!read.ok) return invalid(`the Txn-Token ${read.problem}`);
      const parsed = parseTxnTokenClaims(read.payload);
      if (!parsed.ok) return invalid(`the Txn-Token's claims are malformed: ${parsed.problem}`);
      claims = parsed.claims;
      if (claims.iss === policy.issuer) this.verified.set(tokenSha256, { claims, jwks: policy.jwks, issuer: policy.issuer }, nowMs, policy.clockSkewSeconds);
    }
    const now = nowMs / 1000;
    const skew = policy.clockSkewSeconds;
    if (claims.iss !== policy.issuer) {
      return invalid(`the Txn-Token's iss ${quotedValue(claims.iss)} is not the policy's txnTokens.issuer ${JSON.stringify(policy.issuer)}`);
    }
    if (claims.iat > now + skew) return invalid("the Txn-Token's iat is in the future (beyond txnTokens.clockSkew)");
    if (claims.nbf !== undefined && claims.nbf > now + skew) return invalid("the Txn-Token's nbf is in the future (beyond txnTokens.clockSkew): it is not valid yet");
    // Section 9.2: a Txn-Token MUST NOT be accepted outside the trust domain its aud names.
    if (!request.trustDomains.has(claims.aud)) {
      return invalid(`the Txn-Token is for trust domain ${quotedValue(claims.aud)}, which is not one of the policy's trustDomains`);
    }
    // RFC 7519 4.1.4: not accepted on or after exp.
    if (now >= claims.exp + skew) return { ok: false, reason: "token_expired", message: `the Txn-Token expired at ${new Date(claims.exp * 1000).toISOString()}` };
    return { ok: true, txn: claims.txn, sub: claims.sub, issuer: claims.iss, audience: claims.aud, tokenSha256 };
  }
}
