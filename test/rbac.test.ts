// Role-based access control, proved from the outside. The role × route matrix is generated:
// routes come from the Express router (each names its permission), expectations from the SQL
// matrix (app.role_permissions), so changing policies/permissions.sql changes what this file
// asserts. Then the rules beyond the grid (staff, accountants, owners), the checks SQL makes on
// its own as app_user, and the events RBAC writes to the audit.
import { randomBytes, randomUUID } from "node:crypto";
import postgres from "postgres";
import { beforeAll, describe, expect, it } from "vitest";
import { createApp } from "../server/app.ts";
import type { Sql } from "../server/db/connections.ts";
import { hashPassword } from "../server/auth/passwords.ts";
import { encryptCredential } from "../server/core/credentialCipher.ts";
import { ROLES as roles } from "../server/core/roles.ts";
import { routeInventory } from "../server/http/routeInventory.ts";
import { credentialRing, db, keys, makeTenant, makeUser, openTenantContext, tokenFor, useApi, type Role, type Tenant, type User } from "./fixtures.ts";
import { backendPid, waitFor } from "./waits.ts";

const { owner, api } = useApi();
const routes = routeInventory(createApp({ keys, bodyLimit: "100kb" })).filter((r) => r.permission);

let shop: Tenant;
let other: Tenant;
const members = {} as Record<Role, User>;
const foreign = {} as Record<string, string>;
let granted: Set<string>;

const holds = (role: Role, permission: string) => granted.has(`${role} ${permission}`);
let slot = 0;
const uniq = () => randomUUID().slice(0, 8);

// Rows of `tenant`, created as the owner role (outside RBAC), one fresh set per request.
async function customer(tenant: Tenant = shop): Promise<string> {
  const [r] = await owner`insert into app.customers (tenant_id, name) values (${tenant.id}, ${`RBAC ${uniq()}`}) returning id`;
  return r.id;
}
async function vehicle(tenant: Tenant = shop): Promise<string> {
  const [r] = await owner`insert into app.vehicles (tenant_id, customer_id, plate) values (${tenant.id}, ${await customer(tenant)}, 'RB-1') returning id`;
  return r.id;
}
async function service(tenant: Tenant = shop): Promise<string> {
  const [r] = await owner`insert into app.services (tenant_id, name) values (${tenant.id}, ${`Service ${uniq()}`}) returning id`;
  return r.id;
}
async function operation(tenant: Tenant = shop): Promise<string> {
  const [r] = await owner`
    insert into app.service_operations (tenant_id, service_id, internal_code, name, price_cents, duration_minutes)
    values (${tenant.id}, ${await service(tenant)}, ${`OP-${uniq()}`}, 'Oil change', 4900, 30) returning id`;
  return r.id;
}
/** A draft change set of `tenant` by a manager of its own (never the actor), against its current catalog version. */
let author: User;
async function changeSet(tenant: Tenant = shop, by?: User): Promise<string> {
  const op = await operation(tenant);
  const [r] = await owner`
    insert into app.catalog_change_sets (tenant_id, title, base_version, author_user_id)
    values (${tenant.id}, ${`RBAC ${uniq()}`}, (select coalesce(max(version), 0) from app.catalog_heads where tenant_id = ${tenant.id}), ${(by ?? author).id})
    returning id`;
  await owner`insert into app.catalog_change_set_items (tenant_id, change_set_id, position, kind, operation_id, price_cents) values (${tenant.id}, ${r.id}, 1, 'price', ${op}, 4242)`;
  return r.id;
}
async function approvedChangeSet(): Promise<string> {
  const id = await changeSet();
  await owner`update app.catalog_change_sets set status = 'approved', approved_by = ${members.owner.id} where id = ${id}`;
  return id;
}
/** A catalog version before the current one, to restore. */
async function earlierVersion(): Promise<string> {
  await operation();
  const [r] = await owner`select max(version) - 1 as v from app.catalog_heads where tenant_id = ${shop.id}`;
  return String(r.v);
}
/** An appointment in its own two-hour slot, so no two overlap. */
async function appointment(assignee: User | null, tenant: Tenant = shop): Promise<string> {
  const start = new Date(Date.UTC(2031, 0, 1) + slot++ * 7_200_000);
  const [r] = await owner`
    insert into app.appointments (tenant_id, customer_id, assigned_user_id, starts_at, ends_at)
    values (${tenant.id}, ${await customer(tenant)}, ${assignee?.id ?? null}, ${start}, ${new Date(start.getTime() + 3_600_000)}) returning id`;
  return r.id;
}
async function draft(tenant: Tenant = shop, withLine = false): Promise<string> {
  const [r] = await owner`insert into app.invoices (tenant_id, customer_id) values (${tenant.id}, ${await customer(tenant)}) returning id`;
  if (withLine) {
    await owner`insert into app.invoice_lines (tenant_id, invoice_id, description, quantity, unit_price_cents) values (${tenant.id}, ${r.id}, 'Labour', 1, 5000)`;
  }
  return r.id;
}
async function issued(): Promise<string> {
  const id = await draft(shop, true);
  await owner.begin(async (tx) => {
    await tx`select app.open_operator_context(${shop.id}::uuid)`;
    await tx`select app.issue_invoice(${id}::uuid)`;
  });
  return id;
}
/** A stored credential of `tenant` (encrypted as the API does); its provider names it in the path. */
async function integration(tenant: Tenant = shop): Promise<string> {
  const provider = `rbac-${uniq()}`;
  const envelope = encryptCredential(credentialRing, { tenantId: tenant.id, provider }, `rbac-secret-${uniq()}`);
  await owner`insert into app.integration_credentials (tenant_id, provider, credential_envelope, last4) values (${tenant.id}, ${provider}, ${envelope}, 'abcd')`;
  return provider;
}
async function member(role: Role = "staff", tenant: Tenant = shop): Promise<User> {
  return makeUser(owner, tenant, role);
}

