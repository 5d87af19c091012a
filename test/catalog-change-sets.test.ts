// Versioned catalog changes (issue 35), proved over HTTP and as app_user: drafts and their rules,
// the dry-run that changes nothing (row counts, xmin and the catalog ETag on 1,000+ operations),
// approval per role, atomic apply, stale sets refused under real concurrency, restore of an
// earlier version exactly, and another shop's token and SQL seeing none of it.
import { randomUUID } from "node:crypto";
import postgres from "postgres";
import { beforeAll, describe, expect, it } from "vitest";
import { createGolden } from "./scratch.ts";
import { waitFor } from "./waits.ts";
import { asMember, makeCustomers, makeTenant, makeUser, tokenFor, useApi, type Role, type Tenant, type User } from "./fixtures.ts";

const { owner, app, api } = useApi();
const uniq = () => randomUUID().slice(0, 8);

type Shop = { tenant: Tenant; members: Record<Role, User>; service: string };
async function makeShop(prefix: string): Promise<Shop> {
  const tenant = await makeTenant(owner, { prefix });
  const members = {} as Record<Role, User>;
  for (const role of ["owner", "admin", "manager", "staff", "accountant"] as Role[]) members[role] = await makeUser(owner, tenant, role);
  const [{ id: service }] = await owner`insert into app.services (tenant_id, name) values (${tenant.id}, 'Brakes') returning id`;
  return { tenant, members, service };
}

/** `count` operations of `shop`, codes <prefix>-0000..., prices 1000 + i. */
async function makeOperations(shop: Shop, count: number, prefix = `OP${uniq()}`): Promise<string[]> {
  const rows = await owner`
    insert into app.service_operations (tenant_id, service_id, internal_code, name, price_cents, duration_minutes, display_order)
    select ${shop.tenant.id}, ${shop.service}, ${prefix} || '-' || lpad(i::text, 4, '0'), 'Operation ' || lpad(i::text, 4, '0'), 1000 + i, 30,
           case when i % 7 = 0 then null else i % 50 end
      from generate_series(0, ${count - 1}) i
    returning id, internal_code`;
  return rows.sort((x, y) => (x.internal_code < y.internal_code ? -1 : 1)).map((r) => r.id as string);
}

const call = (shop: Shop, role: Role, method: string, path: string, body?: unknown, headers?: Record<string, string>) =>
  api.request(method, path, { token: tokenFor(shop.members[role]), tenant: shop.tenant.slug, body, headers });

async function draft(shop: Shop, role: Role, items: unknown[], title = `Change ${uniq()}`) {
  const res = await call(shop, role, "POST", "/api/v1/catalog/change-sets", { title, items });
  expect(res.status, JSON.stringify(res.body)).toBe(201);
  return res.body as { id: string; base_version: number; status: string };
}

const head = async (shop: Shop) => (await owner`select coalesce(max(version), 0)::int as v from app.catalog_heads where tenant_id = ${shop.tenant.id}`)[0].v as number;

/** The catalog as the API lists it, every page, business columns only (updated_at moves with every write). */
async function catalogOf(shop: Shop) {
  const rows: Record<string, unknown>[] = [];
  let path: string | null = "/api/v1/service-operations?limit=500";
  while (path) {
    const res = await call(shop, "owner", "GET", path);
    expect(res.status).toBe(200);
    rows.push(...res.body);
    const next = res.headers.get("x-next-cursor");
    path = next ? `/api/v1/service-operations?limit=500&cursor=${next}` : null;
  }
  const services = (await call(shop, "owner", "GET", "/api/v1/services?limit=500")).body.data;
  const strip = ({ updated_at: _u, ...rest }: Record<string, unknown>) => rest;
  return { operations: rows.map(strip), services: services.map(strip) };
}

let shop: Shop;
let other: Shop;

beforeAll(async () => {
  shop = await makeShop("cat");
  other = await makeShop("cat-other");
});

