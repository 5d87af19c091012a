// Appointments, invoices and reports over HTTP: the cross-tenant matrix, every rule the
// database enforces broken once, gapless numbering under 50 concurrent issues, and the
// contract that every view is bound by RLS with a never-NULL tenant_id.
import { randomUUID } from "node:crypto";
import { beforeAll, describe, expect, it } from "vitest";
import { makeCustomers, makeTenant, makeUser, tokenFor, useApi, type Tenant, type User } from "./fixtures.ts";

const { owner, api } = useApi({ poolMax: 20 });
let a: Tenant, b: Tenant;
let alice: User, mechanic: User, bob: User;
let aCustomer: string, aOtherCustomer: string, bCustomer: string;
let aVehicle: string, aOtherVehicle: string, bVehicle: string;
let aOperation: string, bOperation: string;
let bAppointment: string, bInvoice: string;

async function operation(t: Tenant, price: number): Promise<string> {
  const [s] = await owner`insert into app.services (tenant_id, name) values (${t.id}, ${`S ${randomUUID().slice(0, 6)}`}) returning id`;
  const [o] = await owner`insert into app.service_operations (tenant_id, service_id, internal_code, name, price_cents, duration_minutes)
                          values (${t.id}, ${s.id}, ${`OP-${randomUUID().slice(0, 6)}`}, 'Oil change', ${price}, 30) returning id`;
  return o.id;
}

beforeAll(async () => {
  a = await makeTenant(owner);
  b = await makeTenant(owner);
  alice = await makeUser(owner, a, "owner");
  mechanic = await makeUser(owner, a, "staff");
  bob = await makeUser(owner, b, "owner");
  [aCustomer, aOtherCustomer] = await makeCustomers(owner, a, 2);
  [bCustomer] = await makeCustomers(owner, b, 1);
  const vehicle = async (t: Tenant, c: string) => (await owner`insert into app.vehicles (tenant_id, customer_id) values (${t.id}, ${c}) returning id`)[0].id;
  aVehicle = await vehicle(a, aCustomer);
  aOtherVehicle = await vehicle(a, aOtherCustomer);
  bVehicle = await vehicle(b, bCustomer);
  aOperation = await operation(a, 4500);
  bOperation = await operation(b, 9999);
  [{ id: bAppointment }] = await owner`insert into app.appointments (tenant_id, customer_id, starts_at, ends_at)
    values (${b.id}, ${bCustomer}, '2030-01-01T09:00Z', '2030-01-01T10:00Z') returning id`;
  [{ id: bInvoice }] = await owner`insert into app.invoices (tenant_id, customer_id) values (${b.id}, ${bCustomer}) returning id`;
});

const as = (user: User, tenant: Tenant) => (method: string, path: string, body?: unknown) =>
  api.request(method, path, { token: tokenFor(user), tenant: tenant.slug, body });
const call = (method: string, path: string, body?: unknown) => as(alice, a)(method, path, body);
const slot = (hour: number, minutes = 60) => ({
  starts_at: new Date(Date.UTC(2031, 0, 1, hour)).toISOString(),
  ends_at: new Date(Date.UTC(2031, 0, 1, hour) + minutes * 60_000).toISOString(),
});

