// Access tokens: JWT with the algorithm pinned (HS256 with a shared secret, or RS256 with a
// key pair). Anything else — no token, alg none, another algorithm, a bad signature, expiry,
// a missing claim — is a 401. There is no fallback user. Verified tokens are cached (bounded,
// by their exact text, until their exp): a client sends the same token with every request, and
// verifying it again each time was measured at about 4% of the API's CPU per GET. A failure is
// never cached; nothing a token proves is widened by the cache, since the membership, tenant
// and permission are checked by SQL on every request anyway.
// Keys rotate with an overlap (runbooks/key-rotation.md): a ring of verification keys by key id
// (JWT_SECRETS, JWT_PUBLIC_KEY_FILES; core/keyRing.ts), the primary signs and names itself in the
// token's `kid` header, and a token is verified with the key its kid names. A token without a kid
// (signed before key ids) is verified with the key `default`, the one JWT_SECRET or
// JWT_PUBLIC_KEY_FILE name. For RS256, /.well-known/jwks.json publishes the ring's public keys.
import { createPrivateKey, createPublicKey, createSecretKey, type KeyObject } from "node:crypto";
import { readFileSync } from "node:fs";
import jwt from "jsonwebtoken";
import { UnauthorizedError } from "../core/errors.ts";
import { isUuid } from "../core/ids.ts";
import { LEGACY_KEY_ID, singleKeyRing, type KeyRing } from "../core/keyRing.ts";

export type TokenKeys = {
  algorithm: "HS256" | "RS256";
  // KeyObjects, built once: given a string, jsonwebtoken builds a key object on every call
  // (a third of the API's CPU per request in the first benchmark).
  signingKey?: KeyObject;
  /** The kid of the signing key (the ring's primary). */
  signingKid: string;
  /** Every key a token may be signed with, by kid. */
  verifyKeys: ReadonlyMap<string, KeyObject>;
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

/** HS256 keys from one secret (the ring of one key, `default`) or a ring of secrets. */
export function hs256Keys(secrets: string | KeyRing<string>, issuer = "rls-service-shop", ttlSeconds = 3600, tokenCacheMax?: number): TokenKeys {
  const jwtSecrets = typeof secrets === "string" ? singleKeyRing(secrets) : secrets;
  return loadTokenKeys({ jwtAlgorithm: "HS256", jwtSecrets, jwtIssuer: issuer, jwtTtlSeconds: ttlSeconds, tokenCacheMax });
}

export function loadTokenKeys(c: {
  jwtAlgorithm: "HS256" | "RS256"; jwtSecrets?: KeyRing<string>; jwtPublicKeyFiles?: KeyRing<string>; jwtPrivateKeyFile?: string; jwtIssuer: string; jwtTtlSeconds: number;
  tokenCacheMax?: number;
}): TokenKeys {
  const common = { issuer: c.jwtIssuer, ttlSeconds: c.jwtTtlSeconds, cache: tokenCache(c.tokenCacheMax) };
  if (c.jwtAlgorithm === "HS256") {
    if (!c.jwtSecrets) throw new Error("JWT_SECRET (or JWT_SECRETS) is required for HS256");
    const verifyKeys = new Map([...c.jwtSecrets.keys].map(([kid, secret]) => [kid, createSecretKey(Buffer.from(secret, "utf8"))]));
    return { algorithm: "HS256", signingKey: verifyKeys.get(c.jwtSecrets.primary), signingKid: c.jwtSecrets.primary, verifyKeys, ...common };
  }
  if (!c.jwtPublicKeyFiles) throw new Error("JWT_PUBLIC_KEY_FILE (or JWT_PUBLIC_KEY_FILES) is required for RS256");
  const verifyKeys = new Map([...c.jwtPublicKeyFiles.keys].map(([kid, file]) => [kid, createPublicKey(readFileSync(file))]));
  const kid = c.jwtPublicKeyFiles.primary;
  const signingKey = c.jwtPrivateKeyFile ? createPrivateKey(readFileSync(c.jwtPrivateKeyFile)) : undefined;
  // The signer must be the primary's pair, or the tokens it issues name a kid that verifies nothing.
  if (signingKey && !createPublicKey(signingKey).equals(verifyKeys.get(kid)!)) {
    throw new Error(`JWT_PRIVATE_KEY_FILE is not the private key of the primary public key (${kid}): sign with the primary's pair (runbooks/key-rotation.md)`);
  }
  return { algorithm: "RS256", signingKey, signingKid: kid, verifyKeys, ...common };
}

export function signAccessToken(keys: TokenKeys, identity: Identity, ttlSeconds = keys.ttlSeconds): string {
  if (!keys.signingKey) throw new Error("No signing key configured (RS256 needs JWT_PRIVATE_KEY_FILE to issue tokens)");
  const claims: Record<string, unknown> = {};
  if (identity.tenantId) claims.tid = identity.tenantId;
  return jwt.sign(claims, keys.signingKey, {
    algorithm: keys.algorithm,
    keyid: keys.signingKid,
    subject: identity.userId,
    issuer: keys.issuer,
    expiresIn: ttlSeconds,
  });
}

/** The JSON Web Key Set of an RS256 ring's public keys (RFC 7517), each with its kid; none for HS256, whose keys are secret. */
export function jwks(keys: TokenKeys): { keys: Record<string, unknown>[] } {
  if (keys.algorithm !== "RS256") return { keys: [] };
  return { keys: [...keys.verifyKeys].map(([kid, key]) => ({ ...key.export({ format: "jwk" }), kid, alg: "RS256", use: "sig" })) };
}

/** The key a token's header names by its kid; a token without one is verified with `default` (signed before key ids). */
function keyFor(keys: TokenKeys, token: string): KeyObject | undefined {
  let kid: unknown;
  try {
    kid = (JSON.parse(Buffer.from(token.slice(0, token.indexOf(".")), "base64url").toString("utf8")) as { kid?: unknown }).kid;
  } catch {
    return undefined;
  }
  if (kid === undefined) return keys.verifyKeys.get(LEGACY_KEY_ID);
  return typeof kid === "string" ? keys.verifyKeys.get(kid) : undefined;
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
  // An unknown kid (a retired key, or none of ours) is an invalid token, as a bad signature is.
  const key = keyFor(keys, token);
  if (!key) throw new UnauthorizedError("INVALID_TOKEN", "The access token is invalid.");
  let payload: jwt.JwtPayload;
  try {
    const decoded = jwt.verify(token, key, { algorithms: [keys.algorithm], issuer: keys.issuer });
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