/**
 * How to make a valid request to each route as `actor`: the row its path names (created fresh)
 * and its body. A route without a case fails the matrix test by name.
 */
type Case = { row?: (actor: User) => Promise<string>; body?: (actor: User) => unknown | Promise<unknown>; query?: string };
const at = (actor: User) => {
  const start = new Date(Date.UTC(2032, 0, 1) + slot++ * 7_200_000);
  return { starts_at: start.toISOString(), ends_at: new Date(start.getTime() + 3_600_000).toISOString(), assigned_user_id: actor.id };
};
const cases: Record<string, Case> = {
  "GET /api/v1/customers": {},
  "POST /api/v1/customers": { body: () => ({ name: "RBAC walk-in" }) },
  "GET /api/v1/customers/:id": { row: () => customer() },
  "PATCH /api/v1/customers/:id": { row: () => customer(), body: () => ({ notes: "changed" }) },
  "DELETE /api/v1/customers/:id": { row: () => customer() },
  "GET /api/v1/vehicles": {},
  "POST /api/v1/vehicles": { body: async () => ({ customer_id: await customer(), plate: "RB-2" }) },
  "GET /api/v1/vehicles/:id": { row: () => vehicle() },
  "PATCH /api/v1/vehicles/:id": { row: () => vehicle(), body: () => ({ plate: "RB-3" }) },
  "DELETE /api/v1/vehicles/:id": { row: () => vehicle() },
  "GET /api/v1/services": {},
  "POST /api/v1/services": { body: () => ({ name: `Service ${uniq()}` }) },
  "GET /api/v1/services/:id": { row: () => service() },
  "PATCH /api/v1/services/:id": { row: () => service(), body: () => ({ display_order: 7 }) },
  "DELETE /api/v1/services/:id": { row: () => service() },
  "GET /api/v1/service-operations": {},
  "POST /api/v1/service-operations": {
    body: async () => ({ service_id: await service(), internal_code: `OP-${uniq()}`, name: "Brakes", price_cents: 100, duration_minutes: 60 }),
  },
  "GET /api/v1/service-operations/:id": { row: () => operation() },
  "PATCH /api/v1/service-operations/:id": { row: () => operation(), body: () => ({ price_cents: 5100 }) },
  "DELETE /api/v1/service-operations/:id": { row: () => operation() },
  "GET /api/v1/appointments": {},
  "POST /api/v1/appointments": { body: async (actor) => ({ customer_id: await customer(), ...at(actor) }) },
  "GET /api/v1/appointments/:id": { row: (actor) => appointment(actor) },
  "PATCH /api/v1/appointments/:id": { row: (actor) => appointment(actor), body: () => ({ notes: "bring the keys" }) },
  "DELETE /api/v1/appointments/:id": { row: (actor) => appointment(actor) },
  "GET /api/v1/invoices": {},
  "POST /api/v1/invoices": { body: async () => ({ customer_id: await customer() }) },
  "GET /api/v1/invoices/:id": { row: () => draft() },
  "PATCH /api/v1/invoices/:id": { row: () => draft(), body: () => ({ notes: "net 30" }) },
  "DELETE /api/v1/invoices/:id": { row: () => draft() },
  "POST /api/v1/invoices/:id/lines": { row: () => draft(), body: () => ({ description: "Labour", quantity: 2, unit_price_cents: 4000 }) },
  "GET /api/v1/invoices/:id/lines": { row: () => draft(shop, true) },
  "POST /api/v1/invoices/:id/issue": { row: () => draft(shop, true) },
  "POST /api/v1/invoices/:id/pay": { row: () => issued() },
  "POST /api/v1/invoices/:id/void": { row: () => issued() },
  "GET /api/v1/reports/revenue-daily": { query: "?from=2030-01-01&to=2030-01-31" },
  "GET /api/v1/audit": {},
  "GET /api/v1/audit/export.csv": {},
  "GET /api/v1/members": {},
  "POST /api/v1/members": { body: async () => ({ email: (await makeUser(owner)).email, role: "staff" }) },
  "PATCH /api/v1/members/:userId": { row: async () => (await member()).id, body: () => ({ role: "manager" }) },
  "DELETE /api/v1/members/:userId": { row: async () => (await member()).id },
  "GET /api/v1/settings": {},
  "PATCH /api/v1/settings": { body: () => ({ name: `Shop ${uniq()}` }) },
  "GET /api/v1/integrations": {},
  "PUT /api/v1/integrations/:provider": { row: async () => `rbac-${uniq()}`, body: () => ({ secret: `rbac-secret-${uniq()}` }) },
  "DELETE /api/v1/integrations/:provider": { row: () => integration() },
  "POST /api/v1/integrations/:provider/test": { row: () => integration() },
  "GET /api/v1/features": {},
  "GET /api/v1/export": {},
  "GET /api/v1/members/invitations": {},
  "DELETE /api/v1/members/invitations/:id": {
    row: async () => (await owner`insert into app.invitations (tenant_id, email, role, token_hash) values (${shop.id}, ${`inv-${uniq()}@test.test`}, 'staff', ${randomBytes(32).toString("hex")}) returning id`)[0].id,
  },
  "GET /api/v1/catalog/change-sets": {},
  "POST /api/v1/catalog/change-sets": { body: async () => ({ title: `RBAC ${uniq()}`, items: [{ kind: "price", operation_id: await operation(), price_cents: 1 }] }) },
  "GET /api/v1/catalog/change-sets/:id": { row: () => changeSet() },
  "PATCH /api/v1/catalog/change-sets/:id": { row: () => changeSet(), body: () => ({ title: "changed" }) },
  "DELETE /api/v1/catalog/change-sets/:id": { row: () => changeSet() },
  "POST /api/v1/catalog/change-sets/:id/dry-run": { row: () => changeSet() },
  "POST /api/v1/catalog/change-sets/:id/approve": { row: () => changeSet() },
  "POST /api/v1/catalog/change-sets/:id/reject": { row: () => changeSet(), body: () => ({ reason: "not now" }) },
  "POST /api/v1/catalog/change-sets/:id/apply": { row: () => approvedChangeSet() },
  "GET /api/v1/catalog/versions": {},
  "POST /api/v1/catalog/versions/:version/restore": { row: () => earlierVersion() },
  "GET /api/v1/access/explain": { query: "?user=nobody%40example.test&table=customers&action=select" },
};

