// The audit trail: one row per mutated row, in the same transaction, with actor, role and
// request id from the context; append-only for app_user and for the owner; the hash chain
// names the first changed, deleted or inserted row; the API reads it through RLS.
import { execFile } from "node:child_process";
import { randomUUID } from "node:crypto";
import { beforeAll, describe, expect, it } from "vitest";
import type { Sql } from "../server/db/connections.ts";
import { asMember, db, makeCustomers, makeTenant, makeUser, openTenantContext, tokenFor, useApi, type Tenant, type User } from "./fixtures.ts";

const { owner, app, api } = useApi();
let shop: Tenant, other: Tenant;
let boss: User;

beforeAll(async () => {
  shop = await makeTenant(owner);
  other = await makeTenant(owner);
  boss = await makeUser(owner, shop, "owner");
});

const send = (method: string, path: string, body?: unknown) => {
  const requestId = `req-${randomUUID()}`;
  return api.request(method, path, { token: tokenFor(boss), tenant: shop.slug, body, headers: { "x-request-id": requestId } }).then((r) => ({ ...r, requestId }));
};
const auditOf = (requestId: string) =>
  owner`select tenant_id, actor_user_id, actor_role, request_id, action, entity, entity_id, change from app.audit_log where request_id = ${requestId} order by id`;

describe("every mutation is audited in its own transaction", () => {
  it("every audited tenant table carries the three audit triggers, and the exempted ones (the audit itself, caches, bookkeeping) none", async () => {
    const wrong = await owner`
      select t::text as name, (select count(*)::int from pg_trigger g where g.tgrelid = t and g.tgname in ('audit_insert', 'audit_update', 'audit_delete')) as triggers,
             c.relname = any (app.audited_table_names()) as audited
        from app.tenant_tables() t join pg_class c on c.oid = t`;
    expect(wrong.filter((r) => r.audited).length).toBeGreaterThan(5);
    expect(wrong.filter((r) => r.triggers !== (r.audited ? 3 : 0)).map((r) => `${r.name}: ${r.triggers} audit triggers. FIX apply policies/audit.sql`)).toEqual([]);
  });

  it("a scripted workload over the API writes exactly one audit row per mutated row, with actor, role and request id", async () => {
    const steps: { method: string; path: () => string; body?: () => unknown; expect: [string, string][] }[] = [];
    let customerId = "", vehicleId = "", serviceId = "", operationId = "", appointmentId = "", invoiceId = "";
    steps.push(
      { method: "POST", path: () => "/api/v1/customers", body: () => ({ name: "Audited", email: "a@audit.test" }), expect: [["insert", "customers"]] },
      { method: "PATCH", path: () => `/api/v1/customers/${customerId}`, body: () => ({ name: "Audited twice" }), expect: [["update", "customers"]] },
      { method: "POST", path: () => "/api/v1/vehicles", body: () => ({ customer_id: customerId, plate: "AUD-1" }), expect: [["insert", "vehicles"]] },
      { method: "POST", path: () => "/api/v1/services", body: () => ({ name: "Audit service" }), expect: [["insert", "services"]] },
      { method: "POST", path: () => "/api/v1/service-operations", body: () => ({ service_id: serviceId, internal_code: "AUD-OP", name: "Op", price_cents: 100, duration_minutes: 5 }), expect: [["insert", "service_operations"]] },
      { method: "POST", path: () => "/api/v1/appointments", body: () => ({ customer_id: customerId, vehicle_id: vehicleId, starts_at: "2032-01-01T10:00:00Z", ends_at: "2032-01-01T11:00:00Z" }), expect: [["insert", "appointments"]] },
      { method: "POST", path: () => "/api/v1/invoices", body: () => ({ customer_id: customerId, appointment_id: appointmentId }), expect: [["insert", "invoices"]] },
      { method: "POST", path: () => `/api/v1/invoices/${invoiceId}/lines`, body: () => ({ service_operation_id: operationId, quantity: 2 }), expect: [["insert", "invoice_lines"]] },
      { method: "POST", path: () => `/api/v1/invoices/${invoiceId}/issue`, expect: [["update", "invoices"]] },
      { method: "DELETE", path: () => `/api/v1/vehicles/${vehicleId}`, expect: [] },
    );
    for (const step of steps) {
      const res = await send(step.method, step.path(), step.body?.());
      if (step.method === "DELETE") {
        // The vehicle is referenced by the appointment: refused, and a refused change leaves no audit.
        expect(res.status).toBe(409);
      } else {
        expect(res.status, `${step.method} ${step.path()}`).toBeLessThan(300);
      }
      const id = res.body?.id;
      if (step.path() === "/api/v1/customers" && step.method === "POST") customerId = id;
      if (step.path() === "/api/v1/vehicles") vehicleId = id;
      if (step.path() === "/api/v1/services") serviceId = id;
      if (step.path() === "/api/v1/service-operations") operationId = id;
      if (step.path() === "/api/v1/appointments") appointmentId = id;
      if (step.path() === "/api/v1/invoices" && step.method === "POST") invoiceId = id;

      const rows = await auditOf(res.requestId);
      expect(rows.map((r) => [r.action, r.entity]), `${step.method} ${step.path()}`).toEqual(step.expect);
      for (const r of rows) expect(r).toMatchObject({ tenant_id: shop.id, actor_user_id: boss.id, actor_role: "owner", request_id: res.requestId });
    }
    const [patch] = await owner`select change from app.audit_log where entity = 'customers' and action = 'update' and entity_id = ${customerId}`;
    expect(patch.change.changed.name).toEqual({ old: "Audited", new: "Audited twice" });
    expect(patch.change.changed).not.toHaveProperty("email");
  });

  it("one statement touching three rows writes three audit rows; a rolled-back change writes none", async () => {
    const requestId = `sql-${randomUUID()}`;
    await app.begin(async (tx) => {
      await openTenantContext(tx as unknown as Sql, { userId: boss.id, tenantRefs: [shop.slug], requestId, permission: "customers:write", writes: true });
      await tx`insert into app.customers (name) values ('one'), ('two'), ('three')`;
    });
    expect((await auditOf(requestId)).map((r) => r.action)).toEqual(["insert", "insert", "insert"]);
    const rolledBack = `rb-${randomUUID()}`;
    await expect(app.begin(async (tx) => {
      await openTenantContext(tx as unknown as Sql, { userId: boss.id, tenantRefs: [shop.slug], requestId: rolledBack, permission: "customers:write", writes: true });
      await tx`insert into app.customers (name) values ('ghost')`;
      throw new Error("roll back");
    })).rejects.toThrow("roll back");
    expect(await auditOf(rolledBack)).toEqual([]);
  });

  it("secrets never enter the audit", async () => {
    const [row] = await owner`select app.audit_redact('{"name":"x","password_hash":"h","api_token":"t","credentials":"c"}'::jsonb) as r`;
    expect(row.r).toEqual({ name: "x" });
  });
});

