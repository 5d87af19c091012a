// RS256 configuration: tokens signed with the private key verify with the public key; the
// classic algorithm-confusion forgery (HS256 signed with the public key as secret) does not.
import { createHmac, createPublicKey, generateKeyPairSync } from "node:crypto";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import jwt from "jsonwebtoken";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { singleKeyRing } from "../server/core/keyRing.ts";
import { jwks, loadTokenKeys, signAccessToken, verifyAccessToken, type TokenKeys } from "../server/auth/tokens.ts";
import { createApp } from "../server/app.ts";

let dir: string;
let keys: TokenKeys;
let publicPem: string;
const userId = "8d1e5a8c-1111-4000-8000-000000000000";

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "rls-shop-keys-"));
  const pair = generateKeyPairSync("rsa", { modulusLength: 2048 });
  publicPem = pair.publicKey.export({ type: "spki", format: "pem" }).toString();
  await writeFile(join(dir, "public.pem"), publicPem);
  await writeFile(join(dir, "private.pem"), pair.privateKey.export({ type: "pkcs8", format: "pem" }));
  keys = loadTokenKeys({
    jwtAlgorithm: "RS256", jwtPublicKeyFiles: singleKeyRing(join(dir, "public.pem")), jwtPrivateKeyFile: join(dir, "private.pem"), jwtIssuer: "rls-service-shop", jwtTtlSeconds: 600,
  });
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe("RS256 access tokens", () => {
  it("verify when signed with the configured private key", () => {
    expect(verifyAccessToken(keys, signAccessToken(keys, { userId }))).toEqual({ userId, tenantId: undefined });
  });

  it("refuse an HS256 token signed with the public key as its secret", () => {
    let forged: string;
    try {
      forged = jwt.sign({ sub: userId }, publicPem, { algorithm: "HS256", issuer: "rls-service-shop", expiresIn: 600 });
    } catch {
      // jsonwebtoken itself refuses to HMAC-sign with a PEM key: build the token by hand.
      const part = (o: object) => Buffer.from(JSON.stringify(o)).toString("base64url");
      const head = `${part({ alg: "HS256", typ: "JWT" })}.${part({ sub: userId, iss: "rls-service-shop", exp: Math.floor(Date.now() / 1000) + 600 })}`;
      forged = `${head}.${createHmac("sha256", publicPem).update(head).digest("base64url")}`;
    }
    expect(() => verifyAccessToken(keys, forged)).toThrow(expect.objectContaining({ status: 401, code: "INVALID_TOKEN" }));
  });

  it("without a private key can verify but not issue", () => {
    const verifyOnly = loadTokenKeys({ jwtAlgorithm: "RS256", jwtPublicKeyFiles: singleKeyRing(join(dir, "public.pem")), jwtIssuer: "rls-service-shop", jwtTtlSeconds: 600 });
    expect(verifyAccessToken(verifyOnly, signAccessToken(keys, { userId })).userId).toBe(userId);
    expect(() => signAccessToken(verifyOnly, { userId })).toThrow(/signing key/);
  });
});

describe("an RS256 key ring (JWT_PUBLIC_KEY_FILES)", () => {
  const pair = async (name: string) => {
    const p = generateKeyPairSync("rsa", { modulusLength: 2048 });
    await writeFile(join(dir, `${name}.pub.pem`), p.publicKey.export({ type: "spki", format: "pem" }));
    await writeFile(join(dir, `${name}.key.pem`), p.privateKey.export({ type: "pkcs8", format: "pem" }));
    return { pub: join(dir, `${name}.pub.pem`), key: join(dir, `${name}.key.pem`) };
  };
  const ringOf = (primary: string, files: Record<string, string>) => ({ primary, keys: new Map(Object.entries(files)) });
  const base = { jwtAlgorithm: "RS256" as const, jwtIssuer: "rls-service-shop", jwtTtlSeconds: 600 };

  it("signs with the primary (its kid in the header), verifies every key of the ring, and publishes them all in the JWKS", async () => {
    const [k1, k2] = [await pair("k1"), await pair("k2")];
    const before = loadTokenKeys({ ...base, jwtPublicKeyFiles: ringOf("k1", { k1: k1.pub }), jwtPrivateKeyFile: k1.key });
    const after = loadTokenKeys({ ...base, jwtPublicKeyFiles: ringOf("k2", { k2: k2.pub, k1: k1.pub }), jwtPrivateKeyFile: k2.key });
    const old = signAccessToken(before, { userId });
    const fresh = signAccessToken(after, { userId });
    expect(JSON.parse(Buffer.from(fresh.split(".")[0], "base64url").toString())).toMatchObject({ alg: "RS256", kid: "k2" });
    expect(verifyAccessToken(after, old).userId).toBe(userId);
    expect(verifyAccessToken(after, fresh).userId).toBe(userId);
    expect(() => verifyAccessToken(before, fresh)).toThrow(expect.objectContaining({ code: "INVALID_TOKEN" }));

    const set = jwks(after);
    expect(set.keys.map((k) => [k.kid, k.kty, k.alg, k.use])).toEqual([["k2", "RSA", "RS256", "sig"], ["k1", "RSA", "RS256", "sig"]]);
    expect(set.keys.every((k) => !("d" in k) && !("p" in k))).toBe(true);
    // A consumer verifies with the published key its kid names.
    const published = createPublicKey({ key: set.keys.find((k) => k.kid === "k1") as never, format: "jwk" });
    expect((jwt.verify(old, published, { algorithms: ["RS256"] }) as jwt.JwtPayload).sub).toBe(userId);

    const server = createApp({ keys: after, bodyLimit: "1kb" }).listen(0, "127.0.0.1");
    await new Promise((r) => server.once("listening", r));
    try {
      const res = await fetch(`http://127.0.0.1:${(server.address() as { port: number }).port}/.well-known/jwks.json`);
      expect(res.status).toBe(200);
      expect(res.headers.get("cache-control")).toBe("public, max-age=300");
      expect(await res.json()).toEqual(set);
    } finally {
      server.close();
    }
  });

  it("refuses to start when the private key is not the primary's pair, and publishes nothing for HS256", async () => {
    const [k1, k2] = [await pair("m1"), await pair("m2")];
    expect(() => loadTokenKeys({ ...base, jwtPublicKeyFiles: ringOf("m2", { m2: k2.pub, m1: k1.pub }), jwtPrivateKeyFile: k1.key }))
      .toThrow(/JWT_PRIVATE_KEY_FILE is not the private key of the primary public key \(m2\)/);
    expect(jwks(loadTokenKeys({ jwtAlgorithm: "HS256", jwtSecrets: ringOf("a", { a: "a".repeat(40) }), jwtIssuer: "x", jwtTtlSeconds: 60 }))).toEqual({ keys: [] });
  });
});
