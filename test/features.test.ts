// Features and entitlements (issue 32), decided in SQL: a route's feature refused with 403
// FEATURE_NOT_ENABLED naming it; the kill switch wins over plan and override; an expired override
// lapses; SQL guards the data a feature guards (the audit export, BI logins) whatever a route
// names; every change is a version with actor and reason, and a rollback restores an earlier state
// exactly; platform administration only in a platform context SQL opens for platform admins.
// Changes of platform-wide state (kill switches, the plan grid, rollbacks) run in a scratch clone:
// other test files share the test database.
import { randomBytes, randomUUID } from "node:crypto";
import postgres from "postgres";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createApp } from "../server/app.ts";
import { routeInventory } from "../server/http/routeInventory.ts";
import type { Sql } from "../server/db/connections.ts";
import {
  asMember, asPlatformOperator, db, guardOn, keys, makeCustomers, makeTenant, makeUser, openTenantContext, proofFor, callOpener,
  startApi, tokenFor, useApi, type Api, type Tenant, type User,
} from "./fixtures.ts";
import { psqlFile, runSql, useGolden, type Scratch } from "./scratch.ts";

const { owner, app, api } = useApi();
const golden = useGolden("features");

let basic: Tenant;
let pro: Tenant;
let basicOwner: User;
let proOwner: User;
let proStaff: User;
let admin: User;

beforeAll(async () => {
  basic = await makeTenant(owner, { plan: "basic" });
  pro = await makeTenant(owner);
  basicOwner = await makeUser(owner, basic, "owner");
  proOwner = await makeUser(owner, pro, "owner");
  proStaff = await makeUser(owner, pro, "staff");
  admin = await makeUser(owner);
  await owner`update app.users set is_platform_admin = true where id = ${admin.id}`;
  await makeCustomers(owner, basic, 2);
  await makeCustomers(owner, pro, 2);
});

const call = (a: Api, user: User, method: string, path: string, options: { tenant?: Tenant; body?: unknown } = {}) =>
  a.request(method, path, { token: tokenFor(user), tenant: options.tenant?.slug, body: options.body });
const exportOf = (a: Api, user: User, t: Tenant) => call(a, user, "GET", "/api/v1/audit/export.csv", { tenant: t });
const override = (t: Tenant, feature: string, enabled: boolean | null, expiresAt: string | null = null) =>
  asPlatformOperator(owner, (tx) => tx`select app.platform_set_override(${t.id}, ${feature}, ${enabled}::boolean, ${expiresAt}::timestamptz, 'test') as v`);

describe("a route's feature, enforced by the context-opening call", () => {
  it("a shop whose plan lacks the feature gets 403 FEATURE_NOT_ENABLED naming it; a shop with it gets the data", async () => {
    const refused = await exportOf(api, basicOwner, basic);
    expect(refused.status).toBe(403);
    expect(refused.body).toEqual({
      error: { code: "FEATURE_NOT_ENABLED", message: "This shop may not use the feature audit_export.", request_id: expect.any(String), details: { feature: "audit_export" }, help: "runbooks/features.md" },
    });
    const allowed = await exportOf(api, proOwner, pro);
    expect(allowed.status).toBe(200);
    expect(allowed.headers.get("content-type")).toMatch(/^text\/csv/);
    // basic grants reports: the same kind of shop reads them.
    expect((await call(api, basicOwner, "GET", "/api/v1/reports/revenue-daily?from=2030-01-01&to=2030-01-02", { tenant: basic })).status).toBe(200);
  });

  it("the feature is checked before the permission: a staff member of a shop without it learns the shop's plan, not its roles", async () => {
    const staff = await makeUser(owner, basic, "staff");
    expect((await exportOf(api, staff, basic)).body.error.code).toBe("FEATURE_NOT_ENABLED");
    expect((await exportOf(api, proStaff, pro)).body.error).toMatchObject({ code: "FORBIDDEN", details: { permission: "audit:export" } });
  });

  it("the proof signs the feature: a proof for one feature does not open a context naming another, or none", async () => {
    const access = { userId: basicOwner.id, tenantRefs: [basic.id], permission: "customers:read", feature: "online_booking" };
    for (const feature of ["reports", null]) {
      await expect(app.begin(async (tx) => {
        const p = proofFor(access, await guardOn(tx as unknown as Sql, false));
        return callOpener(tx as unknown as Sql, { ...access, feature }, p);
      }), `signed for online_booking, called with ${feature}`).rejects.toMatchObject({ code: "TN401" });
    }
    const [opened] = await app.begin(async (tx) => openTenantContext(tx as unknown as Sql, access));
    expect(opened.tenant_id).toBe(basic.id);
  });
});

