// The go-live verification scripts pass on a correctly deployed, seeded database and fail,
// naming the object, on deliberately broken copies of it (one scratch clone per breakage;
// the shared test database is never touched).
import { randomUUID } from "node:crypto";
import { describe, expect, it } from "vitest";
import { psqlFile, run, runSql, superuserUrlFor, useGolden, type Scratch } from "./scratch.ts";

const golden = useGolden("verify");

const withClone = <T>(fn: (s: Scratch) => Promise<T>) => golden.withClone(fn);

describe("on the seeded, correctly deployed database", () => {
  it("verify/catalog.sql passes", async () => {
    const r = await psqlFile(golden.ownerUrl, "verify/catalog.sql");
    expect(r.output).toContain("catalog: ok");
    expect(r.code).toBe(0);
  });

  it("verify/verify_rls.sql passes and leaves nothing behind", async () => {
    const r = await psqlFile(golden.ownerUrl, "verify/verify_rls.sql");
    expect(r.output).toMatch(/verify_rls: ok \(\d+ relations and functions probed as app_bi and app_user, \d+ tenant tables with probe rows/);
    expect(r.code).toBe(0);
    const left = await run("psql", [golden.ownerUrl, "-X", "-At", "-c", "select count(*) from app.tenants where slug like 'verify-rls-%'"]);
    expect(left.output.trim()).toBe("0");
  });

  it("verify/integrity-scan passes and writes a log under logs/", async () => {
    const r = await run("verify/integrity-scan", [], { DATABASE_OWNER_URL: golden.ownerUrl });
    expect(r.output).toContain("integrity-scan: ok");
    expect(r.output).toMatch(/log: .*logs\/integrity-scan-\d{8}T\d{6}Z\.log/);
    expect(r.code).toBe(0);
  });

  it("verify/golive-status.sh --skip-api passes every database check", async () => {
    const r = await run("verify/golive-status.sh", ["--skip-api"], { DATABASE_URL: golden.appUrl, DATABASE_OWNER_URL: golden.ownerUrl, JWT_SECRET: "x".repeat(32) });
    expect(r.output).toContain("PASS migrations at head");
    expect(r.output).toContain("golive-status: all checks passed");
    expect(r.code).toBe(0);
  });

  it("verify/golive-status.sh names a missing environment variable", async () => {
    const r = await run("verify/golive-status.sh", ["--skip-api"], { DATABASE_URL: "", DATABASE_OWNER_URL: golden.ownerUrl, JWT_SECRET: "x".repeat(32) });
    expect(r.output).toContain("FAIL env DATABASE_URL: is not set. FIX:");
    expect(r.code).toBe(1);
  });

  it("verify/golive-status.sh without --skip-api and without API_URL names API_URL instead of crashing", async () => {
    const r = await run("verify/golive-status.sh", [], { DATABASE_URL: golden.appUrl, DATABASE_OWNER_URL: golden.ownerUrl, JWT_SECRET: "x".repeat(32), API_URL: "" });
    expect(r.output).not.toContain("unbound variable");
    expect(r.output).toContain("FAIL env API_URL: is not set. FIX: export API_URL=");
    expect(r.output).toContain("PASS isolation");
    expect(r.output).toContain("golive-status: 1 failure(s)");
    expect(r.code).toBe(1);
  });

  it("verify/golive-status.sh --json reports every check as JSON", async () => {
    const r = await run("verify/golive-status.sh", ["--skip-api", "--json"], { DATABASE_URL: golden.appUrl, DATABASE_OWNER_URL: golden.ownerUrl, JWT_SECRET: "x".repeat(32) });
    expect(r.code).toBe(0);
    const report = JSON.parse(r.output) as { ok: boolean; failures: number; checks: { status: string; check: string }[] };
    expect(report).toMatchObject({ ok: true, failures: 0 });
    expect(new Set(report.checks.map((c) => c.check))).toEqual(new Set(["env", "database", "migrations", "catalog", "isolation", "oracles", "role-defaults", "logging", "scale-out"]));
    expect(report.checks.every((c) => c.status === "PASS")).toBe(true);
  });

  it("verify/citus_readiness.sql passes and prints the distribution plan", async () => {
    const r = await psqlFile(golden.ownerUrl, "verify/citus_readiness.sql");
    expect(r.code).toBe(0);
    expect(r.output).toMatch(/citus_readiness: ok \(\d+ tables distributed by tenant_id, co-located; \d+ reference tables\)/);
    expect(r.output).toMatch(/distributed: .*app\.customers/);
    expect(r.output).toMatch(/reference: +.*app\.tenants/);
  });

  it("verify/isolation-report.sh lists every table, view and function with its protection", async () => {
    const r = await run("verify/isolation-report.sh", [], { DATABASE_OWNER_URL: golden.ownerUrl });
    expect(r.code).toBe(0);
    expect(r.output).toContain("# Tenant isolation report");
    expect(r.output).toMatch(/\| app\.customers \| tenant-owned \| yes \| on \| on \|.*\| ok \|/);
    expect(r.output).toMatch(/\| app\.tenants \| global \|.*ok: SECURITY DEFINER access only/);
    expect(r.output).toMatch(/\| app\.open_tenant_context\(.*\) \| DEFINER \| pg_catalog, pg_temp \|/);
    expect(r.output).not.toContain("FAIL");
  });

  it("verify/show_policies.sql lists the policies of every tenant table", async () => {
    const r = await run("psql", [golden.ownerUrl, "-X", "-v", "ON_ERROR_STOP=1", "-f", "verify/show_policies.sql"]);
    expect(r.code).toBe(0);
    for (const cmd of ["SELECT", "INSERT", "UPDATE", "DELETE"]) expect(r.output).toMatch(new RegExp(`app\\.customers .*\\| ${cmd} `));
  });
});

type Breakage = {
  name: string;
  /** SQL as the owner (or as a superuser). */
  sql: string;
  asSuperuser?: boolean;
  /** The object every failing script must name, and what each script prints. */
  object?: string;
  catalog?: string;
  rls?: string;
  /** What verify/verify_functions.sql prints. */
  oracle?: string;
  citus?: string;
  scan?: string;
};

const definerLeak = "create function public.all_customers() returns setof app.customers language sql security definer set search_path = pg_catalog as 'select * from app.customers'";
// Functions of schema app that pass every catalog check (SECURITY DEFINER with a fixed
// search_path, not PUBLIC) and still answer with another tenant's data: only the probe catches them.
const countLeak = `create function app.count_customers_of(p_tenant uuid) returns bigint language sql stable security definer
  set search_path = pg_catalog, pg_temp as 'select count(*) from app.customers where tenant_id = p_tenant';
  revoke execute on function app.count_customers_of(uuid) from public`;

const breakages: Breakage[] = [
  {
    name: "RLS disabled on a tenant table",
    sql: "alter table app.customers disable row level security",
    object: "app.customers",
    catalog: "FAIL app.customers: row level security is not enabled",
    rls: "LEAK app.customers: app_user sees",
  },
  {
    name: "FORCE ROW LEVEL SECURITY missing",
    sql: "alter table app.customers no force row level security",
    object: "app.customers",
    catalog: "FAIL app.customers: row level security is not forced",
  },
  {
    name: "a view without security_invoker, owned by the BYPASSRLS owner",
    sql: "create view app.customer_names as select tenant_id, name from app.customers; grant select on app.customer_names to app_user",
    object: "app.customer_names",
    catalog: "FAIL app.customer_names: view readable by app_user is not security_invoker and its owner app_owner has BYPASSRLS",
    rls: "LEAK app.customer_names: app_user sees",
  },
  {
    name: "a permissive USING (true) policy (judged by behaviour)",
    sql: "create policy everyone_reads_customers on app.customers as permissive for select to app_user using (true)",
    object: "app.customers",
    rls: "LEAK app.customers: app_user sees",
  },
  {
    name: "a policy that lets rows through when the context is NULL",
    sql: `create policy customers_without_context on app.customers as permissive for select to app_user
            using (tenant_id = (select app.current_tenant_id()) or (select app.current_tenant_id()) is null)`,
    object: "app.customers",
    rls: "LEAK app.customers: app_user sees",
  },
  {
    name: "a context reader that trusts the setting instead of its seal (judged by behaviour)",
    sql: "create or replace function app.verified_context() returns text language sql stable as $$ select nullif(current_setting('app.context', true), '') $$",
    object: "app.customers",
    rls: "LEAK app.customers: app_user sees",
  },
  {
    name: "a policy keyed on a plain setting",
    sql: `create policy customers_by_setting on app.customers as permissive for select to app_user
            using (tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid)`,
    object: "app.customers",
    catalog: "FAIL policy customers_by_setting on app.customers: reads a setting directly",
    rls: "LEAK app.customers: app_user sees",
  },
  {
    name: "an INSERT policy WITH CHECK (true)",
    sql: "drop policy tenant_members_insert_into_their_tenant on app.customers; create policy anyone_inserts_customers on app.customers for insert to app_user with check (true)",
    object: "app.customers",
    rls: "LEAK app.customers: app_user inserted a row into another tenant",
  },
  {
    name: "an UPDATE policy WITH CHECK (true) on a table with required references",
    sql: `drop policy tenant_members_update_their_tenant_rows on app.invoice_lines;
          create policy members_update_lines on app.invoice_lines for update to app_user using (tenant_id = (select app.current_tenant_id())) with check (true)`,
    object: "app.invoice_lines",
    rls: "LEAK app.invoice_lines: app_user moved rows to another tenant",
  },
  {
    name: "a DELETE policy USING (true)",
    sql: "drop policy tenant_members_delete_their_tenant_rows on app.customers; create policy anyone_deletes_customers on app.customers for delete to app_user using (true)",
    object: "app.customers",
    rls: "LEAK app.customers: app_user reached another tenant's rows to delete",
  },
  {
    name: "an UPDATE policy USING (true) without WITH CHECK",
    sql: "drop policy tenant_members_update_their_tenant_rows on app.customers; create policy anyone_updates_customers on app.customers for update to app_user using (true)",
    object: "app.customers",
    rls: "LEAK app.customers: app_user updated",
  },
  {
    name: "a tenant table without tenant_id",
    sql: "create table app.vehicle_notes (id uuid primary key, customer_id uuid, body text)",
    object: "app.vehicle_notes",
    catalog: "FAIL app.vehicle_notes: has no tenant_id column and is not on the global list",
  },
  {
    name: "a SECURITY DEFINER function without search_path",
    sql: "create function app.count_all_customers() returns bigint language sql security definer as 'select count(*) from app.customers'; revoke execute on function app.count_all_customers() from public",
    object: "function app.count_all_customers()",
    catalog: "FAIL function app.count_all_customers(): SECURITY DEFINER without a fixed search_path",
  },
  {
    name: "writes without the role check",
    sql: "alter table app.invoices disable trigger _authorize_write",
    object: "app.invoices",
    catalog: "FAIL app.invoices: app_user may write it but no enabled _authorize_write trigger checks the role's permission",
  },
  {
    name: "a tenant table granted to PUBLIC",
    sql: "grant select on app.customers to public",
    object: "app.customers",
    catalog: "FAIL app.customers: privileges granted to PUBLIC",
  },
  {
    name: "a command without a policy",
    sql: "drop policy tenant_members_delete_their_tenant_rows on app.customers",
    object: "app.customers",
    catalog: "FAIL app.customers: app_user may DELETE but no policy covers it (policies cover INSERT, SELECT, UPDATE)",
  },
  {
    name: "a nullable tenant_id holding a NULL row",
    sql: "create table app.work_orders (tenant_id uuid, id uuid primary key default gen_random_uuid(), note text); insert into app.work_orders (note) values ('nobody owns me')",
    object: "app.work_orders",
    catalog: "FAIL app.work_orders: tenant_id is nullable",
    scan: "app.work_orders: 1 row(s) with NULL tenant_id",
  },
  {
    name: "a table owned by app_user",
    asSuperuser: true,
    sql: "create table app.side_table (tenant_id uuid not null, id uuid not null); alter table app.side_table owner to app_user",
    object: "table app.side_table",
    catalog: "FAIL table app.side_table: owned by app_user",
  },
  {
    name: "a function owned by app_user",
    asSuperuser: true,
    sql: "create function public.helper() returns int language sql as 'select 1'; alter function public.helper() owner to app_user",
    object: "function public.helper()",
    catalog: "FAIL function public.helper(): owned by app_user",
  },
  {
    name: "a partition without RLS of its own, granted directly",
    sql: `create table app.work_logs (tenant_id uuid not null references app.tenants (id), id uuid not null default gen_random_uuid(),
            customer_id uuid not null, note text not null, primary key (tenant_id, id),
            constraint work_logs_customer_fkey foreign key (tenant_id, customer_id) references app.customers (tenant_id, id)) partition by list (tenant_id);
          create table app.work_logs_rest partition of app.work_logs default;
          alter table app.work_logs enable row level security, force row level security;
          create policy work_logs_are_visible_to_their_tenant on app.work_logs for select to app_user using (tenant_id = (select app.current_tenant_id()));
          grant select on app.work_logs, app.work_logs_rest to app_user`,
    object: "app.work_logs_rest",
    catalog: "FAIL app.work_logs_rest: partition read directly by app_user (SELECT)",
    rls: "LEAK app.work_logs_rest: app_user sees 2 row(s) without tenant context",
  },
  {
    name: "a view in schema public exposing tenant rows",
    sql: "create view public.customer_list as select c.name, c.email from app.customers c; grant select on public.customer_list to app_user",
    object: "public.customer_list",
    catalog: "FAIL public.customer_list: view readable by app_user is not security_invoker",
    rls: "LEAK public.customer_list: app_user sees",
  },
  {
    name: "a materialized view in schema public readable by app_bi",
    sql: "create materialized view public.customer_snapshot as select tenant_id, name from app.customers; grant select on public.customer_snapshot to app_bi",
    object: "public.customer_snapshot",
    catalog: "FAIL public.customer_snapshot: materialized view readable by app_bi",
    rls: "LEAK public.customer_snapshot: app_bi sees",
  },
  {
    name: "a SECURITY DEFINER function in schema public exposing tenant rows",
    sql: `${definerLeak}; revoke execute on function public.all_customers() from public; grant execute on function public.all_customers() to app_user`,
    object: "function public.all_customers()",
    catalog: "FAIL function public.all_customers(): SECURITY DEFINER outside schema app, executable by app_user",
    rls: "LEAK function public.all_customers(): app_user sees",
  },
  {
    name: "CREATE on a schema",
    sql: "grant create on schema app to app_user",
    object: "schema app",
    catalog: "FAIL schema app: app_user may CREATE objects in it",
  },
  {
    name: "CREATE on schema public for PUBLIC",
    sql: "grant create on schema public to public",
    object: "schema public",
    catalog: "FAIL schema public: app_bi may CREATE objects in it",
  },
  {
    name: "default privileges handing future tables to app_bi",
    sql: "alter default privileges in schema app grant select on tables to app_bi",
    object: "default privileges of app_owner in app",
    catalog: "FAIL default privileges of app_owner in app: app_bi is granted SELECT on every new table",
  },
  {
    name: "a sequence usable by app_user",
    sql: "grant usage on sequence app.audit_log_id_seq to app_user",
    object: "sequence app.audit_log_id_seq",
    catalog: "FAIL sequence app.audit_log_id_seq: app_user holds USAGE on it",
  },
  {
    name: "a tenant table readable by app_bi",
    sql: "grant select on app.customers to app_bi",
    object: "app.customers",
    catalog: "FAIL app.customers: app_bi holds SELECT on a table; BI roles read views only",
  },
  {
    name: "a global table readable by app_user",
    sql: "grant select on app.users to app_user",
    object: "app.users",
    catalog: "FAIL app.users: global table directly accessible to app_user (SELECT)",
  },
  {
    name: "a table outside schema app readable by app_user",
    sql: "create table public.customer_copy as select * from app.customers; grant select on public.customer_copy to app_user",
    object: "public.customer_copy",
    catalog: "FAIL public.customer_copy: app_user holds SELECT on a table that is neither a tenant table of schema app nor global",
    rls: "LEAK public.customer_copy: app_user sees 6 row(s) without tenant context",
  },
  {
    name: "a SECURITY DEFINER function of schema app answering for any tenant's id without a context (an oracle)",
    sql: `${countLeak}; grant execute on function app.count_customers_of(uuid) to app_user`,
    object: "function app.count_customers_of(uuid)",
    oracle: `LEAK function app.count_customers_of(uuid): app_user got an answer without a context, called with (A's tenant id): [{"count_customers_of": 1}]. FIX:`,
  },
  {
    name: "the same oracle granted to app_bi",
    sql: `${countLeak}; grant execute on function app.count_customers_of(uuid) to app_bi`,
    object: "function app.count_customers_of(uuid)",
    oracle: "LEAK function app.count_customers_of(uuid): app_bi got an answer without a context",
  },
  {
    name: "a login lookup by email that needs no proof (an account oracle)",
    sql: `create function app.find_account(p_email text) returns table (id uuid, email text) language sql stable security definer
            set search_path = pg_catalog, pg_temp as 'select u.id, u.email from app.users u where lower(u.email) = lower(p_email)';
          revoke execute on function app.find_account(text) from public; grant execute on function app.find_account(text) to app_user`,
    object: "function app.find_account(text)",
    oracle: "LEAK function app.find_account(text): app_user got an answer without a context, called with (A's owner's email)",
  },
  {
    name: "a lookup that needs a context but keys on the id it is given, not on the caller's tenant",
    sql: `create function app.customer_names_of(p_tenant uuid) returns setof text language plpgsql stable security definer
            set search_path = pg_catalog, pg_temp as $$ begin
              if app.current_tenant_id() is null then return; end if;
              return query select c.name from app.customers c where c.tenant_id = p_tenant; end $$;
          revoke execute on function app.customer_names_of(uuid) from public; grant execute on function app.customer_names_of(uuid) to app_user`,
    object: "function app.customer_names_of(uuid)",
    oracle: "LEAK function app.customer_names_of(uuid): in another tenant's context app_user tells tenant A's data from data that does not exist, called with (A's tenant id)",
  },
  {
    name: "a unique key without tenant_id (not distributable)",
    sql: "alter table app.services add constraint services_name_everywhere_key unique (name)",
    object: "app.services",
    citus: "FAIL app.services: unique key services_name_everywhere_key does not include tenant_id",
  },
  {
    name: "a tenant table referencing a table that is neither tenant nor global",
    sql: `create table app.colors (name text primary key);
          create table app.paint_jobs (tenant_id uuid not null references app.tenants (id), id uuid not null default gen_random_uuid(),
            color text not null references app.colors (name), primary key (tenant_id, id))`,
    object: "app.paint_jobs.paint_jobs_color_fkey",
    citus: "FAIL app.paint_jobs.paint_jobs_color_fkey: references app.colors, which is neither a tenant table nor named global in the registry",
  },
  {
    name: "a single-column reference across tenants",
    sql: `create unique index customers_id_key on app.customers (id);
          create table app.breakage_vehicles (tenant_id uuid not null references app.tenants (id), id uuid not null default gen_random_uuid(),
            customer_id uuid not null, primary key (tenant_id, id),
            constraint breakage_vehicles_customer_id_fkey foreign key (customer_id) references app.customers (id));
          insert into app.breakage_vehicles (tenant_id, customer_id)
            select t.id, (select c.id from app.customers c where c.tenant_id <> t.id limit 1) from app.tenants t
             where exists (select 1 from app.customers c where c.tenant_id = t.id) limit 1`,
    object: "app.breakage_vehicles.breakage_vehicles_customer_id_fkey",
    scan: "app.breakage_vehicles.breakage_vehicles_customer_id_fkey: 1 row(s) reference a parent in app.customers of another tenant",
    citus: "FAIL app.breakage_vehicles.breakage_vehicles_customer_id_fkey: foreign key to app.customers does not match tenant_id with tenant_id",
  },
  {
    name: "orphans behind a NOT VALID foreign key",
    sql: `create table app.breakage_vehicles (tenant_id uuid not null references app.tenants (id), id uuid not null default gen_random_uuid(),
            customer_id uuid not null, primary key (tenant_id, id));
          insert into app.breakage_vehicles (tenant_id, customer_id) select id, gen_random_uuid() from app.tenants limit 1;
          alter table app.breakage_vehicles add constraint breakage_vehicles_customer_fkey foreign key (tenant_id, customer_id) references app.customers (tenant_id, id) not valid`,
    scan: "app.breakage_vehicles.breakage_vehicles_customer_fkey: 1 orphan row(s)",
  },
];

type Check = { status: string; check: string; object: string | null; message: string; fix: string | null };

describe("on deliberately broken copies, each breakage is caught by name", () => {
  it.each(breakages)("$name", async (b) =>
    withClone(async (s) => {
      await runSql(b.asSuperuser ? superuserUrlFor(s.name) : s.ownerUrl, b.sql);
      const scripts: [string | undefined, string][] = [
        [b.catalog, "verify/catalog.sql"], [b.rls, "verify/verify_rls.sql"], [b.oracle, "verify/verify_functions.sql"], [b.citus, "verify/citus_readiness.sql"],
      ];
      for (const [expected, file] of scripts) {
        if (!expected) continue;
        const r = await psqlFile(s.ownerUrl, file);
        expect(r.output, file).toContain(expected);
        expect(r.output).toMatch(/FIX: /);
        expect(r.code, file).not.toBe(0);
      }
      if (b.object) {
        const status = await run("verify/golive-status.sh", ["--skip-api", "--json"], { DATABASE_URL: s.appUrl, DATABASE_OWNER_URL: s.ownerUrl, JWT_SECRET: "x".repeat(32) });
        expect(status.code).toBe(1);
        const report = JSON.parse(status.output) as { ok: boolean; failures: number; checks: Check[] };
        expect(report.ok).toBe(false);
        const named = report.checks.filter((c) => c.status === "FAIL" && c.object === b.object);
        expect(named.length, `golive-status --json names ${b.object}: ${status.output}`).toBeGreaterThan(0);
        for (const c of named) expect(c.fix, JSON.stringify(c)).toMatch(/\S/);
      }
      if (b.scan) {
        const r = await run("verify/integrity-scan", [], { DATABASE_OWNER_URL: s.ownerUrl });
        expect(r.output).toContain(b.scan);
        expect(r.output).toMatch(/FIX: /);
        expect(r.code).toBe(1);
      }
    }),
  );

  // Role attributes and memberships are cluster-wide: changing app_user or app_bi would let
  // every other test file's connections reach around the policies while this runs. The same
  // checks run against scratch roles standing in for the API role (app_role) and the BI role
  // (bi_role), with app_user's or app_bi's grants, dropped afterwards.
  async function withScratchRoles(s: Scratch, grantsTo: (app: string, bi: string) => string, fn: (app: string, bi: string) => Promise<void>) {
    const id = randomUUID().slice(0, 8);
    const [app, bi] = [`scratch_app_${id}`, `scratch_bi_${id}`];
    const su = superuserUrlFor(s.name);
    await runSql(su, `create role ${app} login nosuperuser nobypassrls noinherit; create role ${bi} nologin nosuperuser nobypassrls noinherit;
      grant usage on schema app to ${app}, ${bi};
      grant select, insert, update, delete on all tables in schema app to ${app};
      revoke all on ${(await globalsOf(s)).map((t) => `app.${t}`).join(", ")} from ${app};
      grant select on app.invoice_totals, app.revenue_daily, app.appointments_daily, app.catalog_usage, app.invoice_summaries to ${bi};
      grant execute on function app.current_tenant_id() to ${app}, ${bi};
      grant ${app}, ${bi} to app_owner; ${grantsTo(app, bi)}`);
    try {
      await fn(app, bi);
    } finally {
      await s.drop();
      await runSql(superuserUrlFor("postgres"), `drop role if exists ${app}; drop role if exists ${app}_middle; drop role if exists ${bi}_login; drop role if exists ${bi}`);
    }
  }

  async function globalsOf(s: Scratch): Promise<string[]> {
    const r = await run("psql", [s.ownerUrl, "-X", "-At", "-c", "select unnest(app.global_table_names())"]);
    return r.output.trim().split("\n");
  }

  const roleBreakages: { name: string; grants: (app: string, bi: string) => string; fails: (app: string, bi: string) => string; leak?: (app: string) => string }[] = [
    {
      name: "the app role given BYPASSRLS",
      grants: (app) => `alter role ${app} bypassrls`,
      fails: (app) => `FAIL role ${app}: has BYPASSRLS and skips every policy. FIX:`,
      leak: (app) => `LEAK app.customers: ${app} sees`,
    },
    {
      name: "GRANT <superuser> TO the app role",
      grants: (app) => `grant postgres to ${app}`,
      fails: (app) => `FAIL role ${app}: is a member of postgres (SUPERUSER`,
    },
    {
      name: "GRANT <owner role> TO the app role",
      grants: (app) => `revoke ${app} from app_owner; grant app_owner to ${app}`,
      fails: (app) => `FAIL role ${app}: is a member of app_owner (BYPASSRLS, CREATEROLE, owns objects of this database)`,
    },
    {
      name: "pg_read_all_data granted to the BI role",
      grants: (_app, bi) => `grant pg_read_all_data to ${bi}`,
      fails: (_app, bi) => `FAIL role ${bi}: is a member of pg_read_all_data (a predefined role)`,
    },
    {
      name: "pg_write_all_data reached through an intermediate role",
      grants: (app) => `create role ${app}_middle nologin; grant pg_write_all_data to ${app}_middle; grant ${app}_middle to ${app}`,
      fails: (app) => `FAIL role ${app}: is a member of pg_write_all_data (a predefined role)`,
    },
    {
      name: "a BI login with BYPASSRLS",
      grants: (_app, bi) => `create role ${bi}_login login bypassrls; grant ${bi} to ${bi}_login`,
      fails: (_app, bi) => `FAIL role ${bi}_login: has BYPASSRLS and skips every policy. FIX:`,
    },
  ];

  it.each(roleBreakages)("$name", async (b) =>
    withClone(async (s) =>
      withScratchRoles(s, b.grants, async (app, bi) => {
        const catalog = await psqlFile(s.ownerUrl, "verify/catalog.sql", { app_role: app, bi_role: bi });
        expect(catalog.output).toContain(b.fails(app, bi));
        expect(catalog.code).not.toBe(0);
        if (b.leak) {
          const rls = await psqlFile(s.ownerUrl, "verify/verify_rls.sql", { app_role: app, bi_role: bi });
          expect(rls.output).toContain(b.leak(app));
          expect(rls.code).not.toBe(0);
        }
      }),
    ),
  );

  it("a BI login that may execute a function its BI role may not is named (it would go unprobed)", async () =>
    withClone(async (s) =>
      withScratchRoles(s, (_app, bi) => `create role ${bi}_login login; grant ${bi} to ${bi}_login; grant execute on function app.has_capability(text) to ${bi}_login`, async (app, bi) => {
        const r = await psqlFile(s.ownerUrl, "verify/verify_functions.sql", { app_role: app, bi_role: bi });
        expect(r.output).toContain(`FAIL function app.has_capability(text): BI login ${bi}_login may execute it and ${bi} may not, so it goes unprobed. FIX: revoke execute on function app.has_capability(text) from ${bi}_login`);
        expect(r.output).toMatch(new RegExp(`note: executable by ${bi}_login: .*app\\.has_capability\\(text\\)`));
        expect(r.code).not.toBe(0);
      }),
    ),
  );

  // The control: the scratch roles as created (policies do not name them, so other lines fail)
  // draw no complaint about the roles themselves.
  it("the scratch roles without the breakage draw no role failure (the role battery's control)", async () =>
    withClone(async (s) =>
      withScratchRoles(s, () => "", async (app, bi) => {
        const catalog = await psqlFile(s.ownerUrl, "verify/catalog.sql", { app_role: app, bi_role: bi });
        expect(catalog.output).toContain(`FAIL app.customers: ${app} may`);
        expect(catalog.output).not.toContain("FAIL role ");
      }),
    ),
  );
});

describe("what passes", () => {
  it("a view owned by a NOBYPASSRLS, non-superuser role passes without security_invoker (a dedicated view owner)", async () =>
    withClone(async (s) => {
      const owner = `scratch_views_${randomUUID().slice(0, 8)}`;
      await runSql(superuserUrlFor(s.name), `create role ${owner} nologin nosuperuser nobypassrls; grant usage on schema app to ${owner};
        grant select on app.customers to ${owner};
        create view app.customer_directory as select tenant_id, name from app.customers; alter view app.customer_directory owner to ${owner};
        grant select on app.customer_directory to app_bi`);
      try {
        const catalog = await psqlFile(s.ownerUrl, "verify/catalog.sql");
        expect(catalog.output).toContain("catalog: ok");
        expect(catalog.code).toBe(0);
        const rls = await psqlFile(s.ownerUrl, "verify/verify_rls.sql");
        expect(rls.output).toMatch(/verify_rls: ok/);
        expect(rls.code).toBe(0);
      } finally {
        await s.drop();
        await runSql(superuserUrlFor("postgres"), `drop owned by ${owner}; drop role if exists ${owner}`);
      }
    }));

  it("an empty database (no tenant, no row) is probed in every tenant table", async () =>
    withClone(async (s) => {
      await runSql(superuserUrlFor(s.name), "set session_replication_role = replica; truncate app.tenants, app.users cascade");
      const r = await psqlFile(s.ownerUrl, "verify/verify_rls.sql");
      expect(r.code, r.output).toBe(0);
      const tables = await run("psql", [s.ownerUrl, "-X", "-At", "-c", "select count(*) from app.tenant_tables()"]);
      expect(r.output).toContain(`${tables.output.trim()} tenant tables with probe rows`);
      expect(r.output).not.toContain("note:");
    }));
});

describe("deploy/apply-policies.sh", () => {
  it("prints no changes on a second run, and repairs and reports a broken table", async () =>
    withClone(async (s) => {
      const env = { DATABASE_OWNER_URL: s.ownerUrl };
      const again = await run("deploy/apply-policies.sh", [], env);
      expect(again.code).toBe(0);
      expect(again.output).toContain("no changes");

      await runSql(s.ownerUrl, "alter table app.customers disable row level security; drop policy tenant_members_read_their_tenant_rows on app.customers");
      const repair = await run("deploy/apply-policies.sh", [], env);
      expect(repair.code).toBe(0);
      expect(repair.output).toMatch(/changed {2}table app\.customers:\n\s+before: rls false .*\n\s+after: {2}rls true/);
      expect(repair.output).toContain("added    policy app.customers.tenant_members_read_their_tenant_rows");
      expect((await psqlFile(s.ownerUrl, "verify/catalog.sql")).code).toBe(0);
      expect((await run("deploy/apply-policies.sh", [], env)).output).toContain("no changes");
    }));

  it("run as the wrong role, it fails, changes nothing and says how to fix it", async () => {
    const r = await run("deploy/apply-policies.sh", [], { DATABASE_OWNER_URL: golden.appUrl });
    expect(r.code).toBe(1);
    expect(r.output).toContain("FAIL policies not applied: the transaction rolled back, nothing changed. FIX:");
  });
});