/** The foreign row of the kind a route's path names: a row of the other tenant. */
function foreignRowOf(path: string): string {
  // Under /catalog the area is two segments deep (change-sets, versions).
  const area = path.split("/").slice(3, path.startsWith("/api/v1/catalog/") ? 5 : 4).join("/");
  const id = foreign[path.split("/").slice(3, 5).join("/")] ?? foreign[area];
  if (!id) throw new Error(`no foreign row for ${area}`);
  return id;
}

async function call(role: Role, method: string, path: string, body?: unknown) {
  return api.request(method, path, { token: tokenFor(members[role]), tenant: shop.slug, body });
}

beforeAll(async () => {
  shop = await makeTenant(owner, { prefix: "rbac" });
  other = await makeTenant(owner, { prefix: "rbac-other" });
  for (const role of roles) members[role] = await member(role);
  author = await member("manager");
  // The other tenant's rows are reached only by id, through the shop's context: how a leak would look.
  const stranger = await member("owner", other);
  Object.assign(foreign, {
    customers: await customer(other),
    vehicles: await vehicle(other),
    services: await service(other),
    "service-operations": await operation(other),
    appointments: await appointment(stranger, other),
    invoices: await draft(other, true),
    members: stranger.id,
    "members/invitations": (await owner`insert into app.invitations (tenant_id, email, role, token_hash)
                                         values (${other.id}, ${`foreign-${uniq()}@test.test`}, 'staff', ${randomBytes(32).toString("hex")}) returning id`)[0].id,
    integrations: await integration(other),
    "catalog/change-sets": await changeSet(other, stranger),
    // Version numbers are per shop: another shop's is one this shop does not have.
    "catalog/versions": "999999",
  });
  granted = new Set((await owner`select role || ' ' || permission as g from app.role_permissions`).map((r) => r.g as string));
});