describe("SQL guards the data a feature guards, whatever the route names", () => {
  it("audit export: a context opened for audit:export naming no feature is refused for a shop without audit_export (as app_user)", async () => {
    await expect(asMember(app, basicOwner, basic, { permission: "audit:export", writes: true, feature: null }, (tx) => tx`select 1`))
      .rejects.toMatchObject({ code: "FE403", detail: "audit_export" });
    await expect(asMember(app, proOwner, pro, { permission: "audit:export", writes: true, feature: null }, (tx) => tx`select count(*) from app.audit_log`)).resolves.toBeDefined();
  });

  it("BI: a login granted a shop without bi_access sees nothing of it in any view; one with it sees its rows, until bi_access lapses", async () => {
    const role = `bi_feat_${randomUUID().slice(0, 8)}`;
    const password = randomBytes(12).toString("hex");
    await runSql(db.superuserUrl, `create role ${role} login password '${password}' in role app_bi`);
    const url = new URL(db.biUrl);
    url.username = role;
    url.password = password;
    const bi = postgres(url.toString(), { max: 1, onnotice: () => {} });
    try {
      for (const t of [basic, pro]) {
        const [c] = await owner`select id from app.customers where tenant_id = ${t.id} limit 1`;
        await owner`insert into app.invoices (tenant_id, customer_id) values (${t.id}, ${c.id})`;
        await owner.begin((tx) => tx`select app.bi_grant(${role}, ${t.id}::uuid)`);
      }
      const views = (await owner`select c.oid::regclass::text as name from pg_class c join pg_namespace n on n.oid = c.relnamespace where n.nspname = 'app' and c.relkind = 'v' order by 1`).map((r) => r.name as string);
      const seen = async (t: Tenant) => {
        let n = 0;
        for (const view of views) n += (await bi.unsafe(`select count(*)::int as n from ${view} where tenant_id = '${t.id}'`))[0].n;
        return n;
      };
      expect(await seen(basic)).toBe(0);
      expect(await seen(pro)).toBeGreaterThan(0);
      await override(pro, "bi_access", false);
      expect(await seen(pro)).toBe(0);
      await override(pro, "bi_access", null);
      await override(basic, "bi_access", true);
      expect(await seen(basic)).toBeGreaterThan(0);
    } finally {
      await override(basic, "bi_access", null);
      await bi.end({ timeout: 5 });
      await owner`delete from app.bi_grants where role_name = ${role}`;
      await runSql(db.superuserUrl, `drop role if exists ${role}`);
    }
  });
});

