// Where serve and explain find their service config and their policy, the
// same way for both, so that explain decides with what serve runs: --config
// (else HOPWARDEN_CONFIG) is read, or the defaults apply; the policy is
// --policy, else HOPWARDEN_POLICY, else the config's `policy:`.

import { DEFAULT_SERVICE_CONFIG, readServiceConfig, type ServiceConfig } from "../adapters/config/service-config.js";
import { fromEnv, UsageError } from "./options.js";

export async function resolveConfigAndPolicy(flags: { readonly config?: string | undefined; readonly policy?: string | undefined }): Promise<{ config: ServiceConfig; policyFile: string }> {
  const configFile = flags.config ?? fromEnv("config");
  const config = configFile === undefined ? DEFAULT_SERVICE_CONFIG : await readServiceConfig(configFile);
  const policyFile = flags.policy ?? fromEnv("policy") ?? config.policy;
  if (policyFile === undefined) throw new UsageError("--policy <file> is required (or HOPWARDEN_POLICY, or policy: in --config)");
  return { config, policyFile };
}
