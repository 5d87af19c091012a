// Migrations: node-pg-migrate over the SQL files in sql/, run as the owner role.
import { readdirSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { runner } from "node-pg-migrate";

export const migrationsDir = fileURLToPath(new URL("../../sql", import.meta.url));

/** Names of the migration files, in order: what "at head" means. */
export function migrationNames(): string[] {
  return readdirSync(migrationsDir).filter((f) => f.endsWith(".sql")).map((f) => f.replace(/\.sql$/, "")).sort();
}

export async function migrate(ownerUrl: string, options: { direction?: "up" | "down"; count?: number; log?: (msg: string) => void } = {}) {
  const log = options.log ?? (() => {});
  const ran = await runner({
    databaseUrl: ownerUrl,
    dir: migrationsDir,
    migrationsTable: "pgmigrations",
    migrationsSchema: "public",
    direction: options.direction ?? "up",
    count: options.count,
    checkOrder: true,
    singleTransaction: true,
    verbose: false,
    logger: { debug: () => {}, info: log, warn: log, error: log },
  });
  return ran.map((m) => m.name);
}
