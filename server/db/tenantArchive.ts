// A shop's archive (issue 34): every row of every tenant table of the shop, as one stream of
// text that psql could read back, each table COPYed by PostgreSQL and relayed with backpressure
// (copyRelay.ts), so memory stays flat whatever the row count. The format, line by line:
//   -- rls-service-shop tenant archive 1
//   -- header {"tenant": {...}, "plan": ..., "members": [...]}     (app.tenant_archive_header)
//   COPY app.<table> (<columns>) FROM stdin;                       (dependency order)
//   <rows in COPY's text format, by primary key>
//   \.
//   -- manifest {"format": 1, "tenant_id": ..., "tables": [{"table", "rows", "sha256"}]}
// A table's sha256 is over its rows' bytes as written, and its rows the lines between its COPY
// and `\.` (COPY's text format escapes newlines inside values). The transaction must run in the
// shop's context (a member's with tenant:export, or an operator's): every COPY and the header
// are filtered by it, and it should be REPEATABLE READ so the tables agree with each other.
import { createHash } from "node:crypto";
import type { Writable } from "node:stream";
import type { Sql } from "./connections.ts";
import { relayCopy } from "./copyRelay.ts";

export const ARCHIVE_MAGIC = "-- rls-service-shop tenant archive 1";
export const HEADER_PREFIX = "-- header ";
export const MANIFEST_PREFIX = "-- manifest ";

export type TableManifest = { table: string; rows: number; sha256: string };
export type Manifest = { format: 1; tenant_id: string; tables: TableManifest[] };
export type ArchiveTable = { table_name: string; columns: string[]; key_columns: string[] };

const ident = (name: string) => `"${name.replace(/"/g, '""')}"`;

/** The statement that begins a table's rows, as the archive writes it and psql or the import reads it. */
export function copyFromLine(t: Pick<ArchiveTable, "table_name" | "columns">): string {
  return `COPY app.${ident(t.table_name)} (${t.columns.map(ident).join(", ")}) FROM stdin;`;
}

/** The tenant tables in dependency order, with columns and keys (app.tenant_export_tables). */
export async function archiveTables(sql: Sql): Promise<ArchiveTable[]> {
  return (await sql`select table_name, columns, key_columns from app.tenant_export_tables() order by ord`) as unknown as ArchiveTable[];
}

/** Counts rows (lines) and hashes the bytes of one table's COPY output as it passes. */
function tableDigest() {
  const hash = createHash("sha256");
  let rows = 0;
  return {
    chunk(c: Buffer) {
      hash.update(c);
      for (let i = c.indexOf(10); i !== -1; i = c.indexOf(10, i + 1)) rows++;
    },
    done: (table: string): TableManifest => ({ table, rows, sha256: hash.digest("hex") }),
  };
}

/**
 * Writes the shop's archive to `out` (not ended) in the open transaction `sql`. Resolves with the
 * manifest, or null when `out` was closed before the end (the reader left; the COPY in flight is
 * cancelled and the rest skipped).
 */
export async function writeArchive(sql: Sql, out: Writable): Promise<Manifest | null> {
  // Resolves false once `out` is gone (a reader that left): no drain will come then.
  const write = (text: string) => new Promise<boolean>((resolve) => {
    if (out.destroyed) return resolve(false);
    if (out.write(text)) return resolve(true);
    const go = () => {
      out.off("drain", go).off("close", go);
      resolve(!out.destroyed);
    };
    out.once("drain", go).once("close", go);
  });
  const [{ header, tenant_id }] = await sql`select app.tenant_archive_header() as header, app.current_tenant_id() as tenant_id`;
  if (!(await write(`${ARCHIVE_MAGIC}\n${HEADER_PREFIX}${JSON.stringify(header)}\n`))) return null;
  const manifest: Manifest = { format: 1, tenant_id: tenant_id as string, tables: [] };
  for (const t of await archiveTables(sql)) {
    if (!(await write(`${copyFromLine(t)}\n`))) return null;
    const copy = sql`copy (select ${sql.unsafe(t.columns.map(ident).join(", "))} from app.${sql.unsafe(ident(t.table_name))}
                            where tenant_id = app.current_tenant_id() order by ${sql.unsafe(t.key_columns.map(ident).join(", "))}) to stdout`;
    const digest = tableDigest();
    const complete = await relayCopy(await copy.readable(), out, () => copy.cancel(), (c) => digest.chunk(c));
    if (!complete) return null;
    manifest.tables.push(digest.done(t.table_name));
    if (!(await write("\\.\n"))) return null;
  }
  return (await write(`${MANIFEST_PREFIX}${JSON.stringify(manifest)}\n`)) ? manifest : null;
}
