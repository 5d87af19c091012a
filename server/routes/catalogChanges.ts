// Versioned catalog changes under /api/v1/catalog: change sets drafted against a catalog version
// (catalog:write), their dry-run (read-only), approval, rejection and application as the next
// version (catalog:approve), and the versions themselves with their diffs and restore. The rules
// are SQL's (policies/catalog_versions.sql): drafts only change, the author does not approve their
// own set unless an owner, a set drafted against a version that is no longer current is stale,
// and every catalog write is recorded in a version.
import type { Request, Response } from "express";
import type postgres from "postgres";
import type { Sql } from "../db/connections.ts";
import { requires } from "../auth/authorize.ts";
import { BadRequestError, NotFoundError } from "../core/errors.ts";
import { documented, named, nullable, page as pageSchema, row, timestamp, uuid, type JsonSchema } from "../http/contract.ts";
import { withTenantOnce } from "../http/idempotency.ts";
import { withTenant } from "../db/tenantContext.ts";
import { after, keyColumns, orderBy, page, pageQuerySchema, type Keyset } from "../db/keyset.ts";
import { bodyValidator, parseId, queryValidator } from "../http/validate.ts";
import type { Routes } from "./mount.ts";

const tag = "Catalog changes";
const need = { feature: "none" };

// Item kinds and what each carries: the same rules as catalog_change_set_items_shape_check and
// _values_check (sql/0460), told before the database refuses.
const code = { type: "string", pattern: "^[A-Za-z0-9._-]{1,40}$" };
const name = { type: "string", minLength: 1, maxLength: 200, pattern: "\\S" };
const subcategory = { type: "string", minLength: 1, maxLength: 200 };
const price = { type: "integer", minimum: 0, maximum: 100000000 };
const duration = { type: "integer", minimum: 1, maximum: 100000 };
const displayOrder = { type: "integer", minimum: -1000000, maximum: 1000000 };
const kind = (k: string) => ({ const: k });
const itemInput = named("CatalogChangeItemInput", {
  oneOf: [
    { type: "object", additionalProperties: false, required: ["kind", "operation_id", "price_cents"], properties: { kind: kind("price"), operation_id: uuid, price_cents: price } },
    { type: "object", additionalProperties: false, required: ["kind", "operation_id", "display_order"], properties: { kind: kind("move"), operation_id: uuid, display_order: displayOrder } },
    { type: "object", additionalProperties: false, required: ["kind", "operation_id"], properties: { kind: kind("deactivate"), operation_id: uuid } },
    {
      type: "object", additionalProperties: false, required: ["kind", "operation_id"], minProperties: 3,
      properties: { kind: kind("edit"), operation_id: uuid, service_id: uuid, internal_code: code, name, subcategory, duration_minutes: duration },
    },
    {
      type: "object", additionalProperties: false, required: ["kind", "service_id", "internal_code", "name", "price_cents", "duration_minutes"],
      properties: { kind: kind("new_operation"), service_id: uuid, internal_code: code, name, subcategory, display_order: displayOrder, price_cents: price, duration_minutes: duration },
    },
  ],
});
type ItemInput = { kind: string } & Record<string, string | number | undefined>;
const items = { type: "array", maxItems: 1000, items: itemInput, description: "Applied in this order; a later item setting the same value wins." };
const title = { type: "string", minLength: 1, maxLength: 200, pattern: "\\S" };
const createSchema = named("CatalogChangeSetCreate", { type: "object", additionalProperties: false, required: ["title", "items"], properties: { title, items } });
const patchSchema = named("CatalogChangeSetChanges", {
  type: "object", additionalProperties: false, minProperties: 1, properties: { title, items: { ...items, description: "Replaces every item." } },
});
const rejectSchema = named("CatalogChangeSetRejection", {
  type: "object", additionalProperties: false, required: ["reason"], properties: { reason: { type: "string", minLength: 1, maxLength: 1000, pattern: "\\S" } },
});
const validateCreate = bodyValidator<{ title: string; items: ItemInput[] }>(createSchema);
const validatePatch = bodyValidator<{ title?: string; items?: ItemInput[] }>(patchSchema);
const validateReject = bodyValidator<{ reason: string }>(rejectSchema);
const listQuery = { type: "object", additionalProperties: false, properties: { ...pageQuerySchema(50, 200), status: { enum: ["draft", "approved", "applied", "rejected"] } } };
const validateList = queryValidator<{ limit: number; cursor?: string; status?: string }>(listQuery);
const versionsQuery = { type: "object", additionalProperties: false, properties: pageQuerySchema(20, 100) };
const validateVersions = queryValidator<{ limit: number; cursor?: string }>(versionsQuery);

