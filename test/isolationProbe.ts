// Looks for cross-tenant reads as app_user: with tenant A's context, any row of any tenant
// table whose tenant_id is not A is a leak; without context, any row at all is a leak.
// Used by the isolation suite and by the canary that proves the suite can fail.
import { randomBytes, randomUUID } from "node:crypto";
import postgres from "postgres";
import { runSql } from "./scratch.ts";

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

export type BiLogin = { role: string; connect: (biUrl: string) => postgres.Sql; drop: () => Promise<void> };

/**
 * A BI login of its own (a member of app_bi), granted `tenantId` by the owner's audited call.
 * `connect` opens its connection at a BI URL (the test server's, or a standby's once it replayed the
 * grant); `drop` closes it, revokes the grant and drops the role.
 */
export async function makeBiLogin(superuserUrl: string, owner: postgres.Sql, tenantId: string, prefix = "bi_test"): Promise<BiLogin> {
  const role = `${prefix}_${randomUUID().slice(0, 8)}`;
  const password = randomBytes(12).toString("hex");
  await runSql(superuserUrl, `create role ${role} login password '${password}' in role app_bi`);
  await owner.begin((tx) => tx`select app.bi_grant(${role}, ${tenantId}::uuid)`);
  const opened: postgres.Sql[] = [];
  return {
    role,
    connect(biUrl) {
      const url = new URL(biUrl);
      url.username = role;
      url.password = password;
      const sql = postgres(url.toString(), { max: 1, onnotice: () => {} });
      opened.push(sql);
      return sql;
    },
    async drop() {
      await Promise.all(opened.map((sql) => sql.end({ timeout: 5 })));
      await owner`delete from app.bi_grants where role_name = ${role}`;
      await runSql(superuserUrl, `drop role if exists ${role}`);
    },
  };
}
