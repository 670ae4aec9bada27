// What the token service's configuration allows but most likely should not,
// said once as the service starts. These are warnings, not errors: the
// settings are optional in configurations that already run, and refusing
// them now would stop those services at their next restart.

import type { StsConfig } from "./sts-config.js";

export interface StsConfigWarning {
  readonly msg: string;
  readonly fields: Record<string, unknown>;
}

export function stsConfigWarnings(config: StsConfig): StsConfigWarning[] {
  const warnings: StsConfigWarning[] = [];
  const person = config.personTokens;
  // The identity provider issues tokens to many clients; without an audience,
  // a person's token for any of them (another app's access or ID token) starts a chain as that person.
  if (person !== undefined && person.audience === undefined) {
    warnings.push({
      msg:
        "personTokens.audience is not set: any token the identity provider issued, for any of its clients, can be exchanged here to start a delegation chain as its person; " +
        "set personTokens.audience (flag --person-audience, env HOPWARDEN_STS_PERSON_AUDIENCE) to the aud the identity provider puts in tokens meant for this service",
      fields: { setting: "personTokens.audience", personIssuer: person.issuer },
    });
  }
  return warnings;
}
