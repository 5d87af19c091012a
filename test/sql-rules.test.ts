// Business rules the database enforces whatever the path, proved in SQL as app_user inside a
// member's context: invoices are issued only with the counter's next number, no line lands on
// an invoice being issued, the role check comes before any other answer, and a role without
// appointments:read sees no appointment.
import { beforeAll, describe, expect, it } from "vitest";
import type { Sql } from "../server/db/connections.ts";
import { backendPid, waitFor } from "./waits.ts";
import { asMember, makeCustomers, type Access, makeTenant, makeUser, openTenantContext, useDatabase, type Role, type Tenant, type User } from "./fixtures.ts";

const { owner, app } = useDatabase();
let shop: Tenant;
let customer: string;
const members = {} as Record<Role, User>;

beforeAll(async () => {
  shop = await makeTenant(owner, { prefix: "rules" });
  [customer] = await makeCustomers(owner, shop, 1);
  for (const role of ["owner", "manager", "staff", "accountant"] as Role[]) members[role] = await makeUser(owner, shop, role);
});

async function draft(lines = 1): Promise<string> {
  const [r] = await owner`insert into app.invoices (tenant_id, customer_id) values (${shop.id}, ${customer}) returning id`;
  for (let i = 0; i < lines; i++) {
    await owner`insert into app.invoice_lines (tenant_id, invoice_id, description, quantity, unit_price_cents) values (${shop.id}, ${r.id}, 'Labour', 1, 1000)`;
  }
  return r.id;
}
const lastNumber = async () => Number((await owner`select coalesce(max(last_number), 0) as n from app.invoice_counters where tenant_id = ${shop.id}`)[0].n);
const asOwner = <T>(fn: (tx: Sql) => Promise<T>, access: Access = { permission: "invoices:issue", writes: true }) => asMember(app, members.owner, shop, access, fn);

