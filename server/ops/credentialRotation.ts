// Key rotation of the stored credentials (`npm run cli -- credentials rotate|status`), as the
// owner role across tenants (runbooks/key-rotation.md). Every envelope not under the ring's
// primary key is decrypted with the key it names and encrypted again under the primary, with a
// new data key, in batches:
//   * resumable and idempotent: what is left is what the database still holds under another key,
//     so a run stopped anywhere is finished by the next, and a run with nothing left changes
//     nothing;
//   * safe against the API writing meanwhile: a batch writes a row only where its version is still
//     the one it read (compare-and-swap; every change counts +1, policies/integrations.sql), so a
//     secret stored in between is never replaced by the old one re-encrypted. Such a row is read
//     again (the API wrote it under the primary already, then it is skipped);
//   * each batch is one transaction in an operator context of its tenant, so its audit rows name
//     the operator (the envelope itself is redacted there), and each tenant gets one
//     credentials.key_rotation event with its counts once its rows are done.
import type { Sql } from "../db/connections.ts";
import { CredentialDecryptError, decryptCredential, encryptCredential } from "../core/credentialCipher.ts";
import type { KeyRing } from "../core/keyRing.ts";

export type StoredCredential = { id: string; provider: string; credential_envelope: string; key_id: string; version: string };
export type Reencrypted = { id: string; version: string; envelope: string; from: string };
export type Unreadable = { id: string; tenantId: string; provider: string; keyId: string; reason: CredentialDecryptError["reason"] };
export type TenantRotation = { tenantId: string; slug: string; rotated: number; conflicts: number; from: Record<string, number>; failed: Unreadable[] };
export type RotationProgress = { total: number; done: number; conflicts: number; failed: number };
export type RotationResult = RotationProgress & { primary: string; tenants: TenantRotation[]; interrupted: boolean; leftByConflicts: number; seconds: number };

/** Passes over one tenant while rows keep changing under the rotation; a row still changing after them is a writer on an older primary. */
const MAX_PASSES = 5;

/** Rows per key id and how many tenants hold them (`credentials status`). */
export async function credentialKeyStatus(sql: Sql): Promise<{ key_id: string; rows: number; tenants: number }[]> {
  const rows = await sql`select key_id, count(*)::int8 as n, count(distinct tenant_id)::int8 as t from app.integration_credentials group by key_id order by key_id`;
  return rows.map((r) => ({ key_id: r.key_id as string, rows: Number(r.n), tenants: Number(r.t) }));
}

/** The next batch of a tenant's rows under another key than `primary`, after the id `after` (keyset on the primary key). */
export async function readBatch(sql: Sql, tenantId: string, primary: string, after: string | null, size: number): Promise<StoredCredential[]> {
  return (await sql`
    select id, provider, credential_envelope, key_id, version::text as version from app.integration_credentials
     where tenant_id = ${tenantId}::uuid and key_id <> ${primary} and (${after}::uuid is null or id > ${after}::uuid)
     order by id limit ${size}`) as unknown as StoredCredential[];
}

/** Each row decrypted with the key it names and encrypted again under the primary; those that do not decrypt apart. */
export function reencrypt(ring: KeyRing<Buffer>, tenantId: string, rows: readonly StoredCredential[]): { ok: Reencrypted[]; failed: Unreadable[] } {
  const ok: Reencrypted[] = [];
  const failed: Unreadable[] = [];
  for (const r of rows) {
    const scope = { tenantId, provider: r.provider };
    try {
      ok.push({ id: r.id, version: r.version, envelope: encryptCredential(ring, scope, decryptCredential(ring, scope, r.credential_envelope)), from: r.key_id });
    } catch (error) {
      if (!(error instanceof CredentialDecryptError)) throw error;
      failed.push({ id: r.id, tenantId, provider: r.provider, keyId: r.key_id, reason: error.reason });
    }
  }
  return { ok, failed };
}

/** Writes a batch, each row only where its version is still the one read (compare-and-swap); returns the ids written. */
export async function writeBatch(sql: Sql, tenantId: string, rows: readonly Reencrypted[]): Promise<Set<string>> {
  if (rows.length === 0) return new Set();
  const written = await sql.begin(async (tx) => {
    await tx`select app.open_operator_context(${tenantId}::uuid, 'operator')`;
    return tx`
      update app.integration_credentials c set credential_envelope = v.envelope, rotated_at = now()
        from unnest(${rows.map((r) => r.id)}::uuid[], ${rows.map((r) => r.version)}::int8[], ${rows.map((r) => r.envelope)}::text[]) as v(id, version, envelope)
       where c.tenant_id = ${tenantId}::uuid and c.id = v.id and c.version = v.version
      returning c.id`;
  });
  return new Set(written.map((r) => r.id as string));
}

