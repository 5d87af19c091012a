// The access explainer (GET /api/v1/access/explain, npm run cli -- explain) against what actually
// happens. Every role × tenant table × action: the explainer's verdict (allowed, denied, not
// found, refused by a rule, with the API's error code) must equal the member's own attempt,
// through the API where a route does that action to that table, else in SQL as app_user in the
// context the API would open for that member (the table's registry permission), rolled back.
// Then: it leaves nothing behind, answers a stranger and another shop's member alike, and refuses
// what it cannot explain with a stable code.
import { randomBytes, randomUUID } from "node:crypto";
import { beforeAll, describe, expect, it } from "vitest";
import type { Sql } from "../server/db/connections.ts";
import { toAppError } from "../server/core/errors.ts";
import { ROLES as roles } from "../server/core/roles.ts";
import type { ExplainAction, Explanation } from "../server/db/accessExplainer.ts";
import { explainAsOperator } from "../server/ops/accessExplain.ts";
import postgres from "postgres";
import { asMember, db, makeTenant, makeUser, openTenantContext, tokenFor, useApi, type Role, type Tenant, type User } from "./fixtures.ts";
import { useGolden } from "./scratch.ts";

const { owner, app, api } = useApi();
const actions: ExplainAction[] = ["select", "insert", "update", "delete"];

let shop: Tenant;
let other: Tenant;
const members = {} as Record<Role, User>;
let outsider: User;
let slot = 0;
const uniq = () => randomUUID().slice(0, 8);

async function customer(): Promise<string> {
  const [r] = await owner`insert into app.customers (tenant_id, name) values (${shop.id}, ${`Explain ${uniq()}`}) returning id`;
  return r.id;
}
async function service(): Promise<string> {
  const [r] = await owner`insert into app.services (tenant_id, name) values (${shop.id}, ${`Service ${uniq()}`}) returning id`;
  return r.id;
}
async function operation(): Promise<string> {
  const [r] = await owner`insert into app.service_operations (tenant_id, service_id, internal_code, name, price_cents, duration_minutes)
                          values (${shop.id}, ${await service()}, ${`OP-${uniq()}`}, 'Brakes', 100, 60) returning id`;
  return r.id;
}
/** A draft change set of one price item, authored by the shop's owner, on the current version. */
async function changeSet(): Promise<string> {
  const op = await operation();
  const [r] = await owner`
    insert into app.catalog_change_sets (tenant_id, title, base_version, author_user_id)
    values (${shop.id}, ${`Walk ${uniq()}`}, (select coalesce(max(version), 0) from app.catalog_heads where tenant_id = ${shop.id}), ${members.owner.id})
    returning id`;
  await owner`insert into app.catalog_change_set_items (tenant_id, change_set_id, position, kind, operation_id, price_cents) values (${shop.id}, ${r.id}, 1, 'price', ${op}, 4242)`;
  return r.id;
}
async function draft(): Promise<string> {
  const [r] = await owner`insert into app.invoices (tenant_id, customer_id) values (${shop.id}, ${await customer()}) returning id`;
  return r.id;
}
async function line(invoice?: string): Promise<string> {
  const [r] = await owner`insert into app.invoice_lines (tenant_id, invoice_id, description, quantity, unit_price_cents)
                          values (${shop.id}, ${invoice ?? await draft()}, 'Labour', 1, 5000) returning id`;
  return r.id;
}
async function issued(): Promise<string> {
  const id = await draft();
  await line(id);
  await owner.begin(async (tx) => {
    await tx`select app.open_operator_context(${shop.id}::uuid)`;
    await tx`select app.issue_invoice(${id}::uuid)`;
  });
  return id;
}
function hours(): { starts_at: string; ends_at: string } {
  const start = new Date(Date.UTC(2033, 0, 1) + slot++ * 7_200_000);
  return { starts_at: start.toISOString(), ends_at: new Date(start.getTime() + 3_600_000).toISOString() };
}
async function appointment(assignee: User): Promise<string> {
  const h = hours();
  const [r] = await owner`insert into app.appointments (tenant_id, customer_id, assigned_user_id, starts_at, ends_at)
                          values (${shop.id}, ${await customer()}, ${assignee.id}, ${h.starts_at}, ${h.ends_at}) returning id`;
  return r.id;
}

