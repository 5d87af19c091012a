// Isolation proved in SQL, connected as app_user (never as the owner or a superuser).
import { beforeAll, describe, expect, it } from "vitest";
import type { Sql } from "../server/db/connections.ts";
import { appUserSql, asMember, db, makeCustomers, makeTenant, makeUser, openTenantContext, useDatabase, type Tenant, type User } from "./fixtures.ts";
import { findLeaks } from "./isolationProbe.ts";

const { owner, app } = useDatabase();
let a: Tenant;
let b: Tenant;
let bCustomer: string;
let tables: string[];
let appendOnly: string[];
let aOwner: User;

beforeAll(async () => {
  a = await makeTenant(owner);
  b = await makeTenant(owner);
  await makeCustomers(owner, a, 3);
  [bCustomer] = await makeCustomers(owner, b, 3);
  aOwner = await makeUser(owner, a, "owner");
  tables = (await owner`select t::text as name from app.tenant_tables() t`).map((r) => r.name);
  [{ names: appendOnly }] = await owner`select app.append_only_table_names() as names`;
});

// Settings app_user can write itself: none of them is a context (policies/context.sql).
const contexts: [string, Record<string, string> | null][] = [
  ["no context", null],
  ["an empty context", { "app.context": "", "app.tenant_id": "" }],
  ["a malformed context", { "app.context": "not-a-uuid", "app.tenant_id": "not-a-uuid" }],
  ["a uuid-looking injection", { "app.tenant_id": "00000000-0000-0000-0000-000000000000' or true --" }],
  ["tenant A's id written into the settings by hand", { "app.tenant_id": "A", "app.role": "owner", "app.context": "A||owner|x", "app.context_seal": "00" }],
];

const forge = (tx: Sql, settings: Record<string, string>) =>
  Promise.all(Object.entries(settings).map(([k, v]) => tx`select set_config(${k}, ${v === "A" ? a.id : v.replace(/^A\|/, `${a.id}|`)}, true)`));

describe("app_user without a valid tenant context", () => {
  it("the registry finds the tenant tables", () => {
    expect(tables).toContain("app.customers");
  });

  for (const [label, value] of contexts) {
    it(`reads zero rows from every tenant table with ${label}`, async () => {
      for (const table of tables) {
        const rows = await app.begin(async (tx) => {
          if (value !== null) await forge(tx as unknown as Sql, value);
          return tx.unsafe(`select count(*)::int as n from ${table}`);
        });
        expect(rows[0].n, table).toBe(0);
      }
    });

    it(`is refused every insert with ${label}, by RLS and nothing else`, async () => {
      for (const table of tables) {
        const attempt = app.begin(async (tx) => {
          if (value !== null) await forge(tx as unknown as Sql, value);
          return tx.unsafe(`insert into ${table} (tenant_id) values ($1)`, [a.id]);
        });
        const name = table.replace(/^app\./, "");
        // Append-only tables (the audit) are not even writable: the privilege check comes first.
        await expect(attempt, table).rejects.toMatchObject({
          code: "42501",
          message: appendOnly.includes(name) ? `permission denied for table ${name}` : `new row violates row-level security policy for table "${name}"`,
        });
      }
    });
  }
});

describe("app_user inside tenant A's context", () => {
  // As an owner of A (a role holding every permission), so only isolation is under test here;
  // the context is opened as the API opens it, with a proof.
  const inA = <T>(fn: (tx: Sql) => Promise<T>) => asMember(app, aOwner, a, { permission: "customers:write", writes: true }, fn);

  it("never returns tenant B's rows", async () => {
    const rows = await inA((tx) => tx`select tenant_id from app.customers`);
    expect(rows.length).toBeGreaterThanOrEqual(3);
    expect(rows.every((r) => r.tenant_id === a.id)).toBe(true);
    expect(await inA((tx) => tx`select id from app.customers where id = ${bCustomer}`)).toHaveLength(0);
  });

  it("cannot update or delete tenant B's row (zero rows touched)", async () => {
    expect((await inA((tx) => tx`update app.customers set name = 'taken' where id = ${bCustomer} returning id`)).length).toBe(0);
    expect((await inA((tx) => tx`delete from app.customers where id = ${bCustomer} returning id`)).length).toBe(0);
    const [still] = await owner`select name from app.customers where id = ${bCustomer}`;
    expect(still.name).not.toBe("taken");
  });

  it("cannot move its own row into tenant B", async () => {
    const [row] = await inA((tx) => tx`insert into app.customers (name) values ('mine') returning id, tenant_id`);
    expect(row.tenant_id).toBe(a.id);
    await expect(inA((tx) => tx`update app.customers set tenant_id = ${b.id} where id = ${row.id}`)).rejects.toMatchObject({
      code: "42501",
      message: 'new row violates row-level security policy for table "customers"',
    });
  });

  it("cannot insert a row for tenant B", async () => {
    await expect(inA((tx) => tx`insert into app.customers (tenant_id, name) values (${b.id}, 'intruder')`)).rejects.toMatchObject({ code: "42501" });
  });

  it("leaves no context behind on the pooled connection after COMMIT", async () => {
    const single = appUserSql();
    try {
      await asMember(single, aOwner, a, { permission: "customers:read" }, async (tx) => expect((await tx`select count(*)::int as n from app.customers`)[0].n).toBeGreaterThan(0));
      const [after] = await single`select current_setting('app.context', true) as v, (select count(*)::int from app.customers) as n`;
      expect(after.v).toBe("");
      expect(after.n).toBe(0);
    } finally {
      await single.end();
    }
  });

  it("finds no leak across tenants in any tenant table", async () => {
    expect(await findLeaks(db.appUrl, db.ownerUrl, [a.id, b.id])).toEqual([]);
  });
});

describe("app_user's own powers", () => {
  it("is not superuser, not BYPASSRLS, cannot create roles or databases", async () => {
    const [r] = await app`select rolsuper, rolbypassrls, rolcreaterole, rolcreatedb from pg_roles where rolname = current_user`;
    expect(r).toEqual({ rolsuper: false, rolbypassrls: false, rolcreaterole: false, rolcreatedb: false });
  });

  it("owns no table, view, sequence or function", async () => {
    const owned = await owner`
      select c.oid::regclass::text as name from pg_class c join pg_roles r on r.oid = c.relowner where r.rolname = 'app_user'
      union all
      select p.oid::regprocedure::text from pg_proc p join pg_roles r on r.oid = p.proowner where r.rolname = 'app_user'`;
    expect(owned).toEqual([]);
  });

  it("cannot read the global tables directly", async () => {
    await expect(app`select * from app.users`).rejects.toMatchObject({ code: "42501" });
    await expect(app`select * from app.memberships`).rejects.toMatchObject({ code: "42501" });
    await expect(app`select * from app.tenants`).rejects.toMatchObject({ code: "42501" });
  });

  it("cannot truncate a tenant table or switch RLS off", async () => {
    await expect(app`truncate app.customers`).rejects.toMatchObject({ code: "42501" });
    await expect(app`alter table app.customers disable row level security`).rejects.toMatchObject({ code: "42501" });
  });

  it("gets no context from open_tenant_context for a tenant it is not a member of", async () => {
    const outsider = await makeUser(owner);
    await expect(
      app.begin((tx) => openTenantContext(tx as unknown as Sql, { userId: outsider.id, tenantRefs: [a.slug], permission: "customers:read" })),
    ).rejects.toMatchObject({ code: "TN404" });
  });
});
