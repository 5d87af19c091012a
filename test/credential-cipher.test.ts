// The credentials' envelope encryption (server/core/credentialCipher.ts) and the key rings every
// key is configured as (server/core/keyRing.ts, server/core/config.ts): a round trip, every kind of
// tampering refused, old keys still decrypting while a new one is primary, and rings that cannot
// work refused at boot with a message that names the variable and never a key.
import { randomBytes } from "node:crypto";
import { describe, expect, it } from "vitest";
import { CredentialDecryptError, decryptCredential, encryptCredential, envelopeKeyId } from "../server/core/credentialCipher.ts";
import { ConfigError, loadConfig } from "../server/core/config.ts";
import { formatKeyRing, parseKeyRing, type KeyRing } from "../server/core/keyRing.ts";

const key = () => randomBytes(32);
const ring = (primary: string, ...ids: string[]): KeyRing<Buffer> => ({ primary, keys: new Map([primary, ...ids].map((id) => [id, key()])) });
const tenantA = { tenantId: "8d1e5a8c-1111-4000-8000-000000000001", provider: "stripe" };
const tenantB = { tenantId: "8d1e5a8c-2222-4000-8000-000000000002", provider: "stripe" };
const secret = "sk_live_51HxQ7cJ0RotateMe0123456789";

const refusal = (fn: () => unknown) => {
  try {
    fn();
  } catch (error) {
    return error;
  }
  throw new Error("decrypted, but should have been refused");
};

/** The envelope with one bit flipped in its part `index` (2 wrap nonce, 3 wrapped key, 4 data nonce, 5 ciphertext). */
function flipBit(envelope: string, index: number, bit = 0): string {
  const parts = envelope.split(".");
  const bytes = Buffer.from(parts[index], "base64url");
  bytes[bit >> 3] ^= 1 << (bit & 7);
  parts[index] = bytes.toString("base64url");
  return parts.join(".");
}

describe("a credential envelope", () => {
  const keys = ring("k2");

  it("round trips, names its key id, and holds neither the secret nor the key", () => {
    const envelope = encryptCredential(keys, tenantA, secret);
    expect(decryptCredential(keys, tenantA, envelope)).toBe(secret);
    expect(envelopeKeyId(envelope)).toBe("k2");
    expect(envelope).toMatch(/^v1\.k2(\.[A-Za-z0-9_-]+){4}$/);
    expect(envelope).not.toContain(secret);
    expect(Buffer.from(envelope.split(".").slice(2).join(""), "base64url").includes(keys.keys.get("k2")!)).toBe(false);
    // A new data key and nonces every time: the same secret never encrypts alike.
    expect(encryptCredential(keys, tenantA, secret)).not.toBe(envelope);
    expect(decryptCredential(keys, tenantA, encryptCredential(keys, tenantA, "ünïcødé 🚗 secret"))).toBe("ünïcødé 🚗 secret");
  });

  it("with a flipped bit anywhere (nonces, wrapped key, ciphertext, tag) fails authentication", () => {
    const envelope = encryptCredential(keys, tenantA, secret);
    const lastBit = (i: number) => Buffer.from(envelope.split(".")[i], "base64url").length * 8 - 1;
    for (const part of [2, 3, 4, 5]) {
      for (const bit of [0, lastBit(part)]) {
        const error = refusal(() => decryptCredential(keys, tenantA, flipBit(envelope, part, bit)));
        expect(error, `part ${part} bit ${bit}`).toBeInstanceOf(CredentialDecryptError);
        expect((error as CredentialDecryptError).reason).toBe("authentication");
      }
    }
  });

  it("copied to another tenant's row fails to decrypt", () => {
    const envelope = encryptCredential(keys, tenantA, secret);
    expect(refusal(() => decryptCredential(keys, tenantB, envelope))).toMatchObject({ reason: "authentication" });
  });

  it("copied to another provider of the same tenant fails to decrypt", () => {
    const envelope = encryptCredential(keys, tenantA, secret);
    expect(refusal(() => decryptCredential(keys, { ...tenantA, provider: "sms-gateway" }, envelope))).toMatchObject({ reason: "authentication" });
  });

  it("relabelled with another key id of the ring fails to decrypt", () => {
    const both = ring("k2", "k1");
    const envelope = encryptCredential(both, tenantA, secret);
    expect(refusal(() => decryptCredential(both, tenantA, envelope.replace(/^v1\.k2\./, "v1.k1.")))).toMatchObject({ reason: "authentication" });
  });

  it("under a key the ring does not hold, or not an envelope at all, is refused by name", () => {
    const envelope = encryptCredential(keys, tenantA, secret);
    expect(refusal(() => decryptCredential(ring("k3"), tenantA, envelope))).toMatchObject({ reason: "unknown-key", keyId: "k2" });
    expect(refusal(() => decryptCredential(keys, tenantA, "plaintext-secret"))).toMatchObject({ reason: "malformed" });
    expect(refusal(() => decryptCredential(keys, tenantA, envelope.split(".").slice(0, 5).join(".")))).toMatchObject({ reason: "malformed" });
  });

  it("written under an old key still decrypts while a new key is primary; new ones are written under the new key", () => {
    const old: KeyRing<Buffer> = ring("k1");
    const written = encryptCredential(old, tenantA, secret);
    const rotated: KeyRing<Buffer> = { primary: "k2", keys: new Map([["k2", key()], ["k1", old.keys.get("k1")!]]) };
    expect(decryptCredential(rotated, tenantA, written)).toBe(secret);
    const fresh = encryptCredential(rotated, tenantA, secret);
    expect(envelopeKeyId(fresh)).toBe("k2");
    // Once k1 leaves the ring, what it encrypted no longer decrypts: it must be rotated first.
    expect(refusal(() => decryptCredential({ primary: "k2", keys: new Map([["k2", rotated.keys.get("k2")!]]) }, tenantA, written))).toMatchObject({ reason: "unknown-key", keyId: "k1" });
  });
});