describe("append-only", () => {
  it("app_user can neither update, delete nor truncate the audit", async () => {
    const inShop = <T>(fn: (tx: Sql) => Promise<T>) => asMember(app, boss, shop, { permission: "audit:export", writes: true }, fn);
    for (const attempt of [
      (tx: Sql) => tx`update app.audit_log set action = 'x'`,
      (tx: Sql) => tx`delete from app.audit_log`,
      (tx: Sql) => tx`insert into app.audit_log (tenant_id, action, entity) values (${shop.id}, 'forged', 'x')`,
      (tx: Sql) => tx`truncate app.audit_log`,
    ]) {
      await expect(inShop(attempt)).rejects.toMatchObject({ code: "42501" });
    }
  });

  it("the owner is refused UPDATE, DELETE and TRUNCATE by the trigger", async () => {
    for (const statement of ["update app.audit_log set action = 'x'", "delete from app.audit_log", "truncate app.audit_log"]) {
      await expect(owner.unsafe(statement)).rejects.toMatchObject({ code: "SS409", message: expect.stringMatching(/append-only/) });
    }
  });

  it("the API answers the audit of the caller's tenant only", async () => {
    const [c] = await makeCustomers(owner, other, 1);
    void c;
    const res = await send("GET", "/api/v1/audit?limit=500");
    expect(res.status).toBe(200);
    expect(res.body.data.length).toBeGreaterThan(0);
    const ids = res.body.data.map((r: { id: string }) => r.id);
    const foreign = await owner`select count(*)::int as n from app.audit_log where tenant_id <> ${shop.id} and id::text = any (${ids})`;
    expect(foreign[0].n).toBe(0);
    const filtered = await send("GET", "/api/v1/audit?entity=customers&action=update");
    expect(filtered.body.data.every((r: { entity: string; action: string }) => r.entity === "customers" && r.action === "update")).toBe(true);
    const page = await send("GET", "/api/v1/audit?limit=2");
    const next = await send("GET", `/api/v1/audit?limit=2&cursor=${page.body.next_cursor}`);
    expect(BigInt(next.body.data[0].id) < BigInt(page.body.data[1].id)).toBe(true);
  });
});

