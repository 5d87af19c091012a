// `npm run cli -- tenant import FILE`: loads a shop's archive (db/tenantArchive.ts) into a
// database where the shop has no rows (a fresh one, or this one after `tenant purge`), as the
// owner role, in one transaction, verifying every table's row count and SHA-256 against the
// archive's manifest before it commits. The shop's row, plan and members come from the header
// (a member's account is made, without a password, where none has that id; an email taken by
// another account refuses the import). The rows are loaded with triggers off
// (session_replication_role = replica, which the owner must be allowed to set: PostgreSQL 15's
// GRANT SET ON PARAMETER, server/setup/provision.ts), because they are history: re-auditing,
// re-numbering or re-stamping them would change them. Identity sequences are moved past the
// loaded ids. Reads the file line by line: memory stays flat.
import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import { createInterface } from "node:readline";
import type { Sql } from "../db/connections.ts";
import { ARCHIVE_MAGIC, HEADER_PREFIX, MANIFEST_PREFIX, archiveTables, copyFromLine, type Manifest, type TableManifest } from "../db/tenantArchive.ts";

type Header = { tenant: Record<string, unknown> & { id: string; slug: string }; plan: string | null; members: { user_id: string; email: string; role: string; created_at: string }[] };

/** Puts the shop's row, plan and members in place, refusing a shop that still has rows. */
async function prepareTenant(tx: Sql, header: Header, actor: string): Promise<void> {
  const t = header.tenant;
  const [existing] = await tx`select id, slug from app.tenants where id = ${t.id}::uuid or slug = ${t.slug}`;
  if (existing && (existing.id !== t.id || existing.slug !== t.slug)) {
    throw new Error(`another shop has the id or slug of ${t.slug} (${existing.slug}, ${existing.id}): import into a database without it`);
  }
  if (existing) {
    await tx`select app.open_operator_context(${t.id}::uuid, 'owner')`;
    for (const table of await archiveTables(tx)) {
      const [{ n }] = await tx`select count(*)::int as n from ${tx(`app.${table.table_name}`)} where tenant_id = ${t.id}::uuid`;
      if (n > 0) throw new Error(`shop ${t.slug} still has ${n} row(s) in app.${table.table_name}: purge it first (npm run cli -- tenant purge ${t.slug})`);
    }
    await tx`select app.close_context()`;
    if ((await tx`select 1 from app.memberships where tenant_id = ${t.id}::uuid`).length) throw new Error(`shop ${t.slug} still has members: purge it first`);
  }
  // The row as exported, status included (a suspended shop comes back suspended), with triggers
  // off: restoring it is no settings change to audit.
  const row = tx.json(t as never);
  await tx`set local session_replication_role = replica`;
  if (existing) {
    await tx`update app.tenants x set (name, status, status_reason, status_changed_at, timezone, currency, tax_rate_bps, invoice_number_prefix,
                                      payment_terms_days, appointment_slot_minutes, reminders_enabled, created_at)
               = (select r.name, r.status, r.status_reason, r.status_changed_at, r.timezone, r.currency, r.tax_rate_bps, r.invoice_number_prefix,
                         r.payment_terms_days, r.appointment_slot_minutes, r.reminders_enabled, r.created_at
                    from jsonb_populate_record(null::app.tenants, ${row}) r)
             where x.id = ${t.id}::uuid`;
  } else {
    await tx`insert into app.tenants select * from jsonb_populate_record(null::app.tenants, ${row})`;
  }
  await tx`set local session_replication_role = origin`;
  if (header.plan) {
    await tx`select app.open_platform_operator_context(${actor})`;
    await tx`select app.platform_set_tenant_plan(${t.id}, ${header.plan}, ${`imported from an archive of ${t.slug}`})`;
    await tx`select app.close_context()`;
  }
  for (const m of header.members) {
    const [byEmail] = await tx`select id from app.users where lower(email) = lower(${m.email})`;
    if (byEmail && byEmail.id !== m.user_id) throw new Error(`member ${m.email}: another account (${byEmail.id}) has this email here; the archive names ${m.user_id}`);
    if (!byEmail) await tx`insert into app.users (id, email) values (${m.user_id}::uuid, ${m.email})`;
    await tx`insert into app.memberships (tenant_id, user_id, role, created_at) values (${t.id}::uuid, ${m.user_id}::uuid, ${m.role}, ${m.created_at}::text::timestamptz)`;
  }
}