describe("overrides", () => {
  it("an override wins over the plan both ways, and an expired override lapses", async () => {
    const t = await makeTenant(owner, { plan: "basic" });
    const u = await makeUser(owner, t, "owner");
    expect((await exportOf(api, u, t)).status).toBe(403);
    await override(t, "audit_export", true, new Date(Date.now() + 4_000).toISOString());
    expect((await exportOf(api, u, t)).status).toBe(200);
    const deadline = Date.now() + 20_000;
    let status = 200;
    while (status === 200 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 250));
      status = (await exportOf(api, u, t)).status;
    }
    expect(status).toBe(403);
    // Lapsed, not removed: the row stays (its version says who set it), and counts for nothing.
    expect(await owner`select enabled from app.feature_overrides where tenant_id = ${t.id} and feature = 'audit_export'`).toEqual([{ enabled: true }]);
    const entitlements = await call(api, u, "GET", "/api/v1/features", { tenant: t });
    expect(entitlements.body.features.find((f: { name: string }) => f.name === "audit_export")).toMatchObject({ enabled: false, source: "none", override: null });

    await override(pro, "reports", false);
    try {
      const res = await call(api, proOwner, "GET", "/api/v1/reports/revenue-daily?from=2030-01-01&to=2030-01-02", { tenant: pro });
      expect(res.body.error).toMatchObject({ code: "FEATURE_NOT_ENABLED", details: { feature: "reports" } });
    } finally {
      await override(pro, "reports", null);
    }
  });

  it("an override must expire in the future (422 INVALID_EXPIRY over the API)", async () => {
    const res = await call(api, admin, "PATCH", `/api/v1/platform/tenants/${basic.slug}/features/audit_export`, { body: { enabled: true, expires_at: "2001-01-01T00:00:00Z", reason: "test" } });
    expect(res.status).toBe(422);
    expect(res.body.error.code).toBe("INVALID_EXPIRY");
  });
});

describe("owners read their entitlements at GET /api/v1/features", () => {
  it("every feature with whether it is enabled and why; staff may not read it; another shop's token gets 404", async () => {
    await override(basic, "integrations", true);
    try {
      const res = await call(api, basicOwner, "GET", "/api/v1/features", { tenant: basic });
      expect(res.status).toBe(200);
      expect(res.body.plan).toBe("basic");
      const by = Object.fromEntries(res.body.features.map((f: { name: string }) => [f.name, f]));
      expect(Object.keys(by).sort()).toEqual(["audit_export", "bi_access", "integrations", "online_booking", "reports"]);
      expect(by.reports).toMatchObject({ enabled: true, source: "plan", in_plan: true, override: null, killed: false });
      expect(by.audit_export).toMatchObject({ enabled: false, source: "none", in_plan: false });
      expect(by.integrations).toMatchObject({ enabled: true, source: "override", in_plan: false, override: { enabled: true, expires_at: null } });
    } finally {
      await override(basic, "integrations", null);
    }
    expect((await call(api, proStaff, "GET", "/api/v1/features", { tenant: pro })).body.error).toMatchObject({ code: "FORBIDDEN", details: { permission: "features:read" } });
    const foreign = await call(api, proOwner, "GET", "/api/v1/features", { tenant: basic });
    expect(foreign.status).toBe(404);
    expect(foreign.body.error.code).toBe("TENANT_NOT_FOUND");
  });
});

