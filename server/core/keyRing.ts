// Key rings: every key the service holds rotates the same way (runbooks/key-rotation.md). A ring
// is named keys, one of them primary: the primary signs or encrypts, every key of the ring
// verifies or decrypts. A new key is therefore added to every instance first, becomes the primary
// once all of them hold it, and leaves only when nothing it signed or encrypted is still in use:
// no instance ever meets a signature or ciphertext whose key it lacks.
// One environment variable holds a ring as comma-separated `id=value` entries, the primary marked
// with a leading `*`, e.g. CREDENTIALS_KEYS="*2025-07=<64 hex>,2025-01=<64 hex>". A single-key
// variable of earlier releases (JWT_SECRET, AUDIT_ANCHOR_KEY) is the ring of one key `default`.

export type KeyRing<T> = { readonly primary: string; readonly keys: ReadonlyMap<string, T> };

/** Key ids: short, printable, and free of the separators the ring and the ciphertexts use (`,`, `=`, `*`, `.`). */
export const keyIdPattern = /^[A-Za-z0-9_-]{1,32}$/;

/** The id of the one key a single-key variable (JWT_SECRET, AUDIT_ANCHOR_KEY, ...) names. */
export const LEGACY_KEY_ID = "default";

/** A ring that cannot be used; the message names the variable and the entry, never a key. */
export class KeyRingError extends Error {}

/**
 * Parses `text` (the value of variable `name`). `parseValue` turns one entry's value into the key
 * and throws an Error saying what is wrong with it (its message must not quote the value).
 */
export function parseKeyRing<T>(name: string, text: string, parseValue: (value: string) => T): KeyRing<T> {
  const keys = new Map<string, T>();
  const primaries: string[] = [];
  const entries = text.split(",").map((e) => e.trim());
  for (const [i, entry] of entries.entries()) {
    const at = entry.indexOf("=");
    if (at < 0) throw new KeyRingError(`${name}: entry ${i + 1} is not id=key (write "*new-id=key,old-id=key"; * marks the primary)`);
    const marked = entry.startsWith("*");
    const id = entry.slice(marked ? 1 : 0, at).trim();
    if (!keyIdPattern.test(id)) throw new KeyRingError(`${name}: entry ${i + 1} has the key id "${id.slice(0, 40)}"; ids are 1-32 letters, digits, _ or -`);
    if (keys.has(id)) throw new KeyRingError(`${name}: the key id ${id} appears twice`);
    try {
      keys.set(id, parseValue(entry.slice(at + 1).trim()));
    } catch (error) {
      throw new KeyRingError(`${name}: key ${id}: ${(error as Error).message}`);
    }
    if (marked) primaries.push(id);
  }
  if (primaries.length !== 1) {
    throw new KeyRingError(`${name}: ${primaries.length === 0 ? "no key is marked primary" : `${primaries.length} keys are marked primary (${primaries.join(", ")})`}; mark exactly one with a leading * (*id=key)`);
  }
  return { primary: primaries[0], keys };
}

/** The ring of one key, `default`, for a single-key variable. */
export function singleKeyRing<T>(key: T): KeyRing<T> {
  return { primary: LEGACY_KEY_ID, keys: new Map([[LEGACY_KEY_ID, key]]) };
}

/** The ring written back in its own syntax (to hand it to a worker process or an operator's shell). */
export function formatKeyRing(ring: KeyRing<string>): string {
  return [...ring.keys].map(([id, value]) => `${id === ring.primary ? "*" : ""}${id}=${value}`).join(",");
}

/** The primary key of a ring. */
export function primaryKey<T>(ring: KeyRing<T>): T {
  return ring.keys.get(ring.primary)!;
}