/** Loads the archive at `file` into the database of `sql` (the owner role). Returns the manifest it verified. */
export async function importArchive(sql: Sql, file: string, actor: string): Promise<{ slug: string; manifest: Manifest }> {
  const lines = createInterface({ input: createReadStream(file, { encoding: "utf8" }), crlfDelay: Infinity })[Symbol.asyncIterator]();
  const next = async (): Promise<string | undefined> => (await lines.next()).value as string | undefined;
  if ((await next()) !== ARCHIVE_MAGIC) throw new Error(`${file} is not a tenant archive (its first line is not "${ARCHIVE_MAGIC}")`);
  const headerLine = await next();
  if (!headerLine?.startsWith(HEADER_PREFIX)) throw new Error(`${file}: no header line`);
  const header = JSON.parse(headerLine.slice(HEADER_PREFIX.length)) as Header;

  return (await sql.begin(async (tx) => {
    const t = tx as unknown as Sql;
    await prepareTenant(t, header, actor);
    const tables = new Map((await (async () => {
      await t`select app.open_operator_context(${header.tenant.id}::uuid, 'owner')`;
      const list = await archiveTables(t);
      await t`select app.close_context()`;
      return list;
    })()).map((x) => [copyFromLine(x), x]));
    await t`set local session_replication_role = replica`;
    const loaded: TableManifest[] = [];
    let manifest: Manifest | undefined;
    for (let line = await next(); line !== undefined; line = await next()) {
      if (line.startsWith(MANIFEST_PREFIX)) {
        manifest = JSON.parse(line.slice(MANIFEST_PREFIX.length)) as Manifest;
        break;
      }
      const table = tables.get(line);
      if (!table) throw new Error(`${file}: unexpected line "${line.slice(0, 100)}" (a table this database does not have, or other columns)`);
      const hash = createHash("sha256");
      let rows = 0;
      const target = await t.unsafe(line.replace(/ FROM stdin;$/, " from stdin")).writable();
      const done = new Promise<void>((resolve, reject) => target.once("finish", resolve).once("error", reject));
      for (let row = await next(); row !== "\\."; row = await next()) {
        if (row === undefined) throw new Error(`${file}: app.${table.table_name} ends without "\\."`);
        const bytes = `${row}\n`;
        hash.update(bytes, "utf8");
        rows++;
        if (!target.write(bytes)) await new Promise((resolve) => target.once("drain", resolve));
      }
      target.end();
      await done;
      loaded.push({ table: table.table_name, rows, sha256: hash.digest("hex") });
    }
    if (!manifest) throw new Error(`${file}: no manifest line (the archive was cut short)`);
    await t`set local session_replication_role = origin`;
    const bad = manifest.tables.filter((m) => {
      const l = loaded.find((x) => x.table === m.table);
      return !l || l.rows !== m.rows || l.sha256 !== m.sha256;
    });
    if (bad.length || loaded.length !== manifest.tables.length) throw new Error(`${file}: rows or checksums differ from its manifest for ${bad.map((b) => b.table).join(", ") || "the table list"}`);
    // Identity and serial columns continue after the loaded ids.
    await t`
      select setval(s.seq, greatest((select last_value from pg_sequences q where q.schemaname || '.' || q.sequencename = s.seq::text), s.maxid))
        from (select pg_get_serial_sequence(format('app.%I', c.table_name), c.column_name)::regclass as seq,
                     (xpath('/row/m/text()', query_to_xml(format('select max(%I) as m from app.%I', c.column_name, c.table_name), false, true, '')))[1]::text::bigint as maxid
                from information_schema.columns c
               where c.table_schema = 'app' and c.table_name = any (${[...tables.values()].map((x) => x.table_name)}::text[])
                 and pg_get_serial_sequence(format('app.%I', c.table_name), c.column_name) is not null) s
       where s.maxid is not null`;
    await t`select app.open_platform_operator_context(${actor})`;
    await t`select app.record_tenant_event(${header.tenant.id}::uuid, ${header.tenant.slug}, 'tenant.imported', null, ${t.json({ manifest } as never)})`;
    return { slug: header.tenant.slug, manifest };
  })) as { slug: string; manifest: Manifest };
}