/**
 * Per table: a fresh row the actor may be asked about (its key), and the API's route for each
 * action where one exists. `sql` is the statement a member's own attempt runs where no route
 * does it ($1: the row's key).
 */
type Attempt = { method: string; path: (row: string) => string; body?: (actor: User) => Promise<unknown> | unknown };
type Table = { row: (actor: User) => Promise<string | undefined>; api: Partial<Record<ExplainAction, Attempt>>; sql?: Partial<Record<ExplainAction, string>> };
const resource = (path: string, body: Attempt["body"], change: unknown): Table["api"] => ({
  select: { method: "GET", path: (id) => `${path}/${id}` },
  insert: { method: "POST", path: () => path, body },
  update: { method: "PATCH", path: (id) => `${path}/${id}`, body: () => change },
  delete: { method: "DELETE", path: (id) => `${path}/${id}` },
});
const tables: Record<string, Table> = {
  customers: { row: customer, api: resource("/api/v1/customers", () => ({ name: "Walk-in" }), { notes: "changed" }) },
  vehicles: {
    row: async () => (await owner`insert into app.vehicles (tenant_id, customer_id, plate) values (${shop.id}, ${await customer()}, 'EX-1') returning id`)[0].id,
    api: resource("/api/v1/vehicles", async () => ({ customer_id: await customer(), plate: "EX-2" }), { plate: "EX-3" }),
  },
  services: { row: service, api: resource("/api/v1/services", () => ({ name: `Service ${uniq()}` }), { display_order: 3 }) },
  service_operations: {
    row: operation,
    api: resource("/api/v1/service-operations", async () => ({ service_id: await service(), internal_code: `OP-${uniq()}`, name: "Oil", price_cents: 1, duration_minutes: 30 }), { price_cents: 7 }),
  },
  appointments: {
    row: appointment,
    api: resource("/api/v1/appointments", async (actor) => ({ customer_id: await customer(), assigned_user_id: actor.id, ...hours() }), { notes: "keys" }),
  },
  invoices: { row: () => draft(), api: resource("/api/v1/invoices", async () => ({ customer_id: await customer() }), { notes: "net 30" }) },
  invoice_lines: {
    row: () => line(),
    api: {
      // The lines of the line's invoice: a route naming one row, guarded by invoices:read as a line's read is.
      select: { method: "GET", path: () => "" },
      insert: { method: "POST", path: () => "" },
    },
    sql: {
      update: "update app.invoice_lines set description = description where id = $1::uuid returning 1",
      delete: "delete from app.invoice_lines where id = $1::uuid returning 1",
    },
  },
  audit_log: {
    row: async () => (await owner`select id::text from app.audit_log where tenant_id = ${shop.id} order by id limit 1`)[0]?.id,
    api: {},
    sql: {
      select: "select 1 from app.audit_log where id = $1::bigint",
      insert: "insert into app.audit_log default values",
      update: "update app.audit_log set action = action where id = $1::bigint returning 1",
      delete: "delete from app.audit_log where id = $1::bigint returning 1",
    },
  },
  catalog_change_sets: {
    row: () => changeSet(),
    api: resource("/api/v1/catalog/change-sets", async () => ({ title: `Walk ${uniq()}`, items: [{ kind: "price", operation_id: await operation(), price_cents: 1 }] }), { title: "changed" }),
  },
  // Items are written through their change set's routes: the member's attempt is the statement.
  catalog_change_set_items: {
    row: async () => (await owner`select id from app.catalog_change_set_items where change_set_id = ${await changeSet()}`)[0].id,
    api: {},
    sql: {
      select: "select 1 from app.catalog_change_set_items where id = $1::uuid",
      insert: "insert into app.catalog_change_set_items (change_set_id, position, kind, operation_id, price_cents) select change_set_id, position + 1, kind, operation_id, price_cents from app.catalog_change_set_items where id = $1::uuid returning 1",
      update: "update app.catalog_change_set_items set price_cents = price_cents where id = $1::uuid returning 1",
      delete: "delete from app.catalog_change_set_items where id = $1::uuid returning 1",
    },
  },
  // The version history: read through GET /catalog/versions, written only by the catalog's own functions.
  catalog_heads: {
    row: async () => { await operation(); return undefined; },
    api: {},
    sql: {
      select: "select * from app.catalog_heads",
      insert: "insert into app.catalog_heads (tenant_id, version) values (app.current_tenant_id(), 0) on conflict do nothing",
      update: "update app.catalog_heads set version = version returning 1",
      delete: "delete from app.catalog_heads returning 1",
    },
  },
  // Its key is the version number.
  catalog_versions: {
    row: async () => { await operation(); return String((await owner`select max(version) as v from app.catalog_versions where tenant_id = ${shop.id}`)[0].v); },
    api: {},
    sql: {
      select: "select 1 from app.catalog_versions where version = $1::integer",
      insert: "insert into app.catalog_versions (tenant_id, version, kind) select tenant_id, version + 1000000, kind from app.catalog_versions where version = $1::integer returning 1",
      update: "update app.catalog_versions set kind = kind where version = $1::integer returning 1",
      delete: "delete from app.catalog_versions where version = $1::integer returning 1",
    },
  },
  catalog_version_changes: {
    row: async () => { await operation(); return (await owner`select id::text from app.catalog_version_changes where tenant_id = ${shop.id} order by id desc limit 1`)[0].id; },
    api: {},
    sql: {
      select: "select 1 from app.catalog_version_changes where id = $1::bigint",
      insert: "insert into app.catalog_version_changes (tenant_id, version, entity, entity_id, new) select tenant_id, version, entity, entity_id, new from app.catalog_version_changes where id = $1::bigint returning 1",
      update: "update app.catalog_version_changes set entity = entity where id = $1::bigint returning 1",
      delete: "delete from app.catalog_version_changes where id = $1::bigint returning 1",
    },
  },
  // Its routes name a provider, not a row: the member's attempt is the statement, as app_user.
  integration_credentials: {
    row: async () => (await owner`insert into app.integration_credentials (tenant_id, provider, credential_envelope, last4)
                                  values (${shop.id}, ${`probe_${uniq()}`}, 'v1.k.n.c', 'abcd') returning id`)[0].id,
    api: {},
    sql: {
      select: "select 1 from app.integration_credentials where id = $1::uuid",
      insert: "insert into app.integration_credentials (provider, credential_envelope, last4) values ('probe_' || md5(random()::text), 'v1.k.n.c', 'abcd')",
      update: "update app.integration_credentials set last4 = last4 where id = $1::uuid returning 1",
      delete: "delete from app.integration_credentials where id = $1::uuid returning 1",
    },
  },
  // Invitations are listed and revoked by id, made through POST /members (which answers 202
  // whatever happens, so tells nothing): the member's attempt is the statement, as app_user.
  invitations: {
    row: async () => (await owner`insert into app.invitations (tenant_id, email, role, token_hash)
                                  values (${shop.id}, ${`walk-${uniq()}@test.test`}, 'staff', ${randomBytes(32).toString("hex")}) returning id`)[0].id,
    api: {},
    sql: {
      select: "select 1 from app.invitations where id = $1::uuid",
      insert: "insert into app.invitations (email, role, token_hash) select 'walk-' || md5(random()::text) || '@test.test', role, md5(random()::text) || md5(random()::text) from app.invitations where id = $1::uuid returning 1",
      update: "update app.invitations set role = role where id = $1::uuid returning 1",
      delete: "delete from app.invitations where id = $1::uuid returning 1",
    },
  },
  invoice_counters: {
    row: async () => undefined,
    api: {},
    sql: {
      select: "select * from app.invoice_counters",
      insert: "insert into app.invoice_counters (last_number) values (0) on conflict do nothing",
      update: "update app.invoice_counters set last_number = last_number returning 1",
      delete: "delete from app.invoice_counters returning 1",
    },
  },
};

