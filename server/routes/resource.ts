// CRUD routes for a plain tenant-owned resource (vehicles, services, service operations):
// list with equality filters, create, read, patch, delete. Each handler is still validate,
// one withTenant call, shape the answer; RLS does the isolation, no handler names a tenant.
import type { Request, Response } from "express";
import type { Routes } from "./mount.ts";
import type postgres from "postgres";
import type { Sql } from "../db/connections.ts";
import { requires, type FeatureDecision, type Permission } from "../auth/authorize.ts";
import { documented, named, page as pageSchema, row, type JsonSchema, type Responses } from "../http/contract.ts";
import { NotFoundError } from "../core/errors.ts";
import { withTenantOnce } from "../http/idempotency.ts";
import { withTenant } from "../db/tenantContext.ts";
import { after, keyColumns, orderBy, page, pageQuerySchema, type Keyset } from "../db/keyset.ts";
import { bodyValidator, parseId, queryValidator } from "../http/validate.ts";
import { strongEtag } from "../http/etag.ts";

export type ResourceSpec = {
  /** Schema-qualified table, e.g. "app.vehicles". */
  table: string;
  /** What reads and writes need (policies/permissions.sql). */
  permissions: { read: Permission; write: Permission };
  /** The feature its shop must be entitled to (policies/features.sql), or "none". */
  feature: FeatureDecision;
  /** Columns answered by reads, in order. */
  columns: string[];
  /** The answer's properties (one per column): reads and writes answer this one shape. */
  row: Record<string, JsonSchema>;
  /** Name in the API document, singular ("vehicle"; its schemas are Vehicle, VehicleCreate, ...), and its tag ("Vehicles"). */
  name: string;
  tag: string;
  /** The rules the database holds a write to beyond the body's schema, for the document ("" when none). */
  rules: string;
  /** What refuses a delete, for the document, when something does. */
  deleteRule?: string;
  /** The documented order of the list, in words. */
  order: string;
  /** Where reads come from when not the table itself (a security_invoker view). */
  readFrom?: string;
  /**
   * When reads come from a view: how a write answers the same shape, given the write as a
   * statement returning the table's row (`returning *`). Without it, writes return `columns`.
   */
  answer?: (sql: Sql, written: postgres.PendingQuery<postgres.Row[]>) => postgres.PendingQuery<postgres.Row[]>;
  /** Extra list filters beyond equality: their query schema and the condition they add. */
  where?: { schema: Record<string, object>; build: (sql: Sql, query: Row) => postgres.PendingQuery<postgres.Row[]> };
  /** JSON schemas of the writable properties; the only ones a body may carry. */
  fields: Record<string, object>;
  required: string[];
  /** Query filters: name → JSON schema; each is an equality on the column of that name. */
  filters: Record<string, object>;
  /** The list's documented order and the keys its cursor carries (code, never input). */
  keyset: Keyset;
  notFoundCode: string;
  notFoundMessage: string;
  /** Lists answer a root JSON array instead of {data: [...]}; the next page is then named by the X-Next-Cursor and Link headers. */
  rootArray?: boolean;
  /** Strong ETag and If-None-Match → 304 on lists and items. */
  etag?: boolean;
  /**
   * A versioned resource (the catalog): the query answering its current version, which the list
   * answers in the `header` and folds into its ETag, so the ETag changes with every version,
   * also one that leaves this list's rows as they were.
   */
  versioned?: { header: string; query: (sql: Sql) => postgres.PendingQuery<postgres.Row[]> };
};

type Row = Record<string, unknown>;

