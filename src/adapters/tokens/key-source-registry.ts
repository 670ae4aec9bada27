// One verification key source per `jwks` value of the policy (`tokens.jwks`,
// `txnTokens.jwks`), created on first use and kept: its cached key set and
// refresh schedule must outlive a policy reload. Delegation tokens and
// Transaction Tokens read their keys through the same registry, so that a
// JWKS named by both is fetched and cached once.

import { keySourceForJwks, type JwksRefreshOptions, type VerificationKeySource } from "./jwks-key-source.js";

export interface KeySourceRegistryOptions {
  /** The policy file's directory: a relative `jwks` path is resolved against it. */
  readonly baseDir: string;
  /** Refresh schedule and deadlines of JWKS loading. */
  readonly jwks?: JwksRefreshOptions;
  /** Told about JWKS load failures (the last good keys keep working meanwhile). */
  readonly onKeySourceError?: (message: string) => void;
  /** Replaces JWKS loading, e.g. with a StaticKeySource. */
  readonly keySourceFor?: (jwks: string, baseDir: string) => VerificationKeySource;
}

export class KeySourceRegistry {
  private readonly sources = new Map<string, VerificationKeySource>();

  constructor(private readonly options: KeySourceRegistryOptions) {}

  get(jwks: string): VerificationKeySource {
    let source = this.sources.get(jwks);
    if (source === undefined) {
      const { baseDir } = this.options;
      source = this.options.keySourceFor?.(jwks, baseDir) ?? keySourceForJwks(jwks, baseDir, this.options.jwks, this.options.onKeySourceError);
      this.sources.set(jwks, source);
    }
    return source;
  }
}