describe("a key ring", () => {
  const hex = () => randomBytes(32).toString("hex");
  const anyValue = (v: string) => v;

  it("reads named keys with one primary, and writes back what it read", () => {
    const text = `k2=${"b".repeat(40)},*k3=${"c".repeat(40)},k1=${"a".repeat(40)}`;
    const r = parseKeyRing("JWT_SECRETS", text, anyValue);
    expect(r.primary).toBe("k3");
    expect([...r.keys.keys()]).toEqual(["k2", "k3", "k1"]);
    expect(formatKeyRing(r)).toBe(text);
  });

  it("refuses what cannot work, naming the variable and the entry and never the key", () => {
    const k = hex();
    const cases: [string, RegExp][] = [
      [`k1=${k}`, /CREDENTIALS_KEYS: no key is marked primary/],
      [`*k1=${k},*k2=${hex()}`, /CREDENTIALS_KEYS: 2 keys are marked primary \(k1, k2\)/],
      [`*k1=${k},k1=${hex()}`, /CREDENTIALS_KEYS: the key id k1 appears twice/],
      [`*k1`, /CREDENTIALS_KEYS: entry 1 is not id=key/],
      [`*bad.id=${k}`, /CREDENTIALS_KEYS: entry 1 has the key id "bad\.id"/],
      [`*k1=${k.slice(2)}`, /CREDENTIALS_KEYS: key k1: must be 64 hex characters/],
    ];
    for (const [text, message] of cases) {
      const error = refusal(() => loadConfig({ CREDENTIALS_KEYS: text }));
      expect(error, text).toBeInstanceOf(ConfigError);
      expect((error as Error).message, text).toMatch(message);
      expect((error as Error).message).not.toContain(k.slice(2, 30));
    }
  });

  it("production refuses to boot without CREDENTIALS_KEYS, saying how to make one", () => {
    const production = { NODE_ENV: "production", DATABASE_URL: "postgres://a/b", DATABASE_OWNER_URL: "postgres://c/d", CONTEXT_KEY: hex(), JWT_SECRET: "s".repeat(40) };
    expect(() => loadConfig(production)).toThrow(/CREDENTIALS_KEYS: required in production.*openssl rand -hex 32/);
    const config = loadConfig({ ...production, CREDENTIALS_KEYS: `*2025-07=${hex()}` });
    expect(config.credentialsKeys?.primary).toBe("2025-07");
  });

  it("JWT_SECRET is the ring of one key `default`; JWT_SECRETS a ring; not both; production needs one", () => {
    expect(loadConfig({ JWT_SECRET: "s".repeat(40) }).jwtSecrets).toEqual({ primary: "default", keys: new Map([["default", "s".repeat(40)]]) });
    expect(loadConfig({ JWT_SECRETS: `*new=${"n".repeat(40)},default=${"s".repeat(40)}` }).jwtSecrets?.primary).toBe("new");
    expect(() => loadConfig({ JWT_SECRET: "s".repeat(40), JWT_SECRETS: `*new=${"n".repeat(40)}` })).toThrow(/JWT_SECRETS: set it or JWT_SECRET, not both/);
    expect(() => loadConfig({ JWT_SECRETS: `*new=short` })).toThrow(/JWT_SECRETS: key new: must be 32 characters or more/);
    expect(() => loadConfig({ JWT_SECRET: "short" })).toThrow(/JWT_SECRET: must be 32 characters or more/);
    expect(() => loadConfig({ NODE_ENV: "production", CREDENTIALS_KEYS: `*k=${hex()}` })).toThrow(/JWT_SECRET \(or the key ring JWT_SECRETS\): required in production/);
    expect(() => loadConfig({ JWT_ALGORITHM: "RS256" })).toThrow(/JWT_PUBLIC_KEY_FILE \(or the key ring JWT_PUBLIC_KEY_FILES\): required with RS256/);
  });
});