describe("tenant A's token on tenant B's appointments and invoices", () => {
  const routes: [string, string, () => string, unknown?][] = [
    ["GET", "/api/v1/appointments/{id}", () => bAppointment],
    ["PATCH", "/api/v1/appointments/{id}", () => bAppointment, { notes: "x" }],
    ["DELETE", "/api/v1/appointments/{id}", () => bAppointment],
    ["GET", "/api/v1/invoices/{id}", () => bInvoice],
    ["PATCH", "/api/v1/invoices/{id}", () => bInvoice, { notes: "x" }],
    ["DELETE", "/api/v1/invoices/{id}", () => bInvoice],
    ["GET", "/api/v1/invoices/{id}/lines", () => bInvoice],
    ["POST", "/api/v1/invoices/{id}/lines", () => bInvoice, { description: "x", quantity: 1, unit_price_cents: 1 }],
    ["POST", "/api/v1/invoices/{id}/issue", () => bInvoice],
    ["POST", "/api/v1/invoices/{id}/pay", () => bInvoice],
    ["POST", "/api/v1/invoices/{id}/void", () => bInvoice],
  ];
  for (const [method, path, id, body] of routes) {
    it(`${method} ${path} answers 404 and changes nothing`, async () => {
      const res = await call(method, path.replace("{id}", id()), body);
      expect(res.status).toBe(404);
      expect(res.body.error.code).toMatch(/^(APPOINTMENT|INVOICE)_NOT_FOUND$/);
    });
  }

  it("never lists B's appointments or invoices", async () => {
    const appointments = await call("GET", "/api/v1/appointments?limit=500");
    const invoices = await call("GET", "/api/v1/invoices?limit=500");
    expect(appointments.status).toBe(200);
    expect(invoices.status).toBe(200);
    expect(appointments.body.data.some((x: { id: string }) => x.id === bAppointment)).toBe(false);
    expect(invoices.body.data.some((x: { id: string }) => x.id === bInvoice)).toBe(false);
    const mine = await owner`select count(*)::int as n from app.appointments where tenant_id <> ${a.id} and id = any (${appointments.body.data.map((x: { id: string }) => x.id)})`;
    expect(mine[0].n).toBe(0);
  });

  it("B's appointment and invoice are untouched", async () => {
    const [ap] = await owner`select notes from app.appointments where id = ${bAppointment}`;
    const [inv] = await owner`select status, notes, (select count(*)::int from app.invoice_lines where invoice_id = ${bInvoice}) as lines from app.invoices where id = ${bInvoice}`;
    expect(ap.notes).toBeNull();
    expect(inv).toEqual({ status: "draft", notes: null, lines: 0 });
  });

  const references: [string, string, () => unknown][] = [
    ["B's customer in an appointment", "/api/v1/appointments", () => ({ customer_id: bCustomer, ...slot(1) })],
    ["B's vehicle in an appointment", "/api/v1/appointments", () => ({ customer_id: aCustomer, vehicle_id: bVehicle, ...slot(1) })],
    ["B's member as assignee", "/api/v1/appointments", () => ({ customer_id: aCustomer, assigned_user_id: bob.id, ...slot(1) })],
    ["B's customer in an invoice", "/api/v1/invoices", () => ({ customer_id: bCustomer })],
    ["B's appointment in an invoice", "/api/v1/invoices", () => ({ customer_id: aCustomer, appointment_id: bAppointment })],
  ];
  for (const [label, path, body] of references) {
    it(`${label} → 422 REFERENCE_NOT_FOUND, as for an id that exists nowhere`, async () => {
      const foreign = await call("POST", path, body());
      const json = JSON.stringify(body()).replace(new RegExp([bCustomer, bVehicle, bob.id, bAppointment].join("|")), randomUUID());
      const nowhere = await call("POST", path, JSON.parse(json));
      expect(foreign.status).toBe(422);
      expect(foreign.body.error.code).toBe("REFERENCE_NOT_FOUND");
      expect(nowhere.body.error.code).toBe("REFERENCE_NOT_FOUND");
    });
  }

  it("B's catalog operation on A's invoice → 422 REFERENCE_NOT_FOUND", async () => {
    const inv = await call("POST", "/api/v1/invoices", { customer_id: aCustomer });
    const res = await call("POST", `/api/v1/invoices/${inv.body.id}/lines`, { service_operation_id: bOperation, quantity: 1 });
    expect([res.status, res.body.error.code]).toEqual([422, "REFERENCE_NOT_FOUND"]);
  });
});