describe("the role × route matrix, generated from app.role_permissions", () => {
  it("covers every tenant route, and every route has a case here", () => {
    expect(routes.length).toBeGreaterThanOrEqual(40);
    expect(routes.map((r) => `${r.method} ${r.path}`).filter((k) => !cases[k]), "routes without a case: add one to `cases`").toEqual([]);
  });

  for (const route of routes) {
    const key = `${route.method} ${route.path}`;
    it(`${key}: 2xx for a role holding ${route.permission}, 403 FORBIDDEN naming it for the others`, async () => {
      const c = cases[key];
      if (!c) throw new Error(`no case for ${key}`);
      const seen: string[] = [];
      for (const role of roles) {
        const actor = members[role];
        const path = route.path.replace(/:[A-Za-z]+/, c.row ? await c.row(actor) : "") + (c.query ?? "");
        const res = await call(role, route.method, path, await c.body?.(actor));
        if (holds(role, route.permission!)) {
          expect(res.status, `${role} ${key}: ${JSON.stringify(res.body)}`).toBeGreaterThanOrEqual(200);
          expect(res.status, `${role} ${key}: ${JSON.stringify(res.body)}`).toBeLessThan(300);
        } else if (c.row && route.path.startsWith("/api/v1/appointments/") && !holds(role, "appointments:read")) {
          // Without appointments:read no appointment exists to the role in SQL (policies/rbac.sql),
          // so a route naming one answers as for any row it cannot see.
          expect(res.status, `${role} ${key}`).toBe(404);
        } else {
          expect(res.status, `${role} ${key}`).toBe(403);
          expect(res.body.error, `${role} ${key}`).toMatchObject({ code: "FORBIDDEN", details: { permission: route.permission } });
        }
        seen.push(`${role}:${res.status}`);
      }
      // Both outcomes are exercised somewhere in the matrix; here, every role was asked.
      expect(seen).toHaveLength(roles.length);
    });
  }

  // PUT names its row by the caller's own key (a provider of its own shop): it stores the caller's
  // own credential under that name and never reaches another shop's (checked below: untouched).
  for (const route of routes.filter((r) => r.path.includes("/:") && r.method !== "PUT")) {
    const key = `${route.method} ${route.path}`;
    it(`${key}: another tenant's row is 404 for every role, with or without ${route.permission}`, async () => {
      const c = cases[key];
      for (const role of roles) {
        const res = await call(role, route.method, route.path.replace(/:[A-Za-z]+/, foreignRowOf(route.path)), await c?.body?.(members[role]));
        expect(res.status, `${role} ${key}: ${JSON.stringify(res.body)}`).toBe(404);
      }
    });
  }

  it("PUT /api/v1/integrations/:provider with another shop's provider name stores the caller's own (201 or 403), never the other's", async () => {
    for (const role of roles) {
      const res = await call(role, "PUT", `/api/v1/integrations/${foreign.integrations}`, { secret: `rbac-secret-${uniq()}` });
      expect(res.status, role).toBe(holds(role, "integrations:manage") ? (role === "owner" ? 201 : 200) : 403);
    }
    const [mine] = await owner`select count(*)::int as n from app.integration_credentials where tenant_id = ${shop.id} and provider = ${foreign.integrations}`;
    expect(mine.n).toBe(1);
  });

  it("the other tenant's rows were never touched", async () => {
    const [r] = await owner`
      select (select count(*) from app.customers where tenant_id = ${other.id})::int as customers,
             (select status from app.invoices where id = ${foreign.invoices}) as invoice,
             (select count(*) from app.memberships where tenant_id = ${other.id})::int as members,
             (select count(*) from app.audit_log where tenant_id = ${other.id} and actor_user_id is not null)::int as audited,
             (select version from app.integration_credentials where tenant_id = ${other.id} and provider = ${foreign.integrations})::int as credential_version`;
    expect(r).toEqual({ customers: 4, invoice: "draft", members: 1, audited: 0, credential_version: 1 });
  });
});

