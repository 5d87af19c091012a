// A shop's settings (issue 32): every bound checked at the door (the request schema) and in SQL
// (the CHECKs of sql/0430 and the timezone trigger), each refusal 422 INVALID_SETTING naming the
// setting; one audit row per real change and none for a no-op; numbering, due dates and slots
// driven by the settings in the same transaction; and the shop's settings out of reach of other
// shops: over HTTP with another shop's token, and as app_user in SQL.
import { beforeAll, describe, expect, it } from "vitest";
import { asMember, asTenant, makeCustomers, makeTenant, makeUser, tokenFor, useApi, type Tenant, type User } from "./fixtures.ts";
import type { Sql } from "../server/db/connections.ts";

const { owner, app, api } = useApi();

let shop: Tenant;
let other: Tenant;
let boss: User;
let staff: User;
let stranger: User;

beforeAll(async () => {
  shop = await makeTenant(owner);
  other = await makeTenant(owner);
  boss = await makeUser(owner, shop, "owner");
  staff = await makeUser(owner, shop, "staff");
  stranger = await makeUser(owner, other, "owner");
});

const as = (user: User, tenant: Tenant = shop) => (method: string, path: string, body?: unknown) =>
  api.request(method, path, { token: tokenFor(user), tenant: tenant.slug, body });
const patch = (body: unknown, user: User = boss) => as(user)("PATCH", "/api/v1/settings", body);
const settingsOf = async (t: Tenant) => (await owner`select * from app.tenants where id = ${t.id}`)[0];
const auditOf = async (t: Tenant) =>
  owner`select actor_user_id, actor_role, request_id, change from app.audit_log where tenant_id = ${t.id} and action = 'settings.changed' order by id`;

/**
 * Each setting with values just inside and just outside its bounds, refused by both layers, and
 * values only the door judges (a JSON type the column's type rules out, a blank name).
 */
const bounds: Record<string, { ok: unknown[]; refused: unknown[]; doorOnly: unknown[]; sqlOnly?: unknown[] }> = {
  name: { ok: ["A", "x".repeat(200)], refused: ["", "x".repeat(201)], doorOnly: [" ", 7] },
  // A well-formed name PostgreSQL does not know: only SQL can tell (pg_timezone_names).
  timezone: { ok: ["Europe/Berlin", "America/Argentina/Buenos_Aires", "Etc/GMT+5", "UTC"], refused: ["", "Europe/", "../etc/passwd", "x".repeat(65)], doorOnly: [null], sqlOnly: ["Mars/Olympus"] },
  currency: { ok: ["EUR", "JPY", "USD"], refused: ["eur", "XXX", "EURO", ""], doorOnly: [978] },
  tax_rate_bps: { ok: [0, 5000], refused: [-1, 5001], doorOnly: [1.5, "100"] },
  invoice_number_prefix: { ok: ["A", "INV-2030-X", "0-9"], refused: ["", "ABCDEFGHIJK", "inv-", "A B", "Ä"], doorOnly: [["A"]] },
  payment_terms_days: { ok: [0, 120], refused: [-1, 121], doorOnly: [true] },
  appointment_slot_minutes: { ok: [5, 240], refused: [4, 241, 0], doorOnly: [30.5] },
  reminders_enabled: { ok: [true, false], refused: [], doorOnly: ["yes", 1, null] },
};

/** The column and SQL literal an operator would write for a value. */
const literal = (v: unknown) => (typeof v === "string" ? `'${v.replace(/'/g, "''")}'` : String(v));