const item = named("CatalogChangeItem", row({
  id: uuid, position: { type: "integer" }, kind: { enum: ["price", "move", "deactivate", "edit", "new_operation"] },
  operation_id: nullable(uuid), service_id: nullable(uuid), internal_code: nullable({ type: "string" }), name: nullable({ type: "string" }),
  subcategory: nullable({ type: "string" }), price_cents: nullable({ type: "integer" }), duration_minutes: nullable({ type: "integer" }),
  display_order: nullable({ type: "integer" }),
}));
const changeSet = named("CatalogChangeSet", row({
  id: uuid, title: { type: "string" }, status: { enum: ["draft", "approved", "applied", "rejected"] },
  base_version: { type: "integer", description: "The catalog version it was drafted against; it applies only while that version is current." },
  author_user_id: uuid, approved_by: nullable(uuid), approved_at: nullable(timestamp), rejected_by: nullable(uuid), rejected_at: nullable(timestamp),
  rejection_reason: nullable({ type: "string" }), applied_version: nullable({ type: "integer" }), applied_at: nullable(timestamp),
  created_at: timestamp, updated_at: timestamp, items: { type: "array", items: item },
}));
const setColumns = "s.id, s.title, s.status, s.base_version, s.author_user_id, s.approved_by, s.approved_at, s.rejected_by, s.rejected_at, s.rejection_reason, s.applied_version, s.applied_at, s.created_at, s.updated_at";
const itemColumns = "i.id, i.position, i.kind, i.operation_id, i.service_id, i.internal_code, i.name, i.subcategory, i.price_cents, i.duration_minutes, i.display_order";

const priceDelta = named("CatalogDryRunOperation", row({
  operation_id: nullable(uuid), item_id: { ...nullable(uuid), description: "For a new operation: the item that creates it." },
  internal_code: { type: "string" }, name: { type: "string" }, old_price_cents: nullable({ type: "integer" }), new_price_cents: { type: "integer" },
  delta_cents: nullable({ type: "integer" }), active: { type: "boolean" },
}));
const draftLine = row({
  line_id: uuid, operation_id: uuid, quantity: { type: "number" }, unit_price_cents: { type: "integer" }, new_unit_price_cents: { type: "integer" },
  line_total_cents: { type: "integer" }, new_line_total_cents: { type: "integer" },
});
const dryRun = named("CatalogDryRun", row({
  change_set_id: uuid, status: { type: "string" }, base_version: { type: "integer" }, current_version: { type: "integer" },
  stale: { type: "boolean", description: "The catalog moved on since the set was drafted: applying would answer 409 CHANGE_SET_STALE." },
  operations: { type: "array", items: priceDelta, description: "Every operation the set touches, with its price now, after, and the delta." },
  draft_invoices: {
    type: "array", description: "Draft invoices with lines of an operation whose price changes, as they would be if re-priced (issued invoices never are).",
    items: row({ invoice_id: uuid, lines: { type: "array", items: draftLine }, total_delta_cents: { type: "integer" } }),
  },
  revenue_90_days: row({ from: timestamp, old_cents: { type: "integer" }, new_cents: { type: "integer" }, delta_cents: { type: "integer" } }),
  ordering: {
    type: "array", description: "The operations as GET /api/v1/service-operations would list them after applying: display_order ascending with nulls last, name, id.",
    items: row({ id: uuid, new: { type: "boolean" }, internal_code: { type: "string" }, name: { type: "string" }, display_order: nullable({ type: "integer" }), price_cents: { type: "integer" }, active: { type: "boolean" } }),
  },
  conflicts: { type: "array", items: { type: "string" }, description: "Internal codes more than one operation would hold: applying would answer 409 INTERNAL_CODE_TAKEN." },
}));
const versionChange = named("CatalogVersionChange", row({
  entity: { enum: ["service", "service_operation"] }, entity_id: uuid, action: { enum: ["insert", "update", "delete"] },
  old: { type: ["object", "null"], description: "The row before (update: only the columns that changed)." },
  new: { type: ["object", "null"], description: "The row after (update: only the columns that changed)." },
}));
const version = named("CatalogVersion", row({
  version: { type: "integer" }, created_at: timestamp, actor_user_id: nullable(uuid), actor_role: nullable({ type: "string" }),
  kind: { enum: ["write", "change_set", "restore"], description: "A plain write through the catalog routes, an applied change set, or a restore." },
  change_set_id: nullable(uuid), restored_from: nullable({ type: "integer" }), changes: { type: "array", items: versionChange },
}));
const restored = named("CatalogRestore", row({
  version: { type: "integer", description: "The new version." }, restored_from: { type: "integer" }, changed: { type: "integer", description: "Rows the restore changed." },
  kept_operations: { type: "array", items: uuid, description: "Operations that did not exist then but are still referenced (invoice lines, change sets): kept, deactivated." },
  kept_services: { type: "array", items: uuid, description: "Services that did not exist then but are still referenced: kept." },
}));

