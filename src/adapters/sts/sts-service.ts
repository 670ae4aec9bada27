// Assembles the token service from its configuration: policy, signing keys,
// person-token keys, the exchange and the HTTPS server; and reloads the
// policy and the keys (on a timer and on demand), keeping the last good ones
// when a new file is invalid.

import { readFile } from "node:fs/promises";
import { loadPolicyText } from "../config/policy-file.js";
import type { CompiledPolicy } from "../../core/policy/model.js";
import type { Clock } from "../../core/ports.js";
import { systemClock } from "../clock/system-clock.js";
import type { Logger } from "../logging/logger.js";
import { keySourceForJwks } from "../tokens/jwks-key-source.js";
import { readSigningKeys, SigningKeyRing } from "./signing-key-ring.js";
import type { StsConfig } from "./sts-config.js";
import { stsConfigWarnings } from "./sts-config-warnings.js";
import { TokenExchange } from "./token-exchange.js";
import { startTokenExchangeServer } from "./token-exchange-server.js";
import { HopwardenError } from "../../core/errors.js";

export interface StsService {
  readonly url: string;
  readonly port: number;
  /** Re-reads the policy and the signing keys; resolves to the problems found (empty when all went well). */
  reload(): Promise<string[]>;
  close(): Promise<void>;
}

/** The token service cannot start: its policy, keys or TLS files are not usable, or it cannot listen; one problem per entry. */
export class StsStartError extends HopwardenError {
  readonly code = "sts_start_failed";
  constructor(readonly problems: readonly string[]) {
    super(problems.length === 1 ? problems[0]! : `${problems.length} problems:\n${problems.join("\n")}`);
  }
}

async function readPolicy(file: string): Promise<{ policy: CompiledPolicy; warnings: readonly string[] } | { errors: string[] }> {
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch (err) {
    return { errors: [`${file}: cannot be read (${(err as NodeJS.ErrnoException).code ?? String(err)})`] };
  }
  const result = loadPolicyText(text, file);
  return result.ok ? { policy: result.policy, warnings: result.warnings } : { errors: [...result.errors] };
}

export async function startStsService(config: StsConfig, logger: Logger, clock: Clock = systemClock): Promise<StsService> {
  for (const w of stsConfigWarnings(config)) logger.warn(w.msg, w.fields);
  const problems: string[] = [];
  const loaded = await readPolicy(config.policyFile);
  let policy: CompiledPolicy | undefined;
  if ("errors" in loaded) problems.push(...loaded.errors);
  else {
    policy = loaded.policy;
    for (const w of loaded.warnings) logger.warn(w);
    if (policy.tokens !== undefined && policy.tokens.issuer !== config.issuer) {
      logger.warn("the policy's tokens.issuer is not this token service's issuer: Check will refuse the tokens it issues", { policyIssuer: policy.tokens.issuer, issuer: config.issuer });
    }
    const audience = config.txnTokens?.audience;
    if (audience !== undefined && !policy.trustDomains.has(audience)) {
      logger.warn("txnTokens.audience is not one of the policy's trustDomains: Check will refuse the Txn-Tokens this service mints", { audience });
    }
  }
  // A retired key stays published for a token lifetime plus skew after its last signature.
  const ring = new SigningKeyRing((config.tokenTtlSeconds + config.clockSkewSeconds + 60) * 1000);
  try {
    ring.install(await readSigningKeys(config.signingKeys), clock.nowMs());
  } catch (err) {
    problems.push(err instanceof Error ? err.message : String(err));
  }
  let tls: { cert: Buffer; key: Buffer; clientCa: Buffer } | undefined;
  try {
    const [cert, key, clientCa] = await Promise.all([readFile(config.tlsCert), readFile(config.tlsKey), readFile(config.clientCa)]);
    tls = { cert, key, clientCa };
  } catch (err) {
    problems.push(`tls: ${(err as NodeJS.ErrnoException).path ?? ""} cannot be read (${(err as NodeJS.ErrnoException).code ?? String(err)})`);
  }
  if (problems.length > 0 || tls === undefined) throw new StsStartError(problems);

  const person = config.personTokens;
  const exchange = new TokenExchange({
    issuer: config.issuer,
    tokenTtlSeconds: config.tokenTtlSeconds,
    clockSkewSeconds: config.clockSkewSeconds,
    policy: () => policy,
    keys: ring,
    txnTokens: config.txnTokens,
    person:
      person === undefined
        ? undefined
        : {
            issuer: person.issuer,
            audience: person.audience,
            keys: keySourceForJwks(person.jwks, process.cwd(), {}, (m) => logger.warn(m)),
          },
  });
  // A port it cannot bind is a ListenError (listen_failed), like serve's.
  const server = await startTokenExchangeServer({ host: config.host, port: config.port, tls, exchange, keys: ring, logger, clock });

  const reload = async (): Promise<string[]> => {
    const found: string[] = [];
    const next = await readPolicy(config.policyFile);
    if ("errors" in next) found.push(...next.errors);
    else if (next.policy.revision !== policy?.revision) {
      policy = next.policy;
      logger.info("policy reloaded", { version: policy.version });
    }
    try {
      const keys = await readSigningKeys(config.signingKeys);
      const before = ring.current.kid;
      ring.install(keys, clock.nowMs());
      if (ring.current.kid !== before) logger.info("signing key rotated", { kid: ring.current.kid });
    } catch (err) {
      found.push(err instanceof Error ? err.message : String(err));
    }
    for (const p of found) logger.error(`reload refused, the last good configuration stays in force: ${p}`);
    return found;
  };
  const timer = setInterval(() => void reload(), config.reloadIntervalSeconds * 1000);
  timer.unref();

  return {
    url: server.url,
    port: server.port,
    reload,
    close: async () => {
      clearInterval(timer);
      await server.close();
    },
  };
}