type Truth = { verdict: string; code: string | null; via: string };
const verdictOf = (status: number): string => (status < 300 ? "allowed" : status === 403 ? "denied" : status === 404 ? "not_found" : "refused");

async function explainViaApi(user: string, table: string, action: ExplainAction, id?: string, caller: User = members.owner) {
  const query = new URLSearchParams({ user, table, action, ...(id ? { id } : {}) });
  return api.request("GET", `/api/v1/access/explain?${query}`, { token: tokenFor(caller), tenant: shop.slug });
}

/** What the member's own attempt answers: the API where a route does it, else SQL as app_user in the context the API would open. */
async function attempt(role: Role, table: string, action: ExplainAction, id: string | undefined): Promise<Truth> {
  const t = tables[table];
  const actor = members[role];
  let route = t.api[action];
  if (table === "invoice_lines" && route) {
    const [l] = await owner`select invoice_id from app.invoice_lines where id = ${id!}`;
    const body = action === "insert" ? () => ({ description: "Parts", quantity: 1, unit_price_cents: 100 }) : undefined;
    route = { ...route, path: () => `/api/v1/invoices/${l.invoice_id}/lines`, body };
  }
  if (route) {
    const res = await api.request(route.method, route.path(id ?? ""), { token: tokenFor(actor), tenant: shop.slug, body: await route.body?.(actor) });
    return { verdict: verdictOf(res.status), code: res.status >= 300 ? res.body.error.code : null, via: `${route.method} ${route.path(id ?? "")} → ${res.status}` };
  }
  const statement = t.sql?.[action];
  if (!statement) throw new Error(`no route and no SQL attempt for ${action} on ${table}`);
  const [registry] = await owner`select r.permission as read, w.permission as write from app.table_read_permissions() r
                                  left join app.table_write_permissions() w using (table_name) where r.table_name = ${table}`;
  const writes = action !== "select";
  const permission = writes ? registry.write ?? registry.read : registry.read;
  const forRow = action !== "insert" && (id !== undefined || writes);
  const rollback = new Error("rollback");
  let outcome: Truth | undefined;
  await app.begin(async (tx) => {
    const sql = tx as unknown as Sql;
    try {
      const [opened] = await openTenantContext(sql, { userId: actor.id, tenantRefs: [shop.id], permission, writes, forRow });
      const rows = await sql.unsafe(statement, id !== undefined && statement.includes("$1") ? [id] : []);
      const named = statement.includes("$1") || /^(update|delete)/.test(statement);
      if (named && rows.length === 0) outcome = { verdict: "not_found", code: null, via: `SQL: no row` };
      else if (forRow && !opened.permitted && rows.length > 0) outcome = { verdict: "denied", code: "FORBIDDEN", via: "SQL: a row without the permission (withTenant's 403)" };
      else outcome = { verdict: "allowed", code: null, via: "SQL: ran" };
    } catch (error) {
      const e = toAppError(error);
      outcome = { verdict: verdictOf(e.status), code: e.code, via: `SQL: ${(error as Error).message}` };
    }
    throw rollback;
  }).catch((error: unknown) => {
    if (error !== rollback) throw error;
  });
  return outcome!;
}