describe("platform administration", () => {
  const platformRoutes = () => routeInventory(createApp({ keys, bodyLimit: "1kb" })).filter((r) => r.path.startsWith("/api/v1/platform/"));
  const concrete = (path: string) => path.replace(":tenant", basic.slug).replace(":feature", "reports").replace(":plan", "basic");
  const bodies: Record<string, unknown> = {
    "PATCH /api/v1/platform/features/:feature": { killed: true, reason: "x" },
    "PATCH /api/v1/platform/plans/:plan": { features: { reports: false }, reason: "x" },
    "PATCH /api/v1/platform/tenants/:tenant": { plan: "pro", reason: "x" },
    "PATCH /api/v1/platform/tenants/:tenant/features/:feature": { enabled: false, reason: "x" },
    "POST /api/v1/platform/rollback": { to_version: 1, reason: "x" },
    "POST /api/v1/platform/tenants": { slug: `never-${randomUUID().slice(0, 8)}`, name: "Never", plan: "basic", owner_email: "never@test.test" },
    "POST /api/v1/platform/tenants/:tenant/suspend": { reason: "x" },
    "POST /api/v1/platform/tenants/:tenant/resume": { reason: "x" },
  };

  it("every platform route refuses anyone but a platform admin (403 PLATFORM_ADMIN_REQUIRED, decided in SQL), and changes nothing", async () => {
    const routes = platformRoutes();
    expect(routes.length).toBeGreaterThanOrEqual(8);
    for (const r of routes) {
      for (const user of [basicOwner, proOwner]) {
        const res = await call(api, user, r.method, concrete(r.path), { tenant: basic, body: bodies[`${r.method} ${r.path}`] });
        expect(res.status, `${r.method} ${r.path}`).toBe(403);
        expect(res.body.error.code).toBe("PLATFORM_ADMIN_REQUIRED");
      }
      expect((await api.request(r.method, concrete(r.path), { body: bodies[`${r.method} ${r.path}`] })).status).toBe(401);
    }
    // Other test files make versions meanwhile (a new shop's plan): none of these callers did.
    const [made] = await owner`select count(*)::int as n from app.entitlement_versions where actor_user_id = any (${[basicOwner.id, proOwner.id]}::uuid[])`;
    expect(made.n).toBe(0);
    expect(await owner`select feature from app.feature_kill_switches`).toEqual([]);
    expect(await owner`select plan from app.tenant_plans where tenant_id = ${basic.id}`).toEqual([{ plan: "basic" }]);
  });

  it("a platform admin puts a shop on a plan and sets an override: each a version with the admin as actor and the reason; a repeat makes none", async () => {
    const t = await makeTenant(owner, { plan: "basic" });
    const u = await makeUser(owner, t, "owner");
    const plan = await call(api, admin, "PATCH", `/api/v1/platform/tenants/${t.slug}`, { body: { plan: "pro", reason: "upgraded by sales" } });
    expect(plan.status).toBe(200);
    expect(plan.body).toEqual({ version: expect.any(Number), changed: true });
    expect((await exportOf(api, u, t)).status).toBe(200);
    const again = await call(api, admin, "PATCH", `/api/v1/platform/tenants/${t.id}`, { body: { plan: "pro", reason: "again" } });
    expect(again.body).toEqual({ version: null, changed: false });
    const off = await call(api, admin, "PATCH", `/api/v1/platform/tenants/${t.slug}/features/audit_export`, { body: { enabled: false, reason: "abuse report 42" } });
    expect(off.body.changed).toBe(true);
    expect((await exportOf(api, u, t)).body.error.code).toBe("FEATURE_NOT_ENABLED");

    const versions = await call(api, admin, "GET", "/api/v1/platform/versions?limit=200");
    expect(versions.status).toBe(200);
    const mine = versions.body.data.filter((v: { version: number }) => v.version === plan.body.version || v.version === off.body.version);
    expect(mine).toEqual([
      expect.objectContaining({ version: off.body.version, actor: admin.email, actor_user_id: admin.id, action: "tenant.override", reason: "abuse report 42",
        changes: [{ entity: "feature_override", key: { tenant_id: t.id, feature: "audit_export" }, old: null, new: { tenant_id: t.id, feature: "audit_export", enabled: false, expires_at: null } }] }),
      expect.objectContaining({ version: plan.body.version, actor: admin.email, action: "tenant.plan", reason: "upgraded by sales",
        changes: [{ entity: "tenant_plan", key: { tenant_id: t.id }, old: { tenant_id: t.id, plan: "basic" }, new: { tenant_id: t.id, plan: "pro" } }] }),
    ]);
    const seen = await call(api, admin, "GET", `/api/v1/platform/tenants/${t.slug}/features`);
    expect(seen.body.plan).toBe("pro");
    expect(seen.body.features.find((f: { name: string }) => f.name === "audit_export")).toMatchObject({ enabled: false, source: "override" });
    expect((await call(api, admin, "GET", "/api/v1/platform/tenants/no-such-shop/features")).body.error.code).toBe("TENANT_NOT_FOUND");
    expect((await call(api, admin, "PATCH", `/api/v1/platform/tenants/${t.slug}`, { body: { plan: "gold", reason: "x" } })).body.error.code).toBe("PLAN_NOT_FOUND");
    expect((await call(api, admin, "PATCH", `/api/v1/platform/tenants/${t.slug}/features/teleport`, { body: { enabled: true, reason: "x" } })).body.error.code).toBe("FEATURE_NOT_FOUND");
    expect((await call(api, admin, "PATCH", `/api/v1/platform/tenants/${t.slug}/features/Not-A-Name`, { body: { enabled: true, reason: "x" } })).body.error.code).toBe("INVALID_PARAMETER");
    expect((await call(api, admin, "PATCH", `/api/v1/platform/tenants/${t.slug}`, { body: { plan: "pro" } })).body.error.code).toBe("VALIDATION_FAILED");
  });

  it("as app_user in SQL: the entitlement tables are out of reach, the platform functions refuse a tenant context, a forged one and a non-admin's proof", async () => {
    for (const table of ["features", "plans", "plan_features", "tenant_plans", "feature_overrides", "feature_kill_switches", "entitlement_versions", "entitlement_changes"]) {
      await expect(asMember(app, proOwner, pro, { permission: "customers:write", writes: true }, (tx) => tx.unsafe(`select * from app.${table}`))).rejects.toMatchObject({ code: "42501" });
      await expect(asMember(app, proOwner, pro, { permission: "customers:write", writes: true }, (tx) => tx.unsafe(`delete from app.${table}`))).rejects.toMatchObject({ code: "42501" });
    }
    await expect(asMember(app, proOwner, pro, { permission: "customers:write", writes: true }, (tx) => tx`select app.platform_set_tenant_plan(${basic.id}, 'pro', 'x')`))
      .rejects.toMatchObject({ code: "PA403" });
    await expect(app.begin(async (tx) => {
      await tx`select set_config('app.context', ${`||||platform|w`}, true)`;
      return tx`select app.platform_set_kill_switch('reports', true, 'x')`;
    })).rejects.toMatchObject({ code: "PA403" });
    await expect(app.begin((tx) => tx`select app.feature_enabled(${pro.id}::uuid, 'reports')`)).rejects.toMatchObject({ code: "42501" });
    await expect(app.begin((tx) => tx`select app.open_platform_operator_context('me')`)).rejects.toMatchObject({ code: "42501" });
    const { platformContextProof } = await import("../server/db/contextProof.ts");
    await expect(app.begin(async (tx) => {
      const g = await guardOn(tx as unknown as Sql, true);
      const p = platformContextProof(proOwner.id, "test", true, g.guard, g.expiresAt);
      return tx`select app.open_platform_context(${proOwner.id}::uuid, 'test', true, ${p.guard}, ${p.expiresAt}::int8, ${p.nonce}, ${p.proof})`;
    })).rejects.toMatchObject({ code: "PA403" });
  });

  it("every change is versioned, by every role: the owner role writing the tables directly outside a version is refused; the history is append-only", async () => {
    await expect(owner`insert into app.feature_overrides (tenant_id, feature, enabled) values (${basic.id}, 'reports', false)`)
      .rejects.toMatchObject({ code: "SS409", constraint_name: "entitlements_unversioned" });
    await expect(owner`update app.tenant_plans set plan = 'pro' where tenant_id = ${basic.id}`).rejects.toMatchObject({ code: "SS409", constraint_name: "entitlements_unversioned" });
    await expect(owner`truncate app.feature_kill_switches`).rejects.toMatchObject({ code: "SS409", constraint_name: "entitlements_append_only" });
    await expect(owner`update app.entitlement_versions set reason = 'rewritten'`).rejects.toMatchObject({ code: "SS409", constraint_name: "entitlements_append_only" });
    await expect(owner`delete from app.entitlement_changes`).rejects.toMatchObject({ code: "SS409", constraint_name: "entitlements_append_only" });
    // A shop's own rows go with the shop, and its earlier versions stay.
    const t = await makeTenant(owner);
    await owner`delete from app.tenants where id = ${t.id}`;
    expect((await owner`select count(*)::int as n from app.entitlement_changes where key->>'tenant_id' = ${t.id}`)[0].n).toBeGreaterThan(0);
  });
});