describe("appointment rules enforced by the database", () => {
  it("a vehicle of another customer → 422 REFERENCE_NOT_FOUND", async () => {
    const res = await call("POST", "/api/v1/appointments", { customer_id: aCustomer, vehicle_id: aOtherVehicle, ...slot(2) });
    expect([res.status, res.body.error.code]).toEqual([422, "REFERENCE_NOT_FOUND"]);
    const ok = await call("POST", "/api/v1/appointments", { customer_id: aCustomer, vehicle_id: aVehicle, ...slot(2) });
    expect(ok.status).toBe(201);
  });

  it("a user who is not a member of the tenant as assignee → 422 REFERENCE_NOT_FOUND", async () => {
    const stranger = await makeUser(owner);
    const res = await call("POST", "/api/v1/appointments", { customer_id: aCustomer, assigned_user_id: stranger.id, ...slot(3) });
    expect([res.status, res.body.error.code]).toEqual([422, "REFERENCE_NOT_FOUND"]);
  });

  it("ends before it starts → 422 INVALID_TIME_RANGE", async () => {
    const s = slot(4);
    const res = await call("POST", "/api/v1/appointments", { customer_id: aCustomer, starts_at: s.ends_at, ends_at: s.starts_at });
    expect([res.status, res.body.error.code]).toEqual([422, "INVALID_TIME_RANGE"]);
  });

  it("one assignee, two overlapping live appointments → 409 APPOINTMENT_OVERLAP; after cancelling, the slot is free", async () => {
    const first = await call("POST", "/api/v1/appointments", { customer_id: aCustomer, assigned_user_id: mechanic.id, ...slot(8, 90) });
    expect(first.status).toBe(201);
    const clash = await call("POST", "/api/v1/appointments", { customer_id: aOtherCustomer, assigned_user_id: mechanic.id, ...slot(9) });
    expect([clash.status, clash.body.error.code]).toEqual([409, "APPOINTMENT_OVERLAP"]);
    expect((await call("PATCH", `/api/v1/appointments/${first.body.id}`, { status: "cancelled" })).status).toBe(200);
    expect((await call("POST", "/api/v1/appointments", { customer_id: aOtherCustomer, assigned_user_id: mechanic.id, ...slot(9) })).status).toBe(201);
  });

  it("bad status transitions → 409 INVALID_TRANSITION; the allowed path works", async () => {
    const ap = await call("POST", "/api/v1/appointments", { customer_id: aCustomer, ...slot(12) });
    const to = (status: string) => call("PATCH", `/api/v1/appointments/${ap.body.id}`, { status });
    expect([(await to("done")).status, (await to("done")).body.error.code]).toEqual([409, "INVALID_TRANSITION"]);
    expect((await to("in_progress")).status).toBe(200);
    expect((await to("done")).status).toBe(200);
    expect((await to("scheduled")).body.error.code).toBe("INVALID_TRANSITION");
    const created = await call("POST", "/api/v1/appointments", { customer_id: aCustomer, status: "done", ...slot(14) });
    expect([created.status, created.body.error.code]).toEqual([409, "INVALID_TRANSITION"]);
  });

  it("lists by date range, status and assignee", async () => {
    const day = { from: "2031-01-01T08:00:00Z", to: "2031-01-01T10:00:00Z" };
    const res = await call("GET", `/api/v1/appointments?from=${day.from}&to=${day.to}&assigned_user_id=${mechanic.id}&status=scheduled`);
    expect(res.status).toBe(200);
    expect(res.body.data).toHaveLength(1);
    expect(res.body.data[0].assigned_user_id).toBe(mechanic.id);
  });
});

