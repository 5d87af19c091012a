// RS256 configuration: tokens signed with the private key verify with the public key; the
// classic algorithm-confusion forgery (HS256 signed with the public key as secret) does not.
import { createHmac, generateKeyPairSync } from "node:crypto";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import jwt from "jsonwebtoken";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { singleKeyRing } from "../server/core/keyRing.ts";
import { loadTokenKeys, signAccessToken, verifyAccessToken, type TokenKeys } from "../server/auth/tokens.ts";

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