/** The whole entitlement state, as data: what a rollback must restore exactly. */
async function stateOf(sql: Sql) {
  const [s] = await sql`
    select (select coalesce(jsonb_agg(to_jsonb(x) order by x.plan, x.feature), '[]') from app.plan_features x) as grid,
           (select coalesce(jsonb_agg(to_jsonb(x) order by x.tenant_id), '[]') from app.tenant_plans x) as plans,
           (select coalesce(jsonb_agg(to_jsonb(x) order by x.tenant_id, x.feature), '[]') from app.feature_overrides x) as overrides,
           (select coalesce(jsonb_agg(to_jsonb(x) order by x.feature), '[]') from app.feature_kill_switches x) as killed,
           (select max(version) from app.entitlement_versions)::int as version`;
  const { version, ...state } = s;
  return { version: version as number, state };
}

describe("platform-wide switches and rollback (in a scratch clone)", () => {
  let s: Scratch;
  let cloneOwner: Sql;
  let cloneApi: Api;
  let shopA: Tenant;
  let shopB: Tenant;
  let ownerA: User;
  let ownerB: User;
  let root: User;

  beforeAll(async () => {
    s = await golden.clone();
    cloneOwner = postgres(s.ownerUrl, { max: 2, onnotice: () => {} });
    shopA = await makeTenant(cloneOwner);
    shopB = await makeTenant(cloneOwner, { plan: "basic" });
    ownerA = await makeUser(cloneOwner, shopA, "owner");
    ownerB = await makeUser(cloneOwner, shopB, "owner");
    root = await makeUser(cloneOwner);
    await cloneOwner`update app.users set is_platform_admin = true where id = ${root.id}`;
    cloneApi = await startApi({ databaseUrl: s.appUrl });
  });

  afterAll(async () => {
    await cloneApi?.close();
    await cloneOwner?.end({ timeout: 5 });
    await s?.drop();
  });

  const reports = (user: User, t: Tenant) => call(cloneApi, user, "GET", "/api/v1/reports/revenue-daily?from=2030-01-01&to=2030-01-02", { tenant: t });
  const admin = (method: string, path: string, body?: unknown) => call(cloneApi, root, method, path, { body });

  it("the kill switch wins over plan and override, for every shop; switched back, each shop has what plan and override say", async () => {
    expect((await admin("PATCH", `/api/v1/platform/tenants/${shopB.slug}/features/reports`, { enabled: true, reason: "pilot" })).body.changed).toBe(true);
    expect((await reports(ownerA, shopA)).status).toBe(200);
    expect((await reports(ownerB, shopB)).status).toBe(200);
    const kill = await admin("PATCH", "/api/v1/platform/features/reports", { killed: true, reason: "incident 7: the report query overloads the primary" });
    expect(kill.body.changed).toBe(true);
    for (const [u, t] of [[ownerA, shopA], [ownerB, shopB]] as const) {
      const res = await reports(u, t);
      expect(res.status).toBe(403);
      expect(res.body.error).toMatchObject({ code: "FEATURE_NOT_ENABLED", details: { feature: "reports" } });
      const mine = await call(cloneApi, u, "GET", "/api/v1/features", { tenant: t });
      expect(mine.body.features.find((f: { name: string }) => f.name === "reports")).toMatchObject({ enabled: false, source: "kill_switch", killed: true });
    }
    const [sql] = await cloneOwner`select app.feature_enabled(${shopA.id}::uuid, 'reports') as a, app.feature_enabled(${shopB.id}::uuid, 'reports') as b`;
    expect(sql).toEqual({ a: false, b: false });
    expect((await admin("PATCH", "/api/v1/platform/features/reports", { killed: true, reason: "again" })).body).toEqual({ version: null, changed: false });
    expect((await admin("PATCH", "/api/v1/platform/features/reports", { killed: false, reason: "incident 7 resolved" })).body.changed).toBe(true);
    expect((await reports(ownerA, shopA)).status).toBe(200);
    expect((await reports(ownerB, shopB)).status).toBe(200);
    const overview = await admin("GET", "/api/v1/platform/features");
    expect(overview.body.features.find((f: { name: string }) => f.name === "reports")).toEqual({ name: "reports", description: expect.any(String), killed: false, plans: ["basic", "pro"] });
  });

  it("a rollback restores an earlier state exactly, as a new version; rolling back to where it stands makes none", async () => {
    const start = await stateOf(cloneOwner);
    // A series of changes of every kind, over the API and the CLI's SQL path.
    await admin("PATCH", "/api/v1/platform/plans/basic", { features: { integrations: true, reports: false }, reason: "plan rework" });
    await admin("PATCH", `/api/v1/platform/tenants/${shopB.slug}`, { plan: "pro", reason: "trial" });
    await admin("PATCH", `/api/v1/platform/tenants/${shopA.slug}/features/bi_access`, { enabled: false, expires_at: new Date(Date.now() + 86_400_000).toISOString(), reason: "audit" });
    await admin("PATCH", "/api/v1/platform/features/online_booking", { killed: true, reason: "not ready" });
    const middle = await stateOf(cloneOwner);
    expect(Object.values(middle.state).every((rows) => (rows as unknown[]).length > 0)).toBe(true);
    await admin("PATCH", "/api/v1/platform/features/online_booking", { killed: false, reason: "ready" });
    await admin("PATCH", `/api/v1/platform/tenants/${shopA.slug}/features/bi_access`, { enabled: true, reason: "audit over" });
    await admin("PATCH", "/api/v1/platform/features/integrations", { killed: true, reason: "vendor outage" });
    await admin("PATCH", `/api/v1/platform/tenants/${shopB.slug}/features/reports`, { enabled: null, reason: "pilot over" });
    await asPlatformOperator(cloneOwner, (tx) => tx`select app.platform_set_tenant_plan(${shopA.id}, 'basic', 'downgrade')`, "ops@cli");
    expect((await stateOf(cloneOwner)).state).not.toEqual(middle.state);

    const back = await admin("POST", "/api/v1/platform/rollback", { to_version: middle.version, reason: "undo the outage changes" });
    expect(back.body.changed).toBe(true);
    expect((await stateOf(cloneOwner)).state).toEqual(middle.state);
    const toStart = await admin("POST", "/api/v1/platform/rollback", { to_version: start.version, reason: "undo everything" });
    expect(toStart.body.changed).toBe(true);
    expect((await stateOf(cloneOwner)).state).toEqual(start.state);
    // A rollback is itself a version, and can be rolled back: to where the first rollback left it.
    const rolled = await stateOf(cloneOwner);
    expect((await admin("POST", "/api/v1/platform/rollback", { to_version: back.body.version, reason: "redo" })).body.changed).toBe(true);
    expect((await stateOf(cloneOwner)).state).toEqual(middle.state);
    expect((await admin("POST", "/api/v1/platform/rollback", { to_version: rolled.version, reason: "again" })).body.changed).toBe(true);
    expect((await admin("POST", "/api/v1/platform/rollback", { to_version: rolled.version, reason: "nothing left" })).body).toEqual({ version: null, changed: false });
    const versions = await admin("GET", "/api/v1/platform/versions?limit=3");
    expect(versions.body.data[0]).toMatchObject({ action: "rollback", rolled_back_to: rolled.version, actor: root.email, reason: "again" });
    expect(versions.body.next_cursor).toEqual(expect.any(String));
    const next = await admin("GET", `/api/v1/platform/versions?limit=3&cursor=${versions.body.next_cursor}`);
    expect(next.body.data[0].version).toBe(versions.body.data[2].version - 1);
    expect((await admin("POST", "/api/v1/platform/rollback", { to_version: 999_999, reason: "x" })).body.error.code).toBe("VERSION_NOT_FOUND");
  });

  it("a platform admin's hostile shop names reach SQL as data: 4xx, never 5xx", async () => {
    for (const ref of ["%00", "%E0", "x".repeat(300), "' or 1=1 --", "%F0%9F%9A%97", shopA.id.toUpperCase()]) {
      for (const [method, path, body] of [["GET", `/api/v1/platform/tenants/${ref}/features`, undefined], ["PATCH", `/api/v1/platform/tenants/${ref}`, { plan: "pro", reason: "x" }]] as const) {
        const res = await admin(method, path, body);
        expect(res.status, `${method} ${path.slice(0, 60)}`).toBeLessThan(500);
      }
    }
  });
});

