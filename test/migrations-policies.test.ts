// Migrations run from an empty database; policies apply twice without error and without
// change; and the canary: with a policy broken in a scratch database, the isolation probe
// used by the suite does fail.
import { randomUUID } from "node:crypto";
import postgres from "postgres";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { deploy } from "../server/setup/deploy.ts";
import { migrationNames } from "../server/setup/migrate.ts";
import { provisionDatabase, type DatabaseUrls } from "../server/setup/provision.ts";
import { db } from "./fixtures.ts";
import { findLeaks } from "./isolationProbe.ts";

let scratch: DatabaseUrls;
const scratchName = `scratch_${randomUUID().slice(0, 8)}`;

beforeAll(async () => {
  scratch = await provisionDatabase(db.superuserUrl, scratchName, db.passwords);
});

afterAll(async () => {
  const su = postgres(db.superuserUrl, { max: 1, onnotice: () => {} });
  await su.unsafe(`drop database if exists ${scratchName} with (force)`);
  await su.end();
});

/** Every policy file applied again, changed or not (as deploy/apply-policies.sh does to repair drift). */
const applyPolicies = (url: string) => deploy(url, { only: ["policies"], reapplyPolicies: true });

/** Everything policies/ controls, as text, so two applications can be compared. */
async function policyState(url: string) {
  const sql = postgres(url, { max: 1, onnotice: () => {} });
  try {
    const rows = await sql`
      select 'policy' as kind, schemaname || '.' || tablename || '.' || policyname as name,
             concat_ws(' | ', permissive, roles::text, cmd, qual, with_check) as state
        from pg_policies where schemaname = 'app'
      union all
      select 'table', c.oid::regclass::text, concat_ws(' | ', c.relrowsecurity, c.relforcerowsecurity, c.relacl::text)
        from pg_class c join pg_namespace n on n.oid = c.relnamespace where n.nspname = 'app' and c.relkind in ('r', 'p', 'v')
      union all
      select 'function', p.oid::regprocedure::text, concat_ws(' | ', p.proacl::text, md5(p.prosrc), p.prosecdef, p.proconfig::text)
        from pg_proc p join pg_namespace n on n.oid = p.pronamespace where n.nspname = 'app'
      union all
      select 'role', rolname, concat_ws(' | ', rolsuper, rolbypassrls, rolcreaterole, rolcreatedb, rolcanlogin)
        from pg_roles where rolname in ('app_user', 'app_bi')
      union all
      select 'schema', nspname, nspacl::text from pg_namespace where nspname = 'app'
      union all
      select 'trigger', t.tgrelid::regclass::text || '.' || t.tgname, pg_get_triggerdef(t.oid)
        from pg_trigger t join pg_class c on c.oid = t.tgrelid join pg_namespace n on n.oid = c.relnamespace
       where n.nspname = 'app' and not t.tgisinternal
      union all
      select 'permission', role || ' ' || permission, 'granted' from app.role_permissions
      order by 1, 2`;
    return rows.map((r) => `${r.kind} ${r.name}: ${r.state}`);
  } finally {
    await sql.end();
  }
}

describe("migrations and policies", () => {
  it("migrations run from an empty database up to head", async () => {
    const ran = await deploy(scratch.ownerUrl, { only: ["migrations"] });
    expect(ran.migrations.applied).toEqual(migrationNames());
    expect((await deploy(scratch.ownerUrl, { only: ["migrations"] })).migrations.applied).toEqual([]);
  });

  it("policies apply twice without error and without change", async () => {
    await applyPolicies(scratch.ownerUrl);
    const first = await policyState(scratch.ownerUrl);
    expect(first.some((l) => l.startsWith("policy app.customers.tenant_members_read_their_tenant_rows"))).toBe(true);
    expect(first.some((l) => l.startsWith("trigger app.customers._authorize_write"))).toBe(true);
    expect(first.some((l) => l.startsWith("permission accountant invoices:pay"))).toBe(true);
    await applyPolicies(scratch.ownerUrl);
    expect(await policyState(scratch.ownerUrl)).toEqual(first);
  });

  it("every tenant table ends with RLS enabled and forced and a policy for each command", async () => {
    const sql = postgres(scratch.ownerUrl, { max: 1, onnotice: () => {} });
    try {
      const rows = await sql`
        select t::text as name, c.relrowsecurity, c.relforcerowsecurity, c.relname = any (app.append_only_table_names()) as append_only,
               (select array_agg(distinct p.cmd order by p.cmd) from pg_policies p
                 where p.schemaname = 'app' and p.tablename = c.relname and p.permissive = 'PERMISSIVE') as cmds
          from app.tenant_tables() t join pg_class c on c.oid = t`;
      expect(rows.length).toBeGreaterThan(0);
      for (const r of rows) {
        const cmds = r.append_only ? ["SELECT"] : ["DELETE", "INSERT", "SELECT", "UPDATE"];
        expect(r, r.name).toMatchObject({ relrowsecurity: true, relforcerowsecurity: true, cmds });
      }
    } finally {
      await sql.end();
    }
  });
});

describe("canary: the isolation probe fails when isolation is broken", () => {
  const tenants: string[] = [];

  beforeAll(async () => {
    const owner = postgres(scratch.ownerUrl, { max: 1, onnotice: () => {} });
    try {
      for (const slug of ["canary-a", "canary-b"]) {
        const [t] = await owner`insert into app.tenants (slug, name) values (${slug}, ${slug}) returning id`;
        await owner`insert into app.customers (tenant_id, name) values (${t.id}, 'one'), (${t.id}, 'two')`;
        tenants.push(t.id);
      }
    } finally {
      await owner.end();
    }
  });

  async function break_(statement: string) {
    const owner = postgres(scratch.ownerUrl, { max: 1, onnotice: () => {} });
    try {
      await owner.unsafe(statement);
    } finally {
      await owner.end();
    }
  }

  it("finds nothing while the policies are intact", async () => {
    expect(await findLeaks(scratch.appUrl, scratch.ownerUrl, tenants)).toEqual([]);
  });

  it("catches a dropped tenant policy replaced by a permissive USING (true)", async () => {
    await break_(`drop policy tenant_members_read_their_tenant_rows on app.customers;
                  create policy canary_everything on app.customers for select to app_user using (true)`);
    const leaks = await findLeaks(scratch.appUrl, scratch.ownerUrl, tenants);
    expect(leaks.join("\n")).toMatch(/app\.customers: .*(without tenant context|rows of other tenants)/);
    await break_("drop policy canary_everything on app.customers");
    await applyPolicies(scratch.ownerUrl);
    expect(await findLeaks(scratch.appUrl, scratch.ownerUrl, tenants)).toEqual([]);
  });

  it("catches row level security switched off", async () => {
    await break_("alter table app.customers disable row level security");
    expect((await findLeaks(scratch.appUrl, scratch.ownerUrl, tenants)).length).toBeGreaterThan(0);
    await applyPolicies(scratch.ownerUrl);
    expect(await findLeaks(scratch.appUrl, scratch.ownerUrl, tenants)).toEqual([]);
  });
});