describe("staff: only the appointments assigned to them", () => {
  it("lists, reads and changes their own; the others do not exist for them", async () => {
    const staff = members.staff;
    const mine = await appointment(staff);
    const theirs = await appointment(members.manager);
    const unassigned = await appointment(null);

    const list = await call("staff", "GET", "/api/v1/appointments?limit=500");
    expect(list.status).toBe(200);
    const ids = list.body.data.map((a: { id: string }) => a.id);
    expect(ids).toContain(mine);
    expect(ids).not.toContain(theirs);
    expect(ids).not.toContain(unassigned);
    expect(list.body.data.every((a: { assigned_user_id: string }) => a.assigned_user_id === staff.id)).toBe(true);

    expect((await call("staff", "GET", `/api/v1/appointments/${theirs}`)).status).toBe(404);
    expect((await call("staff", "PATCH", `/api/v1/appointments/${unassigned}`, { notes: "mine now" })).status).toBe(404);
    expect((await call("staff", "DELETE", `/api/v1/appointments/${theirs}`)).status).toBe(404);
    expect((await call("staff", "PATCH", `/api/v1/appointments/${mine}`, { status: "in_progress" })).status).toBe(200);
    // The manager sees all three.
    expect((await call("manager", "GET", `/api/v1/appointments/${unassigned}`)).status).toBe(200);
  });

  it("cannot hand an appointment to someone else or book one for them: 403 naming appointments:all", async () => {
    const mine = await appointment(members.staff);
    const handOver = await call("staff", "PATCH", `/api/v1/appointments/${mine}`, { assigned_user_id: members.manager.id });
    expect(handOver.status).toBe(403);
    expect(handOver.body.error.details).toEqual({ permission: "appointments:all" });
    const book = await call("staff", "POST", "/api/v1/appointments", { customer_id: await customer(), ...at(members.manager) });
    expect(book.status).toBe(403);
    expect(book.body.error.details).toEqual({ permission: "appointments:all" });
    const [row] = await owner`select assigned_user_id from app.appointments where id = ${mine}`;
    expect(row.assigned_user_id).toBe(members.staff.id);
  });
});

describe("accountants: financial reads and payment state only", () => {
  it("records a payment, and can neither edit, issue nor void", async () => {
    const invoice = await issued();
    const pay = await call("accountant", "POST", `/api/v1/invoices/${invoice}/pay`);
    expect(pay.status).toBe(200);
    expect(pay.body.status).toBe("paid");
    const refused = [
      [await call("accountant", "POST", `/api/v1/invoices/${invoice}/void`), "invoices:void"],
      [await call("accountant", "PATCH", `/api/v1/invoices/${await draft()}`, { notes: "x" }), "invoices:write"],
      [await call("accountant", "POST", `/api/v1/invoices/${await draft(shop, true)}/issue`), "invoices:issue"],
    ] as const;
    for (const [res, permission] of refused) {
      expect(res.status, permission).toBe(403);
      expect(res.body.error.details, permission).toEqual({ permission });
    }
    // Appointments do not exist to a role without appointments:read: the list is refused, a row is not found.
    expect((await call("accountant", "GET", "/api/v1/appointments")).status).toBe(403);
    expect((await call("accountant", "GET", `/api/v1/appointments/${await appointment(null)}`)).status).toBe(404);
    const [row] = await owner`select status from app.invoices where id = ${invoice}`;
    expect(row.status).toBe("paid");
  });

  it("a refused keyed POST stores no idempotent answer, so a permitted retry is not blocked by it", async () => {
    const invoice = await issued();
    const key = `rbac-${uniq()}`;
    const refused = await api.request("POST", `/api/v1/invoices/${invoice}/void`, { token: tokenFor(members.accountant), tenant: shop.slug, headers: { "idempotency-key": key } });
    expect(refused.status).toBe(403);
    expect(await owner`select 1 from app.idempotency_keys where tenant_id = ${shop.id} and key = ${key}`).toHaveLength(0);
    const [row] = await owner`select status from app.invoices where id = ${invoice}`;
    expect(row.status).toBe("issued");
  });
});