describe("drafts", () => {
  it("are drafted against the current version by the caller, changed and deleted only as drafts", async () => {
    const [op] = await makeOperations(shop, 2);
    const set = await draft(shop, "manager", [{ kind: "price", operation_id: op, price_cents: 1234 }]);
    expect(set).toMatchObject({ status: "draft", base_version: await head(shop), author_user_id: shop.members.manager.id });

    const patched = await call(shop, "manager", "PATCH", `/api/v1/catalog/change-sets/${set.id}`, {
      title: "Spring prices", items: [{ kind: "move", operation_id: op, display_order: 3 }, { kind: "deactivate", operation_id: op }],
    });
    expect(patched.status, JSON.stringify(patched.body)).toBe(200);
    expect(patched.body.title).toBe("Spring prices");
    expect(patched.body.items.map((i: { kind: string; position: number }) => [i.position, i.kind])).toEqual([[1, "move"], [2, "deactivate"]]);

    const rejected = await call(shop, "admin", "POST", `/api/v1/catalog/change-sets/${set.id}/reject`, { reason: "Not this season" });
    expect(rejected.status).toBe(200);
    expect(rejected.body).toMatchObject({ status: "rejected", rejected_by: shop.members.admin.id, rejection_reason: "Not this season" });
    expect(rejected.body.rejected_at).toEqual(expect.any(String));

    const again = await call(shop, "manager", "PATCH", `/api/v1/catalog/change-sets/${set.id}`, { title: "Sneaky" });
    expect([again.status, again.body.error.code]).toEqual([409, "CHANGE_SET_NOT_DRAFT"]);
    const gone = await call(shop, "manager", "DELETE", `/api/v1/catalog/change-sets/${set.id}`);
    expect([gone.status, gone.body.error.code]).toEqual([409, "CHANGE_SET_NOT_DRAFT"]);

    const other = await draft(shop, "manager", [{ kind: "deactivate", operation_id: op }]);
    expect((await call(shop, "manager", "DELETE", `/api/v1/catalog/change-sets/${other.id}`)).status).toBe(204);
    expect((await call(shop, "manager", "GET", `/api/v1/catalog/change-sets/${other.id}`)).status).toBe(404);
  });

  it("refuses an item of the wrong shape: 422 from the request schema, and from SQL's CHECK as app_user", async () => {
    const [op] = await makeOperations(shop, 1);
    const bad = await call(shop, "manager", "POST", "/api/v1/catalog/change-sets", { title: "Bad", items: [{ kind: "price", operation_id: op }] });
    expect([bad.status, bad.body.error.code]).toEqual([422, "VALIDATION_FAILED"]);
    const set = await draft(shop, "manager", []);
    await expect(asMember(app, shop.members.manager, shop.tenant, { permission: "catalog:write", writes: true }, (tx) => tx`
      insert into app.catalog_change_set_items (change_set_id, position, kind, operation_id, price_cents, name)
      values (${set.id}, 1, 'price', ${op}, 100, 'a price item carries no name')`)).rejects.toMatchObject({ code: "23514", constraint_name: "catalog_change_set_items_shape_check" });
    await expect(asMember(app, shop.members.manager, shop.tenant, { permission: "catalog:write", writes: true }, (tx) => tx`
      insert into app.catalog_change_set_items (change_set_id, position, kind, operation_id, price_cents)
      values (${set.id}, 1, 'price', ${op}, -1)`)).rejects.toMatchObject({ code: "23514", constraint_name: "catalog_change_set_items_values_check" });
  });

  it("name only this shop's operations and services: 422 REFERENCE_NOT_FOUND for another shop's", async () => {
    const [theirs] = await makeOperations(other, 1);
    const res = await call(shop, "manager", "POST", "/api/v1/catalog/change-sets", { title: "Theft", items: [{ kind: "price", operation_id: theirs, price_cents: 1 }] });
    expect([res.status, res.body.error.code]).toEqual([422, "REFERENCE_NOT_FOUND"]);
  });
});

describe("approval, per role", () => {
  it("needs catalog:approve: a manager may draft and not approve, reject or apply", async () => {
    const [op] = await makeOperations(shop, 1);
    const set = await draft(shop, "admin", [{ kind: "price", operation_id: op, price_cents: 1 }]);
    for (const action of ["approve", "apply"]) {
      const res = await call(shop, "manager", "POST", `/api/v1/catalog/change-sets/${set.id}/${action}`);
      expect([res.status, res.body.error?.code, res.body.error?.details]).toEqual([403, "FORBIDDEN", { permission: "catalog:approve" }]);
    }
    const reject = await call(shop, "manager", "POST", `/api/v1/catalog/change-sets/${set.id}/reject`, { reason: "no" });
    expect(reject.status).toBe(403);
    // Nor through SQL: a status change needs catalog:approve, whatever the statement.
    await expect(asMember(app, shop.members.manager, shop.tenant, { permission: "catalog:write", writes: true }, (tx) => tx`
      update app.catalog_change_sets set status = 'approved' where id = ${set.id}`)).rejects.toMatchObject({ code: "SS403" });
    const [row] = await owner`select status from app.catalog_change_sets where id = ${set.id}`;
    expect(row.status).toBe("draft");
  });

  it("the author cannot approve their own set unless an owner; another admin can", async () => {
    const [op] = await makeOperations(shop, 1);
    const own = await draft(shop, "admin", [{ kind: "price", operation_id: op, price_cents: 2 }]);
    const self = await call(shop, "admin", "POST", `/api/v1/catalog/change-sets/${own.id}/approve`);
    expect([self.status, self.body.error.code]).toEqual([403, "SELF_APPROVAL_FORBIDDEN"]);
    // The same rule in SQL, whatever path: the guard refuses it as app_user.
    await expect(asMember(app, shop.members.admin, shop.tenant, { permission: "catalog:approve", writes: true }, (tx) => tx`
      update app.catalog_change_sets set status = 'approved' where id = ${own.id}`)).rejects.toMatchObject({ code: "SS403", constraint_name: "change_set_self_approval" });
    const byOwner = await call(shop, "owner", "POST", `/api/v1/catalog/change-sets/${own.id}/approve`);
    expect(byOwner.status, JSON.stringify(byOwner.body)).toBe(200);
    expect(byOwner.body).toMatchObject({ status: "approved", approved_by: shop.members.owner.id });

    const owners = await draft(shop, "owner", [{ kind: "price", operation_id: op, price_cents: 3 }]);
    const ownerSelf = await call(shop, "owner", "POST", `/api/v1/catalog/change-sets/${owners.id}/approve`);
    expect([ownerSelf.status, ownerSelf.body.approved_by]).toEqual([200, shop.members.owner.id]);

    const managers = await draft(shop, "manager", [{ kind: "price", operation_id: op, price_cents: 4 }]);
    const byAdmin = await call(shop, "admin", "POST", `/api/v1/catalog/change-sets/${managers.id}/approve`);
    expect([byAdmin.status, byAdmin.body.approved_by]).toEqual([200, shop.members.admin.id]);
    const twice = await call(shop, "owner", "POST", `/api/v1/catalog/change-sets/${managers.id}/approve`);
    expect([twice.status, twice.body.error.code]).toEqual([409, "INVALID_TRANSITION"]);
    // Clean up: these approved sets share a base version other tests move on from.
    for (const id of [own.id, owners.id, managers.id]) await call(shop, "owner", "POST", `/api/v1/catalog/change-sets/${id}/reject`, { reason: "test done" });
  });

  it("an empty set cannot be approved: 422 CHANGE_SET_EMPTY", async () => {
    const empty = await draft(shop, "manager", []);
    const res = await call(shop, "admin", "POST", `/api/v1/catalog/change-sets/${empty.id}/approve`);
    expect([res.status, res.body.error.code]).toEqual([422, "CHANGE_SET_EMPTY"]);
  });
});

