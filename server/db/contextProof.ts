// The API's proof to PostgreSQL of who a request is (policies/context.sql). For each request
// the API signs what it is about to ask the database for (the user, the tenant refs, the token
// scope, the request id, the permission) with HMAC-SHA256 under CONTEXT_KEY, with an expiry and
// a nonce. app.open_tenant_context recomputes the MAC with its copy of the key, refuses an
// expired proof and records the nonce, so a proof opens one transaction, once. Without the key
// nothing opens a context: not a leaked DATABASE_URL, not an injected set_config.
import { createHmac, randomUUID } from "node:crypto";

export type ContextProof = { expiresAt: number; nonce: string; proof: string };

const SEPARATOR = "\x1f";
const REF_SEPARATOR = "\x1e";

let contextKey: Buffer | undefined;
let proofTtlMs = 60_000;

/** The key proofs are signed with (hex, 32 to 64 bytes), and how long a proof stays valid. */
export function useContextKey(hexKey: string, ttlSeconds = 60): void {
  contextKey = parseContextKey(hexKey);
  proofTtlMs = ttlSeconds * 1000;
}

export function parseContextKey(hexKey: string): Buffer {
  if (!/^([0-9a-fA-F]{2}){32,64}$/.test(hexKey)) throw new Error("CONTEXT_KEY must be 64 to 128 hex characters (openssl rand -hex 32)");
  return Buffer.from(hexKey, "hex");
}

/** Signs one proof of `kind` over `fields` (null and undefined sign as empty). */
export function signProof(kind: "ctx" | "login", fields: readonly (string | null | undefined)[]): ContextProof {
  if (!contextKey) throw new Error("No context key configured (useContextKey)");
  const expiresAt = Date.now() + proofTtlMs;
  // randomUUID draws from a cached entropy pool (122 random bits); randomBytes per call was
  // 2% of the API's CPU per request in a profile.
  const nonce = randomUUID();
  const parts = [kind, ...fields.map((f) => f ?? ""), String(expiresAt), nonce];
  // Fields never hold the separators (uuids, slugs, sane request ids, permission names); a
  // field that did could make two different argument lists sign alike, so refuse it.
  if (parts.some((p) => p.includes(SEPARATOR))) {
    throw new Error("context proof field holds a separator");
  }
  return { expiresAt, nonce, proof: createHmac("sha256", contextKey).update(parts.join(SEPARATOR), "utf8").digest("hex") };
}

/** The proof for app.open_tenant_context's arguments, in its order. */
export function tenantContextProof(a: {
  userId: string; tenantRefs: readonly string[]; scope: string | null; requestId: string | null; permission: string | null; forRow: boolean;
}): ContextProof {
  if (a.tenantRefs.some((r) => r.includes(REF_SEPARATOR))) throw new Error("context proof field holds a separator");
  // uuids sign in PostgreSQL's text form (lower case), which is what the function sees.
  return signProof("ctx", [a.userId.toLowerCase(), a.tenantRefs.join(REF_SEPARATOR), a.scope?.toLowerCase(), a.requestId, a.permission, a.forRow ? "1" : "0"]);
}

/** The proof for app.record_login's arguments. */
export function loginProof(userId: string, succeeded: boolean, requestId: string | null): ContextProof {
  return signProof("login", [userId.toLowerCase(), succeeded ? "1" : "0", requestId]);
}

/** HMAC of 'fingerprint': equals app.context_key_fingerprint() when the database holds this key. */
export function contextKeyFingerprint(hexKey?: string): string {
  const key = hexKey ? parseContextKey(hexKey) : contextKey;
  if (!key) throw new Error("No context key configured (useContextKey)");
  return createHmac("sha256", key).update("fingerprint", "utf8").digest("hex");
}

/**
 * Installs the context key in the database (as the owner role): from then on only proofs
 * signed with it open a context. Idempotent. Run by `npm start` after the policies, and by
 * `npm run cli -- context-key install` for a database the API does not set up itself.
 */
export async function installContextKey(owner: { unsafe: (q: string, p: string[]) => Promise<unknown> }, hexKey: string): Promise<void> {
  parseContextKey(hexKey);
  await owner.unsafe("select app.install_context_key(decode($1, 'hex'))", [hexKey]);
}
