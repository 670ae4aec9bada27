import { generateKeyPairSync, type KeyObject } from "node:crypto";
import { describe, expect, it } from "vitest";
import { parseSigningKeys, SigningKeyError, SigningKeyRing } from "./signing-key-ring.js";

const pem = (type: "ec" | "ed25519" | "rsa", opts: object = {}) =>
  (generateKeyPairSync as (t: string, o: object) => { privateKey: KeyObject })(type, opts).privateKey.export({ format: "pem", type: "pkcs8" }).toString();

describe("signing key files", () => {
  it("reads PEM PKCS#8 and picks the alg from the key type", async () => {
    expect((await parseSigningKeys(pem("ec", { namedCurve: "P-256" }), "a.pem"))[0]!.alg).toBe("ES256");
    expect((await parseSigningKeys(pem("ed25519"), "b.pem"))[0]!.alg).toBe("EdDSA");
    expect((await parseSigningKeys(pem("rsa", { modulusLength: 2048 }), "c.pem"))[0]!.alg).toBe("RS256");
  });

  it("reads a private JWK Set, keeping declared kid and alg, publishing only public members", async () => {
    const { privateKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
    const jwk = { ...privateKey.export({ format: "jwk" }), kid: "r1", alg: "PS256" };
    const [key] = await parseSigningKeys(JSON.stringify({ keys: [jwk] }), "set.json");
    expect(key).toMatchObject({ kid: "r1", alg: "PS256" });
    expect(Object.keys(key!.publicJwk).sort()).toEqual(["alg", "e", "kid", "kty", "n", "use"]);
  });

  it("refuses what cannot sign a delegation token, naming the file", async () => {
    await expect(parseSigningKeys(pem("ec", { namedCurve: "P-384" }), "p384.pem")).rejects.toThrow(/p384\.pem/);
    await expect(parseSigningKeys(pem("rsa", { modulusLength: 1024 }), "small.pem")).rejects.toThrow(/2048/);
    await expect(parseSigningKeys("-----BEGIN EC PRIVATE KEY-----\nAA\n-----END EC PRIVATE KEY-----\n", "sec1.pem")).rejects.toThrow(/PKCS#8/);
    await expect(parseSigningKeys('{"kty":"EC"}', "pub.jwk")).rejects.toBeInstanceOf(SigningKeyError);
    await expect(parseSigningKeys(JSON.stringify({ ...JSON.parse(JSON.stringify(generateKeyPairSync("ec", { namedCurve: "P-256" }).privateKey.export({ format: "jwk" }))), alg: "RS256" }), "mismatch.jwk")).rejects.toThrow(/does not fit/);
  });
});

describe("the key ring", () => {
  it("signs with the newest key and keeps a removed key published until its last token expired", async () => {
    const [a] = await parseSigningKeys(pem("ec", { namedCurve: "P-256" }), "a.pem");
    const [b] = await parseSigningKeys(pem("ed25519"), "b.pem");
    const ring = new SigningKeyRing(90_000);
    ring.install([a!], 0);
    await ring.sign({ x: 1 }, "agent-delegation+jwt", 1_000);
    ring.install([a!, b!], 2_000);
    expect(ring.current.kid).toBe(b!.kid);
    ring.install([b!], 3_000);
    expect(ring.jwks(50_000).keys.map((k) => k.kid)).toEqual([b!.kid, a!.kid]);
    expect((await ring.lookup(a!.kid, "ES256", 50_000)).ok).toBe(true);
    expect(ring.jwks(91_000).keys.map((k) => k.kid)).toEqual([b!.kid]);
    expect((await ring.lookup(a!.kid, "ES256", 91_000)).ok).toBe(false);
  });
});