/** Re-encrypts one tenant's rows under the primary: passes of keyset batches until a pass meets no concurrent change. */
async function rotateTenant(sql: Sql, ring: KeyRing<Buffer>, tenant: { id: string; slug: string }, batchSize: number, step: (rotated: number, conflicts: number, failed: number) => void, signal?: AbortSignal) {
  const result: TenantRotation = { tenantId: tenant.id, slug: tenant.slug, rotated: 0, conflicts: 0, from: {}, failed: [] };
  const unreadable = new Set<string>();
  let changing = 0;
  for (let pass = 1; pass <= MAX_PASSES; pass++) {
    changing = 0;
    for (let after: string | null = null; ;) {
      if (signal?.aborted) return { result, changing, interrupted: true };
      const rows = await readBatch(sql, tenant.id, ring.primary, after, batchSize);
      if (rows.length === 0) break;
      after = rows[rows.length - 1].id;
      const fresh = rows.filter((r) => !unreadable.has(r.id));
      const { ok, failed } = reencrypt(ring, tenant.id, fresh);
      for (const f of failed) unreadable.add(f.id);
      const written = await writeBatch(sql, tenant.id, ok);
      for (const r of ok) if (written.has(r.id)) result.from[r.from] = (result.from[r.from] ?? 0) + 1;
      result.rotated += written.size;
      result.conflicts += ok.length - written.size;
      changing += ok.length - written.size;
      result.failed.push(...failed);
      step(written.size, ok.length - written.size, failed.length);
    }
    if (changing === 0) break;
  }
  return { result, changing, interrupted: false };
}

/**
 * Rotates every tenant's credentials to the ring's primary. `onProgress` hears after each batch;
 * `signal` stops the run between batches (what is done stays done; the next run goes on).
 */
export async function rotateCredentials(sql: Sql, ring: KeyRing<Buffer>, options: { batchSize?: number; onProgress?: (p: RotationProgress) => void; signal?: AbortSignal } = {}): Promise<RotationResult> {
  const started = performance.now();
  const batchSize = options.batchSize ?? 500;
  const [{ n }] = await sql`select count(*)::int8 as n from app.integration_credentials where key_id <> ${ring.primary}`;
  const progress: RotationProgress = { total: Number(n), done: 0, conflicts: 0, failed: 0 };
  options.onProgress?.({ ...progress });
  const tenants = (await sql`
    select t.id, t.slug from app.tenants t
     where exists (select 1 from app.integration_credentials c where c.tenant_id = t.id and c.key_id <> ${ring.primary})
     order by t.slug`) as unknown as { id: string; slug: string }[];
  const out: TenantRotation[] = [];
  let interrupted = false;
  let leftByConflicts = 0;
  for (const tenant of tenants) {
    const step = (rotated: number, conflicts: number, failed: number) => {
      progress.done += rotated + failed;
      progress.conflicts += conflicts;
      progress.failed += failed;
      options.onProgress?.({ ...progress });
    };
    const t = await rotateTenant(sql, ring, tenant, batchSize, step, options.signal);
    out.push(t.result);
    leftByConflicts += t.changing;
    if (t.result.rotated > 0 || t.result.failed.length > 0) await recordRotation(sql, ring.primary, t.result);
    if (t.interrupted) {
      interrupted = true;
      break;
    }
  }
  return { ...progress, primary: ring.primary, tenants: out, interrupted, leftByConflicts, seconds: (performance.now() - started) / 1000 };
}

/** The tenant's credentials.key_rotation audit event: counts and key ids, never a key or a secret. */
async function recordRotation(sql: Sql, primary: string, t: TenantRotation): Promise<void> {
  const detail = { to_key: primary, rotated: t.rotated, from_keys: t.from, conflicts: t.conflicts, unreadable: t.failed.length };
  await sql.begin(async (tx) => {
    await tx`select app.open_operator_context(${t.tenantId}::uuid, 'operator')`;
    await tx`select app.audit_event('credentials.key_rotation', 'integration_credentials', ${primary}, ${tx.json(detail)})`;
  });
}