const newestFirst: Keyset = { keys: [{ expr: "s.created_at", type: "timestamptz" }, { expr: "s.id", type: "uuid" }], descending: true };
const versionsNewestFirst: Keyset = { keys: [{ expr: "v.version", type: "int" }], descending: true };
const notFound = () => new NotFoundError("CHANGE_SET_NOT_FOUND", "Change set not found.");

/** The items of change set s, in order, as one JSON array. */
const itemsOf = (sql: Sql) => sql.unsafe(`
  coalesce((select jsonb_agg(jsonb_build_object(${itemColumns.split(", ").map((c) => `'${c.slice(2)}', ${c}`).join(", ")}) order by i.position)
              from app.catalog_change_set_items i where i.change_set_id = s.id), '[]'::jsonb) as items`);

/** A change set with its items, as every change set route answers it. */
const readSet = (sql: Sql, id: string) => sql`select ${sql.unsafe(setColumns)}, ${itemsOf(sql)} from app.catalog_change_sets s where s.id = ${id}::uuid`;

/** The items as rows of app.catalog_change_set_items, in the body's order. */
const insertItems = (sql: Sql, setId: string, list: ItemInput[]) => sql`
  insert into app.catalog_change_set_items (change_set_id, position, kind, operation_id, service_id, internal_code, name, subcategory, price_cents, duration_minutes, display_order)
  select ${setId}::uuid, x.position, x.kind, x.operation_id, x.service_id, x.internal_code, x.name, x.subcategory, x.price_cents, x.duration_minutes, x.display_order
    from jsonb_to_recordset(${sql.json(list.map((it, i) => ({ ...it, position: i + 1 })) as never)}::jsonb)
         as x(position int, kind text, operation_id uuid, service_id uuid, internal_code text, name text, subcategory text, price_cents int, duration_minutes int, display_order int)`;

/** A version number in the path: 0 (the catalog before its first version) or more. */
function parseVersion(value: unknown): number {
  if (typeof value !== "string" || !/^\d{1,9}$/.test(value)) throw new BadRequestError("INVALID_VERSION", "The version in the path is not a version number (0 or more).");
  return Number(value);
}

/** A row route's single answer, or 404. */
const one = <T>(rows: readonly T[]): T => {
  if (!rows[0]) throw notFound();
  return rows[0];
};

/**
 * A change set's transition (approve, reject, apply): its SQL function, then the set as a read
 * answers it; no row from the function is a set the caller cannot see (404).
 */
const transition = (req: Request, res: Response, id: string, run: (sql: Sql) => postgres.PendingQuery<postgres.Row[]>) =>
  withTenantOnce(req, res, async (sql) => ((await run(sql)).length === 0 ? [] : readSet(sql, id)), (rows) => ({ status: 200, body: one(rows) }));