beforeAll(async () => {
  shop = await makeTenant(owner, { prefix: "explain" });
  other = await makeTenant(owner, { prefix: "explain-other" });
  for (const role of roles) {
    const [u] = await owner`insert into app.users (email) values (${`${role}@${shop.slug}.test`}) returning id, email`;
    await owner`insert into app.memberships (tenant_id, user_id, role) values (${shop.id}, ${u.id}, ${role})`;
    members[role] = u as User;
  }
  const [o] = await owner`insert into app.users (email) values (${`owner@${other.slug}.test`}) returning id, email`;
  await owner`insert into app.memberships (tenant_id, user_id, role) values (${other.id}, ${o.id}, 'owner')`;
  outsider = o as User;
  await issued(); // the shop's invoice counter, and audit rows of the shop
});

describe("the explainer's verdict equals what the member's own attempt gets, for every role × tenant table × action", () => {
  it("walks every tenant table but idempotency_keys, which it refuses (422 TABLE_NOT_EXPLAINED)", async () => {
    const all = (await owner`select c.relname from app.tenant_tables() t join pg_class c on c.oid = t order by 1`).map((r) => r.relname as string);
    expect(all.filter((t) => !tables[t] && t !== "idempotency_keys"), "a tenant table without a walk here: add it to `tables`").toEqual([]);
    const registered = (await owner`select table_name from app.table_read_permissions()`).map((r) => r.table_name as string);
    expect(all.filter((t) => !registered.includes(t)), "a tenant table missing from app.table_read_permissions() (policies/rbac.sql)").toEqual([]);
    const res = await explainViaApi(members.staff.email, "idempotency_keys", "select");
    expect(res.status).toBe(422);
    expect(res.body.error.code).toBe("TABLE_NOT_EXPLAINED");
  });

  for (const table of Object.keys(tables)) {
    for (const action of actions) {
      it(`${action} on ${table}`, async () => {
        const verdicts = new Set<string>();
        for (const role of roles) {
          const id = await tables[table].row(members[role]);
          const asked = table === "audit_log" && action === "select" ? undefined : id;
          const res = await explainViaApi(members[role].email, table, action, asked);
          expect(res.status, JSON.stringify(res.body)).toBe(200);
          const e = res.body as Explanation;
          expect(e.rolled_back).toBe(true);
          const truth = table === "audit_log" && action === "select"
            ? await (async () => {
              const r = await api.request("GET", "/api/v1/audit", { token: tokenFor(members[role]), tenant: shop.slug });
              return { verdict: verdictOf(r.status), code: r.status >= 300 ? r.body.error.code : null, via: `GET /api/v1/audit → ${r.status}` };
            })()
            : await attempt(role, table, action, asked);
          const said = { verdict: e.verdict, code: e.verdict === "allowed" || e.verdict === "not_found" ? null : e.answer.code };
          expect(said, `${role} ${action} ${table}: the member's attempt was ${truth.via}; the explainer said ${JSON.stringify(e.steps.map((s) => `${s.step}:${s.outcome}`))}`)
            .toEqual({ verdict: truth.verdict, code: truth.verdict === "allowed" || truth.verdict === "not_found" ? null : truth.code });
          verdicts.add(e.verdict);
        }
        expect(verdicts.size).toBeGreaterThan(0);
      });
    }
  }
});

