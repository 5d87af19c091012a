// One shape per resource: every write answers exactly what a read of the same row answers
// (same keys, types and formats), and every list pages through all its rows by cursor.
import { beforeAll, describe, expect, it } from "vitest";
import { makeTenant, makeUser, tokenFor, useApi, type Tenant, type User } from "./fixtures.ts";

const { owner, api } = useApi();
let shop: Tenant;
let alice: User;

beforeAll(async () => {
  shop = await makeTenant(owner);
  alice = await makeUser(owner, shop, "owner");
});

const call = (method: string, path: string, body?: unknown) => api.request(method, path, { token: tokenFor(alice), tenant: shop.slug, body });

async function written(method: string, path: string, body: unknown, status: number) {
  const res = await call(method, path, body);
  expect(res.status, JSON.stringify(res.body)).toBe(status);
  return res.body;
}
async function read(path: string) {
  const res = await call("GET", path);
  expect(res.status).toBe(200);
  return res.body;
}

/** Writes, then reads the row back: true when the read equals the write's answer (asserted inside, for the diff). */
async function writeThenRead(method: string, path: string, body: unknown, readPath: string): Promise<boolean> {
  const answer = await written(method, path, body, 200);
  expect(await read(readPath)).toEqual(answer);
  return true;
}

describe("a write answers what a read answers", () => {
  it("customers, vehicles, services, service operations, appointments", async () => {
    const customer = await written("POST", "/api/v1/customers", { name: "Shape", email: "s@x.test" }, 201);
    expect(await read(`/api/v1/customers/${customer.id}`)).toEqual(customer);
    expect(await writeThenRead("PATCH", `/api/v1/customers/${customer.id}`, { phone: "1" }, `/api/v1/customers/${customer.id}`)).toBe(true);

    const vehicle = await written("POST", "/api/v1/vehicles", { customer_id: customer.id, plate: "AB", year: 2020 }, 201);
    expect(await read(`/api/v1/vehicles/${vehicle.id}`)).toEqual(vehicle);
    expect(await writeThenRead("PATCH", `/api/v1/vehicles/${vehicle.id}`, { make: "VW" }, `/api/v1/vehicles/${vehicle.id}`)).toBe(true);

    const service = await written("POST", "/api/v1/services", { name: "Brakes" }, 201);
    expect(await read(`/api/v1/services/${service.id}`)).toEqual(service);
    const op = await written("POST", "/api/v1/service-operations", { service_id: service.id, internal_code: "BR-1", name: "Pads", price_cents: 5000, duration_minutes: 30 }, 201);
    expect(await read(`/api/v1/service-operations/${op.id}`)).toEqual(op);
    expect(await writeThenRead("PATCH", `/api/v1/service-operations/${op.id}`, { display_order: 3 }, `/api/v1/service-operations/${op.id}`)).toBe(true);

    const appt = await written("POST", "/api/v1/appointments", { customer_id: customer.id, vehicle_id: vehicle.id, starts_at: "2030-01-01T09:00:00.123456Z", ends_at: "2030-01-01T10:00:00.123456Z" }, 201);
    expect(await read(`/api/v1/appointments/${appt.id}`)).toEqual(appt);
    expect(await writeThenRead("PATCH", `/api/v1/appointments/${appt.id}`, { notes: "n" }, `/api/v1/appointments/${appt.id}`)).toBe(true);
  });

  it("catalog change sets: create, patch, approve, reject and apply answer what a read answers", async () => {
    const service = await written("POST", "/api/v1/services", { name: "Change shapes" }, 201);
    const op = await written("POST", "/api/v1/service-operations", { service_id: service.id, internal_code: "CS-1", name: "Pads", price_cents: 5000, duration_minutes: 30 }, 201);
    const set = await written("POST", "/api/v1/catalog/change-sets", { title: "Shape", items: [{ kind: "price", operation_id: op.id, price_cents: 1 }] }, 201);
    const path = `/api/v1/catalog/change-sets/${set.id}`;
    expect(await read(path)).toEqual(set);
    expect(await writeThenRead("PATCH", path, { items: [{ kind: "move", operation_id: op.id, display_order: 2 }] }, path)).toBe(true);
    expect(await writeThenRead("POST", `${path}/approve`, undefined, path)).toBe(true);
    expect(await writeThenRead("POST", `${path}/apply`, undefined, path)).toBe(true);
    const other = await written("POST", "/api/v1/catalog/change-sets", { title: "Shape 2", items: [] }, 201);
    expect(await writeThenRead("POST", `/api/v1/catalog/change-sets/${other.id}/reject`, { reason: "shape" }, `/api/v1/catalog/change-sets/${other.id}`)).toBe(true);
  });

  it("invoices: create, patch, issue, pay and lines answer the read's columns, totals and types", async () => {
    const [c] = await owner`insert into app.customers (tenant_id, name) values (${shop.id}, 'Inv') returning id`;
    const invoice = await written("POST", "/api/v1/invoices", { customer_id: c.id }, 201);
    expect(invoice).toMatchObject({ total_cents: 0, line_count: 0 });
    expect(await read(`/api/v1/invoices/${invoice.id}`)).toEqual(invoice);

    const line = await written("POST", `/api/v1/invoices/${invoice.id}/lines`, { description: "Labour", quantity: 1.5, unit_price_cents: 3000 }, 201);
    expect(line.quantity).toBe(1.5);
    const lines = await read(`/api/v1/invoices/${invoice.id}/lines`);
    expect(lines.data).toEqual([line]);

    const patched = await written("PATCH", `/api/v1/invoices/${invoice.id}`, { notes: "n" }, 200);
    expect(patched).toMatchObject({ total_cents: 4500, line_count: 1 });
    expect(await read(`/api/v1/invoices/${invoice.id}`)).toEqual(patched);
    const issued = await written("POST", `/api/v1/invoices/${invoice.id}/issue`, undefined, 200);
    expect(await read(`/api/v1/invoices/${invoice.id}`)).toEqual(issued);
    const paid = await written("POST", `/api/v1/invoices/${invoice.id}/pay`, undefined, 200);
    expect(paid).toMatchObject({ status: "paid", total_cents: 4500, line_count: 1 });
    expect(await read(`/api/v1/invoices/${invoice.id}`)).toEqual(paid);
  });

  it("members: an invited member, once the invitation is accepted, is listed with the email and role its POST answered; a change answers what the list shows", async () => {
    const bob = await makeUser(owner);
    const invited = await written("POST", "/api/v1/members", { email: bob.email, role: "staff" }, 202);
    const accepted = await api.request("POST", "/api/v1/invitations/accept", { body: { token: invited.token, password: "bob's long password" } });
    expect(accepted.body).toMatchObject({ user_id: bob.id, email: invited.email, role: invited.role });
    const list = await read("/api/v1/members?limit=500");
    expect(list.data.find((m: { user_id: string }) => m.user_id === bob.id)).toMatchObject({ email: invited.email, role: invited.role });
    const changed = await written("PATCH", `/api/v1/members/${bob.id}`, { role: "manager" }, 200);
    expect((await read("/api/v1/members?limit=500")).data.find((m: { user_id: string }) => m.user_id === bob.id)).toEqual(changed);
  });
});