export function catalogChangeRoutes(router: Routes): void {
  router.get("/change-sets", documented({
    summary: "List catalog change sets", tag, query: listQuery,
    description: "Newest first (created_at, then id, descending), with their items. Keyset paginated: pass next_cursor back as cursor; null on the last page.",
    responses: { 200: { description: "A page of change sets", schema: pageSchema(changeSet) } },
  }), requires("catalog:write", need), async (req, res) => {
    const q = validateList(req.query);
    const rows = await withTenant(req, (sql) => sql`
      select ${sql.unsafe(setColumns)} ${keyColumns(sql, newestFirst)}, ${itemsOf(sql)}
        from app.catalog_change_sets s
       where true ${q.status ? sql`and s.status = ${q.status}` : sql``} ${after(sql, newestFirst, q.cursor)}
       order by ${orderBy(sql, newestFirst)} limit ${q.limit + 1}`);
    res.json(page(newestFirst, rows, q.limit));
  });

  router.post("/change-sets", documented({
    summary: "Draft a catalog change set", tag, body: createSchema,
    description: "Drafted against the catalog's current version (base_version), by the caller (author_user_id). Items: price changes, new operations, edits, deactivations and display order moves, applied in the order given. The operations and services named must be this shop's (422 REFERENCE_NOT_FOUND).",
    responses: { 201: { description: "The change set, as a read answers it", schema: changeSet, headers: { Location: { description: "The change set's URL", schema: { type: "string" } } } } },
  }), requires("catalog:write", need), async (req, res) => {
    const input = validateCreate(req.body);
    await withTenantOnce(req, res, async (sql) => {
      const [created] = await sql`
        insert into app.catalog_change_sets (title, base_version, author_user_id)
        values (${input.title}, (select coalesce(max(h.version), 0) from app.catalog_heads h), app.current_user_id()) returning id`;
      if (input.items.length > 0) await insertItems(sql, created.id, input.items);
      return readSet(sql, created.id);
    }, (rows) => {
      const set = one(rows);
      return { status: 201, body: set, headers: { Location: `${router.base}/change-sets/${set.id}` } };
    });
  });

  router.get("/change-sets/:id", documented({
    summary: "Read a catalog change set", tag,
    description: "With its items in order. Another shop's change set answers 404 CHANGE_SET_NOT_FOUND, as one that does not exist.",
    responses: { 200: { description: "The change set", schema: changeSet } },
  }), requires("catalog:write", need), async (req, res) => {
    const id = parseId(req.params.id);
    res.json(one(await withTenant(req, (sql) => readSet(sql, id))));
  });

  router.patch("/change-sets/:id", documented({
    summary: "Change a draft change set", tag, body: patchSchema,
    description: "Its title, or its items (all replaced). Only a draft changes: 409 CHANGE_SET_NOT_DRAFT otherwise.",
    responses: { 200: { description: "The change set, as a read answers it", schema: changeSet } },
  }), requires("catalog:write", need), async (req, res) => {
    const id = parseId(req.params.id);
    const changes = validatePatch(req.body);
    const rows = await withTenant(req, async (sql) => {
      const touched = await sql`update app.catalog_change_sets set title = coalesce(${changes.title ?? null}, title) where id = ${id}::uuid returning id`;
      if (touched.length === 0) return [];
      if (changes.items) {
        await sql`delete from app.catalog_change_set_items where change_set_id = ${id}::uuid`;
        if (changes.items.length > 0) await insertItems(sql, id, changes.items);
      }
      return readSet(sql, id);
    });
    res.json(one(rows));
  });

  router.delete("/change-sets/:id", documented({
    summary: "Delete a draft change set", tag,
    description: "Only a draft is deleted (409 CHANGE_SET_NOT_DRAFT otherwise: approved, applied and rejected sets are history).",
    responses: { 204: { description: "Deleted" } },
  }), requires("catalog:write", need), async (req, res) => {
    const id = parseId(req.params.id);
    one(await withTenant(req, (sql) => sql`delete from app.catalog_change_sets where id = ${id}::uuid returning id`));
    res.status(204).end();
  });

  // Read-only: its transaction is opened read-only (PostgreSQL refuses any write in it). Its
  // audit entry is written afterwards, in a transaction of its own.
  router.post("/change-sets/:id/dry-run", documented({
    summary: "Dry-run a change set", tag,
    description: "What applying the set now would do, computed in a read-only transaction that changes nothing: per operation the price delta; the draft invoices whose lines would change if re-priced; the last 90 days' revenue at the old prices and the new; the operations in the order the catalog would list them; internal codes that would collide. Audited (catalog.change_set_dry_run).",
    responses: { 200: { description: "The impact", schema: dryRun } },
  }), requires("catalog:write", { ...need, writes: false }), async (req, res) => {
    const id = parseId(req.params.id);
    const { result } = one(await withTenant(req, (sql) => sql`select r as result from app.catalog_dry_run(${id}::uuid) r where r is not null`));
    await auditDryRun(req, id, result);
    res.json(result);
  });

  router.post("/change-sets/:id/approve", documented({
    summary: "Approve a draft change set", tag,
    description: "Records who approved it and when. The author cannot approve their own set unless an owner (403 SELF_APPROVAL_FORBIDDEN); only a draft (409 INVALID_TRANSITION) with items (422 CHANGE_SET_EMPTY), drafted against the current catalog version (409 CHANGE_SET_STALE).",
    responses: { 200: { description: "The change set, as a read answers it", schema: changeSet } },
  }), requires("catalog:approve", need), async (req, res) => {
    const id = parseId(req.params.id);
    await transition(req, res, id, (sql) => sql`select id from app.catalog_approve_change_set(${id}::uuid)`);
  });

  router.post("/change-sets/:id/reject", documented({
    summary: "Reject a change set", tag, body: rejectSchema,
    description: "A draft or approved set; records who rejected it, when and why. An applied or rejected set: 409 INVALID_TRANSITION.",
    responses: { 200: { description: "The change set, as a read answers it", schema: changeSet } },
  }), requires("catalog:approve", need), async (req, res) => {
    const id = parseId(req.params.id);
    const { reason } = validateReject(req.body);
    await transition(req, res, id, (sql) => sql`select id from app.catalog_reject_change_set(${id}::uuid, ${reason})`);
  });

  router.post("/change-sets/:id/apply", documented({
    summary: "Apply an approved change set", tag,
    description: "Writes every item, in order, as the catalog's next version, atomically: an item that fails (409 INTERNAL_CODE_TAKEN, ...) leaves the catalog as it was. A set drafted against a version that is no longer current: 409 CHANGE_SET_STALE (of two sets drafted against the same version, the second to apply is refused). Not approved: 409 INVALID_TRANSITION.",
    responses: { 200: { description: "The change set, applied, with applied_version", schema: changeSet } },
  }), requires("catalog:approve", need), async (req, res) => {
    const id = parseId(req.params.id);
    await transition(req, res, id, (sql) => sql`select app.catalog_apply_change_set(${id}::uuid) as version`);
  });

  router.get("/versions", documented({
    summary: "List catalog versions", tag, query: versionsQuery,
    description: "Newest first: who made each version, when, how (a plain catalog write, an applied change set, a restore) and what it changed (its diff). Keyset paginated: pass next_cursor back as cursor; null on the last page.",
    responses: { 200: { description: "A page of versions", schema: pageSchema(version) } },
  }), requires("catalog:read", need), async (req, res) => {
    const q = validateVersions(req.query);
    const rows = await withTenant(req, (sql) => sql`
      select v.version, v.created_at, v.actor_user_id, v.actor_role, v.kind, v.change_set_id, v.restored_from ${keyColumns(sql, versionsNewestFirst)},
             coalesce((
               select jsonb_agg(jsonb_build_object(
                        'entity', c.entity, 'entity_id', c.entity_id,
                        'action', case when c.old is null then 'insert' when c.new is null then 'delete' else 'update' end,
                        'old', case when c.new is null then c.old - 'tenant_id' when c.old is not null then (
                                 select jsonb_object_agg(o.key, o.value) from jsonb_each(c.old - 'tenant_id' - 'updated_at') o where o.value is distinct from c.new -> o.key) end,
                        'new', case when c.old is null then c.new - 'tenant_id' when c.new is not null then (
                                 select jsonb_object_agg(n.key, n.value) from jsonb_each(c.new - 'tenant_id' - 'updated_at') n where n.value is distinct from c.old -> n.key) end)
                      order by c.id)
                 from app.catalog_version_changes c where c.version = v.version), '[]'::jsonb) as changes
        from app.catalog_versions v
       where true ${after(sql, versionsNewestFirst, q.cursor)}
       order by ${orderBy(sql, versionsNewestFirst)} limit ${q.limit + 1}`);
    res.json(page(versionsNewestFirst, rows, q.limit));
  });

  router.post("/versions/:version/restore", documented({
    summary: "Restore an earlier catalog version", tag, params: { version: { type: "integer", minimum: 0, description: "A catalog version (0: before the first)." } },
    description: "Makes the catalog what it was at that version, as a new version: history is never rewritten, and issued invoice lines keep the prices they copied. Operations created since are deleted, or kept and deactivated while invoice lines or change sets reference them (kept_operations). A version after the current one: 404 CATALOG_VERSION_NOT_FOUND; the current one: 409 CATALOG_VERSION_CURRENT.",
    responses: { 200: { description: "The new version", schema: restored } },
  }), requires("catalog:approve", need), async (req, res) => {
    const n = parseVersion(req.params.version);
    await withTenantOnce(req, res, (sql) => sql`select * from app.catalog_restore(${n}::int)`, (rows) => ({ status: 200, body: rows[0] }));
  });
}

/** The dry-run's audit entry: what was asked and its headline figures. Its own, writing, transaction. */
function auditDryRun(req: Request, id: string, result: Record<string, unknown>): Promise<unknown> {
  const revenue = result.revenue_90_days as JsonSchema;
  const summary = {
    base_version: result.base_version, current_version: result.current_version, stale: result.stale,
    operations: (result.operations as unknown[]).length, draft_invoices: (result.draft_invoices as unknown[]).length, revenue_delta_cents: revenue.delta_cents,
  };
  return withTenant(req, (sql) => sql`select app.audit_event('catalog.change_set_dry_run', 'catalog_change_sets', ${id}, ${sql.json(summary as never)})`, { writes: true });
}
