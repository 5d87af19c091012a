// The API's proof to PostgreSQL of who a request is and what it may do (policies/proofs.sql,
// policies/openers.sql). For each transaction the API signs what it is about to ask the database
// for (the user, the tenant refs, the token scope, the request id, the permission, read or
// write) with HMAC-SHA256 under CONTEXT_KEY, with an expiry, a nonce and a replay guard; the
// database recomputes the MAC with its copy of the key, judges the expiry by its clock and uses
// the guard once:
//   * s:<stream>: the connection's stream (a sequence the database keeps; every write, and reads
//     behind PgBouncer with CONTEXT_READ_GUARD=nonce): the expiry must exceed the stream's last,
//     so a proof opens once, committed or rolled back, on any connection;
//   * c:<session>:<n>: a read bound to this connection (app.bind_session()), the n-th on it;
//   * e: a read guarded by its short expiry alone (behind PgBouncer, CONTEXT_READ_GUARD=expiry).
// Without the key nothing opens a context: not a leaked DATABASE_URL, not an injected set_config.
import { createHmac, randomUUID } from "node:crypto";
import type { LoginThrottle as Limits } from "../core/config.ts";

export type ContextProof = { expiresAt: number; nonce: string; proof: string; guard: string };
export type ProofKind = "ctx" | "user" | "platform" | "login" | "login-lookup" | "login-gate" | "login-outcome" | "invitation-lookup" | "invitation-accept" | "stream";

const SEPARATOR = "\x1f";
const REF_SEPARATOR = "\x1e";

let contextKey: Buffer | undefined;
let contextKeyIdOf = "";
let proofTtlMs = 60_000;

/** The key proofs are signed with (hex, 32 to 64 bytes), and how long a proof stays valid. */
export function useContextKey(hexKey: string, ttlSeconds = 60): void {
  contextKey = parseContextKey(hexKey);
  contextKeyIdOf = contextKeyId(hexKey);
  proofTtlMs = ttlSeconds * 1000;
}

export function parseContextKey(hexKey: string): Buffer {
  if (!/^([0-9a-fA-F]{2}){32,64}$/.test(hexKey)) throw new Error("CONTEXT_KEY must be 64 to 128 hex characters (openssl rand -hex 32)");
  return Buffer.from(hexKey, "hex");
}

/** The default expiry of a proof signed now (epoch ms). */
export function defaultExpiry(): number {
  return Date.now() + proofTtlMs;
}

/**
 * Signs one proof of `kind` over `fields` (null and undefined sign as empty), for a read or a
 * write, with its replay guard and expiry (epoch ms; a stream's must increase on its connection).
 */
export function signProof(kind: ProofKind, writes: boolean, guard: string, fields: readonly (string | null | undefined)[], expiresAt = defaultExpiry()): ContextProof {
  if (!contextKey) throw new Error("No context key configured (useContextKey)");
  // randomUUID draws from a cached entropy pool (122 random bits); randomBytes per call was
  // 2% of the API's CPU per request in a profile.
  const nonce = randomUUID();
  const parts = [kind, writes ? "w" : "r", guard, ...fields.map((f) => f ?? ""), String(expiresAt), nonce];
  // Fields never hold the separators (uuids, slugs, sane request ids, permission names); a
  // field that did could make two different argument lists sign alike, so refuse it.
  if (parts.some((p) => p.includes(SEPARATOR))) {
    throw new Error("context proof field holds a separator");
  }
  // '<key id>.<MAC>': the database picks the key by its id, so proofs under the old and the new
  // key both open while a rotation overlaps (runbooks/key-rotation.md).
  return { expiresAt, nonce, guard, proof: `${contextKeyIdOf}.${createHmac("sha256", contextKey).update(parts.join(SEPARATOR), "utf8").digest("hex")}` };
}

export type TenantContextArgs = {
  userId: string; tenantRefs: readonly string[]; scope: string | null; requestId: string | null; permission: string; forRow: boolean; writes: boolean;
  /** The feature the route needs (null or absent: none). */
  feature?: string | null;
};

/** The proof for app.open_tenant_context's arguments, in its order; a feature, when named, signs last. */
export function tenantContextProof(a: TenantContextArgs, guard: string, expiresAt?: number): ContextProof {
  if (a.tenantRefs.some((r) => r.includes(REF_SEPARATOR))) throw new Error("context proof field holds a separator");
  // uuids sign in PostgreSQL's text form (lower case), which is what the function sees.
  const fields = [a.userId.toLowerCase(), a.tenantRefs.join(REF_SEPARATOR), a.scope?.toLowerCase(), a.requestId, a.permission, a.forRow ? "1" : "0"];
  // No feature: no field at all, so a proof of a route without one signs as it did before features.
  return signProof("ctx", a.writes, guard, a.feature === null || a.feature === undefined ? fields : [...fields, a.feature], expiresAt);
}

