// `hopwarden sts`: runs the delegation token service (RFC 8693 token
// exchange over mutual TLS), or, with --generate-key, writes a signing key.

import { generateKeyPairSync } from "node:crypto";
import { readFile, writeFile } from "node:fs/promises";
import { createLogger } from "../../adapters/logging/logger.js";
import { parseSigningKeys } from "../../adapters/sts/signing-key-ring.js";
import { readStsConfigText, resolveStsConfig, type StsConfigInput } from "../../adapters/sts/sts-config.js";
import { startStsService, StsStartError } from "../../adapters/sts/sts-service.js";
import { runCommand } from "../exit.js";
import { parseCommandArgs, UsageError } from "../options.js";
import type { Command } from "./index.js";

const HELP = `Usage: hopwarden sts [--config sts.yaml] [options]
       hopwarden sts --generate-key <file> [--alg ES256|EdDSA|PS256|RS256]

Runs the delegation token service. Agents call it over mutual TLS; the
client certificate (one spiffe:// URI SAN) is the agent's identity. An agent
exchanges the token it holds for the next hop's token (RFC 8693):

  POST /token  (application/x-www-form-urlencoded)
    grant_type=urn:ietf:params:oauth:grant-type:token-exchange
    subject_token=<the person's token (first hop) or the agent's inbound delegation token>
    subject_token_type=urn:ietf:params:oauth:token-type:jwt
    audience=<the callee: SPIFFE ID or policy alias>
    scope=<optional; must lie within the previous token's and the hop rule's scopes>
  GET  /.well-known/jwks.json  (point the policy's tokens.jwks here)

The hop must be allowed by the same policy file 'serve' uses; the token it
issues is short-lived, bound to the agent's certificate, and names the whole
chain. Refusals are OAuth errors (invalid_grant, invalid_target, invalid_scope,
invalid_request, invalid_client, unauthorized_client).

Options (flags override the config file; HOPWARDEN_STS_<FLAG> mirrors each):
  -c, --config <file>          YAML file with the keys below (paths relative to it)
      --listen <host:port>     listen: (default 0.0.0.0:8443)
      --issuer <url>           issuer: the iss of issued tokens = the policy's tokens.issuer
      --policy <file>          policy: the policy file 'serve' uses
      --signing-keys <path>    signingKeys: a key file (PEM PKCS#8, JWK, JWK Set) or a
                               directory of them; the newest file's key signs, all are
                               published. Rotate by adding a file (reloaded every
                               reloadInterval and on SIGHUP).
      --token-ttl <duration>   tokenTtl: lifetime of issued tokens (default 60s, max 1h)
      --clock-skew <duration>  clockSkew: tolerance for subject tokens (default 30s)
      --reload-interval <dur>  reloadInterval: policy and key re-read period (default 30s)
      --tls-cert <file>        tls.cert: the service's certificate (PEM)
      --tls-key <file>         tls.key: its private key (PEM)
      --client-ca <file>       tls.clientCa: CA bundle agents' certificates chain to
      --person-issuer <iss>    personTokens.issuer: the identity provider whose tokens
                               start a chain (their sub is the person)
      --person-jwks <path|url> personTokens.jwks: the identity provider's keys
      --person-audience <aud>  personTokens.audience: required aud of person tokens (set
                               it: without it, the IdP's tokens for any client start a
                               chain; a warning at start says so)
      --txn-token-ttl <dur>    txnTokens.tokenTtl: also mint a Transaction Token (typ
                               txntoken+jwt) at the first hop, returned as txn_token
                               beside the delegation token (default 5m, max 1h)
      --txn-audience <domain>  txnTokens.audience: its aud, a trust domain of the policy
                               (default: the first agent's trust domain); either flag,
                               or a txnTokens: section, turns minting on
      --generate-key <file>    write a new private key (PEM PKCS#8, mode 0600) and exit
      --alg <alg>              algorithm of --generate-key (default ES256)
  -h, --help                   show this help

Example config (sts.yaml):
  listen: 0.0.0.0:8443
  issuer: https://sts.example.org
  policy: policy.yaml
  signingKeys: sts-keys/
  tokenTtl: 60s
  tls: { cert: sts.crt, key: sts.key, clientCa: ca.crt }
  personTokens: { issuer: https://idp.example.com, jwks: https://idp.example.com/jwks.json, audience: hopwarden-sts }
  txnTokens: { tokenTtl: 5m, audience: example.org }   # optional (docs/transaction-tokens.md)
`;