/** Drafts (as the manager), approves (as the admin) and returns a set of `items`. */
async function approved(s: Shop, items: unknown[]) {
  const set = await draft(s, "manager", items);
  const res = await call(s, "admin", "POST", `/api/v1/catalog/change-sets/${set.id}/approve`);
  expect(res.status, JSON.stringify(res.body)).toBe(200);
  return set;
}

describe("apply", () => {
  it("makes version N+1 with every item, recorded with who and the diff; the catalog's ETag changes", async () => {
    const [a, b, c] = await makeOperations(shop, 3);
    const before = await call(shop, "owner", "GET", "/api/v1/service-operations?limit=500");
    const n = await head(shop);
    expect(before.headers.get("catalog-version")).toBe(String(n));
    const set = await approved(shop, [
      { kind: "price", operation_id: a, price_cents: 7777 },
      { kind: "edit", operation_id: b, name: "Renamed", duration_minutes: 45 },
      { kind: "move", operation_id: b, display_order: -5 },
      { kind: "deactivate", operation_id: c },
      { kind: "new_operation", service_id: shop.service, internal_code: `NEW-${uniq()}`, name: "Brand new", price_cents: 500, duration_minutes: 20 },
    ]);
    const res = await call(shop, "admin", "POST", `/api/v1/catalog/change-sets/${set.id}/apply`);
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    expect(res.body).toMatchObject({ status: "applied", applied_version: n + 1 });
    expect(await head(shop)).toBe(n + 1);
    const ops = await owner`select id, price_cents, name, duration_minutes, display_order, active from app.service_operations where id in ${owner([a, b, c])}`;
    const byId = Object.fromEntries(ops.map((o) => [o.id, o]));
    expect(byId[a].price_cents).toBe(7777);
    expect(byId[b]).toMatchObject({ name: "Renamed", duration_minutes: 45, display_order: -5 });
    expect(byId[c].active).toBe(false);

    const after = await call(shop, "owner", "GET", "/api/v1/service-operations?limit=500", undefined, { "if-none-match": before.headers.get("etag")! });
    expect(after.status).toBe(200);
    expect(after.headers.get("catalog-version")).toBe(String(n + 1));
    expect(after.headers.get("etag")).not.toBe(before.headers.get("etag"));

    const versions = await call(shop, "owner", "GET", "/api/v1/catalog/versions?limit=1");
    expect(versions.status).toBe(200);
    const [v] = versions.body.data;
    expect(v).toMatchObject({ version: n + 1, kind: "change_set", change_set_id: set.id, actor_user_id: shop.members.admin.id, actor_role: "admin" });
    const priceChange = v.changes.find((ch: { entity_id: string }) => ch.entity_id === a);
    expect(priceChange).toEqual({ entity: "service_operation", entity_id: a, action: "update", old: { price_cents: expect.any(Number) }, new: { price_cents: 7777 } });
    expect(v.changes.filter((ch: { action: string }) => ch.action === "insert")).toHaveLength(1);
    const [audit] = await owner`select actor_user_id from app.audit_log where tenant_id = ${shop.tenant.id} and action = 'catalog.change_set_applied' and entity_id = ${set.id}`;
    expect(audit.actor_user_id).toBe(shop.members.admin.id);
  });

  it("is atomic: a failing last item leaves the catalog, its version and the set as they were", async () => {
    const [a, b] = await makeOperations(shop, 2, `ATOM${uniq()}`);
    const [{ internal_code: taken }] = await owner`select internal_code from app.service_operations where id = ${b}`;
    const set = await approved(shop, [
      { kind: "price", operation_id: a, price_cents: 1 },
      { kind: "deactivate", operation_id: b },
      { kind: "new_operation", service_id: shop.service, internal_code: taken, name: "Clash", price_cents: 1, duration_minutes: 1 },
    ]);
    const snapshot = () => owner`
      select (select json_agg(o order by o.id) from app.service_operations o where o.tenant_id = ${shop.tenant.id}) as ops,
             (select coalesce(max(version), 0) from app.catalog_heads where tenant_id = ${shop.tenant.id}) as head,
             (select count(*) from app.catalog_versions where tenant_id = ${shop.tenant.id})::int as versions,
             (select status from app.catalog_change_sets where id = ${set.id}) as status`;
    const [before] = await snapshot();
    const res = await call(shop, "admin", "POST", `/api/v1/catalog/change-sets/${set.id}/apply`);
    expect([res.status, res.body.error.code]).toEqual([409, "INTERNAL_CODE_TAKEN"]);
    const [after] = await snapshot();
    expect(after).toEqual(before);
    expect(after.status).toBe("approved");
  });

  it("refuses a set drafted against a version that is no longer current: 409 CHANGE_SET_STALE", async () => {
    const [a] = await makeOperations(shop, 1);
    const set = await approved(shop, [{ kind: "price", operation_id: a, price_cents: 10 }]);
    // A plain write through the catalog routes is a version too.
    expect((await call(shop, "manager", "PATCH", `/api/v1/service-operations/${a}`, { price_cents: 11 })).status).toBe(200);
    const res = await call(shop, "admin", "POST", `/api/v1/catalog/change-sets/${set.id}/apply`);
    expect([res.status, res.body.error.code]).toEqual([409, "CHANGE_SET_STALE"]);
    expect(res.body.error.details).toEqual({ base_version: set.base_version, current_version: await head(shop) });
    // A draft drafted before that write is stale too: its dry-run says so, and it cannot be approved.
    const late = await draft(shop, "manager", [{ kind: "price", operation_id: a, price_cents: 12 }]);
    expect((await call(shop, "manager", "PATCH", `/api/v1/service-operations/${a}`, { price_cents: 13 })).status).toBe(200);
    expect((await call(shop, "manager", "POST", `/api/v1/catalog/change-sets/${late.id}/dry-run`)).body.stale).toBe(true);
    const approve = await call(shop, "admin", "POST", `/api/v1/catalog/change-sets/${late.id}/approve`);
    expect([approve.status, approve.body.error.code]).toEqual([409, "CHANGE_SET_STALE"]);
  });

  it("audits every step: draft, dry-run, approve, reject, apply and restore", async () => {
    const [a] = await makeOperations(shop, 1);
    const kept = await draft(shop, "manager", [{ kind: "price", operation_id: a, price_cents: 21 }]);
    const dropped = await draft(shop, "manager", [{ kind: "price", operation_id: a, price_cents: 22 }]);
    expect((await call(shop, "manager", "POST", `/api/v1/catalog/change-sets/${kept.id}/dry-run`)).status).toBe(200);
    expect((await call(shop, "admin", "POST", `/api/v1/catalog/change-sets/${dropped.id}/reject`, { reason: "one is enough" })).status).toBe(200);
    expect((await call(shop, "admin", "POST", `/api/v1/catalog/change-sets/${kept.id}/approve`)).status).toBe(200);
    expect((await call(shop, "admin", "POST", `/api/v1/catalog/change-sets/${kept.id}/apply`)).status).toBe(200);
    const applied = await head(shop);
    expect((await call(shop, "owner", "POST", `/api/v1/catalog/versions/${applied - 1}/restore`)).status).toBe(200);
    const rows = await owner`
      select action, entity, entity_id, actor_user_id, change from app.audit_log
       where tenant_id = ${shop.tenant.id} and (entity_id in ${owner([kept.id, dropped.id])} or action = 'catalog.version_restored') order by id`;
    const steps = rows.map((r) => `${r.action} ${r.entity_id === kept.id ? "kept" : r.entity_id === dropped.id ? "dropped" : r.entity_id}`
      + (r.action === "update" ? ` ${r.change.changed.status?.new ?? ""}` : ""));
    expect(steps).toEqual([
      "insert kept", "insert dropped", "catalog.change_set_dry_run kept", "update dropped rejected",
      "update kept approved", "update kept applied", "catalog.change_set_applied kept", `catalog.version_restored ${applied + 1}`,
    ]);
    expect(rows.find((r) => r.action === "update" && r.change.changed.status?.new === "rejected")!.change.changed.rejection_reason.new).toBe("one is enough");
  });
});

