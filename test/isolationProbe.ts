// Looks for cross-tenant reads as app_user: with tenant A's context, any row of any tenant
// table whose tenant_id is not A is a leak; without context, any row at all is a leak.
// Used by the isolation suite and by the canary that proves the suite can fail.
import postgres from "postgres";

export async function findLeaks(appUrl: string, ownerUrl: string, tenantIds: string[]): Promise<string[]> {
  const owner = postgres(ownerUrl, { max: 1, onnotice: () => {} });
  const app = postgres(appUrl, { max: 1, onnotice: () => {} });
  const leaks: string[] = [];
  try {
    const tables = (await owner`select t::text as name from app.tenant_tables() t`).map((r) => r.name as string);
    for (const table of tables) {
      const none = await app.begin((tx) => tx.unsafe(`select tenant_id from ${table}`));
      if (none.length > 0) leaks.push(`${table}: ${none.length} rows visible without tenant context`);
      for (const tenantId of tenantIds) {
        // The owner opens tenant A's context (as verify does), then acts as app_user.
        const rows = await owner.begin(async (tx) => {
          await tx`select app.open_operator_context(${tenantId}::uuid)`;
          await tx`set local role app_user`;
          return tx.unsafe(`select tenant_id from ${table}`);
        });
        const foreign = rows.filter((r) => r.tenant_id !== tenantId).length;
        if (foreign > 0) leaks.push(`${table}: tenant ${tenantId} sees ${foreign} rows of other tenants`);
      }
    }
  } finally {
    await app.end({ timeout: 5 });
    await owner.end({ timeout: 5 });
  }
  return leaks;
}

/**
 * A BI login's leaks: with no settings and with another tenant's forged context, each view of
 * schema `app` read as `bi` (a member of app_bi granted `granted` alone), any row of another
 * tenant, named by view and forgery.
 */
export async function findBiLeaks(bi: postgres.Sql, owner: postgres.Sql, granted: string, other: string): Promise<string[]> {
  const views = (await owner`select c.oid::regclass::text as name from pg_class c join pg_namespace n on n.oid = c.relnamespace where n.nspname = 'app' and c.relkind = 'v' order by 1`).map((r) => r.name as string);
  if (views.length < 5) return [`only ${views.length} views of schema app: the probe reads none of the BI views`];
  const leaks: string[] = [];
  for (const forged of [null, `${other}||owner|x|*|o`]) {
    for (const view of views) {
      const rows = await bi.begin(async (tx) => {
        if (forged) await tx`select set_config('app.context', ${forged}, true), set_config('app.tenant_id', ${other}, true)`;
        return tx.unsafe(`select distinct tenant_id from ${view}`);
      });
      const foreign = rows.filter((r) => r.tenant_id !== granted).length;
      if (foreign > 0) leaks.push(`${view} with ${forged ?? "no settings"}: ${foreign} other tenant(s)`);
    }
  }
  return leaks;
}