/** The proof for app.open_user_context (a read of the user's own profile and memberships). */
export function userContextProof(userId: string, requestId: string | null, guard: string, expiresAt?: number): ContextProof {
  return signProof("user", false, guard, [userId.toLowerCase(), requestId], expiresAt);
}

/** The proof for app.open_platform_context (a platform admin's read or write). */
export function platformContextProof(userId: string, requestId: string | null, writes: boolean, guard: string, expiresAt?: number): ContextProof {
  return signProof("platform", writes, guard, [userId.toLowerCase(), requestId], expiresAt);
}

/** The proof for app.find_login (a write's guard: a stream). */
export function loginLookupProof(email: string, guard: string, expiresAt: number): ContextProof {
  return signProof("login-lookup", true, guard, [email], expiresAt);
}

/** The proof for app.find_invitation (a stream guard): the token's hash, never the token. */
export function invitationLookupProof(tokenHash: string, guard: string, expiresAt: number): ContextProof {
  return signProof("invitation-lookup", true, guard, [tokenHash], expiresAt);
}

/** The proof for app.accept_invitation's arguments (a stream guard); no password hash: link an existing account as it is. */
export function invitationAcceptProof(tokenHash: string, passwordHash: string | null, requestId: string | null, guard: string, expiresAt: number): ContextProof {
  return signProof("invitation-accept", true, guard, [tokenHash, passwordHash, requestId], expiresAt);
}

const limitFields = (l: Limits) => [String(l.accountFailures), String(l.addressFailures), String(l.windowSeconds)];

/** The proof for app.login_gate (a stream guard): email, address and the throttle's limits. */
export function loginGateProof(email: string, address: string | null, limits: Limits, guard: string, expiresAt: number): ContextProof {
  return signProof("login-gate", true, guard, [email, address, ...limitFields(limits)], expiresAt);
}

/** The proof for app.login_outcome (a stream guard): email, address, outcome and the throttle's limits. */
export function loginOutcomeProof(email: string, address: string | null, succeeded: boolean, limits: Limits, guard: string, expiresAt: number): ContextProof {
  return signProof("login-outcome", true, guard, [email, address, succeeded ? "1" : "0", ...limitFields(limits)], expiresAt);
}

/** The proof for app.record_login's arguments (a stream guard). */
export function loginProof(userId: string, succeeded: boolean, requestId: string | null, guard: string, expiresAt: number): ContextProof {
  return signProof("login", true, guard, [userId.toLowerCase(), succeeded ? "1" : "0", requestId], expiresAt);
}

/** The proof for app.open_context_stream (registering a connection's stream). */
export function streamProof(): ContextProof {
  return signProof("stream", true, "", []);
}

/**
 * A secret derived from the context key for `fields` (base64url, 43 characters): the same fields
 * give the same secret, so an answer holding one can be given again without the secret being
 * stored (an invitation's token under an Idempotency-Key: routes/members.ts).
 */
export function derivedSecret(label: string, fields: readonly string[]): string {
  if (!contextKey) throw new Error("No context key configured (useContextKey)");
  return createHmac("sha256", contextKey).update([label, ...fields].join(SEPARATOR), "utf8").digest("base64url");
}

/** HMAC of 'fingerprint' under a context key (hex), or under the one in use. */
export function contextKeyFingerprint(hexKey?: string): string {
  const key = hexKey ? parseContextKey(hexKey) : contextKey;
  if (!key) throw new Error("No context key configured (useContextKey)");
  return createHmac("sha256", key).update("fingerprint", "utf8").digest("hex");
}

/** A context key's id: the first 16 hex characters of its fingerprint, as app.context_key_id() computes it. */
export function contextKeyId(hexKey?: string): string {
  return contextKeyFingerprint(hexKey).slice(0, 16);
}

/**
 * Installs the context key in the database as its only key (as the owner role): from then on
 * only proofs signed with it open a context. Idempotent. `npm run cli -- context-key install`; a
 * deploy adds its key instead (setup/deploy.ts), and a rotation adds, promotes and retires keys
 * (`npm run cli -- context-key ...`).
 */
export async function installContextKey(owner: { unsafe: (q: string, p: string[]) => Promise<unknown> }, hexKey: string): Promise<void> {
  parseContextKey(hexKey);
  await owner.unsafe("select app.install_context_key(decode($1, 'hex'))", [hexKey]);
}

/** Accepts proofs under this key beside the installed ones (a rotation's first step, as the owner role). Returns its key id. */
export async function addContextKey(owner: { unsafe: (q: string, p: string[]) => Promise<unknown> }, hexKey: string): Promise<string> {
  parseContextKey(hexKey);
  await owner.unsafe("select app.add_context_key(decode($1, 'hex'))", [hexKey]);
  return contextKeyId(hexKey);
}
