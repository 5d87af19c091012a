// The verified-token cache: it answers only for a token it verified, never past the token's exp,
// never for a failure, and never holds more than its bound.
import { randomUUID } from "node:crypto";
import jwt from "jsonwebtoken";
import { afterEach, describe, expect, it, vi } from "vitest";
import { UnauthorizedError } from "../server/core/errors.ts";
import { hs256Keys, signAccessToken, verifyAccessToken, type TokenKeys } from "../server/auth/tokens.ts";

const secret = "token-cache-secret-token-cache-secret-0123";

function refusal(keys: TokenKeys, token: string): string | undefined {
  try {
    verifyAccessToken(keys, token);
    return undefined;
  } catch (error) {
    expect(error).toBeInstanceOf(UnauthorizedError);
    expect((error as UnauthorizedError).status).toBe(401);
    return (error as UnauthorizedError).code;
  }
}

afterEach(() => {
  vi.useRealTimers();
});

describe("verified-token cache", () => {
  it("keeps a verified token and answers it with the same identity", () => {
    const keys = hs256Keys(secret);
    const userId = randomUUID();
    const token = signAccessToken(keys, { userId });
    expect(verifyAccessToken(keys, token).userId).toBe(userId);
    expect(keys.cache!.entries.size).toBe(1);
    expect(verifyAccessToken(keys, token).userId).toBe(userId);
    expect(keys.cache!.entries.size).toBe(1);
  });

  it("answers 401 TOKEN_EXPIRED for a cached token once its exp has passed, and forgets it", () => {
    vi.useFakeTimers({ toFake: ["Date"] });
    vi.setSystemTime(new Date("2030-01-01T00:00:00Z"));
    const keys = hs256Keys(secret, "rls-service-shop", 60);
    const token = signAccessToken(keys, { userId: randomUUID() });
    expect(refusal(keys, token)).toBeUndefined();
    expect(keys.cache!.entries.has(token)).toBe(true);

    vi.setSystemTime(new Date("2030-01-01T00:00:59Z"));
    expect(refusal(keys, token)).toBeUndefined();
    vi.setSystemTime(new Date("2030-01-01T00:01:00Z")); // exp itself: expired, as jsonwebtoken has it
    expect(refusal(keys, token)).toBe("TOKEN_EXPIRED");
    expect(keys.cache!.entries.has(token)).toBe(false);
    expect(refusal(keys, token)).toBe("TOKEN_EXPIRED");
  });

  it("never caches a token with a bad signature, not even next to a cached good one", () => {
    const keys = hs256Keys(secret);
    const userId = randomUUID();
    const good = signAccessToken(keys, { userId });
    verifyAccessToken(keys, good);

    const forged = signAccessToken(hs256Keys("another-secret-another-secret-another-0123"), { userId });
    const [head, body] = good.split(".");
    const tampered = `${head}.${body}.${"A".repeat(43)}`;
    const otherUser = jwt.sign({}, "another-secret-another-secret-another-0123", { algorithm: "HS256", subject: randomUUID(), issuer: keys.issuer, expiresIn: 60 });
    for (const bad of [forged, tampered, otherUser]) {
      expect(refusal(keys, bad)).toBe("INVALID_TOKEN");
      expect(refusal(keys, bad)).toBe("INVALID_TOKEN");
      expect(keys.cache!.entries.has(bad)).toBe(false);
    }
    expect([...keys.cache!.entries.keys()]).toEqual([good]);
  });

  it("never caches a correctly signed token that fails a claim check", () => {
    const keys = hs256Keys(secret);
    const notUuid = jwt.sign({}, secret, { algorithm: "HS256", subject: "not-a-uuid", issuer: keys.issuer, expiresIn: 60 });
    const wrongIssuer = jwt.sign({}, secret, { algorithm: "HS256", subject: randomUUID(), issuer: "someone-else", expiresIn: 60 });
    for (const bad of [notUuid, wrongIssuer]) {
      expect(refusal(keys, bad)).toBe("INVALID_TOKEN");
      expect(refusal(keys, bad)).toBe("INVALID_TOKEN");
    }
    expect(keys.cache!.entries.size).toBe(0);
  });

  it("holds at most its bound, the oldest leaving first, and still verifies what left", () => {
    const keys = hs256Keys(secret, "rls-service-shop", 3600, 3);
    const tokens = Array.from({ length: 5 }, () => signAccessToken(keys, { userId: randomUUID() }));
    for (const t of tokens) verifyAccessToken(keys, t);
    expect(keys.cache!.entries.size).toBe(3);
    expect([...keys.cache!.entries.keys()]).toEqual(tokens.slice(2));
    expect(refusal(keys, tokens[0])).toBeUndefined();
    expect(keys.cache!.entries.size).toBe(3);
  });

  it("is off with a bound of 0", () => {
    const keys = hs256Keys(secret, "rls-service-shop", 3600, 0);
    expect(keys.cache).toBeUndefined();
    const token = signAccessToken(keys, { userId: randomUUID() });
    expect(refusal(keys, token)).toBeUndefined();
  });

  it("does not let one key set's cache vouch for another's tokens", () => {
    const a = hs256Keys(secret);
    const b = hs256Keys("another-secret-another-secret-another-0123");
    const token = signAccessToken(a, { userId: randomUUID() });
    verifyAccessToken(a, token);
    expect(refusal(b, token)).toBe("INVALID_TOKEN");
  });
});