describe("invoices", () => {
  it("adds a catalog line at the catalog's price at that moment, and a custom line; totals come from SQL", async () => {
    const inv = await call("POST", "/api/v1/invoices", { customer_id: aCustomer });
    const line = await call("POST", `/api/v1/invoices/${inv.body.id}/lines`, { service_operation_id: aOperation, quantity: 2 });
    expect(line.status).toBe(201);
    expect(line.body).toMatchObject({ unit_price_cents: 4500, line_total_cents: 9000, description: "Oil change" });
    await owner`update app.service_operations set price_cents = 5000 where id = ${aOperation}`;
    await call("POST", `/api/v1/invoices/${inv.body.id}/lines`, { description: "Labour, \"quoted\"", quantity: 1.5, unit_price_cents: 3000 });
    const read = await call("GET", `/api/v1/invoices/${inv.body.id}`);
    expect(read.body).toMatchObject({ total_cents: 13500, line_count: 2, status: "draft", number: null });
    await owner`update app.service_operations set price_cents = 4500 where id = ${aOperation}`;
  });

  it("a quantity with a third decimal, or a negative unit price, is refused with 422 VALIDATION_FAILED, never rounded", async () => {
    const inv = await call("POST", "/api/v1/invoices", { customer_id: aCustomer });
    for (const quantity of [1.23456, 1.005, 0.001]) {
      const res = await call("POST", `/api/v1/invoices/${inv.body.id}/lines`, { description: "Labour", quantity, unit_price_cents: 100 });
      expect([res.status, res.body.error?.code], String(quantity)).toEqual([422, "VALIDATION_FAILED"]);
    }
    const price = await call("POST", `/api/v1/invoices/${inv.body.id}/lines`, { description: "Labour", quantity: 1, unit_price_cents: -1 });
    expect([price.status, price.body.error.code]).toEqual([422, "VALIDATION_FAILED"]);
    expect((await call("GET", `/api/v1/invoices/${inv.body.id}/lines`)).body.data).toEqual([]);
    // Two decimals pass however binary floating point writes them (0.29 / 0.01 is 28.999999999999996).
    for (const quantity of [0.29, 1.1, 99999.99]) {
      const res = await call("POST", `/api/v1/invoices/${inv.body.id}/lines`, { description: "Labour", quantity, unit_price_cents: 100 });
      expect([res.status, res.body.quantity], String(quantity)).toEqual([201, quantity]);
    }
  });

  it("an issued invoice is immutable except pay and void (409 INVOICE_IMMUTABLE / INVALID_TRANSITION)", async () => {
    const inv = await call("POST", "/api/v1/invoices", { customer_id: aCustomer });
    const empty = await call("POST", `/api/v1/invoices/${inv.body.id}/issue`);
    expect([empty.status, empty.body.error.code]).toEqual([422, "INVOICE_EMPTY"]);
    await call("POST", `/api/v1/invoices/${inv.body.id}/lines`, { service_operation_id: aOperation, quantity: 1 });
    const issued = await call("POST", `/api/v1/invoices/${inv.body.id}/issue`);
    expect(issued.status).toBe(200);
    expect(issued.body.number).toBeGreaterThan(0);

    const edit = await call("PATCH", `/api/v1/invoices/${inv.body.id}`, { notes: "changed" });
    expect([edit.status, edit.body.error.code]).toEqual([409, "INVOICE_IMMUTABLE"]);
    const line = await call("POST", `/api/v1/invoices/${inv.body.id}/lines`, { service_operation_id: aOperation, quantity: 1 });
    expect([line.status, line.body.error.code]).toEqual([409, "INVOICE_IMMUTABLE"]);
    const del = await call("DELETE", `/api/v1/invoices/${inv.body.id}`);
    expect([del.status, del.body.error.code]).toEqual([409, "INVOICE_IMMUTABLE"]);
    const again = await call("POST", `/api/v1/invoices/${inv.body.id}/issue`);
    expect([again.status, again.body.error.code]).toEqual([409, "INVALID_TRANSITION"]);

    expect((await call("POST", `/api/v1/invoices/${inv.body.id}/pay`)).body.status).toBe("paid");
    expect((await call("POST", `/api/v1/invoices/${inv.body.id}/void`)).body.status).toBe("void");
    const payVoid = await call("POST", `/api/v1/invoices/${inv.body.id}/pay`);
    expect([payVoid.status, payVoid.body.error.code]).toEqual([409, "INVALID_TRANSITION"]);
  });

  it("a draft cannot be paid (409 INVALID_TRANSITION)", async () => {
    const inv = await call("POST", "/api/v1/invoices", { customer_id: aCustomer });
    const res = await call("POST", `/api/v1/invoices/${inv.body.id}/pay`);
    expect([res.status, res.body.error.code]).toEqual([409, "INVALID_TRANSITION"]);
  });

  it("50 invoices issued concurrently in one tenant are numbered 1..50 without gaps or duplicates; other tenants' numbers are untouched", async () => {
    const shop = await makeTenant(owner);
    const manager = await makeUser(owner, shop, "owner");
    const [customer] = await makeCustomers(owner, shop, 1);
    const op = await operation(shop, 1000);
    const bBefore = await owner`select number from app.invoices where tenant_id = ${b.id} and number is not null`;
    const shopCall = as(manager, shop);
    const ids: string[] = [];
    for (let i = 0; i < 50; i++) {
      const inv = await shopCall("POST", "/api/v1/invoices", { customer_id: customer });
      await shopCall("POST", `/api/v1/invoices/${inv.body.id}/lines`, { service_operation_id: op, quantity: 1 });
      ids.push(inv.body.id);
    }
    const issued = await Promise.all(ids.map((id) => shopCall("POST", `/api/v1/invoices/${id}/issue`)));
    expect(issued.map((r) => r.status)).toEqual(Array(50).fill(200));
    const numbers = issued.map((r) => r.body.number as number).sort((x, y) => x - y);
    expect(numbers).toEqual(Array.from({ length: 50 }, (_, i) => i + 1));
    expect(await owner`select number from app.invoices where tenant_id = ${b.id} and number is not null`).toEqual(bBefore);
  });
});