/**
 * Holds the row lock of `tenant`'s catalog head while `start` begins two appliers, until both wait
 * for it (waiting on state, never a sleep), then lets go: they race for the head for real.
 */
async function whileHeadHeld<T>(o: postgres.Sql, tenant: Tenant, start: () => Promise<T>): Promise<T> {
  const letGo = await holdHead(o, tenant);
  const started = start();
  await lockWaiters(o, "%catalog_apply_change_set%", 2);
  await letGo();
  return started;
}

/** Takes the row lock of `tenant`'s catalog head as the owner; resolves to what lets it go (and waits for that). */
async function holdHead(o: postgres.Sql, tenant: Tenant): Promise<() => Promise<void>> {
  let release!: () => void;
  const released = new Promise<void>((resolve) => (release = resolve));
  let holding!: () => void;
  const held = new Promise<void>((resolve) => (holding = resolve));
  const holder = o.begin(async (tx) => {
    await tx`select version from app.catalog_heads where tenant_id = ${tenant.id} for update`;
    holding();
    await released;
  });
  await held;
  return async () => {
    release();
    await holder;
  };
}

/** Resolves once `n` sessions wait on a lock with a query like `pattern` (waiting on state, never a sleep). */
function lockWaiters(o: postgres.Sql, pattern: string, n: number): Promise<void> {
  return waitFor(async () => {
    const [{ waiting }] = await o`select count(*)::int as waiting from pg_stat_activity
                                   where datname = current_database() and wait_event_type = 'Lock' and query like ${pattern}`;
    return waiting >= n;
  }, { what: `${n} session(s) waiting on a lock in ${pattern}`, timeoutMs: 20_000, intervalMs: 10 });
}

/**
 * In `tenant` (as the owner): an admin, a manager, one operation (price 100) and, for each of
 * `prices`, a change set drafted by the manager against the current head that sets it, approved
 * by the admin.
 */
async function approvedSets(o: postgres.Sql, tenant: Tenant, prices: number[]) {
  const admin = await makeUser(o, tenant, "admin");
  const manager = await makeUser(o, tenant, "manager");
  const [{ id: service }] = await o`insert into app.services (tenant_id, name) values (${tenant.id}, ${`Race ${uniq()}`}) returning id`;
  const [{ id: op }] = await o`insert into app.service_operations (tenant_id, service_id, internal_code, name, price_cents, duration_minutes)
                               values (${tenant.id}, ${service}, ${`R-${uniq()}`}, 'Race', 100, 10) returning id`;
  await o`insert into app.catalog_heads (tenant_id, version) values (${tenant.id}, 0) on conflict (tenant_id) do nothing`;
  const sets: string[] = [];
  for (const price of prices) {
    const [{ id }] = await o`insert into app.catalog_change_sets (tenant_id, title, base_version, author_user_id)
                             values (${tenant.id}, 'Race', (select version from app.catalog_heads where tenant_id = ${tenant.id}), ${manager.id}) returning id`;
    await o`insert into app.catalog_change_set_items (tenant_id, change_set_id, position, kind, operation_id, price_cents) values (${tenant.id}, ${id}, 1, 'price', ${op}, ${price})`;
    await o`update app.catalog_change_sets set status = 'approved', approved_by = ${admin.id} where id = ${id}`;
    sets.push(id);
  }
  return { admin, manager, op: op as string, sets };
}