describe("issuing an invoice", () => {
  it("a plain UPDATE to issued gets the counter's next number and now(), whatever it wrote", async () => {
    const id = await draft();
    const before = await lastNumber();
    const [row] = await asOwner((tx) => tx`update app.invoices set status = 'issued', number = 999999, issued_at = '2001-01-01' where id = ${id} returning number, issued_at`);
    expect(row.number).toBe(before + 1);
    expect(Date.now() - (row.issued_at as Date).getTime()).toBeLessThan(60_000);
  });

  it("a plain UPDATE cannot issue an invoice without lines (SS422) nor renumber an issued one (SS409)", async () => {
    const empty = await draft(0);
    await expect(asOwner((tx) => tx`update app.invoices set status = 'issued' where id = ${empty}`)).rejects.toMatchObject({ code: "SS422" });
    const id = await draft();
    await asOwner((tx) => tx`select app.issue_invoice(${id}::uuid)`);
    await expect(asOwner((tx) => tx`update app.invoices set number = number + 1000 where id = ${id}`, { permission: "invoices:write", writes: true })).rejects.toMatchObject({ code: "SS409" });
  });

  it("staff are refused with SS403 before the invoice's state is judged (not 409 for issued, not 422 for empty)", async () => {
    const staffIssue = (id: string) => asMember(app, members.staff, shop, { permission: "invoices:issue", writes: true, forRow: true }, (tx) => tx`select app.issue_invoice(${id}::uuid)`);
    const issued = await draft();
    await asOwner((tx) => tx`select app.issue_invoice(${issued}::uuid)`);
    for (const id of [issued, await draft(0), await draft()]) {
      await expect(staffIssue(id)).rejects.toMatchObject({ code: "SS403", detail: "invoices:issue" });
    }
    await expect(staffIssue("00000000-0000-0000-0000-000000000000")).rejects.toMatchObject({ code: "SS404" });
  });

  // Two sessions and a barrier: the second statement is known to wait when PostgreSQL says its
  // backend is blocked by the first (pg_blocking_pids), not after a sleep that a busy machine outlasts.
  it("a line added while the invoice is being issued waits, then is refused (SS409); the issue sees only committed lines", async () => {
    const id = await draft();
    const issuer = await app.reserve();
    const writer = await app.reserve();
    try {
      await issuer`begin`;
      await openTenantContext(issuer as unknown as Sql, { userId: members.owner.id, tenantRefs: [shop.id], permission: "invoices:issue", writes: true });
      await issuer`select app.issue_invoice(${id}::uuid)`;
      const [issuing, adding] = [await backendPid(issuer as unknown as Sql), await backendPid(writer as unknown as Sql)];
      await writer`begin`;
      await openTenantContext(writer as unknown as Sql, { userId: members.owner.id, tenantRefs: [shop.id], permission: "invoices:write", writes: true });
      const insert = writer`insert into app.invoice_lines (tenant_id, invoice_id, description, quantity, unit_price_cents) values (${shop.id}, ${id}, 'Late', 1, 1)`
        .then(() => "inserted", (error: { code?: string }) => error.code);
      await waitUntilBlocked(adding, issuing);
      await issuer`commit`;
      // The line guard locked the invoice FOR SHARE, so it read the status the issue committed.
      // Without that lock it read 'draft' before waiting (the foreign key's check waits too), and the line landed.
      expect(await insert).toBe("SS409");
      await writer`rollback`;
    } finally {
      issuer.release();
      writer.release();
    }
    const [{ n }] = await owner`select count(*)::int as n from app.invoice_lines where invoice_id = ${id}`;
    expect(n).toBe(1);
  });

  it("an issue waiting on a line being added sees that line once it commits", async () => {
    const id = await draft();
    const writer = await app.reserve();
    try {
      await writer`begin`;
      await openTenantContext(writer as unknown as Sql, { userId: members.owner.id, tenantRefs: [shop.id], permission: "invoices:write", writes: true });
      await writer`insert into app.invoice_lines (tenant_id, invoice_id, description, quantity, unit_price_cents) values (${shop.id}, ${id}, 'Second', 1, 1)`;
      const adding = await backendPid(writer as unknown as Sql);
      const issuing = asOwner((tx) => tx`select number from app.issue_invoice(${id}::uuid)`);
      await waitUntilBlocked(undefined, adding);
      await writer`commit`;
      const [issued] = await issuing;
      expect(issued.number).toBeGreaterThan(0);
    } finally {
      writer.release();
    }
    const [{ n }] = await owner`select count(*)::int as n from app.invoice_lines where invoice_id = ${id}`;
    expect(n).toBe(2);
  });
});

/** Resolves once backend `waiter` (or any backend, when undefined) is blocked by backend `holder`. */
function waitUntilBlocked(waiter: number | undefined, holder: number): Promise<void> {
  return waitFor(async () => (await owner`select 1 from pg_stat_activity where ${holder}::int = any (pg_blocking_pids(pid)) and (${waiter ?? null}::int is null or pid = ${waiter ?? null}::int)`).length > 0,
    { what: `a backend blocked by ${holder}` });
}

describe("appointments are visible by role, in SQL", () => {
  it("a role without appointments:read sees none; staff see their own; a manager sees all", async () => {
    const at = (h: number) => new Date(Date.UTC(2031, 0, 1, h)).toISOString();
    for (const [assignee, h] of [[members.staff.id, 9], [members.manager.id, 11], [null, 13]] as const) {
      await owner`insert into app.appointments (tenant_id, customer_id, assigned_user_id, starts_at, ends_at) values (${shop.id}, ${customer}, ${assignee}, ${at(h)}, ${at(h + 1)})`;
    }
    const seen = async (role: Role, permission = "appointments:read") =>
      (await asMember(app, members[role], shop, { permission }, (tx) => tx`select assigned_user_id from app.appointments`)).map((r) => r.assigned_user_id);
    // The accountant's transaction for a route it may use (customers:read) reads no appointment.
    expect(await seen("accountant", "customers:read")).toEqual([]);
    // A staff member's transaction opened for customers:read does not carry appointments:read either.
    expect(await seen("staff", "customers:read")).toEqual([]);
    expect(await seen("staff")).toEqual([members.staff.id]);
    expect((await seen("manager")).length).toBe(3);
  });
});