const FLAG_TO_FIELD: Readonly<Record<string, keyof StsConfigInput>> = {
  listen: "listen",
  issuer: "issuer",
  policy: "policy",
  "signing-keys": "signingKeys",
  "token-ttl": "tokenTtl",
  "clock-skew": "clockSkew",
  "reload-interval": "reloadInterval",
  "tls-cert": "tlsCert",
  "tls-key": "tlsKey",
  "client-ca": "clientCa",
  "person-issuer": "personIssuer",
  "person-jwks": "personJwks",
  "person-audience": "personAudience",
  "txn-token-ttl": "txnTokenTtl",
  "txn-audience": "txnAudience",
};

const str = { type: "string" } as const;
const OPTIONS = {
  help: { type: "boolean", short: "h" },
  config: { type: "string", short: "c" },
  "generate-key": str,
  alg: str,
  ...Object.fromEntries(Object.keys(FLAG_TO_FIELD).map((f) => [f, str])),
} as const;

function stsEnv(flag: string): string | undefined {
  const value = process.env[`HOPWARDEN_STS_${flag.replace(/-/g, "_").toUpperCase()}`];
  return value === undefined || value.length === 0 ? undefined : value;
}

async function generateKey(file: string, alg: string): Promise<number> {
  const pair =
    alg === "ES256"
      ? generateKeyPairSync("ec", { namedCurve: "P-256" })
      : alg === "EdDSA"
        ? generateKeyPairSync("ed25519")
        : alg === "RS256" || alg === "PS256"
          ? generateKeyPairSync("rsa", { modulusLength: 3072 })
          : undefined;
  if (pair === undefined) throw new UsageError(`--alg ${JSON.stringify(alg)}: use ES256, EdDSA, PS256 or RS256`);
  const pem = pair.privateKey.export({ format: "pem", type: "pkcs8" }).toString();
  // RSA PEM carries no alg; PS256 needs a JWK that says so.
  const text = alg === "PS256" ? JSON.stringify({ ...pair.privateKey.export({ format: "jwk" }), alg: "PS256" }, null, 2) + "\n" : pem;
  await writeFile(file, text, { mode: 0o600, flag: "wx" }).catch((err: NodeJS.ErrnoException) => {
    throw new UsageError(`--generate-key ${file}: ${err.code === "EEXIST" ? "the file exists; rotation adds a new file, it never overwrites a key" : (err.code ?? err.message)}`);
  });
  const [key] = await parseSigningKeys(text, file);
  process.stdout.write(`wrote ${alg} signing key ${file} (kid ${key!.kid})\n`);
  return 0;
}

export const stsCommand: Command = {
  run: (argv) =>
    runCommand(
      "sts",
      async () => {
        const { values } = parseCommandArgs(argv, OPTIONS);
        const flag = (name: string): string | undefined => {
          const v = (values as Record<string, unknown>)[name];
          return typeof v === "string" ? v : stsEnv(name);
        };
        if (values.help === true) {
          process.stdout.write(HELP);
          return 0;
        }
        const target = flag("generate-key");
        if (target !== undefined) return generateKey(target, flag("alg") ?? "ES256");

        let fromFile: StsConfigInput = {};
        const configFile = flag("config");
        if (configFile !== undefined) {
          const text = await readFile(configFile, "utf8").catch((err: NodeJS.ErrnoException) => {
            throw new UsageError(`--config ${configFile}: cannot be read (${err.code ?? err.message})`);
          });
          const read = readStsConfigText(text, configFile);
          if (!read.ok) throw new StsStartError(read.errors);
          fromFile = read.input;
        }
        const fromFlags: StsConfigInput = {};
        for (const [f, field] of Object.entries(FLAG_TO_FIELD)) fromFlags[field] = flag(f);
        const resolved = resolveStsConfig(fromFile, fromFlags);
        if (!resolved.ok) throw new StsStartError(resolved.errors);
        const logger = createLogger("info");
        const service = await startStsService(resolved.config, logger);
        process.stdout.write(`hopwarden sts listening on ${service.url} (issuer ${resolved.config.issuer}, JWKS ${service.url}/.well-known/jwks.json)\n`);
        const onHup = () => void service.reload();
        process.on("SIGHUP", onHup);
        await new Promise<void>((resolve) => {
          const stop = () => {
            process.off("SIGTERM", stop);
            process.off("SIGINT", stop);
            resolve();
          };
          process.on("SIGTERM", stop);
          process.on("SIGINT", stop);
        });
        process.off("SIGHUP", onHup);
        await service.close();
        return 0;
      },
      { prefix: "cannot start: " },
    ),
};