describe("two approved sets against the same version, applied at the same moment", () => {
  it("cannot both apply: one is applied, the other answers 409 CHANGE_SET_STALE", async () => {
    const [a] = await makeOperations(shop, 1);
    const first = await approved(shop, [{ kind: "price", operation_id: a, price_cents: 100 }]);
    const second = await approved(shop, [{ kind: "price", operation_id: a, price_cents: 200 }]);
    expect(first.base_version).toBe(second.base_version);
    const n = await head(shop);
    const results = await whileHeadHeld(owner, shop.tenant, () =>
      Promise.all([first, second].map((s) => call(shop, "admin", "POST", `/api/v1/catalog/change-sets/${s.id}/apply`))));
    const statuses = results.map((r) => r.status).sort();
    expect(statuses, JSON.stringify(results.map((r) => r.body))).toEqual([200, 409]);
    expect(results.find((r) => r.status === 409)!.body.error.code).toBe("CHANGE_SET_STALE");
    expect(await head(shop)).toBe(n + 1);
    const [{ applied }] = await owner`select count(*)::int as applied from app.catalog_change_sets where id in ${owner([first.id, second.id])} and status = 'applied'`;
    expect(applied).toBe(1);
  });
});

/**
 * Two approved sets against the same version, applied as app_user at the same moment in a database
 * of their own: the head's row lock is held by the owner until both appliers wait for it, then let
 * go. Answers each applier's outcome: "applied" or the SQLSTATE constraint it was refused with.
 */
async function raceTwoApplies(ownerUrl: string, appUrl: string, tenant: Tenant): Promise<string[]> {
  const o = postgres(ownerUrl, { max: 2, onnotice: () => {} });
  const a = postgres(appUrl, { max: 2, onnotice: () => {} });
  try {
    const { admin, sets } = await approvedSets(o, tenant, [1, 2]);
    const applies = await whileHeadHeld(o, tenant, () => Promise.allSettled(sets.map((id) =>
      asMember(a, admin, tenant, { permission: "catalog:approve", writes: true, forRow: true }, (tx) => tx`select app.catalog_apply_change_set(${id}::uuid)`))));
    return applies.map((r) => (r.status === "fulfilled" ? "applied" : String((r.reason as { constraint_name?: string }).constraint_name ?? r.reason)));
  } finally {
    await Promise.all([o.end({ timeout: 5 }), a.end({ timeout: 5 })]);
  }
}

describe("canary: the stale check under the head's lock", () => {
  it("one of two racing applies is refused; without the row lock both apply, and the race shows it", async () => {
    const golden = await createGolden("catstale");
    try {
      expect((await raceTwoApplies(golden.ownerUrl, golden.appUrl, golden.tenants[0])).sort()).toEqual(["applied", "change_set_stale"]);
      // Break the guard: judge the head without locking it.
      const o = postgres(golden.ownerUrl, { max: 1, onnotice: () => {} });
      try {
        const [{ def }] = await o`select pg_get_functiondef('app.catalog_begin_version(text, uuid, integer)'::regprocedure) as def`;
        expect(def).toContain("for update");
        await o.unsafe((def as string).replace(/ for update;/, ";"));
      } finally {
        await o.end();
      }
      expect(await raceTwoApplies(golden.ownerUrl, golden.appUrl, golden.tenants[1])).toEqual(["applied", "applied"]);
    } finally {
      await golden.drop();
    }
  });
});

/**
 * An apply and a plain write of the operation it changes, as app_user in a database of their own:
 * with the head's row lock held by the owner, the apply queues for it first, then the write; then
 * the owner lets go. The apply takes the head, then needs the operation's row. Answers each one's
 * outcome ("committed" or its SQLSTATE) and the operation's price after both.
 */
async function applyBesideWrite(ownerUrl: string, appUrl: string, tenant: Tenant): Promise<{ apply: string; write: string; price: number }> {
  const o = postgres(ownerUrl, { max: 2, onnotice: () => {} });
  const a = postgres(appUrl, { max: 2, onnotice: () => {} });
  try {
    const { admin, manager, op, sets: [set] } = await approvedSets(o, tenant, [111]);
    const outcome = (p: Promise<unknown>) => p.then(() => "committed", (e: { code?: string }) => String(e.code ?? e));
    const letGo = await holdHead(o, tenant);
    const apply = outcome(asMember(a, admin, tenant, { permission: "catalog:approve", writes: true, forRow: true }, (tx) => tx`select app.catalog_apply_change_set(${set}::uuid)`));
    await lockWaiters(o, "%catalog_apply_change_set%", 1);
    const write = outcome(asMember(a, manager, tenant, { permission: "catalog:write", writes: true, forRow: true }, (tx) => tx`update app.service_operations set price_cents = 222 where id = ${op}`));
    await lockWaiters(o, "%update app.service_operations%", 1);
    await letGo();
    const outcomes = { apply: await apply, write: await write };
    const [{ price }] = await o`select price_cents as price from app.service_operations where id = ${op}`;
    return { ...outcomes, price };
  } finally {
    await Promise.all([o.end({ timeout: 5 }), a.end({ timeout: 5 })]);
  }
}

describe("a plain write and an apply at the same moment", () => {
  it("never deadlock: a write takes the head before any row, as an apply does; without that PostgreSQL aborts one", async () => {
    const golden = await createGolden("catorder");
    try {
      // The apply had the head first: it commits, then the write does, over it.
      expect(await applyBesideWrite(golden.ownerUrl, golden.appUrl, golden.tenants[0])).toEqual({ apply: "committed", write: "committed", price: 222 });
      // Break the order: the write takes its row first and the head only at its statement's end.
      const o = postgres(golden.ownerUrl, { max: 1, onnotice: () => {} });
      try {
        await o`drop trigger catalog_versioned_lock_head on app.service_operations`;
      } finally {
        await o.end();
      }
      const broken = await applyBesideWrite(golden.ownerUrl, golden.appUrl, golden.tenants[1]);
      expect([broken.apply, broken.write]).toContain("40P01");
    } finally {
      await golden.drop();
    }
  });
});

