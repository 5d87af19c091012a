// What this build expects of its database: every migration of its sql/ applied, and its policy
// version (policies/) deployed. The serving API checks it read-only, as app_user, at start and in
// /readyz (server/http/schemaGate.ts); only the deploy (server/setup/deploy.ts) changes it.
// A database a newer release has deployed passes: during a rolling deploy the instances of the
// previous release keep serving until they are drained (its migrations are additive, runbooks/migrations.md).
import type { Sql } from "../db/connections.ts";
import { migrationNames } from "./migrate.ts";
import { policyVersion } from "./policies.ts";

export type Release = { migrations: string[]; policyVersion: string };

/** Where the database stands behind this release: the migrations it lacks, and whether this release's policies were never deployed. */
export type SchemaBehind = { pending: string[]; policies: { release: string; deployed: string | null } | null };

let release: Release | undefined;

/** This build's migrations and policy version, read from its files once. */
export function thisRelease(): Release {
  release ??= { migrations: migrationNames(), policyVersion: policyVersion() };
  return release;
}

/**
 * Compares the database's applied migrations and the policy versions deployed in it (newest first)
 * with this release: null when it is at this release or past it (this version deployed, a newer after).
 */
export function behindRelease(applied: string[], deployedVersions: string[], r: Release = thisRelease()): SchemaBehind | null {
  const pending = r.migrations.filter((name) => !applied.includes(name));
  const deployed = deployedVersions.includes(r.policyVersion);
  if (pending.length === 0 && deployed) return null;
  return { pending, policies: deployed ? null : { release: r.policyVersion, deployed: deployedVersions[0] ?? null } };
}

/**
 * Reads what the database runs (as app_user, through app.applied_migrations() and
 * app.deployed_policy_versions()) and compares it with this release. A database from before the
 * deploy records (the functions missing) is behind. Throws when the database does not answer.
 */
export async function checkRelease(sql: Sql): Promise<SchemaBehind | null> {
  try {
    const [r] = await sql`select array(select app.applied_migrations()) as applied, array(select app.deployed_policy_versions()) as versions`;
    return behindRelease(r.applied, r.versions);
  } catch (error) {
    // No schema app yet (invalid_schema_name), or no such function or table: a database no deploy
    // of this kind has reached.
    if (["3F000", "42883", "42P01"].includes((error as { code?: string }).code ?? "")) return behindRelease([], []);
    throw error;
  }
}

/** The command that brings the database to this release, for messages. */
export const DEPLOY_COMMAND = "npm run cli -- deploy";

/** One line saying what is behind, for the log and the 503's message. */
export function describeBehind(b: SchemaBehind): string {
  const parts = [];
  if (b.pending.length) parts.push(`migrations not applied: ${b.pending.join(", ")}`);
  if (b.policies) parts.push(`this release's policies not deployed (version ${b.policies.release.slice(0, 12)}…, the database has ${b.policies.deployed ? `${b.policies.deployed.slice(0, 12)}…` : "none recorded"})`);
  return parts.join("; ");
}
