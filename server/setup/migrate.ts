// Migrations: node-pg-migrate over the SQL files in sql/, run as the owner role, each applied
// file's checksum kept in public.migration_checksums (sql/0450): applied migrations are
// immutable, and a deploy whose files differ from what the database ran stops, naming the file
// (as Flyway and graphile-migrate do). server/setup/deploy.ts runs these steps under its lock.
import { createHash } from "node:crypto";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import pg from "pg";
import { runner } from "node-pg-migrate";
import type { Sql } from "../db/connections.ts";

export const migrationsDir = fileURLToPath(new URL("../../sql", import.meta.url));

export type MigrationFile = { name: string; sha256: string };

/** Names of the migration files, in order: what "at head" means. */
export function migrationNames(dir = migrationsDir): string[] {
  return readdirSync(dir).filter((f) => f.endsWith(".sql")).map((f) => f.replace(/\.sql$/, "")).sort();
}

/** The migration files with their checksums: sha256 of the text with LF line endings (a CRLF checkout is not an edit). */
export function migrationFiles(dir = migrationsDir): MigrationFile[] {
  return migrationNames(dir).map((name) => ({ name, sha256: sha256(readFileSync(join(dir, `${name}.sql`), "utf8").replace(/\r\n/g, "\n")) }));
}

export function sha256(text: string): string {
  return createHash("sha256").update(text, "utf8").digest("hex");
}

/** An applied migration whose file is no longer the one the database ran. */
export class EditedMigration extends Error {}

/** What the database ran: applied migration names in order (none before the first deploy), and their recorded checksums. */
export async function appliedMigrations(sql: Sql): Promise<{ applied: string[]; recorded: Map<string, string>; keepsChecksums: boolean }> {
  const [tables] = await sql`select to_regclass('public.pgmigrations') is not null as migrations, to_regclass('public.migration_checksums') is not null as checksums`;
  const applied = tables.migrations ? (await sql`select name from public.pgmigrations order by run_on, id`).map((r) => r.name as string) : [];
  const recorded = new Map<string, string>();
  if (tables.checksums) for (const r of await sql`select name, sha256 from public.migration_checksums`) recorded.set(r.name, r.sha256);
  return { applied, recorded, keepsChecksums: tables.checksums };
}

/** Throws EditedMigration naming every applied migration whose file differs from the checksum recorded when it ran. */
export function checkChecksums(files: MigrationFile[], recorded: Map<string, string>, dir = migrationsDir): void {
  const edited = files.filter((f) => recorded.has(f.name) && recorded.get(f.name) !== f.sha256);
  if (edited.length === 0) return;
  const lines = edited.map((f) => `  ${join(dir, `${f.name}.sql`)}: ran with sha256 ${recorded.get(f.name)!.slice(0, 12)}…, the file now has ${f.sha256.slice(0, 12)}…`);
  throw new EditedMigration(
    `applied migrations were edited; nothing was deployed:\n${lines.join("\n")}\n` +
      "FIX: applied migrations are immutable. Restore each file as it was (git log -p -- <file>) and put the change in a new migration (runbooks/migrations.md).",
  );
}

/**
 * Runs node-pg-migrate (pending migrations up, in one transaction; or the last one down) on a
 * connection of its own whose lock_timeout bounds every lock it waits for. Returns the names run.
 */
export async function runMigrations(ownerUrl: string, options: { dir?: string; down?: boolean; lockTimeoutMs: number; log?: (msg: string) => void }): Promise<string[]> {
  const log = options.log ?? (() => {});
  const client = new pg.Client({ connectionString: ownerUrl, application_name: "rls-service-shop-deploy" });
  await client.connect();
  try {
    await client.query("select set_config('lock_timeout', $1, false)", [`${options.lockTimeoutMs}ms`]);
    const ran = await runner({
      dbClient: client,
      dir: options.dir ?? migrationsDir,
      migrationsTable: "pgmigrations",
      migrationsSchema: "public",
      direction: options.down ? "down" : "up",
      count: options.down ? 1 : undefined,
      checkOrder: true,
      singleTransaction: true,
      verbose: false,
      logger: { debug: () => {}, info: log, warn: log, error: log },
    });
    return ran.map((m) => m.name);
  } finally {
    await client.end();
  }
}

/**
 * Records the checksum of every applied migration not yet recorded (`baseline` for those that ran
 * before checksums were kept), and forgets those no longer applied (undone). Returns what it recorded.
 */
export async function recordChecksums(sql: Sql, files: MigrationFile[], ranNow: string[]): Promise<{ recorded: string[]; baseline: string[] }> {
  const { applied, recorded, keepsChecksums } = await appliedMigrations(sql);
  if (!keepsChecksums) return { recorded: [], baseline: [] };
  const byName = new Map(files.map((f) => [f.name, f.sha256]));
  const missing = applied.filter((name) => !recorded.has(name) && byName.has(name));
  const baseline = missing.filter((name) => !ranNow.includes(name));
  for (const name of missing) {
    await sql`insert into public.migration_checksums (name, sha256, baseline) values (${name}, ${byName.get(name)!}, ${baseline.includes(name)})`;
  }
  await sql`delete from public.migration_checksums where name <> all (${applied}::text[])`;
  return { recorded: missing, baseline };
}