describe("writes are refused by SQL itself, as app_user", () => {
  const asMember = async (role: Role, access: { permission: string; forRow?: boolean }, work: (tx: Sql) => Promise<unknown>) => {
    const app = postgres(db.appUrl, { max: 1, onnotice: () => {} });
    try {
      return await app.begin(async (tx) => {
        await openTenantContext(tx as unknown as Sql, { userId: members[role].id, tenantRefs: [shop.slug], requestId: "sql-rbac", writes: true, forRow: true, ...access });
        return work(tx as unknown as Sql);
      });
    } finally {
      await app.end();
    }
  };

  it("an UPDATE without customers:write raises SS403 naming the permission; with it, it passes", async () => {
    const id = await customer();
    await expect(asMember("accountant", { permission: "customers:write" }, (tx) => tx`update app.customers set notes = 'x' where id = ${id}`)).rejects.toMatchObject({
      code: "SS403",
      detail: "customers:write",
    });
    expect(await asMember("manager", { permission: "customers:write" }, (tx) => tx`update app.customers set notes = 'x' where id = ${id} returning id`)).toHaveLength(1);
  });

  it("a status change needs its transition's permission, whatever else the role holds", async () => {
    const id = await issued();
    await expect(asMember("staff", { permission: "invoices:pay" }, (tx) => tx`update app.invoices set status = 'paid', paid_at = now() where id = ${id}`)).rejects.toMatchObject({ code: "SS403", detail: "invoices:pay" });
    await expect(asMember("accountant", { permission: "invoices:void" }, (tx) => tx`update app.invoices set status = 'void', voided_at = now() where id = ${id}`)).rejects.toMatchObject({ code: "SS403", detail: "invoices:void" });
  });

  it("a collection route's permission is refused before any query runs", async () => {
    const app = postgres(db.appUrl, { max: 1, onnotice: () => {} });
    try {
      await expect(
        app.begin((tx) => openTenantContext(tx as unknown as Sql, { userId: members.staff.id, tenantRefs: [shop.slug], requestId: "r", permission: "audit:read" })),
      ).rejects.toMatchObject({ code: "SS403", detail: "audit:read" });
      const [r] = await app.begin((tx) => openTenantContext(tx as unknown as Sql, { userId: members.staff.id, tenantRefs: [shop.slug], requestId: "r", permission: "audit:read", forRow: true }));
      expect(r.permitted).toBe(false);
    } finally {
      await app.end();
    }
  });
});