describe("every setting's bounds", () => {
  it("at the door: just inside is stored, just outside is 422 INVALID_SETTING naming the setting (refused by the request schema), and nothing changes", async () => {
    for (const [setting, { ok, refused }] of Object.entries(bounds)) {
      for (const value of ok) {
        const res = await patch({ [setting]: value });
        expect(res.status, `${setting} = ${JSON.stringify(value)}`).toBe(200);
        expect(res.body[setting]).toEqual(value);
        expect((await settingsOf(shop))[setting]).toEqual(value);
      }
      const before = await settingsOf(shop);
      for (const value of [...refused, ...bounds[setting].doorOnly]) {
        const res = await patch({ [setting]: value });
        expect(res.status, `${setting} = ${JSON.stringify(value)}`).toBe(422);
        // `errors`: the request schema refused it, before any SQL ran.
        expect(res.body.error, `${setting} = ${JSON.stringify(value)}`).toMatchObject({ code: "INVALID_SETTING", details: { setting, errors: expect.arrayContaining([expect.objectContaining({ field: `/${setting}` })]) } });
        expect(await settingsOf(shop)).toEqual(before);
      }
      for (const value of bounds[setting].sqlOnly ?? []) {
        const res = await patch({ [setting]: value });
        expect(res.body.error, `${setting} = ${JSON.stringify(value)}`).toMatchObject({ code: "INVALID_SETTING", details: { setting, constraint: expect.stringMatching(/^tenants_/) } });
        expect(await settingsOf(shop)).toEqual(before);
      }
    }
  });

  it("in SQL: an operator in psql meets the same bounds (23514 naming the constraint), past the door", async () => {
    for (const [setting, { ok, refused, sqlOnly }] of Object.entries(bounds)) {
      for (const value of [...refused, ...(sqlOnly ?? [])]) {
        await expect(owner.unsafe(`update app.tenants set ${setting} = ${literal(value)} where id = '${other.id}'`), `${setting} = ${JSON.stringify(value)}`)
          .rejects.toMatchObject({ code: "23514", constraint_name: expect.stringMatching(new RegExp(`^tenants_${setting === "timezone" ? "timezone_(check|known)" : `${setting}_check`}$`)) });
      }
      for (const value of ok) await owner.unsafe(`update app.tenants set ${setting} = ${literal(value)} where id = '${other.id}'`);
    }
  });

  it("in SQL as app_user: app.update_tenant_settings refuses what the door would", async () => {
    const attempt = (column: string, value: unknown) =>
      asMember(app, boss, shop, { permission: "settings:write", writes: true }, (tx) => tx.unsafe(`select * from app.update_tenant_settings(p_${column} => ${literal(value)})`));
    await expect(attempt("tax_rate_bps", 5001)).rejects.toMatchObject({ code: "23514", constraint_name: "tenants_tax_rate_bps_check" });
    await expect(attempt("appointment_slot_minutes", 4)).rejects.toMatchObject({ code: "23514", constraint_name: "tenants_appointment_slot_minutes_check" });
    await expect(attempt("timezone", "Mars/Olympus")).rejects.toMatchObject({ code: "23514", constraint_name: "tenants_timezone_known" });
    await expect(attempt("currency", "XXX")).rejects.toMatchObject({ code: "23514", constraint_name: "tenants_currency_check" });
  });
});

describe("the audit of settings", () => {
  it("one row per real change, old → new with its actor; none for a change to the same values", async () => {
    const t = await makeTenant(owner);
    const u = await makeUser(owner, t, "owner");
    const send = (body: unknown) => api.request("PATCH", "/api/v1/settings", { token: tokenFor(u), tenant: t.slug, body });
    expect((await send({ timezone: "Europe/Berlin", payment_terms_days: 30 })).status).toBe(200);
    let rows = await auditOf(t);
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({
      actor_user_id: u.id, actor_role: "owner",
      change: { event: { timezone: { old: "UTC", new: "Europe/Berlin" }, payment_terms_days: { old: 14, new: 30 } } },
    });
    expect(Object.keys(rows[0].change.event).sort()).toEqual(["payment_terms_days", "timezone"]);
    // The same values again, and a mix of the same and the current: no row.
    expect((await send({ timezone: "Europe/Berlin", payment_terms_days: 30 })).status).toBe(200);
    expect((await send({ timezone: "Europe/Berlin" })).status).toBe(200);
    expect(await auditOf(t)).toHaveLength(1);
    // A refused value writes nothing either.
    expect((await send({ tax_rate_bps: 9999 })).status).toBe(422);
    expect(await auditOf(t)).toHaveLength(1);
    // The name is a setting like the others.
    expect((await send({ name: "Renamed shop", reminders_enabled: true })).status).toBe(200);
    rows = await auditOf(t);
    expect(rows).toHaveLength(2);
    expect(rows[1].change.event).toEqual({ name: { old: `Shop ${t.slug}`, new: "Renamed shop" }, reminders_enabled: { old: false, new: true } });
  });

  it("an operator's change in psql is audited too (no actor), and an update that changes no setting is not", async () => {
    const t = await makeTenant(owner);
    await owner`update app.tenants set currency = 'CHF' where id = ${t.id}`;
    await owner`update app.tenants set currency = 'CHF', tax_rate_bps = 0 where id = ${t.id}`;
    await owner`update app.tenants set status = 'suspended' where id = ${t.id}`;
    const rows = await auditOf(t);
    expect(rows).toEqual([{ actor_user_id: null, actor_role: null, request_id: null, change: { event: { currency: { old: "EUR", new: "CHF" } } } }]);
  });
});

/** A draft with one line in `t`, issued by `user` over the API; answers the invoice. */
async function issue(t: Tenant, user: User, customerId: string) {
  const [inv] = await owner`insert into app.invoices (tenant_id, customer_id) values (${t.id}, ${customerId}) returning id`;
  await owner`insert into app.invoice_lines (tenant_id, invoice_id, description, quantity, unit_price_cents) values (${t.id}, ${inv.id}, 'Labour', 1, 5000)`;
  const res = await api.request("POST", `/api/v1/invoices/${inv.id}/issue`, { token: tokenFor(user), tenant: t.slug });
  expect(res.status).toBe(200);
  return res.body;
}