describe("the new tables, caught by the contract and verification checks like every other table", () => {
  const tables = ["features", "plans", "plan_features", "tenant_plans", "feature_overrides", "feature_kill_switches", "entitlement_versions", "entitlement_changes"];

  it("are global (the registry names them), and no application role holds a privilege on them", async () => {
    const [g] = await owner`select app.global_table_names() as names`;
    expect(g.names).toEqual(expect.arrayContaining(tables));
    const held = await owner`
      select r.rolname, c.relname from pg_class c cross join pg_roles r
       where c.relnamespace = 'app'::regnamespace and c.relname = any (${tables}) and r.rolname in ('app_user', 'app_bi', 'app_views')
         and (has_table_privilege(r.oid, c.oid, 'SELECT') or has_table_privilege(r.oid, c.oid, 'INSERT') or has_table_privilege(r.oid, c.oid, 'UPDATE')
              or has_table_privilege(r.oid, c.oid, 'DELETE') or has_table_privilege(r.oid, c.oid, 'TRUNCATE'))`;
    expect(held).toEqual([]);
  });

  it("canary: taken off the global list, verify/catalog.sql names each (a tenant_id without RLS; no tenant_id and not global)", async () =>
    golden.withClone(async (c) => {
      expect((await psqlFile(c.ownerUrl, "verify/catalog.sql")).code).toBe(0);
      const [g] = await owner`select app.global_table_names() as names`;
      const kept = (g.names as string[]).filter((n) => n !== "feature_overrides" && n !== "plan_features");
      await runSql(c.ownerUrl, `create or replace function app.global_table_names() returns text[] language sql immutable parallel safe
        set search_path = pg_catalog, pg_temp as $$ select array[${kept.map((n) => `'${n}'`).join(", ")}]::text[] $$`);
      const r = await psqlFile(c.ownerUrl, "verify/catalog.sql");
      expect(r.code).not.toBe(0);
      expect(r.output).toMatch(/FAIL app\.feature_overrides: row level security is not enabled\. FIX: /);
      expect(r.output).toMatch(/FAIL app\.plan_features: has no tenant_id column and is not on the global list\. FIX: /);
    }));

  it("canary: a versioned table whose change trigger is disabled is named by verify/catalog.sql", async () =>
    golden.withClone(async (c) => {
      await runSql(c.ownerUrl, "alter table app.feature_kill_switches disable trigger feature_kill_switches_versioned");
      const r = await psqlFile(c.ownerUrl, "verify/catalog.sql");
      expect(r.code).not.toBe(0);
      expect(r.output).toContain("FAIL app.feature_kill_switches: its changes are not recorded in entitlement versions (trigger feature_kill_switches_versioned missing or disabled). FIX: deploy/apply-policies.sh");
    }));
});
