// Customers over HTTP: the member's view, and the other tenant's token on every route.
import { beforeAll, describe, expect, it } from "vitest";
import { makeCustomers, makeTenant, makeUser, tokenFor, useApi, type Tenant, type User } from "./fixtures.ts";

const { owner, api } = useApi();
let a: Tenant, b: Tenant, suspended: Tenant;
let alice: User, bob: User, sam: User;
let bCustomer: string;

beforeAll(async () => {
  a = await makeTenant(owner);
  b = await makeTenant(owner);
  suspended = await makeTenant(owner, { status: "suspended" });
  alice = await makeUser(owner, a, "owner");
  bob = await makeUser(owner, b, "staff");
  sam = await makeUser(owner, suspended, "owner");
  await makeCustomers(owner, a, 5);
  [bCustomer] = await makeCustomers(owner, b, 5);
});

describe("a member of the tenant", () => {
  it("creates, reads, updates, lists and deletes a customer", async () => {
    const token = tokenFor(alice);
    const created = await api.request("POST", "/api/v1/customers", { token, tenant: a.slug, body: { name: "Grace Hopper", email: "grace@example.test", phone: "+1 555 0100" } });
    expect(created.status).toBe(201);
    expect(created.body).toMatchObject({ name: "Grace Hopper", email: "grace@example.test", notes: null });
    expect(created.body).not.toHaveProperty("tenant_id");
    const id = created.body.id;
    expect(created.headers.get("location")).toBe(`/api/v1/customers/${id}`);

    expect((await api.request("GET", `/api/v1/customers/${id}`, { token, tenant: a.slug })).body.name).toBe("Grace Hopper");
    const patched = await api.request("PATCH", `/api/v1/customers/${id}`, { token, tenant: a.id, body: { notes: "VIP", phone: null } });
    expect(patched.status).toBe(200);
    expect(patched.body).toMatchObject({ notes: "VIP", phone: null, name: "Grace Hopper" });
    expect(new Date(patched.body.updated_at) >= new Date(created.body.updated_at)).toBe(true);

    const found = await api.request("GET", "/api/v1/customers?q=grace", { token, tenant: a.slug });
    expect(found.body.data.map((c: { id: string }) => c.id)).toEqual([id]);

    expect((await api.request("DELETE", `/api/v1/customers/${id}`, { token, tenant: a.slug })).status).toBe(204);
    const gone = await api.request("GET", `/api/v1/customers/${id}`, { token, tenant: a.slug });
    expect(gone.status).toBe(404);
    expect(gone.body.error.code).toBe("CUSTOMER_NOT_FOUND");
  });

  it("pages through the list with an opaque keyset cursor, each row once", async () => {
    const token = tokenFor(alice);
    const seen: string[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const q: string = cursor ? `&cursor=${encodeURIComponent(cursor)}` : "";
      const page = await api.request("GET", `/api/v1/customers?limit=2${q}`, { token, tenant: a.slug });
      expect(page.status).toBe(200);
      expect(page.body.data.length).toBeLessThanOrEqual(2);
      seen.push(...page.body.data.map((c: { id: string }) => c.id));
      cursor = page.body.next_cursor;
      pages++;
    } while (cursor && pages < 50);
    const [{ n }] = await owner`select count(*)::int as n from app.customers where tenant_id = ${a.id}`;
    expect(seen.length).toBe(n);
    expect(new Set(seen).size).toBe(n);
  });

  it("treats q as text, not as a LIKE pattern", async () => {
    const res = await api.request("GET", "/api/v1/customers?q=%25", { token: tokenFor(alice), tenant: a.slug });
    expect(res.status).toBe(200);
    expect(res.body.data).toEqual([]);
  });

  it("gets 422 for a body carrying tenant_id, and the row is not created", async () => {
    const res = await api.request("POST", "/api/v1/customers", { token: tokenFor(alice), tenant: a.slug, body: { name: "Smuggler", tenant_id: b.id } });
    expect(res.status).toBe(422);
    expect(res.body.error.code).toBe("VALIDATION_FAILED");
    const [{ n }] = await owner`select count(*)::int as n from app.customers where name = 'Smuggler'`;
    expect(n).toBe(0);
  });

  it("gets 422 when a PATCH tries to set tenant_id", async () => {
    const [mine] = await makeCustomers(owner, a, 1);
    const res = await api.request("PATCH", `/api/v1/customers/${mine}`, { token: tokenFor(alice), tenant: a.slug, body: { tenant_id: b.id } });
    expect(res.status).toBe(422);
    const [row] = await owner`select tenant_id from app.customers where id = ${mine}`;
    expect(row.tenant_id).toBe(a.id);
  });
});

describe("tenant A's token on tenant B's ids", () => {
  const routes: [string, string, unknown?][] = [
    ["GET", "/api/v1/customers/{id}"],
    ["PATCH", "/api/v1/customers/{id}", { name: "Hijacked" }],
    ["DELETE", "/api/v1/customers/{id}"],
  ];
  for (const [method, path, body] of routes) {
    it(`${method} ${path} answers 404 CUSTOMER_NOT_FOUND and changes nothing`, async () => {
      const res = await api.request(method, path.replace("{id}", bCustomer), { token: tokenFor(alice), tenant: a.slug, body });
      expect(res.status).toBe(404);
      expect(res.body.error.code).toBe("CUSTOMER_NOT_FOUND");
      const [row] = await owner`select name from app.customers where id = ${bCustomer}`;
      expect(row?.name).toMatch(/customer/);
    });
  }

  it("never lists tenant B's customers", async () => {
    const res = await api.request("GET", "/api/v1/customers?limit=200", { token: tokenFor(alice), tenant: a.slug });
    const ids = new Set((await owner`select id from app.customers where tenant_id = ${a.id}`).map((r) => r.id));
    expect(res.body.data.length).toBeGreaterThan(0);
    expect(res.body.data.every((c: { id: string }) => ids.has(c.id))).toBe(true);
  });
});

describe("a tenant the caller does not belong to", () => {
  const routes: [string, string, unknown?][] = [
    ["GET", "/api/v1/customers"],
    ["POST", "/api/v1/customers", { name: "Intruder" }],
    ["GET", "/api/v1/customers/{id}"],
    ["PATCH", "/api/v1/customers/{id}", { name: "Hijacked" }],
    ["DELETE", "/api/v1/customers/{id}"],
  ];
  for (const [method, path, body] of routes) {
    it(`${method} ${path} answers 404 TENANT_NOT_FOUND, by slug and by id, like an unknown tenant`, async () => {
      for (const tenant of [b.slug, b.id, "no-such-shop", "8d1e5a8c-0000-4000-8000-000000000000"]) {
        const res = await api.request(method, path.replace("{id}", bCustomer), { token: tokenFor(alice), tenant, body });
        expect(res.status, tenant).toBe(404);
        expect(res.body.error.code).toBe("TENANT_NOT_FOUND");
      }
    });
  }

  it("did not let any of those writes through", async () => {
    const [{ n }] = await owner`select count(*)::int as n from app.customers where name in ('Intruder', 'Hijacked')`;
    expect(n).toBe(0);
  });

  it("a non-member learns nothing about a suspended tenant (404), a member gets 403 TENANT_SUSPENDED", async () => {
    const outsider = await api.request("GET", "/api/v1/customers", { token: tokenFor(bob), tenant: suspended.slug });
    expect(outsider.status).toBe(404);
    const member = await api.request("GET", "/api/v1/customers", { token: tokenFor(sam), tenant: suspended.slug });
    expect(member.status).toBe(403);
    expect(member.body.error.code).toBe("TENANT_SUSPENDED");
  });
});