describe("the hash chain", () => {
  async function chainedTenant(): Promise<{ tenant: Tenant; ids: string[] }> {
    const tenant = await makeTenant(owner);
    await makeCustomers(owner, tenant, 5);
    await owner`select app.audit_seal(${tenant.id}::uuid)`;
    const ids = (await owner`select id::text from app.audit_log where tenant_id = ${tenant.id} order by seq`).map((r) => r.id as string);
    return { tenant, ids };
  }
  const verify = async (t: Tenant) => {
    const [r] = await owner`select broken_seq::int, audit_id::text, problem, sealed::int, unsealed::int from app.audit_verify(${t.id}::uuid)`;
    return r;
  };
  // Out-of-band tampering: the attacker owns the database and switches the guard off first.
  const tamper = (statement: string) =>
    owner.begin(async (tx) => {
      await tx`alter table app.audit_log disable trigger audit_log_append_only`;
      await tx.unsafe(statement);
      await tx`alter table app.audit_log enable trigger audit_log_append_only`;
    });

  it("an intact chain verifies, and new rows join it at the next seal", async () => {
    const { tenant } = await chainedTenant();
    expect(await verify(tenant)).toMatchObject({ problem: null, sealed: 5, unsealed: 0 });
    await makeCustomers(owner, tenant, 2);
    expect(await verify(tenant)).toMatchObject({ problem: null, sealed: 5, unsealed: 2 });
    await owner`select app.audit_seal(${tenant.id}::uuid)`;
    expect(await verify(tenant)).toMatchObject({ problem: null, sealed: 7, unsealed: 0 });
  });

  it("names a changed row", async () => {
    const { tenant, ids } = await chainedTenant();
    await tamper(`update app.audit_log set change = '{"new": {"name": "forged"}}' where id = ${ids[2]}`);
    expect(await verify(tenant)).toMatchObject({ broken_seq: 3, audit_id: ids[2], problem: expect.stringMatching(/changed/) });
  });

  it("names a deleted row", async () => {
    const { tenant, ids } = await chainedTenant();
    await tamper(`delete from app.audit_log where id = ${ids[1]}`);
    expect(await verify(tenant)).toMatchObject({ broken_seq: 2, problem: expect.stringMatching(/missing/) });
  });

  it("names a row inserted out of band", async () => {
    const { tenant, ids } = await chainedTenant();
    await tamper(`update app.audit_log set seq = -seq - 1 where tenant_id = '${tenant.id}' and seq >= 4;
      update app.audit_log set seq = -seq where tenant_id = '${tenant.id}' and seq < 0;
      insert into app.audit_log (tenant_id, action, entity, seq, prev_hash, hash)
      select tenant_id, 'insert', 'customers', 4, hash, repeat('0', 64) from app.audit_log where id = ${ids[2]}`);
    const r = await verify(tenant);
    expect(r.broken_seq).toBe(4);
    expect(r.problem).toMatch(/changed|inserted/);
  });

  it("`npm run cli -- audit verify` exits 1 and names the first broken link", async () => {
    const { tenant, ids } = await chainedTenant();
    await tamper(`update app.audit_log set actor_role = 'admin' where id = ${ids[0]}`);
    const out = await new Promise<{ code: number; text: string }>((resolve) =>
      execFile(process.execPath, ["--import", "tsx", "server/cli.ts", "audit", "verify", "--tenant", tenant.slug, "--url", db.ownerUrl], (err, stdout, stderr) =>
        resolve({ code: err ? (err as { code?: number }).code ?? 1 : 0, text: stdout + stderr })),
    );
    expect(out.code).toBe(1);
    expect(out.text).toContain(`BROKEN ${tenant.slug}: chain position 1 (audit id ${ids[0]}): content does not match its hash (changed)`);
  });
});
