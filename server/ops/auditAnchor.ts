// Audit anchors: each tenant's chain head (seq, hash), signed and kept outside the database.
// The hash chain alone shows that no sealed row was changed or removed in the middle; it cannot
// show that the newest rows were deleted, or that a suffix was re-sealed, by someone who can
// write the database as its owner. An anchor taken earlier can: the anchored position must still
// exist with the anchored hash, or be covered by a purge that the audit's own retention function
// recorded (app.audit_purge; deleting history out of band leaves no such record).
// `npm run cli -- audit anchor` appends one line per tenant to the anchor file (JSON lines,
// HMAC-SHA256 under AUDIT_ANCHOR_KEY); `audit verify` checks against the newest valid line of
// each tenant. Keep the file where the database's writers cannot rewrite it
// (runbooks/audit-anchors.md).
// The key rotates with an overlap like every key (runbooks/key-rotation.md): AUDIT_ANCHOR_KEYS is
// a ring (core/keyRing.ts), its primary signs, and each line names its key id (`kid`), so `audit
// verify` checks old anchors with the old key. A line without a kid (written before key ids) is
// checked with the key `default`, the one AUDIT_ANCHOR_KEY names.
import { createHmac, timingSafeEqual } from "node:crypto";
import { appendFileSync, existsSync, readFileSync } from "node:fs";
import type { Sql } from "../db/connections.ts";
import { LEGACY_KEY_ID, type KeyRing } from "../core/keyRing.ts";

export type Anchor = { tenant_id: string; slug: string; seq: number; hash: string; anchored_at: string; kid?: string; mac: string };

function mac(key: string, a: Omit<Anchor, "mac" | "slug">): string {
  // A line with a key id signs it too; a line of the earlier form signs what it holds.
  const fields = [a.tenant_id, String(a.seq), a.hash, a.anchored_at, ...(a.kid === undefined ? [] : [a.kid])];
  return createHmac("sha256", key).update(fields.join("|"), "utf8").digest("hex");
}

function validMac(key: string, a: Anchor): boolean {
  const expected = Buffer.from(mac(key, a), "hex");
  const given = Buffer.from(typeof a.mac === "string" ? a.mac : "", "hex");
  return expected.length === given.length && timingSafeEqual(expected, given);
}

/** Appends the current chain head of every tenant with a sealed row (or of one), signed with the ring's primary; returns the anchors written. */
export async function writeAnchors(sql: Sql, file: string, ring: KeyRing<string>, tenantId?: string): Promise<Anchor[]> {
  const heads = (await sql`select tenant_id, slug, seq, hash from app.audit_heads()`).filter((h) => tenantId === undefined || h.tenant_id === tenantId);
  const anchoredAt = new Date().toISOString();
  const key = ring.keys.get(ring.primary)!;
  const anchors = heads.map((h) => {
    const a = { tenant_id: h.tenant_id as string, slug: h.slug as string, seq: Number(h.seq), hash: h.hash as string, anchored_at: anchoredAt, kid: ring.primary };
    return { ...a, mac: mac(key, a) };
  });
  if (anchors.length) appendFileSync(file, anchors.map((a) => JSON.stringify(a)).join("\n") + "\n", { mode: 0o600 });
  return anchors;
}

export type AnchorFile = {
  /** The newest anchor of each tenant among the lines that verify. */
  latest: Map<string, Anchor>;
  /** Lines that are not JSON, or whose MAC does not verify with the key they name. */
  forged: number;
  /** Lines signed with a key id the ring does not hold (a retired key): not checked, by key id. */
  unverifiable: Map<string, number>;
};

/** Reads the anchor file: each line checked with the ring's key its kid names. */
export function readAnchors(file: string, ring: KeyRing<string>): AnchorFile {
  const out: AnchorFile = { latest: new Map(), forged: 0, unverifiable: new Map() };
  if (!existsSync(file)) return out;
  for (const line of readFileSync(file, "utf8").split("\n")) {
    if (!line.trim()) continue;
    let a: Anchor;
    try {
      a = JSON.parse(line) as Anchor;
    } catch {
      out.forged++;
      continue;
    }
    const kid = typeof a?.kid === "string" ? a.kid : LEGACY_KEY_ID;
    const key = ring.keys.get(kid);
    if (!key) {
      out.unverifiable.set(kid, (out.unverifiable.get(kid) ?? 0) + 1);
      continue;
    }
    if (!validMac(key, a)) {
      out.forged++;
      continue;
    }
    const before = out.latest.get(a.tenant_id);
    if (!before || before.seq <= a.seq) out.latest.set(a.tenant_id, a);
  }
  return out;
}

/** What is wrong with a tenant's chain against its anchor, or null when the anchored head is intact. */
export async function checkAnchor(sql: Sql, anchor: Anchor): Promise<string | null> {
  const [head] = await sql`select coalesce(max(seq), 0)::int8 as seq from app.audit_log where tenant_id = ${anchor.tenant_id}::uuid and seq is not null`;
  if (Number(head.seq) < anchor.seq) {
    return `the chain ends at position ${head.seq}, but position ${anchor.seq} was anchored at ${anchor.anchored_at} (newest rows deleted)`;
  }
  const [row] = await sql`select hash from app.audit_chain_at(${anchor.tenant_id}::uuid, ${anchor.seq}::int8)`;
  if (!row) {
    // Only retention removes rows, and app.audit_purge records each purge (app.audit_verify checks
    // the record against its audit.purged event): a missing anchored position no recorded purge
    // covers was deleted out of band, whatever the first remaining position is.
    if (await purgeOf(sql, anchor)) return null;
    return `anchored position ${anchor.seq} is missing, and no purge recorded by app.audit_purge covers it (rows deleted out of band)`;
  }
  if (row.hash !== anchor.hash) {
    return `position ${anchor.seq} has another hash than anchored at ${anchor.anchored_at} (the chain was re-sealed from there or before)`;
  }
  return null;
}