describe("support questions", () => {
  it("an issued invoice: a manager is refused by its state machine (409 INVOICE_IMMUTABLE), an accountant first by the role check (403)", async () => {
    const invoice = await issued();
    for (const [role, code, trigger] of [["manager", "INVOICE_IMMUTABLE", "invoices_guard"], ["accountant", "FORBIDDEN", "_authorize_write"]] as const) {
      const res = await explainViaApi(members[role].email, "invoices", "update", invoice);
      expect(res.body).toMatchObject({ verdict: role === "manager" ? "refused" : "denied", answer: { code } });
      expect((res.body as Explanation).triggers.filter((t) => t.refused).map((t) => t.name)).toEqual([trigger]);
      const patch = await api.request("PATCH", `/api/v1/invoices/${invoice}`, { token: tokenFor(members[role]), tenant: shop.slug, body: { notes: "x" } });
      expect(patch.body.error.code).toBe(code);
    }
  });

  it("a staff member's view of appointments: the restrictive policy holds for their own, not for a colleague's, told per policy", async () => {
    const own = (await explainViaApi(members.staff.email, "appointments", "select", await appointment(members.staff))).body as Explanation;
    const theirs = (await explainViaApi(members.staff.email, "appointments", "select", await appointment(members.manager))).body as Explanation;
    const restrictive = (e: Explanation) => e.policies.find((p) => p.name === "members_see_only_assigned_appointments")!;
    expect([own.verdict, restrictive(own).using_held]).toEqual(["allowed", true]);
    expect([theirs.verdict, restrictive(theirs).using_held]).toEqual(["not_found", false]);
  });

  it("a member of another shop, an unknown email and an account of no shop get the same answer: a stranger's 404, not 403", async () => {
    const [lonely] = await owner`insert into app.users (email) values (${`lonely-${uniq()}@test.test`}) returning email`;
    const answers = [];
    const row = await customer();
    for (const email of [outsider.email, `nobody-${uniq()}@test.test`, lonely.email as string]) {
      const res = await explainViaApi(email, "customers", "update", row);
      expect(res.status).toBe(200);
      answers.push({ ...res.body, user: "<asked>" });
    }
    expect(answers[0]).toMatchObject({ verdict: "not_found", role: null, answer: { status: 404, code: "TENANT_NOT_FOUND" } });
    expect(answers[1]).toEqual(answers[0]);
    expect(answers[2]).toEqual(answers[0]);
    // And the outsider's own request, with their own token and this shop named: the same 404.
    const real = await api.request("GET", "/api/v1/customers", { token: tokenFor(outsider), tenant: shop.slug });
    expect([real.status, real.body.error.code]).toEqual([404, "TENANT_NOT_FOUND"]);
  });

  it("a member of a suspended shop learns it (403 TENANT_SUSPENDED), from the opener", async () => {
    const suspended = await makeTenant(owner, { prefix: "explain-suspended", status: "suspended" });
    const member = await makeUser(owner, suspended, "manager");
    const e = await explainAsOperator(owner, db.contextKey, { tenant: suspended.slug, user: member.email, table: "customers", action: "select" });
    expect([e.verdict, e.answer, e.steps[0]]).toMatchObject(["denied", { status: 403, code: "TENANT_SUSPENDED" }, { step: "membership", outcome: "refused", sqlstate: "TN403" }]);
  });

  it("a shop whose plan lacks the feature a table's data needs learns it (403 FEATURE_NOT_ENABLED), as the member's own request does", async () => {
    const basic = await makeTenant(owner, { prefix: "explain-basic", plan: "basic" });
    const member = await makeUser(owner, basic, "owner");
    const e = await explainAsOperator(owner, db.contextKey, { tenant: basic.slug, user: member.email, table: "integration_credentials", action: "select" });
    expect([e.verdict, e.answer]).toMatchObject(["denied", { status: 403, code: "FEATURE_NOT_ENABLED" }]);
    expect(e.steps.find((s) => s.outcome === "refused")).toMatchObject({ sqlstate: "FE403" });
    const own = await api.request("GET", "/api/v1/integrations", { token: tokenFor(member), tenant: basic.slug });
    expect([own.status, own.body.error.code]).toEqual([403, "FEATURE_NOT_ENABLED"]);
  });

  it("the CLI (owner connection) answers as the API does", async () => {
    const invoice = await issued();
    const cli = await explainAsOperator(owner, db.contextKey, { tenant: shop.slug, user: members.manager.email, table: "invoices", id: invoice, action: "update" });
    const viaApi = (await explainViaApi(members.manager.email, "invoices", "update", invoice)).body as Explanation;
    expect(cli).toEqual(viaApi);
  });
});