describe("members", () => {
  it("an admin invites, the invitee accepts, then the admin promotes and removes the member, each step audited", async () => {
    const person = await makeUser(owner);
    const invited = await call("admin", "POST", "/api/v1/members", { email: person.email.toUpperCase(), role: "staff" });
    expect(invited.status).toBe(202);
    expect(invited.body).toMatchObject({ email: person.email.toUpperCase(), role: "staff", token: expect.stringMatching(/^[A-Za-z0-9_-]{43}$/) });
    expect(await owner`select 1 from app.memberships where tenant_id = ${shop.id} and user_id = ${person.id}`).toHaveLength(0);
    const accepted = await api.request("POST", "/api/v1/invitations/accept", { body: { token: invited.body.token, password: "a long enough password" } });
    expect([accepted.status, accepted.body.user_id, accepted.body.role]).toEqual([200, person.id, "staff"]);
    const again = await call("admin", "POST", "/api/v1/members", { email: person.email, role: "staff" });
    const twice = await api.request("POST", "/api/v1/invitations/accept", { body: { token: again.body.token, password: "a long enough password" } });
    expect(twice.body.error.code).toBe("ALREADY_A_MEMBER");
    expect((await call("admin", "PATCH", `/api/v1/members/${person.id}`, { role: "manager" })).body.role).toBe("manager");
    expect((await call("admin", "GET", "/api/v1/members")).body.data.map((m: { user_id: string }) => m.user_id)).toContain(person.id);
    expect((await call("admin", "DELETE", `/api/v1/members/${person.id}`)).status).toBe(204);
    expect((await call("admin", "DELETE", `/api/v1/members/${person.id}`)).body.error.code).toBe("MEMBER_NOT_FOUND");

    const [joined] = await owner`
      select actor_user_id, actor_role from app.audit_log
       where tenant_id = ${shop.id} and action = 'invitation.accepted' and entity_id = ${invited.body.id}`;
    expect(joined).toEqual({ actor_user_id: person.id, actor_role: "staff" });
    const events = await owner`
      select action, actor_user_id, actor_role, change->'event' as detail from app.audit_log
       where tenant_id = ${shop.id} and entity = 'membership' and entity_id = ${person.id} order by id`;
    expect(events.map((e) => e.action)).toEqual(["member.role_changed", "member.removed"]);
    expect(events.every((e) => e.actor_user_id === members.admin.id && e.actor_role === "admin")).toBe(true);
    expect(events[0].detail).toEqual({ old: "staff", new: "manager" });
  });

  it("the answer does not tell whether an email has an account: the same status and body shape for an unknown one, which makes no account", async () => {
    const known = await makeUser(owner);
    const unknown = `nobody-${uniq()}@test.test`;
    const forKnown = await call("owner", "POST", "/api/v1/members", { email: known.email, role: "staff" });
    const forUnknown = await call("owner", "POST", "/api/v1/members", { email: unknown, role: "staff" });
    expect([forUnknown.status, Object.keys(forUnknown.body)]).toEqual([forKnown.status, Object.keys(forKnown.body)]);
    expect(forUnknown.body).toMatchObject({ email: unknown, role: "staff" });
    expect(await owner`select 1 from app.users where email = ${unknown}`).toHaveLength(0);
    expect(await owner`select 1 from app.invitations where tenant_id = ${shop.id} and email in ${owner([known.email, unknown])}`).toHaveLength(2);
    // Nor does the owner rule: an admin asking the owner role is refused before anything is written.
    const owners = await Promise.all([known.email, unknown].map(async (email) => (await call("admin", "POST", "/api/v1/members", { email, role: "owner" })).body.error.code));
    expect(owners).toEqual(["OWNER_REQUIRED", "OWNER_REQUIRED"]);
  });

  it("only an owner grants or removes the owner role", async () => {
    const person = await member("manager");
    const grant = await call("admin", "PATCH", `/api/v1/members/${person.id}`, { role: "owner" });
    expect(grant.status).toBe(403);
    expect(grant.body.error.code).toBe("OWNER_REQUIRED");
    expect((await call("admin", "POST", "/api/v1/members", { email: (await makeUser(owner)).email, role: "owner" })).body.error.code).toBe("OWNER_REQUIRED");
    expect((await call("owner", "PATCH", `/api/v1/members/${person.id}`, { role: "owner" })).body.role).toBe("owner");
    const demote = await call("admin", "PATCH", `/api/v1/members/${person.id}`, { role: "staff" });
    expect(demote.body.error.code).toBe("OWNER_REQUIRED");
    expect((await call("admin", "DELETE", `/api/v1/members/${person.id}`)).body.error.code).toBe("OWNER_REQUIRED");
    expect((await call("owner", "DELETE", `/api/v1/members/${person.id}`)).status).toBe(204);
  });

  it("the last owner can be neither demoted nor removed, over HTTP", async () => {
    const t = await makeTenant(owner, { prefix: "rbac-last" });
    const boss = await member("owner", t);
    const as = (method: string, path: string, body?: unknown) => api.request(method, path, { token: tokenFor(boss), tenant: t.slug, body });
    const demote = await as("PATCH", `/api/v1/members/${boss.id}`, { role: "admin" });
    expect(demote.status).toBe(409);
    expect(demote.body.error.code).toBe("LAST_OWNER");
    expect((await as("DELETE", `/api/v1/members/${boss.id}`)).body.error.code).toBe("LAST_OWNER");
    // With a second owner, the first may step down.
    const heir = await makeUser(owner);
    const invited = await as("POST", "/api/v1/members", { email: heir.email, role: "owner" });
    expect(invited.status).toBe(202);
    expect((await api.request("POST", "/api/v1/invitations/accept", { body: { token: invited.body.token, password: "the heir's password" } })).body.role).toBe("owner");
    expect((await as("PATCH", `/api/v1/members/${boss.id}`, { role: "admin" })).body.role).toBe("admin");
  });
});

