import { describe, expect, it } from "vitest";
import { resolveStsConfig, type StsConfig, type StsConfigInput } from "./sts-config.js";
import { stsConfigWarnings } from "./sts-config-warnings.js";

const complete = { issuer: "https://sts.test", policy: "p.yaml", signingKeys: "k", tlsCert: "c", tlsKey: "k", clientCa: "ca" };

function configOf(input: StsConfigInput): StsConfig {
  const result = resolveStsConfig(complete, input);
  if (!result.ok) throw new Error(result.errors.join("\n"));
  return result.config;
}

describe("start-up warnings of the token service's configuration", () => {
  it("warns when person tokens are accepted for any audience, saying the risk and how to set one", () => {
    const warnings = stsConfigWarnings(configOf({ personIssuer: "https://idp.example.com", personJwks: "https://idp.example.com/jwks.json" }));
    expect(warnings).toEqual([{ msg: expect.stringMatching(/^personTokens\.audience is not set: any token the identity provider issued, for any of its clients/) as unknown, fields: { setting: "personTokens.audience", personIssuer: "https://idp.example.com" } }]);
    expect(warnings[0]!.msg).toContain("--person-audience");
  });

  it("says nothing when person tokens must name an audience, or when no person tokens are accepted at all", () => {
    expect(stsConfigWarnings(configOf({ personIssuer: "https://idp.example.com", personJwks: "https://idp.example.com/jwks.json", personAudience: "hopwarden-sts" }))).toEqual([]);
    expect(stsConfigWarnings(configOf({}))).toEqual([]);
  });
});