export function resourceRoutes(router: Routes, spec: ResourceSpec): void {
  const schemaName = spec.name.replace(/(?:^|\s+)(\w)/g, (_m, c: string) => c.toUpperCase());
  const createSchema = named(`${schemaName}Create`, { type: "object", additionalProperties: false, required: spec.required, properties: spec.fields });
  const patchSchema = named(`${schemaName}Changes`, { type: "object", additionalProperties: false, minProperties: 1, properties: spec.fields });
  const listSchema = { type: "object", additionalProperties: false, properties: { ...pageQuerySchema(200, 500), ...spec.filters, ...spec.where?.schema } };
  const validateCreate = bodyValidator<Row>(createSchema);
  const validatePatch = bodyValidator<Row>(patchSchema);
  const validateList = queryValidator<Row & { limit: number; cursor?: string }>(listSchema);
  const item = named(schemaName, row(spec.row));
  const etagHeaders = spec.etag ? { ETag: { description: "Strong validator of this representation; send it as If-None-Match.", schema: { type: "string" } } } : undefined;
  const notModified: Responses = spec.etag ? { 304: { description: "Not modified (If-None-Match matched)." } } : {};
  const versionHeaders = spec.versioned ? { [spec.versioned.header]: { description: "The version the list was read at; the ETag changes with it.", schema: { type: "string" } } } : undefined;
  const nextHeaders = spec.rootArray
    ? { "X-Next-Cursor": { description: "Cursor of the next page; absent on the last page.", schema: { type: "string" } }, Link: { description: 'rel="next": the next page\'s URL.', schema: { type: "string" } }, ...etagHeaders, ...versionHeaders }
    : { ...etagHeaders, ...versionHeaders };
  const doc = {
    list: documented({
      summary: `List ${spec.tag.toLowerCase()}`, tag: spec.tag, query: listSchema,
      description: `Ordered by ${spec.order}. Keyset paginated: ${spec.rootArray ? "the answer is a root JSON array; the next page's cursor is in X-Next-Cursor (and Link rel=\"next\"), absent on the last page" : "pass next_cursor back as cursor; null on the last page"}.`,
      responses: { 200: { description: "A page", schema: spec.rootArray ? named(`${schemaName}List`, { type: "array", items: item }) : pageSchema(item), headers: nextHeaders }, ...notModified },
    }),
    create: documented({
      summary: `Create a ${spec.name}`, tag: spec.tag, body: createSchema,
      description: words(`Answers the ${spec.name} as a read does, with its URL in Location.`, spec.rules, "A retry with the same Idempotency-Key replays the first answer."),
      responses: { 201: { description: `The ${spec.name}, as a read answers it`, schema: item, headers: { Location: { description: "The new row's URL", schema: { type: "string" } } } } },
    }),
    read: documented({
      summary: `Read a ${spec.name}`, tag: spec.tag,
      description: words(`Another shop's ${spec.name} answers 404 ${spec.notFoundCode}, as one that does not exist.`, spec.etag ? "Send the ETag back as If-None-Match: 304 while it is unchanged." : ""),
      responses: { 200: { description: `The ${spec.name}`, schema: item, headers: etagHeaders }, ...notModified },
    }),
    patch: documented({
      summary: `Change a ${spec.name}`, tag: spec.tag, body: patchSchema,
      description: words(`Changes the properties the body names (at least one) and answers the ${spec.name} as a read does.`, spec.rules),
      responses: { 200: { description: `The ${spec.name}, as a read answers it`, schema: item } },
    }),
    remove: documented({
      summary: `Delete a ${spec.name}`, tag: spec.tag,
      description: words(`Another shop's ${spec.name} answers 404 ${spec.notFoundCode}, as one that does not exist.`, spec.deleteRule ?? ""),
      responses: { 204: { description: "Deleted" } },
    }),
  };
  const notFound = () => new NotFoundError(spec.notFoundCode, spec.notFoundMessage);
  const need = { feature: spec.feature };
  const source = spec.readFrom ?? spec.table;
  const write = (sql: Sql, statement: (returning: postgres.PendingQuery<postgres.Row[]>) => postgres.PendingQuery<postgres.Row[]>) =>
    spec.answer ? spec.answer(sql, statement(sql`returning *`)) : statement(sql`returning ${sql(spec.columns)}`);
  const equality = Object.keys(spec.filters);
  // Every body gets its strong ETag from http/etag.ts (Express's own setting is off), and res.send
  // answers 304 when If-None-Match matches (Express's req.fresh); cacheable resources only add
  // their cache policy.
  const send = (_req: Request, res: Response, body: unknown) => {
    if (spec.etag) res.set("Cache-Control", "private, no-cache");
    res.json(body);
  };

  router.get("/", doc.list, requires(spec.permissions.read, need), async (req, res) => {
    const query = validateList(req.query);
    const filters = Object.entries(query).filter(([k]) => equality.includes(k));
    const [rows, version] = await withTenant(req, (sql) => [sql`
      select ${sql(spec.columns)} ${keyColumns(sql, spec.keyset)} from ${sql(source)}
       where true ${filters.reduce((acc, [k, v]) => sql`${acc} and ${sql(k)} = ${v as string}`, sql``)}
         ${spec.where ? spec.where.build(sql, query) : sql``}
         ${after(sql, spec.keyset, query.cursor)}
       order by ${orderBy(sql, spec.keyset)}
       limit ${query.limit + 1}
    `, ...(spec.versioned ? [spec.versioned.query(sql)] : [])]);
    const { data, next_cursor } = page(spec.keyset, rows, query.limit);
    if (spec.versioned) {
      const v = String(version[0]?.version ?? "");
      res.set(spec.versioned.header, v).set("ETag", strongEtag(`${v}\n${JSON.stringify(spec.rootArray ? data : { data, next_cursor })}`));
    }
    if (!spec.rootArray) return send(req, res, { data, next_cursor });
    if (next_cursor) {
      const next = new URLSearchParams({ ...(req.query as Record<string, string>), cursor: next_cursor });
      res.set("X-Next-Cursor", next_cursor).links({ next: `${router.base}?${next}` });
    }
    send(req, res, data);
  });

  router.post("/", doc.create, requires(spec.permissions.write, need), async (req, res) => {
    const input = validateCreate(req.body);
    await withTenantOnce(
      req,
      res,
      (sql) => write(sql, (returning) => sql`
        insert into ${sql(spec.table)} ${sql(input as Record<string, postgres.ParameterOrJSON<never>>, Object.keys(input))} ${returning}
      `),
      ([row]) => ({ status: 201, body: row, headers: { Location: `${router.base}/${row.id}` } }),
    );
  });

  router.get("/:id", doc.read, requires(spec.permissions.read, need), async (req, res) => {
    const id = parseId(req.params.id);
    const [row] = await withTenant(req, (sql) => sql`select ${sql(spec.columns)} from ${sql(source)} where id = ${id}::uuid`);
    if (!row) throw notFound();
    send(req, res, row);
  });

  router.patch("/:id", doc.patch, requires(spec.permissions.write, need), async (req, res) => {
    const id = parseId(req.params.id);
    const changes = validatePatch(req.body);
    const [row] = await withTenant(req, (sql) => write(sql, (returning) => sql`
      update ${sql(spec.table)} set ${sql(changes as Record<string, postgres.ParameterOrJSON<never>>, Object.keys(changes))} where id = ${id}::uuid ${returning}
    `));
    if (!row) throw notFound();
    res.json(row);
  });

  router.delete("/:id", doc.remove, requires(spec.permissions.write, need), async (req, res) => {
    const id = parseId(req.params.id);
    const deleted = await withTenant(req, (sql) => sql`delete from ${sql(spec.table)} where id = ${id}::uuid returning id`);
    if (deleted.length === 0) throw notFound();
    res.status(204).end();
  });

}

const words = (...sentences: string[]) => sentences.filter(Boolean).join(" ");
