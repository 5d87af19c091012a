// Access tokens: JWT with the algorithm pinned (HS256 with a shared secret, or RS256 with a
// key pair). Anything else — no token, alg none, another algorithm, a bad signature, expiry,
// a missing claim — is a 401. There is no fallback user. Verified tokens are cached (bounded,
// by their exact text, until their exp): a client sends the same token with every request, and
// verifying it again each time was measured at about 4% of the API's CPU per GET. A failure is
// never cached; nothing a token proves is widened by the cache, since the membership, tenant
// and permission are checked by SQL on every request anyway.
import { createPrivateKey, createPublicKey, createSecretKey, type KeyObject } from "node:crypto";
import { readFileSync } from "node:fs";
import jwt from "jsonwebtoken";
import { UnauthorizedError } from "../core/errors.ts";
import { isUuid } from "../core/ids.ts";

export type TokenKeys = {
  algorithm: "HS256" | "RS256";
  // KeyObjects, built once: given a string, jsonwebtoken builds a key object on every call
  // (a third of the API's CPU per request in the first benchmark).
  signingKey?: KeyObject;
  verifyKey: KeyObject;
  issuer: string;
  ttlSeconds: number;
  /** Verified tokens (absent: every request verifies). */
  cache?: TokenCache;
};

/** Verified identities by token text with their exp (seconds); at most `max`, the oldest leaves first. */
export type TokenCache = { max: number; entries: Map<string, { identity: Identity; exp: number }> };

export const DEFAULT_TOKEN_CACHE_MAX = 10_000;

function tokenCache(max: number | undefined): TokenCache | undefined {
  const bound = max ?? DEFAULT_TOKEN_CACHE_MAX;
  return bound > 0 ? { max: bound, entries: new Map() } : undefined;
}

export type Identity = { userId: string; tenantId?: string };

/** RFC 6750's b64token: what may follow "Bearer ". Checked before verifying; a cached token passed it already. */
const token68 = /^[A-Za-z0-9._~+/-]+=*$/;

/** Key objects for the configured algorithm. */
export function hs256Keys(secret: string, issuer = "rls-service-shop", ttlSeconds = 3600, tokenCacheMax?: number): TokenKeys {
  return loadTokenKeys({ jwtAlgorithm: "HS256", jwtSecret: secret, jwtIssuer: issuer, jwtTtlSeconds: ttlSeconds, tokenCacheMax });
}

export function loadTokenKeys(c: {
  jwtAlgorithm: "HS256" | "RS256"; jwtSecret?: string; jwtPublicKeyFile?: string; jwtPrivateKeyFile?: string; jwtIssuer: string; jwtTtlSeconds: number;
  tokenCacheMax?: number;
}): TokenKeys {
  if (c.jwtAlgorithm === "HS256") {
    if (!c.jwtSecret) throw new Error("JWT_SECRET is required for HS256");
    const secret = createSecretKey(Buffer.from(c.jwtSecret, "utf8"));
    return { algorithm: "HS256", signingKey: secret, verifyKey: secret, issuer: c.jwtIssuer, ttlSeconds: c.jwtTtlSeconds, cache: tokenCache(c.tokenCacheMax) };
  }
  if (!c.jwtPublicKeyFile) throw new Error("JWT_PUBLIC_KEY_FILE is required for RS256");
  return {
    algorithm: "RS256",
    verifyKey: createPublicKey(readFileSync(c.jwtPublicKeyFile)),
    signingKey: c.jwtPrivateKeyFile ? createPrivateKey(readFileSync(c.jwtPrivateKeyFile)) : undefined,
    issuer: c.jwtIssuer,
    ttlSeconds: c.jwtTtlSeconds,
    cache: tokenCache(c.tokenCacheMax),
  };
}

export function signAccessToken(keys: TokenKeys, identity: Identity, ttlSeconds = keys.ttlSeconds): string {
  if (!keys.signingKey) throw new Error("No signing key configured (RS256 needs JWT_PRIVATE_KEY_FILE to issue tokens)");
  const claims: Record<string, unknown> = {};
  if (identity.tenantId) claims.tid = identity.tenantId;
  return jwt.sign(claims, keys.signingKey, {
    algorithm: keys.algorithm,
    subject: identity.userId,
    issuer: keys.issuer,
    expiresIn: ttlSeconds,
  });
}

export function verifyAccessToken(keys: TokenKeys, token: string): Identity {
  const cache = keys.cache;
  const cached = cache?.entries.get(token);
  if (cached) {
    // jsonwebtoken's rule: expired once the clock's whole second reaches exp.
    if (Math.floor(Date.now() / 1000) < cached.exp) return cached.identity;
    cache!.entries.delete(token); // verified again below, which answers TOKEN_EXPIRED
  }
  const verified = verifyUncached(keys, token);
  if (cache) {
    if (cache.entries.size >= cache.max) cache.entries.delete(cache.entries.keys().next().value!);
    cache.entries.set(token, verified);
  }
  return verified.identity;
}

function verifyUncached(keys: TokenKeys, token: string): { identity: Identity; exp: number } {
  if (!token68.test(token)) throw new UnauthorizedError("INVALID_TOKEN", "The access token is invalid.");
  let payload: jwt.JwtPayload;
  try {
    const decoded = jwt.verify(token, keys.verifyKey, { algorithms: [keys.algorithm], issuer: keys.issuer });
    if (typeof decoded === "string") throw new Error("string payload");
    payload = decoded;
  } catch (error) {
    if (error instanceof jwt.TokenExpiredError) throw new UnauthorizedError("TOKEN_EXPIRED", "The access token has expired.");
    throw new UnauthorizedError("INVALID_TOKEN", "The access token is invalid.");
  }
  if (typeof payload.exp !== "number" || !isUuid(payload.sub)) {
    throw new UnauthorizedError("INVALID_TOKEN", "The access token is invalid.");
  }
  if (payload.tid !== undefined && !isUuid(payload.tid)) {
    throw new UnauthorizedError("INVALID_TOKEN", "The access token is invalid.");
  }
  return { identity: { userId: payload.sub, tenantId: payload.tid }, exp: payload.exp };
}