/** The calendar day of `at` in `timeZone`, plus `days`, as YYYY-MM-DD (computed apart from SQL). */
function dayIn(at: string, timeZone: string, days: number): string {
  const local = new Intl.DateTimeFormat("en-CA", { timeZone, year: "numeric", month: "2-digit", day: "2-digit" }).format(new Date(at));
  const d = new Date(`${local}T00:00:00Z`);
  d.setUTCDate(d.getUTCDate() + days);
  return d.toISOString().slice(0, 10);
}

describe("settings drive the domain rules that read them", () => {
  it("numbering: an issued invoice carries the prefix of its moment; changing it later leaves it as it was", async () => {
    const t = await makeTenant(owner);
    const u = await makeUser(owner, t, "owner");
    const [c] = await makeCustomers(owner, t, 1);
    expect((await api.request("PATCH", "/api/v1/settings", { token: tokenFor(u), tenant: t.slug, body: { invoice_number_prefix: "WS-" } })).status).toBe(200);
    const first = await issue(t, u, c);
    expect(first).toMatchObject({ number: 1, invoice_number: "WS-1" });
    expect((await api.request("PATCH", "/api/v1/settings", { token: tokenFor(u), tenant: t.slug, body: { invoice_number_prefix: "B2031-" } })).status).toBe(200);
    expect(await issue(t, u, c)).toMatchObject({ number: 2, invoice_number: "B2031-2" });
    const again = await api.request("GET", `/api/v1/invoices/${first.id}`, { token: tokenFor(u), tenant: t.slug });
    expect(again.body.invoice_number).toBe("WS-1");
    // A draft carries neither, whatever a statement writes.
    const [draft] = await owner`insert into app.invoices (tenant_id, customer_id) values (${t.id}, ${c}) returning id`;
    await owner`update app.invoices set invoice_number = 'FAKE-9', due_date = '2000-01-01' where tenant_id = ${t.id} and id = ${draft.id}`;
    expect((await owner`select invoice_number, due_date from app.invoices where tenant_id = ${t.id} and id = ${draft.id}`)[0]).toEqual({ invoice_number: null, due_date: null });
  });

  it("due dates: the issue day in the shop's timezone plus its payment terms", async () => {
    const t = await makeTenant(owner);
    const u = await makeUser(owner, t, "owner");
    const [c] = await makeCustomers(owner, t, 1);
    for (const [timezone, terms] of [["Pacific/Kiritimati", 30], ["Pacific/Pago_Pago", 0], ["UTC", 120]] as const) {
      expect((await api.request("PATCH", "/api/v1/settings", { token: tokenFor(u), tenant: t.slug, body: { timezone, payment_terms_days: terms } })).status).toBe(200);
      const inv = await issue(t, u, c);
      expect(inv.due_date, `${timezone} + ${terms}`).toBe(dayIn(inv.issued_at, timezone, terms));
    }
  });

  it("in the same transaction: a setting changed, then an invoice issued, takes the new value", async () => {
    const t = await makeTenant(owner);
    const [c] = await makeCustomers(owner, t, 1);
    const [inv] = await owner`insert into app.invoices (tenant_id, customer_id) values (${t.id}, ${c}) returning id`;
    await owner`insert into app.invoice_lines (tenant_id, invoice_id, description, quantity, unit_price_cents) values (${t.id}, ${inv.id}, 'Labour', 1, 5000)`;
    const [issued] = await asTenant(owner, t, async (tx) => {
      await tx`select * from app.update_tenant_settings(p_invoice_number_prefix => 'TX-', p_payment_terms_days => 7)`;
      return tx`select invoice_number, due_date::text as due_date, issued_at from app.issue_invoice(${inv.id}::uuid)`;
    });
    expect(issued.invoice_number).toBe("TX-1");
    expect(issued.due_date).toBe(dayIn(issued.issued_at.toISOString(), "UTC", 7));
  });

  it("slots: an appointment lasts a whole number of the shop's slots, for the API and for an operator; a later change keeps booked ones", async () => {
    const t = await makeTenant(owner);
    const u = await makeUser(owner, t, "owner");
    const [c] = await makeCustomers(owner, t, 1);
    const book = (start: string, minutes: number) => api.request("POST", "/api/v1/appointments", {
      token: tokenFor(u), tenant: t.slug,
      body: { customer_id: c, starts_at: start, ends_at: new Date(Date.parse(start) + minutes * 60_000).toISOString() },
    });
    expect((await api.request("PATCH", "/api/v1/settings", { token: tokenFor(u), tenant: t.slug, body: { appointment_slot_minutes: 30 } })).status).toBe(200);
    const off = await book("2031-03-01T09:00:00Z", 45);
    expect(off.status).toBe(422);
    expect(off.body.error.code).toBe("APPOINTMENT_OFF_SLOT");
    const booked = await book("2031-03-01T09:00:00Z", 60);
    expect(booked.status).toBe(201);
    await expect(owner`insert into app.appointments (tenant_id, customer_id, starts_at, ends_at) values (${t.id}, ${c}, '2031-03-02T09:00Z', '2031-03-02T09:50Z')`)
      .rejects.toMatchObject({ code: "SS422", constraint_name: "appointment_slot" });

    expect((await api.request("PATCH", "/api/v1/settings", { token: tokenFor(u), tenant: t.slug, body: { appointment_slot_minutes: 45 } })).status).toBe(200);
    expect((await book("2031-03-03T09:00:00Z", 45)).status).toBe(201);
    expect((await book("2031-03-04T09:00:00Z", 60)).status).toBe(422);
    // The hour booked under 30-minute slots stays, and changes that keep its times pass.
    const notes = await api.request("PATCH", `/api/v1/appointments/${booked.body.id}`, { token: tokenFor(u), tenant: t.slug, body: { notes: "kept", status: "in_progress" } });
    expect(notes.status).toBe(200);
    const moved = await api.request("PATCH", `/api/v1/appointments/${booked.body.id}`, { token: tokenFor(u), tenant: t.slug, body: { ends_at: "2031-03-01T10:30:00Z" } });
    expect(moved.status).toBe(200);
    const shortened = await api.request("PATCH", `/api/v1/appointments/${booked.body.id}`, { token: tokenFor(u), tenant: t.slug, body: { ends_at: "2031-03-01T09:50:00Z" } });
    expect(shortened.body.error.code).toBe("APPOINTMENT_OFF_SLOT");
  });
});