describe("the last owner, in SQL, for every writer", () => {
  it("the owner role (an operator) cannot remove or demote a tenant's last owner either", async () => {
    const t = await makeTenant(owner, { prefix: "rbac-sql" });
    const boss = await member("owner", t);
    await expect(owner`delete from app.memberships where tenant_id = ${t.id} and user_id = ${boss.id}`).rejects.toMatchObject({ code: "SS409", constraint_name: "last_owner" });
    await expect(owner`update app.memberships set role = 'admin' where tenant_id = ${t.id}`).rejects.toMatchObject({ code: "SS409" });
    await expect(owner`delete from app.users where id = ${boss.id}`).rejects.toMatchObject({ code: "SS409" });
    // Deleting the tenant itself takes its memberships with it.
    await owner`delete from app.tenants where id = ${t.id}`;
    expect(await owner`select 1 from app.memberships where tenant_id = ${t.id}`).toHaveLength(0);
  });

  it("two concurrent demotions of a tenant's two owners: exactly one succeeds", async () => {
    const t = await makeTenant(owner, { prefix: "rbac-race" });
    const [a, b] = [await member("owner", t), await member("owner", t)];
    const conn = postgres(db.ownerUrl, { max: 2, onnotice: () => {} });
    const [first, second] = [await conn.reserve(), await conn.reserve()];
    try {
      // The first demotion is made and held open; the second runs while it is: a barrier on
      // PostgreSQL's own state (blocked by the first, or already answered), not a sleep.
      await first`begin`;
      await first`update app.memberships set role = 'admin' where tenant_id = ${t.id} and user_id = ${a.id}`;
      const [holder, other] = [await backendPid(first as unknown as Sql), await backendPid(second as unknown as Sql)];
      await second`begin`;
      let answered = false;
      const demoting = second`update app.memberships set role = 'admin' where tenant_id = ${t.id} and user_id = ${b.id}`
        .then(() => "demoted", (error: { code?: string; constraint_name?: string }) => error)
        .finally(() => (answered = true));
      await waitFor(async () => answered || (await owner`select 1 from pg_stat_activity where pid = ${other} and ${holder}::int = any (pg_blocking_pids(pid))`).length > 0,
        { what: "the second demotion to wait for the first, or to be answered" });
      await first`commit`;
      expect(await demoting).toMatchObject({ code: "SS409", constraint_name: "last_owner" });
      await second`rollback`;
      const [{ n }] = await owner`select count(*)::int as n from app.memberships where tenant_id = ${t.id} and role = 'owner'`;
      expect(n).toBe(1);
    } finally {
      first.release();
      second.release();
      await conn.end();
    }
  });
});

describe("settings", () => {
  it("an owner renames the shop (audited); an admin gets 403 naming settings:write", async () => {
    const name = `Renamed ${uniq()}`;
    const res = await call("owner", "PATCH", "/api/v1/settings", { name });
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ id: shop.id, slug: shop.slug, name });
    const [event] = await owner`select change->'event'->'name'->>'new' as name from app.audit_log where tenant_id = ${shop.id} and action = 'settings.changed' order by id desc limit 1`;
    expect(event.name).toBe(name);
    const refused = await call("admin", "PATCH", "/api/v1/settings", { name: "Not mine" });
    expect(refused.status).toBe(403);
    expect(refused.body.error.details).toEqual({ permission: "settings:write" });
  });
});

describe("login events", () => {
  it("a login and a failed attempt land in the audit of each of the account's shops; an unknown email in none", async () => {
    const password = "rbac-login-password";
    const [person] = await owner`insert into app.users (email, password_hash) values (${`login-${uniq()}@test.test`}, ${await hashPassword(password)}) returning id, email`;
    const second = await makeTenant(owner, { prefix: "rbac-login" });
    await owner`insert into app.memberships (tenant_id, user_id, role) values (${shop.id}, ${person.id}, 'staff'), (${second.id}, ${person.id}, 'owner')`;

    const ok = await api.request("POST", "/api/v1/auth/login", { body: { email: person.email, password }, headers: { "x-request-id": "login-ok-1" } });
    expect(ok.status).toBe(200);
    const bad = await api.request("POST", "/api/v1/auth/login", { body: { email: person.email, password: "wrong" }, headers: { "x-request-id": "login-bad-1" } });
    expect(bad.status).toBe(401);
    const unknown = await api.request("POST", "/api/v1/auth/login", { body: { email: `ghost-${uniq()}@test.test`, password: "x" } });
    expect(unknown.status).toBe(401);

    const rows = await owner`
      select tenant_id, action, actor_user_id, actor_role, request_id from app.audit_log
       where entity = 'user' and entity_id = ${person.id} order by id`;
    expect(rows).toHaveLength(4);
    expect(rows.filter((r) => r.action === "auth.login")).toEqual(expect.arrayContaining([
      { tenant_id: shop.id, action: "auth.login", actor_user_id: person.id, actor_role: "staff", request_id: "login-ok-1" },
      { tenant_id: second.id, action: "auth.login", actor_user_id: person.id, actor_role: "owner", request_id: "login-ok-1" },
    ]));
    // A failed attempt has no known actor: the account is the entity.
    expect(rows.filter((r) => r.action === "auth.login_failed").map((r) => [r.tenant_id, r.actor_user_id, r.request_id]).sort())
      .toEqual([[shop.id, null, "login-bad-1"], [second.id, null, "login-bad-1"]].sort());
  });
});