describe("the dry-run, on a catalog of 1,200 operations", () => {
  let big: Shop;
  let ops: string[];
  let draftInvoice: string;
  beforeAll(async () => {
    big = await makeShop("cat-big");
    ops = await makeOperations(big, 1200, "BIG");
    const [customer] = await makeCustomers(owner, big.tenant, 1);
    // A draft with a catalog line of ops[0] (its price copied: 1000) and a custom line; an issued
    // invoice with two of ops[0] and one of ops[5].
    [{ id: draftInvoice }] = await owner`insert into app.invoices (tenant_id, customer_id) values (${big.tenant.id}, ${customer}) returning id`;
    await owner`insert into app.invoice_lines (tenant_id, invoice_id, service_operation_id, description, quantity, unit_price_cents)
                values (${big.tenant.id}, ${draftInvoice}, ${ops[0]}, 'Operation 0000', 1, 1000), (${big.tenant.id}, ${draftInvoice}, null, 'Labour', 1, 700)`;
    const [{ id: issued }] = await owner`insert into app.invoices (tenant_id, customer_id) values (${big.tenant.id}, ${customer}) returning id`;
    await owner`insert into app.invoice_lines (tenant_id, invoice_id, service_operation_id, description, quantity, unit_price_cents)
                values (${big.tenant.id}, ${issued}, ${ops[0]}, 'Operation 0000', 2, 1000), (${big.tenant.id}, ${issued}, ${ops[5]}, 'Operation 0005', 1, 1005)`;
    await owner.begin(async (tx) => {
      await tx`select app.open_operator_context(${big.tenant.id}::uuid)`;
      await tx`select app.issue_invoice(${issued}::uuid)`;
    });
  });

  /** Per table of the shop: its row count and every row's xmin (the transaction that last wrote it). */
  const tables = ["services", "service_operations", "catalog_change_sets", "catalog_change_set_items", "catalog_versions",
    "catalog_version_changes", "catalog_heads", "invoices", "invoice_lines", "invoice_counters", "idempotency_keys"];
  async function state(s: Shop) {
    const out: Record<string, unknown> = {};
    for (const t of tables) {
      const [r] = await owner`
        select count(*)::int as rows, coalesce(string_agg(xmin::text, ',' order by ctid), '') as xmins
          from ${owner(`app.${t}`)} where tenant_id = ${s.tenant.id}`;
      out[t] = r;
    }
    const operations = await call(s, "owner", "GET", "/api/v1/service-operations?limit=500");
    const services = await call(s, "owner", "GET", "/api/v1/services");
    out.etags = [operations.headers.get("etag"), services.headers.get("etag")];
    return out;
  }

  it("changes nothing: row counts, xmin values and the catalog's ETags are identical before and after; one audit entry records it", async () => {
    const newCode = `BIG-NEW-${uniq()}`;
    const set = await draft(big, "manager", [
      { kind: "price", operation_id: ops[0], price_cents: 1500 },
      { kind: "price", operation_id: ops[1], price_cents: 801 },
      { kind: "move", operation_id: ops[2], display_order: -1 },
      { kind: "deactivate", operation_id: ops[3] },
      { kind: "edit", operation_id: ops[4], name: "AAA first by name" },
      { kind: "new_operation", service_id: big.service, internal_code: newCode, name: "New one", price_cents: 4200, duration_minutes: 15, display_order: -2 },
    ]);
    const before = await state(big);
    expect((before.service_operations as { rows: number }).rows).toBeGreaterThanOrEqual(1000);
    const [{ audits: auditsBefore }] = await owner`select count(*)::int as audits from app.audit_log where tenant_id = ${big.tenant.id}`;

    const res = await call(big, "manager", "POST", `/api/v1/catalog/change-sets/${set.id}/dry-run`);
    expect(res.status, JSON.stringify(res.body).slice(0, 500)).toBe(200);

    const afterDryRun = await state(big);
    expect(afterDryRun).toEqual(before);
    const audits = await owner`select action, entity_id, actor_user_id from app.audit_log where tenant_id = ${big.tenant.id} order by id offset ${auditsBefore}`;
    expect(audits).toEqual([{ action: "catalog.change_set_dry_run", entity_id: set.id, actor_user_id: big.members.manager.id }]);

    const dry = res.body;
    expect(dry).toMatchObject({ change_set_id: set.id, status: "draft", stale: false, conflicts: [] });
    const delta = Object.fromEntries(dry.operations.map((o: { internal_code: string; delta_cents: number | null }) => [o.internal_code, o.delta_cents]));
    expect(delta).toEqual({ "BIG-0000": 500, "BIG-0001": -200, "BIG-0002": 0, "BIG-0003": 0, "BIG-0004": 0, [newCode]: null });
    expect(dry.draft_invoices).toEqual([{
      invoice_id: draftInvoice, total_delta_cents: 500,
      lines: [expect.objectContaining({ operation_id: ops[0], unit_price_cents: 1000, new_unit_price_cents: 1500, line_total_cents: 1000, new_line_total_cents: 1500 })],
    }]);
    expect(dry.revenue_90_days).toMatchObject({ old_cents: 3005, new_cents: 4005, delta_cents: 1000 });
    expect(dry.ordering).toHaveLength(1201);

    // The proof can fail: one write to the set, and its xmin differs.
    expect((await call(big, "manager", "PATCH", `/api/v1/catalog/change-sets/${set.id}`, { title: "touched" })).status).toBe(200);
    expect((await state(big)).catalog_change_sets).not.toEqual(afterDryRun.catalog_change_sets);

    // The ordering is what the catalog answers once the set is applied.
    expect((await call(big, "admin", "POST", `/api/v1/catalog/change-sets/${set.id}/approve`)).status).toBe(200);
    expect((await call(big, "admin", "POST", `/api/v1/catalog/change-sets/${set.id}/apply`)).status).toBe(200);
    const listed = (await catalogOf(big)).operations;
    const shape = (o: Record<string, unknown>) => [o.internal_code, o.name, o.display_order, o.price_cents, o.active];
    expect(dry.ordering.map(shape)).toEqual(listed.map(shape));
    // And the draft invoice kept the price its line copied: re-pricing is the dry-run's "if".
    const [line] = await owner`select unit_price_cents from app.invoice_lines where invoice_id = ${draftInvoice} and service_operation_id = ${ops[0]}`;
    expect(line.unit_price_cents).toBe(1000);
  });

  it("runs in a read-only transaction: PostgreSQL itself refuses a write there", async () => {
    const set = await draft(big, "manager", [{ kind: "price", operation_id: ops[9], price_cents: 1 }]);
    await expect(asMember(app, big.members.manager, big.tenant, { permission: "catalog:write", forRow: true, writes: false }, async (tx) => {
      await tx`select app.catalog_dry_run(${set.id}::uuid)`;
      return tx`update app.catalog_change_sets set title = 'written' where id = ${set.id}`;
    })).rejects.toMatchObject({ code: "25006" });
  });
});