/** The recorded purge (app.audit_purge) that removed an anchored position, described, or null. */
export async function purgeOf(sql: Sql, anchor: Anchor): Promise<string | null> {
  const [p] = await sql`select purged_through_seq, purged_at, actor, note from app.audit_purged_through(${anchor.tenant_id}::uuid)`;
  if (!p || Number(p.purged_through_seq) < anchor.seq) return null;
  return `purged by retention through position ${p.purged_through_seq} at ${new Date(p.purged_at as string).toISOString()} by ${p.actor}${p.note ? ` (${p.note})` : ""}`;
}

/**
 * `audit verify`: for each tenant (sealed first unless `seal` is false), its newest anchor, then
 * its chain. Returns the lines to print and how many are broken (the command exits 1 on any).
 */
export async function verifyAudit(sql: Sql, tenants: readonly { id: string; slug: string }[], options: { anchors?: { file: string; ring: KeyRing<string> }; seal: boolean }): Promise<{ lines: string[]; broken: number; unsealed: number }> {
  const lines: string[] = [];
  let broken = 0;
  let unsealed = 0;
  const anchors = options.anchors ? readAnchors(options.anchors.file, options.anchors.ring) : { latest: new Map<string, Anchor>(), forged: 0, unverifiable: new Map<string, number>() };
  if (!options.anchors) lines.push("note: no AUDIT_ANCHOR_KEY: chains are checked without anchors (deleting the newest rows is not detectable)");
  if (anchors.forged) {
    broken++;
    lines.push(`BROKEN anchor file ${options.anchors?.file}: ${anchors.forged} line(s) whose signature does not verify. FIX: treat as a security incident; compare with your copy of the anchor log.`);
  }
  for (const [kid, n] of anchors.unverifiable) {
    lines.push(`note: ${n} anchor line(s) signed with key ${kid}, which AUDIT_ANCHOR_KEYS does not hold: not checked. FIX: keep a retired anchor key in the ring (not primary) while its anchors matter (runbooks/key-rotation.md)`);
  }
  for (const t of tenants) {
    if (options.seal) await sql`select app.audit_seal(${t.id}::uuid)`;
    const latest = anchors.latest.get(t.id);
    // A purge or re-import after the anchor replaced the anchored chain by design (tenant purge|import).
    const lifecycle = latest ? await lifecycleAfter(sql, latest) : null;
    const anchor = lifecycle ? undefined : latest;
    if (lifecycle?.note) lines.push(`note ${t.slug}: ${lifecycle.note}`);
    const anchorProblem = lifecycle?.problem ?? (anchor ? await checkAnchor(sql, anchor) : null);
    if (anchorProblem) {
      broken++;
      lines.push(`BROKEN ${t.slug}: ${anchorProblem}. FIX: treat as a security incident (runbooks/audit-anchors.md); restore the audit from a snapshot to compare.`);
      continue;
    }
    const [r] = await sql`select * from app.audit_verify(${t.id}::uuid)`;
    unsealed += Number(r.unsealed ?? 0);
    if (r.problem) {
      broken++;
      lines.push(`BROKEN ${t.slug}: chain position ${r.broken_seq}${r.audit_id ? ` (audit id ${r.audit_id})` : ""}: ${r.problem}. ` +
        `FIX: treat as a security incident (runbooks/incident-cross-tenant-leak.md); restore the audit from a snapshot to compare.`);
    } else {
      const purged = anchor && (await purgeOf(sql, anchor));
      lines.push(`ok ${t.slug}: ${r.sealed} rows chained${Number(r.unsealed) ? `, ${r.unsealed} not yet sealed` : ""}` +
        (anchor ? `, anchored position ${anchor.seq} ${purged || "intact"}${anchor.kid ? ` (key ${anchor.kid})` : ""}` : ", no anchor yet"));
    }
  }
  return { lines, broken, unsealed };
}

/**
 * Whether a purge or an import of the shop (app.tenant_lifecycle_events, `tenant purge|import`)
 * came after the anchor: then the anchored chain is gone by design, or replaced by an archive's.
 * A purge must have recorded this very anchor's position, or the anchor is not superseded but
 * contradicted (a problem). Returns a note, a problem, or null when the anchor still applies.
 */
export async function lifecycleAfter(sql: Sql, anchor: Anchor): Promise<{ note?: string; problem?: string } | null> {
  const [e] = await sql`
    select action, occurred_at, (detail->'anchor'->>'seq')::bigint as seq from app.tenant_lifecycle_events
     where tenant_id = ${anchor.tenant_id}::uuid and action in ('tenant.purged', 'tenant.imported') and occurred_at > ${anchor.anchored_at}::timestamptz
     order by id desc limit 1`;
  if (!e) return null;
  const at = new Date(e.occurred_at as string).toISOString();
  if (e.action === "tenant.imported") return { note: `re-imported from an archive at ${at}, after anchored position ${anchor.seq}: the chain is the archive's` };
  if (e.seq !== null && Number(e.seq) >= anchor.seq) return { note: `purged at ${at} with its chain sealed and anchored through position ${e.seq}` };
  return { problem: `the purge at ${at} recorded no anchor at or after position ${anchor.seq}` };
}
