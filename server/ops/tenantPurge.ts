// `npm run cli -- tenant purge SLUG`: removes a shop's every row, as the owner role, in the steps
// policies/tenant_purge.sql describes: close the shop (no context opens for it any more), wait for
// the transactions that began before, seal its audit chain and anchor the head outside the
// database, then delete everything in one transaction that proves nothing is left before it
// commits and records tenant.purged with the counts in the platform's lifecycle events.
import type { Sql } from "../db/connections.ts";
import { writeAnchors, type Anchor } from "./auditAnchor.ts";
import type { KeyRing } from "../core/keyRing.ts";

export type PurgeRow = { table_name: string; deleted: number; remaining: number };
export type PurgeOptions = { confirmation: string; reason?: string; actor: string; anchors?: { file: string; ring: KeyRing<string> }; waitMs?: number; log?: (line: string) => void };

/** Waits until no other transaction of this database began before `since` (they could still write the shop). */
async function waitForOlderTransactions(sql: Sql, since: Date, waitMs: number, log: (line: string) => void): Promise<void> {
  const deadline = Date.now() + waitMs;
  for (let first = true; ; first = false) {
    const [{ n }] = await sql`select count(*)::int as n from pg_stat_activity
                               where datname = current_database() and pid <> pg_backend_pid() and backend_type = 'client backend'
                                 and xact_start < ${since}`;
    if (n === 0) return;
    if (first) log(`waiting for ${n} transaction(s) that began before the close`);
    if (Date.now() > deadline) throw new Error(`${n} transaction(s) that began before the shop was closed are still running; the shop stays closed (status purged): run the purge again`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** Purges the shop `slug` (the confirmation must equal it). Returns the per-table counts, every remaining 0. */
export async function purgeTenant(sql: Sql, slug: string, o: PurgeOptions): Promise<{ rows: PurgeRow[]; anchor: Anchor | null }> {
  const log = o.log ?? (() => {});
  if (o.confirmation !== slug) throw new Error(`the confirmation "${o.confirmation}" is not the slug "${slug}": nothing was purged`);
  const [t] = await sql`select id, slug, status from app.tenants where slug = ${slug}`;
  if (!t) throw new Error(`no shop ${slug}`);
  if (t.status !== "purged") {
    const [{ closed }] = await sql`select app.purge_tenant_close(${t.id}::uuid, ${slug}, ${o.reason ?? null}) as closed`;
    log(`${slug}: closed at ${(closed as Date).toISOString()}: no context opens for it any more`);
    await waitForOlderTransactions(sql, closed as Date, o.waitMs ?? 60_000, log);
  }
  const [{ sealed }] = await sql`select app.audit_seal(${t.id}::uuid) as sealed`;
  const anchor = o.anchors ? ((await writeAnchors(sql, o.anchors.file, o.anchors.ring, t.id as string))[0] ?? null) : null;
  log(`${slug}: sealed ${sealed} audit row(s)${anchor ? `; anchored position ${anchor.seq} in ${o.anchors!.file}` : o.anchors ? "; no audit row to anchor" : "; not anchored (no AUDIT_ANCHOR_KEY)"}`);
  const rows = await sql.begin((tx) => tx`select table_name, deleted, remaining from app.purge_tenant(${t.id}::uuid, ${slug}, ${anchor ? tx.json(anchor as never) : null}, ${o.actor})`);
  return { rows: rows.map((r) => ({ table_name: r.table_name as string, deleted: Number(r.deleted), remaining: Number(r.remaining) })), anchor };
}