describe("the explainer writes nothing that survives", () => {
  it("no row of the shop, no audit row, no invoice number is left behind by any write it probes", async () => {
    const rows = () => owner`
      select (select md5(coalesce(string_agg(t::text, ',' order by t.id), '')) from app.customers t where tenant_id = ${shop.id}) as customers,
             (select md5(coalesce(string_agg(t::text, ',' order by t.id), '')) from app.invoices t where tenant_id = ${shop.id}) as invoices,
             (select md5(coalesce(string_agg(t::text, ',' order by t.id), '')) from app.invoice_lines t where tenant_id = ${shop.id}) as lines,
             (select md5(coalesce(string_agg(t::text, ',' order by t.id), '')) from app.appointments t where tenant_id = ${shop.id}) as appointments,
             (select count(*) || '/' || coalesce(max(id), 0) from app.audit_log where tenant_id = ${shop.id}) as audit,
             (select last_number from app.invoice_counters where tenant_id = ${shop.id}) as counter,
             (select count(*) from app.memberships where tenant_id = ${shop.id}) as members`;
    const questions: [string, ExplainAction, string][] = [
      ["customers", "delete", await customer()], ["customers", "insert", await customer()], ["customers", "update", await customer()],
      ["invoices", "delete", await draft()], ["invoices", "update", await issued()], ["invoice_lines", "insert", await line()],
      ["appointments", "insert", await appointment(members.manager)], ["appointments", "delete", await appointment(members.staff)],
    ];
    const before = await rows();
    const [auditSeqBefore] = await owner`select last_value from app.audit_log_id_seq`;
    for (const [table, action, id] of questions) {
      for (const role of ["owner", "staff"] as const) {
        const res = await explainViaApi(members[role].email, table, action, id);
        expect(res.status, JSON.stringify(res.body)).toBe(200);
      }
    }
    await explainAsOperator(owner, db.contextKey, { tenant: shop.slug, user: members.manager.email, table: "customers", id: questions[0][2], action: "delete" });
    expect(await rows()).toEqual(before);
    // The sequence use the explainer states (db/accessExplainer.ts): the audit trigger of a write
    // that reached it took ids from app.audit_log_id_seq, which no rollback takes back.
    const [auditSeqAfter] = await owner`select last_value from app.audit_log_id_seq`;
    expect(BigInt(auditSeqAfter.last_value)).toBeGreaterThan(BigInt(auditSeqBefore.last_value));
  });
});