describe("reports and views", () => {
  it("revenue per day as JSON and as CSV, scoped to the tenant", async () => {
    const today = new Date().toISOString().slice(0, 10);
    const json = await call("GET", `/api/v1/reports/revenue-daily?from=${today}&to=${today}`);
    expect(json.status).toBe(200);
    const [{ revenue }] = await owner`
      select coalesce(sum(l.line_total_cents), 0)::int as revenue from app.invoices i join app.invoice_lines l on l.invoice_id = i.id and l.tenant_id = i.tenant_id
       where i.tenant_id = ${a.id} and i.status in ('issued', 'paid') and (i.issued_at at time zone 'UTC')::date = ${today}::date`;
    expect(json.body.data).toEqual(revenue > 0 ? [expect.objectContaining({ day: today, revenue_cents: revenue })] : []);
    const csv = await api.request("GET", `/api/v1/reports/revenue-daily?from=${today}&to=${today}`, { token: tokenFor(alice), tenant: a.slug, headers: { accept: "text/csv" } });
    expect(csv.headers.get("content-type")).toMatch(/^text\/csv/);
    expect(csv.headers.get("content-disposition")).toMatch(/attachment; filename="?revenue-daily-/);
    expect(String(csv.body).split("\r\n")[0]).toBe("day,invoices,revenue_cents,paid_cents");
    const bJson = await as(bob, b)("GET", `/api/v1/reports/revenue-daily?from=${today}&to=${today}`);
    expect(bJson.body.data).toEqual([]);
  });

  it("a range without from/to, or reversed, is 400", async () => {
    expect((await call("GET", "/api/v1/reports/revenue-daily")).status).toBe(400);
    expect((await call("GET", "/api/v1/reports/revenue-daily?from=2030-02-01&to=2030-01-01")).status).toBe(400);
  });

  it("contract: every view of schema app is bound by RLS (security_invoker, or run as app_views) and has a tenant_id column with no NULLs", async () => {
    const views = await owner`
      select c.oid::regclass::text as name,
             coalesce(array_to_string(c.reloptions, ',') like '%security_invoker=true%', false)
               or (c.relowner = 'app_views'::regrole and not (select rolbypassrls or rolsuper from pg_roles where rolname = 'app_views')) as invoker,
             exists (select 1 from pg_attribute a where a.attrelid = c.oid and a.attname = 'tenant_id' and not a.attisdropped) as has_tenant
        from pg_class c join pg_namespace n on n.oid = c.relnamespace where n.nspname = 'app' and c.relkind = 'v' order by 1`;
    expect(views.length).toBeGreaterThanOrEqual(5);
    for (const v of views) {
      expect(v, `${v.name}: FIX deploy/apply-policies.sh (views run as app_views) and expose tenant_id`).toMatchObject({ invoker: true, has_tenant: true });
      const [{ n }] = await owner.unsafe(`select count(*)::int as n from ${v.name} where tenant_id is null`);
      expect(n, `${v.name} has rows with NULL tenant_id`).toBe(0);
    }
  });
});
