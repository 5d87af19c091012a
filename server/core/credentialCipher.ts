// Envelope encryption of the tenants' third-party credentials, in the application (node:crypto
// AES-256-GCM), so neither a database dump nor the database's own logs or audit hold a usable
// secret, and no key ever reaches the database. Each credential gets a random data key that
// encrypts the secret; the primary key of the ring (CREDENTIALS_KEYS, core/keyRing.ts) encrypts
// the data key. The stored envelope is one text value that carries everything but the key:
//   v1.<key id>.<wrap nonce>.<wrapped data key+tag>.<data nonce>.<ciphertext+tag>  (base64url)
// Both encryptions authenticate the tenant and the provider as additional data, and the wrap also
// its key id: an envelope copied to another tenant's row or another provider, or relabelled with
// another key id, fails to decrypt. Rotation (ops/credentialRotation.ts) decrypts with whichever
// key of the ring the envelope names and encrypts again under the primary, with a new data key.
import { createCipheriv, createDecipheriv, randomBytes } from "node:crypto";
import type { KeyRing } from "./keyRing.ts";

export type CredentialScope = { tenantId: string; provider: string };

const VERSION = "v1";
const NONCE_BYTES = 12;
const TAG_BYTES = 16;
const KEY_BYTES = 32;
const SEPARATOR = "\x1f";

/** One value of CREDENTIALS_KEYS: 32 bytes as 64 hex characters. */
export function parseCredentialKey(value: string): Buffer {
  if (!/^[0-9a-fA-F]{64}$/.test(value)) throw new Error("must be 64 hex characters (openssl rand -hex 32)");
  return Buffer.from(value, "hex");
}

/** The ring with its keys as bytes (config holds them as the hex they were written in). */
export function credentialKeys(ring: KeyRing<string>): KeyRing<Buffer> {
  return { primary: ring.primary, keys: new Map([...ring.keys].map(([id, hex]) => [id, parseCredentialKey(hex)])) };
}

/** Why an envelope did not decrypt: its key is not in this ring, it is not an envelope, or it fails authentication (tampered, or moved to another tenant or provider). */
export class CredentialDecryptError extends Error {
  constructor(readonly reason: "unknown-key" | "malformed" | "authentication", readonly keyId: string | undefined, message: string) {
    super(message);
  }
}

const dataAad = (s: CredentialScope) => Buffer.from(["rls-service-shop/credential", VERSION, s.tenantId, s.provider].join(SEPARATOR), "utf8");
const wrapAad = (s: CredentialScope, keyId: string) => Buffer.from(["rls-service-shop/credential-key", VERSION, s.tenantId, s.provider, keyId].join(SEPARATOR), "utf8");

function seal(key: Buffer, plaintext: Buffer, aad: Buffer): [Buffer, Buffer] {
  const nonce = randomBytes(NONCE_BYTES);
  const cipher = createCipheriv("aes-256-gcm", key, nonce, { authTagLength: TAG_BYTES }).setAAD(aad);
  return [nonce, Buffer.concat([cipher.update(plaintext), cipher.final(), cipher.getAuthTag()])];
}

function open(key: Buffer, nonce: Buffer, sealed: Buffer, aad: Buffer): Buffer {
  const decipher = createDecipheriv("aes-256-gcm", key, nonce, { authTagLength: TAG_BYTES }).setAAD(aad);
  decipher.setAuthTag(sealed.subarray(sealed.length - TAG_BYTES));
  return Buffer.concat([decipher.update(sealed.subarray(0, sealed.length - TAG_BYTES)), decipher.final()]);
}

const b64 = (b: Buffer) => b.toString("base64url");

/** Encrypts `secret` for one tenant's provider under the ring's primary key; returns the envelope. */
export function encryptCredential(ring: KeyRing<Buffer>, scope: CredentialScope, secret: string): string {
  const dataKey = randomBytes(KEY_BYTES);
  try {
    const [dataNonce, ciphertext] = seal(dataKey, Buffer.from(secret, "utf8"), dataAad(scope));
    const [wrapNonce, wrapped] = seal(ring.keys.get(ring.primary)!, dataKey, wrapAad(scope, ring.primary));
    return [VERSION, ring.primary, b64(wrapNonce), b64(wrapped), b64(dataNonce), b64(ciphertext)].join(".");
  } finally {
    dataKey.fill(0);
  }
}

/** The key id an envelope names (undefined when it is not an envelope). */
export function envelopeKeyId(envelope: string): string | undefined {
  const parts = envelope.split(".");
  return parts.length === 6 && parts[0] === VERSION ? parts[1] : undefined;
}

/** Decrypts an envelope written for `scope` with whichever key of the ring it names. */
export function decryptCredential(ring: KeyRing<Buffer>, scope: CredentialScope, envelope: string): string {
  const parts = envelope.split(".");
  const keyId = envelopeKeyId(envelope);
  if (keyId === undefined) throw new CredentialDecryptError("malformed", undefined, "not a credential envelope (v1)");
  const key = ring.keys.get(keyId);
  if (!key) throw new CredentialDecryptError("unknown-key", keyId, `encrypted under key ${keyId}, which this ring does not hold`);
  const [wrapNonce, wrapped, dataNonce, ciphertext] = parts.slice(2).map((p) => Buffer.from(p, "base64url"));
  if (wrapNonce.length !== NONCE_BYTES || dataNonce.length !== NONCE_BYTES || wrapped.length !== KEY_BYTES + TAG_BYTES || ciphertext.length < TAG_BYTES) {
    throw new CredentialDecryptError("malformed", keyId, "the envelope's parts have the wrong lengths");
  }
  let dataKey: Buffer | undefined;
  try {
    dataKey = open(key, wrapNonce, wrapped, wrapAad(scope, keyId));
    return open(dataKey, dataNonce, ciphertext, dataAad(scope)).toString("utf8");
  } catch {
    throw new CredentialDecryptError("authentication", keyId, "the envelope fails authentication (changed, or not written for this tenant and provider)");
  } finally {
    dataKey?.fill(0);
  }
}