describe("restore", () => {
  it("reproduces version k's catalog exactly, as a new version; history and issued invoice lines stay", async () => {
    const hist = await makeShop("cat-hist");
    const ops = await makeOperations(hist, 5, "H");
    const [{ id: tyres }] = await owner`insert into app.services (tenant_id, name, display_order) values (${hist.tenant.id}, 'Tyres', 2) returning id`;
    const apply = async (items: unknown[]) => {
      const set = await approved(hist, items);
      const res = await call(hist, "admin", "POST", `/api/v1/catalog/change-sets/${set.id}/apply`);
      expect(res.status, JSON.stringify(res.body)).toBe(200);
    };
    await apply([{ kind: "price", operation_id: ops[0], price_cents: 2000 }, { kind: "move", operation_id: ops[1], display_order: 99 }]);
    const k = await head(hist);
    const atK = await catalogOf(hist);

    // An issued invoice copies ops[0]'s price of version k.
    const [customer] = await makeCustomers(owner, hist.tenant, 1);
    const [{ id: invoice }] = await owner`insert into app.invoices (tenant_id, customer_id) values (${hist.tenant.id}, ${customer}) returning id`;
    await owner`insert into app.invoice_lines (tenant_id, invoice_id, service_operation_id, description, quantity, unit_price_cents)
                values (${hist.tenant.id}, ${invoice}, ${ops[0]}, 'H-0000', 1, 2000)`;
    await owner.begin(async (tx) => {
      await tx`select app.open_operator_context(${hist.tenant.id}::uuid)`;
      await tx`select app.issue_invoice(${invoice}::uuid)`;
    });

    // Later versions: plain writes (a price, a service renamed, an operation deleted, a service
    // added) and a change set (a new operation, an edit, a deactivation).
    expect((await call(hist, "manager", "PATCH", `/api/v1/service-operations/${ops[0]}`, { price_cents: 2500 })).status).toBe(200);
    expect((await call(hist, "manager", "PATCH", `/api/v1/services/${tyres}`, { name: "Tyres & wheels", display_order: 1 })).status).toBe(200);
    expect((await call(hist, "manager", "DELETE", `/api/v1/service-operations/${ops[4]}`)).status).toBe(204);
    expect((await call(hist, "manager", "POST", "/api/v1/services", { name: "Glass" })).status).toBe(201);
    await apply([
      { kind: "new_operation", service_id: hist.service, internal_code: "H-NEW", name: "New", price_cents: 1, duration_minutes: 5 },
      { kind: "edit", operation_id: ops[2], internal_code: "H-RENAMED", subcategory: "Front" },
      { kind: "deactivate", operation_id: ops[3] },
    ]);
    const current = await head(hist);
    expect(current).toBeGreaterThanOrEqual(k + 5);
    expect(await catalogOf(hist)).not.toEqual(atK);
    const historyBefore = await owner`select * from app.catalog_versions where tenant_id = ${hist.tenant.id} order by version`;
    const changesBefore = await owner`select * from app.catalog_version_changes where tenant_id = ${hist.tenant.id} order by id`;

    const res = await call(hist, "owner", "POST", `/api/v1/catalog/versions/${k}/restore`);
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    expect(res.body).toMatchObject({ version: current + 1, restored_from: k, kept_operations: [], kept_services: [] });
    expect(await catalogOf(hist)).toEqual(atK);

    // History is appended to, never rewritten.
    expect(await owner`select * from app.catalog_versions where tenant_id = ${hist.tenant.id} and version <= ${current} order by version`).toEqual(historyBefore);
    expect(await owner`select * from app.catalog_version_changes where tenant_id = ${hist.tenant.id} and version <= ${current} order by id`).toEqual(changesBefore);
    const [restore] = await owner`select kind, restored_from, actor_user_id from app.catalog_versions where tenant_id = ${hist.tenant.id} and version = ${current + 1}`;
    expect(restore).toEqual({ kind: "restore", restored_from: k, actor_user_id: hist.members.owner.id });
    const [line] = await owner`select unit_price_cents from app.invoice_lines where invoice_id = ${invoice}`;
    expect(line.unit_price_cents).toBe(2000);
    const [audit] = await owner`select change from app.audit_log where tenant_id = ${hist.tenant.id} and action = 'catalog.version_restored'`;
    expect(audit.change.event).toMatchObject({ version: current + 1, restored_from: k });

    // The catalog as of a restore is itself restorable: back to where it was before it.
    const back = await call(hist, "owner", "POST", `/api/v1/catalog/versions/${current}/restore`);
    expect(back.status, JSON.stringify(back.body)).toBe(200);
    const again = await call(hist, "owner", "POST", `/api/v1/catalog/versions/${k}/restore`);
    expect(again.status).toBe(200);
    expect(await catalogOf(hist)).toEqual(atK);

    const now = await head(hist);
    const same = await call(hist, "owner", "POST", `/api/v1/catalog/versions/${now}/restore`);
    expect([same.status, same.body.error.code]).toEqual([409, "CATALOG_VERSION_CURRENT"]);
    const later = await call(hist, "owner", "POST", `/api/v1/catalog/versions/${now + 1}/restore`);
    expect([later.status, later.body.error.code]).toEqual([404, "CATALOG_VERSION_NOT_FOUND"]);
    const manager = await call(hist, "manager", "POST", `/api/v1/catalog/versions/${k}/restore`);
    expect([manager.status, manager.body.error.code]).toEqual([403, "FORBIDDEN"]);
  });

  it("keeps, deactivated, an operation created since that an invoice line references", async () => {
    const s = await makeShop("cat-keep");
    await makeOperations(s, 1, "K");
    const k = await head(s);
    const [op] = await makeOperations(s, 1, "K2");
    const [customer] = await makeCustomers(owner, s.tenant, 1);
    const [{ id: invoice }] = await owner`insert into app.invoices (tenant_id, customer_id) values (${s.tenant.id}, ${customer}) returning id`;
    await owner`insert into app.invoice_lines (tenant_id, invoice_id, service_operation_id, description, quantity, unit_price_cents) values (${s.tenant.id}, ${invoice}, ${op}, 'K2', 1, 1000)`;
    const res = await call(s, "owner", "POST", `/api/v1/catalog/versions/${k}/restore`);
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    expect(res.body.kept_operations).toEqual([op]);
    const [row] = await owner`select active from app.service_operations where id = ${op}`;
    expect(row.active).toBe(false);
  });

  it("history is append-only for every role, the owner included", async () => {
    await expect(owner`update app.catalog_versions set actor_role = 'rewritten' where tenant_id = ${shop.tenant.id}`).rejects.toMatchObject({ code: "SS409", constraint_name: "catalog_history_append_only" });
    await expect(owner`delete from app.catalog_version_changes where tenant_id = ${shop.tenant.id}`).rejects.toMatchObject({ code: "SS409", constraint_name: "catalog_history_append_only" });
    await expect(asMember(app, shop.members.owner, shop.tenant, { permission: "catalog:approve", writes: true }, (tx) => tx`
      insert into app.catalog_versions (tenant_id, version, kind) values (${shop.tenant.id}, 100000, 'write')`)).rejects.toMatchObject({ code: "42501" });
  });
});