describe("the settings of one shop, from another", () => {
  it("over HTTP: another shop's token reads and changes nothing of it (404 TENANT_NOT_FOUND)", async () => {
    const before = await settingsOf(shop);
    for (const [method, body] of [["GET", undefined], ["PATCH", { tax_rate_bps: 1234 }]] as const) {
      const res = await as(stranger)(method, "/api/v1/settings", body);
      expect(res.status).toBe(404);
      expect(res.body.error.code).toBe("TENANT_NOT_FOUND");
    }
    expect(await settingsOf(shop)).toEqual(before);
    const own = await as(stranger, other)("GET", "/api/v1/settings");
    expect(own.body.id).toBe(other.id);
  });

  it("roles: every member reads them; only an owner changes them (403 naming settings:write)", async () => {
    const read = await as(staff)("GET", "/api/v1/settings");
    expect(read.status).toBe(200);
    expect(read.body).toMatchObject({ id: shop.id, slug: shop.slug });
    const refused = await patch({ tax_rate_bps: 10 }, staff);
    expect(refused.status).toBe(403);
    expect(refused.body.error).toMatchObject({ code: "FORBIDDEN", details: { permission: "settings:write" } });
  });

  it("as app_user in SQL: the shop's row is out of reach, and the readers answer for the context's own shop only", async () => {
    const inShop = <T>(fn: (tx: Sql) => Promise<T>) => asMember(app, boss, shop, { permission: "settings:write", writes: true }, fn);
    await expect(inShop((tx) => tx`update app.tenants set tax_rate_bps = 1 where id = ${other.id}`)).rejects.toMatchObject({ code: "42501" });
    await expect(inShop((tx) => tx`select * from app.tenants`)).rejects.toMatchObject({ code: "42501" });
    const mine = await inShop((tx) => tx`select id from app.current_settings()`);
    expect(mine).toEqual([{ id: shop.id }]);
    const foreign = await inShop((tx) => tx`select * from app.shop_settings(${other.id}::uuid, 'app.appointments'::regclass)`);
    expect(foreign).toEqual([]);
    // update_tenant_settings changes the context's shop only, whatever is asked.
    const before = await settingsOf(other);
    await inShop((tx) => tx`select * from app.update_tenant_settings(p_tax_rate_bps => 4321)`);
    expect(await settingsOf(other)).toEqual(before);
    expect((await settingsOf(shop)).tax_rate_bps).toBe(4321);
    // Without a context, nothing.
    expect(await app.begin((tx) => tx`select * from app.current_settings()`)).toEqual([]);
    await expect(app.begin((tx) => tx`select * from app.update_tenant_settings(p_tax_rate_bps => 1)`)).rejects.toMatchObject({ code: "SS403" });
  });
});