describe("what it refuses to explain, with a stable code", () => {
  it("400, 422 and 403 as documented", async () => {
    const cases: [Record<string, string>, number, string][] = [
      [{ user: members.staff.email, table: "users", action: "select" }, 422, "UNKNOWN_TABLE"],
      [{ user: members.staff.email, table: "customers", action: "update" }, 422, "ID_REQUIRED"],
      [{ user: members.staff.email, table: "customers", action: "select", id: "not-a-uuid" }, 400, "INVALID_ID"],
      [{ user: members.staff.email, table: "customers", action: "merge" }, 400, "INVALID_PARAMETER"],
      [{ user: "not an email", table: "customers", action: "select" }, 400, "INVALID_PARAMETER"],
    ];
    for (const [query, status, code] of cases) {
      const res = await api.request("GET", `/api/v1/access/explain?${new URLSearchParams(query)}`, { token: tokenFor(members.admin), tenant: shop.slug });
      expect([res.status, res.body.error?.code], JSON.stringify(query)).toEqual([status, code]);
    }
    // Only for those who manage members, and only in their own shop.
    const staff = await explainViaApi(members.staff.email, "customers", "select", undefined, members.staff);
    expect([staff.status, staff.body.error.code]).toEqual([403, "FORBIDDEN"]);
    const elsewhere = await api.request("GET", `/api/v1/access/explain?${new URLSearchParams({ user: members.staff.email, table: "customers", action: "select" })}`,
      { token: tokenFor(outsider), tenant: shop.slug });
    expect([elsewhere.status, elsewhere.body.error.code]).toEqual([404, "TENANT_NOT_FOUND"]);
  });
});

describe("canary: the explainer follows the database, because it asks it", () => {
  const golden = useGolden("explain");

  it("with the restrictive appointments policy dropped, a staff member sees a colleague's appointment, and the explainer says so", async () => {
    await golden.withClone(async (scratch) => {
      const ownerOf = postgres(scratch.ownerUrl, { max: 2, onnotice: () => {} });
      const appOf = postgres(scratch.appUrl, { max: 1, onnotice: () => {} });
      try {
        const [t] = await ownerOf`select id, slug from app.tenants order by slug limit 1`;
        const tenant = t as Tenant;
        const staff = await makeUser(ownerOf, tenant, "staff");
        const colleague = await makeUser(ownerOf, tenant, "manager");
        const [c] = await ownerOf`select id from app.customers where tenant_id = ${tenant.id} limit 1`;
        const [a] = await ownerOf`insert into app.appointments (tenant_id, customer_id, assigned_user_id, starts_at, ends_at)
                                  values (${tenant.id}, ${c.id}, ${colleague.id}, '2035-01-01T09:00:00Z', '2035-01-01T10:00:00Z') returning id`;
        const ask = () => explainAsOperator(ownerOf, db.contextKey, { tenant: tenant.slug, user: staff.email, table: "appointments", id: a.id, action: "select" });
        const sees = () => asMember(appOf, staff, tenant, { permission: "appointments:read", forRow: true },
          async (tx) => (await tx`select 1 from app.appointments where id = ${a.id}`).length > 0);

        expect([await sees(), (await ask()).verdict]).toEqual([false, "not_found"]);
        await ownerOf`drop policy members_see_only_assigned_appointments on app.appointments`;
        const after = await ask();
        expect([await sees(), after.verdict]).toEqual([true, "allowed"]);
        expect(after.policies.map((p) => p.name)).not.toContain("members_see_only_assigned_appointments");
      } finally {
        await Promise.all([ownerOf.end({ timeout: 5 }), appOf.end({ timeout: 5 })]);
      }
    });
  });
});