describe("another shop", () => {
  it("gets 404 for every route naming this shop's change set, and changes nothing", async () => {
    const [op] = await makeOperations(shop, 1);
    const set = await draft(shop, "manager", [{ kind: "price", operation_id: op, price_cents: 1 }]);
    const base = `/api/v1/catalog/change-sets/${set.id}`;
    for (const [method, path, body] of [["GET", base], ["PATCH", base, { title: "theirs" }], ["DELETE", base], ["POST", `${base}/dry-run`],
      ["POST", `${base}/approve`], ["POST", `${base}/reject`, { reason: "theirs" }], ["POST", `${base}/apply`]] as [string, string, unknown?][]) {
      const res = await call(other, "owner", method, path, body);
      expect([method, path, res.status, res.body.error?.code]).toEqual([method, path, 404, "CHANGE_SET_NOT_FOUND"]);
    }
    const [row] = await owner`select title, status from app.catalog_change_sets where id = ${set.id}`;
    expect(row.status).toBe("draft");
    const lists = await call(other, "owner", "GET", "/api/v1/catalog/change-sets?limit=200");
    expect(lists.body.data.map((s: { id: string }) => s.id)).not.toContain(set.id);
    const versions = await call(other, "owner", "GET", "/api/v1/catalog/versions?limit=100");
    const touched = versions.body.data.flatMap((v: { changes: { entity_id: string }[] }) => v.changes.map((c) => c.entity_id));
    expect(touched).not.toContain(op);
  });

  it("as app_user in SQL sees none of this shop's change sets, items or versions", async () => {
    const [op] = await makeOperations(shop, 1);
    await draft(shop, "manager", [{ kind: "price", operation_id: op, price_cents: 1 }]);
    const seen = await asMember(app, other.members.owner, other.tenant, { permission: "catalog:approve", writes: false }, (tx) => tx`
      select (select count(*) from app.catalog_change_sets where tenant_id = ${shop.tenant.id})::int as sets,
             (select count(*) from app.catalog_change_set_items where tenant_id = ${shop.tenant.id})::int as items,
             (select count(*) from app.catalog_versions where tenant_id = ${shop.tenant.id})::int as versions,
             (select count(*) from app.catalog_version_changes where tenant_id = ${shop.tenant.id})::int as changes,
             (select count(*) from app.catalog_heads where tenant_id = ${shop.tenant.id})::int as heads,
             (select app.catalog_dry_run(s.id) from app.catalog_change_sets s where s.tenant_id = ${shop.tenant.id} limit 1) as dry_run`);
    expect(seen).toEqual([{ sets: 0, items: 0, versions: 0, changes: 0, heads: 0, dry_run: null }]);
    const [{ theirs }] = await owner`select count(*)::int as theirs from app.catalog_versions where tenant_id = ${shop.tenant.id}`;
    expect(theirs).toBeGreaterThan(0);
  });
});
