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
    expect(r.output).toMatch(/verify_rls: ok \(\d+ relations, \d+ probe rows/);
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
    expect(r.output).toContain("FAIL env DATABASE_URL is not set. FIX:");
    expect(r.code).toBe(1);
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

type Breakage = { name: string; sql: string; asSuperuser?: boolean; catalog?: string; rls?: string; scan?: string };

const breakages: Breakage[] = [
  {
    name: "RLS disabled on a tenant table",
    sql: "alter table app.customers disable row level security",
    catalog: "FAIL app.customers: row level security is not enabled",
    rls: "LEAK app.customers: app_user sees",
  },
  {
    name: "FORCE ROW LEVEL SECURITY missing",
    sql: "alter table app.customers no force row level security",
    catalog: "FAIL app.customers: row level security is not forced",
  },
  {
    name: "a view without security_invoker",
    sql: "create view app.customer_names as select tenant_id, name from app.customers; grant select on app.customer_names to app_user",
    catalog: "FAIL app.customer_names: view is not security_invoker",
    rls: "LEAK app.customer_names",
  },
  {
    name: "a permissive USING (true) policy",
    sql: "create policy everyone_reads_customers on app.customers as permissive for select to app_user using (true)",
    catalog: "FAIL policy everyone_reads_customers on app.customers: permissive and not keyed on tenant_id",
    rls: "LEAK app.customers",
  },
  {
    name: "an INSERT policy WITH CHECK (true)",
    sql: "drop policy tenant_members_insert_into_their_tenant on app.customers; create policy anyone_inserts_customers on app.customers for insert to app_user with check (true)",
    catalog: "FAIL policy anyone_inserts_customers on app.customers: permissive and not keyed on tenant_id",
    rls: "LEAK app.customers: app_user inserted a row into another tenant",
  },
  {
    name: "a tenant table without tenant_id",
    sql: "create table app.vehicle_notes (id uuid primary key, customer_id uuid, body text)",
    catalog: "FAIL app.vehicle_notes: has no tenant_id column and is not on the global list",
  },
  {
    name: "a SECURITY DEFINER function without search_path",
    sql: "create function app.count_all_customers() returns bigint language sql security definer as 'select count(*) from app.customers'; revoke execute on function app.count_all_customers() from public",
    catalog: "FAIL function app.count_all_customers(): SECURITY DEFINER without a fixed search_path",
  },
  {
    name: "writes without the role check",
    sql: "alter table app.invoices disable trigger _authorize_write",
    catalog: "FAIL app.invoices: app_user may write it but no enabled _authorize_write trigger checks the role's permission",
  },
  {
    name: "a tenant table granted to PUBLIC",
    sql: "grant select on app.customers to public",
    catalog: "FAIL app.customers: privileges granted to PUBLIC",
  },
  {
    name: "a command without a policy",
    sql: "drop policy tenant_members_delete_their_tenant_rows on app.customers",
    catalog: "FAIL app.customers: app_user may DELETE but no policy covers it (policies cover INSERT, SELECT, UPDATE)",
  },
  {
    name: "a nullable tenant_id holding a NULL row",
    sql: "create table app.work_orders (tenant_id uuid, id uuid primary key default gen_random_uuid(), note text); insert into app.work_orders (note) values ('nobody owns me')",
    catalog: "FAIL app.work_orders: tenant_id is nullable",
    scan: "app.work_orders: 1 row(s) with NULL tenant_id",
  },
  {
    name: "a table owned by app_user",
    asSuperuser: true,
    sql: "create table app.side_table (tenant_id uuid not null, id uuid not null); alter table app.side_table owner to app_user",
    catalog: "FAIL app.side_table: owned by app_user",
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
    scan: "app.breakage_vehicles.breakage_vehicles_customer_id_fkey: 1 row(s) reference a parent in app.customers of another tenant",
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

describe("on deliberately broken copies, each breakage is caught by name", () => {
  it.each(breakages)("$name", async (b) =>
    withClone(async (s) => {
      await runSql(b.asSuperuser ? superuserUrlFor(s.name) : s.ownerUrl, b.sql);
      if (b.catalog) {
        const r = await psqlFile(s.ownerUrl, "verify/catalog.sql");
        expect(r.output).toContain(b.catalog);
        expect(r.output).toMatch(/FIX: /);
        expect(r.code).not.toBe(0);
        const status = await run("verify/golive-status.sh", ["--skip-api"], { DATABASE_URL: s.appUrl, DATABASE_OWNER_URL: s.ownerUrl, JWT_SECRET: "x".repeat(32) });
        expect(status.output).toContain(b.catalog.replace(/^FAIL /, ""));
        expect(status.code).toBe(1);
      }
      if (b.rls) {
        const r = await psqlFile(s.ownerUrl, "verify/verify_rls.sql");
        expect(r.output).toContain(b.rls);
        expect(r.code).not.toBe(0);
      }
      if (b.scan) {
        const r = await run("verify/integrity-scan", [], { DATABASE_OWNER_URL: s.ownerUrl });
        expect(r.output).toContain(b.scan);
        expect(r.output).toMatch(/FIX: /);
        expect(r.code).toBe(1);
      }
    }),
  );

  // BYPASSRLS is a cluster-wide role attribute: giving it to app_user would let every other
  // test file's app_user connections read across tenants while this runs. The same check runs
  // against a scratch role standing in for the API role (app_role), dropped afterwards.
  it("the app role given BYPASSRLS", async () =>
    withClone(async (s) => {
      const role = `scratch_app_${randomUUID().slice(0, 8)}`;
      const su = superuserUrlFor(s.name);
      await runSql(su, `create role ${role} login nosuperuser bypassrls; grant usage on schema app to ${role};
        grant select, insert, update, delete on all tables in schema app to ${role}; grant execute on function app.current_tenant_id() to ${role};
        grant ${role} to app_owner`);
      try {
        const catalog = await psqlFile(s.ownerUrl, "verify/catalog.sql", { app_role: role });
        expect(catalog.output).toContain(`FAIL role ${role}: has BYPASSRLS and skips every policy. FIX:`);
        expect(catalog.code).not.toBe(0);
        const rls = await psqlFile(s.ownerUrl, "verify/verify_rls.sql", { app_role: role });
        expect(rls.output).toContain(`LEAK app.customers: ${role} sees`);
        expect(rls.code).not.toBe(0);
      } finally {
        await s.drop();
        await runSql(superuserUrlFor("postgres"), `drop role if exists ${role}`);
      }
    }),
  );
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