describe("every list pages by cursor, nothing truncated", () => {
  it("each list returns every row exactly once, in its documented order", async () => {
    const t = await makeTenant(owner);
    const u = await makeUser(owner, t, "owner");
    const asT = (method: string, path: string, body?: unknown) => api.request(method, path, { token: tokenFor(u), tenant: t.slug, body });
    const [{ id: customer }] = await owner`insert into app.customers (tenant_id, name) values (${t.id}, 'C') returning id`;
    await owner`insert into app.customers (tenant_id, name) select ${t.id}, 'C' || (g % 3) from generate_series(1, 22) g`;
    const [{ id: service }] = await owner`insert into app.services (tenant_id, name) values (${t.id}, 'S') returning id`;
    // Equal sort values (same created_at, same display_order, NULL display_order) are where keyset paging breaks first.
    await owner`insert into app.vehicles (tenant_id, customer_id, plate, created_at) select ${t.id}, ${customer}, 'P' || g, '2030-01-01' from generate_series(1, 23) g`;
    await owner`insert into app.services (tenant_id, name, display_order) select ${t.id}, 'S' || g, g % 3 from generate_series(1, 23) g`;
    await owner`insert into app.service_operations (tenant_id, service_id, internal_code, name, price_cents, duration_minutes, display_order)
                select ${t.id}, ${service}, 'OP' || g, 'Op ' || (g % 4), 100, 10, case when g % 2 = 0 then null else g % 3 end from generate_series(1, 23) g`;
    await owner`insert into app.appointments (tenant_id, customer_id, starts_at, ends_at) select ${t.id}, ${customer}, '2030-01-01'::timestamptz + (g % 5) * interval '1 hour', '2030-01-02' from generate_series(1, 23) g`;
    await owner`insert into app.invoices (tenant_id, customer_id, created_at) select ${t.id}, ${customer}, '2030-01-01'::timestamptz + (g % 4) * interval '1 second' from generate_series(1, 23) g`;
    const [{ id: invoice }] = await owner`select id from app.invoices where tenant_id = ${t.id} limit 1`;
    await owner`insert into app.invoice_lines (tenant_id, invoice_id, description, quantity, unit_price_cents) select ${t.id}, ${invoice}, 'L' || g, 1, 1 from generate_series(1, 23) g`;
    for (let i = 0; i < 22; i++) await makeUser(owner, t, "staff");
    await owner`insert into app.catalog_change_sets (tenant_id, title, base_version, author_user_id, created_at)
                select ${t.id}, 'CS' || g, 0, ${u.id}, '2030-01-01'::timestamptz + (g % 3) * interval '1 second' from generate_series(1, 23) g`;
    // A catalog version per transaction: 23 more, one plain write each.
    for (let i = 0; i < 23; i++) await owner`update app.services set display_order = ${i + 100} where id = ${service}`;

    const expected = async (query: string) => (await owner.unsafe(query, [t.id])).map((r) => r.id as string);
    const lists: [string, string, boolean?][] = [
      ["/api/v1/customers", "select id from app.customers where tenant_id = $1 order by name, id"],
      ["/api/v1/vehicles", "select id from app.vehicles where tenant_id = $1 order by created_at, id"],
      ["/api/v1/services", "select id from app.services where tenant_id = $1 order by display_order, name, id"],
      ["/api/v1/service-operations", "select id from app.service_operations where tenant_id = $1 order by display_order asc nulls last, name, id", true],
      ["/api/v1/appointments", "select id from app.appointments where tenant_id = $1 order by starts_at, id"],
      ["/api/v1/invoices", "select id from app.invoices where tenant_id = $1 order by created_at desc, id desc"],
      [`/api/v1/invoices/${invoice}/lines`, "select id from app.invoice_lines where tenant_id = $1 order by created_at, id"],
      ["/api/v1/catalog/change-sets", "select id from app.catalog_change_sets where tenant_id = $1 order by created_at desc, id desc"],
      ["/api/v1/catalog/versions", "select version::text as id from app.catalog_versions where tenant_id = $1 order by version desc"],
      ["/api/v1/members", "select m.user_id as id from app.memberships m join app.users u on u.id = m.user_id where m.tenant_id = $1 order by lower(u.email), m.user_id"],
    ];
    for (const [path, query, rootArray] of lists) {
      const want = await expected(query);
      expect(want.length, path).toBeGreaterThanOrEqual(23);
      const got = await (async () => {
        const ids: string[] = [];
        let cursor: string | null = null;
        for (let n = 0; n < 100; n++) {
          const sep = path.includes("?") ? "&" : "?";
          const res = await asT("GET", `${path}${sep}limit=5${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ""}`);
          expect(res.status, path).toBe(200);
          const rows = rootArray ? res.body : res.body.data;
          ids.push(...rows.map((r: { id?: string; user_id?: string; version?: number }) => r.id ?? r.user_id ?? String(r.version)));
          cursor = rootArray ? res.headers.get("x-next-cursor") : res.body.next_cursor;
          if (rootArray && cursor) expect(res.headers.get("link")).toContain('rel="next"');
          if (!cursor) return ids;
        }
        throw new Error(`${path}: did not reach the last page: ${ids.slice(0, 30).join(" ")}`);
      })();
      expect(got, path).toEqual(want);
    }
  });
});
