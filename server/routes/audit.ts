// GET /api/v1/audit: the tenant's audit trail, newest first, keyset-paginated by id. RLS
// scopes it to the caller's tenant; app_user can only read it. Needs audit:read (the export audit:export).
import type { Sql } from "../db/connections.ts";
import { requires } from "../auth/authorize.ts";
import { documented, named, page as pageSchema, row, timestamp } from "../http/contract.ts";
import type { Request } from "express";
import { BadRequestError, type AppError } from "../core/errors.ts";
import { relayCopy } from "../db/copyRelay.ts";
import { withTenant } from "../db/tenantContext.ts";
import { after, keyColumns, orderBy, page, pageQuerySchema, type Keyset } from "../db/keyset.ts";
import { queryValidator } from "../http/validate.ts";
import type { Routes } from "./mount.ts";

type AuditFilters = { from?: string; to?: string; action?: string; entity?: string; entity_id?: string; actor?: string };
type AuditQuery = AuditFilters & { limit: number; cursor?: string };
const filters = {
  from: { type: "string", format: "date-time" },
  to: { type: "string", format: "date-time" },
  action: { type: "string", pattern: "^[a-z][a-z0-9_.]{1,63}$" },
  entity: { type: "string", pattern: "^[a-z_][a-z0-9_]{0,62}$" },
  entity_id: { type: "string", minLength: 1, maxLength: 100 },
  actor: { type: "string", format: "uuid" },
};
const querySchema = { type: "object", additionalProperties: false, properties: { ...pageQuerySchema(100, 500), ...filters } };
const exportSchema = { type: "object", additionalProperties: false, properties: filters };
const validate = queryValidator<AuditQuery>(querySchema);
const validateExport = queryValidator<AuditFilters>(exportSchema);
const entry = named("AuditEntry", row({
  id: { type: "string", pattern: "^[0-9]+$", description: "bigint, as a string" }, occurred_at: timestamp,
  actor_user_id: { type: ["string", "null"], format: "uuid" }, actor_role: { type: ["string", "null"] }, request_id: { type: ["string", "null"] },
  action: { type: "string" }, entity: { type: "string" }, entity_id: { type: ["string", "null"] }, change: { type: "object" }, seq: { type: ["integer", "null"] },
}));

// Newest first by the bigint id (qualified, so it is the column and not the text alias of the answer).
const newestFirst: Keyset = { keys: [{ expr: "audit_log.id", type: "bigint" }], descending: true };

type Filter = "from" | "to" | "action" | "entity" | "entity_id" | "actor";
type Fragment = ReturnType<Sql["unsafe"]>;

/**
 * The filters the list and the export share, as one SQL fragment. `value` says where a
 * filter's value comes from: a bind parameter (the list), or a transaction-local setting (the
 * export: COPY takes no parameters, so no value ever enters the SQL text).
 */
function filtersOf(sql: Sql, q: AuditFilters, value: (f: Filter) => Fragment) {
  return sql`
    ${q.from ? sql`and occurred_at >= ${value("from")}::timestamptz` : sql``}
    ${q.to ? sql`and occurred_at < ${value("to")}::timestamptz` : sql``}
    ${q.action ? sql`and action = ${value("action")}` : sql``}
    ${q.entity ? sql`and entity = ${value("entity")}` : sql``}
    ${q.entity_id ? sql`and entity_id = ${value("entity_id")}` : sql``}
    ${q.actor ? sql`and actor_user_id = ${value("actor")}::uuid` : sql``}`;
}

/**
 * Only a caller who may export learns that exports are busy: with every export connection taken,
 * the context (membership, tenant status, audit:export) is opened on an ordinary connection first,
 * so another tenant's member gets its 404 and a member without the permission its 403, as when a
 * connection is free. Paid only when exports are busy.
 */
const mayExport = (req: Request) => async (error: unknown): Promise<never> => {
  if ((error as AppError).code === "EXPORTS_BUSY") await withTenant(req, (sql) => sql`select 1`);
  throw error;
};

/** How long one export may stream (a client that stops reading holds a connection until then). */
const exportTimeoutMs = 30 * 60 * 1000;

export function auditRoutes(router: Routes): void {
  router.get("/", documented({
    summary: "List the audit trail", tag: "Audit", query: querySchema,
    description: "Newest first (id descending, numerically). Keyset paginated: pass next_cursor back as cursor; null on the last page.",
    responses: { 200: { description: "A page of audit entries", schema: pageSchema(entry) } },
  }), requires("audit:read", { feature: "none" }), async (req, res) => {
    const q = validate(req.query);
    if (q.from && q.to && q.from > q.to) throw new BadRequestError("INVALID_PARAMETER", "from must not be after to.");
    const rows = await withTenant(req, (sql) => sql`
      select id::text as id, occurred_at, actor_user_id, actor_role, request_id, action, entity, entity_id, change, seq
             ${keyColumns(sql, newestFirst)}
        from app.audit_log
       where true ${filtersOf(sql, q, (f) => sql`${q[f]!}`)}
         ${after(sql, newestFirst, q.cursor)}
       order by ${orderBy(sql, newestFirst)}
       limit ${q.limit + 1}
    `);
    res.json(page(newestFirst, rows, q.limit));
  });

  // The same filters as CSV, written by PostgreSQL itself (COPY of the query, RLS applies)
  // and relayed with backpressure: memory stays flat whatever the row count, and the quoting is
  // PostgreSQL's. The export is itself audited, also when the client leaves half way: so its
  // transaction writes (a write proof, the primary), unlike every other GET.
  router.get("/export.csv", documented({
    summary: "Export the audit trail as CSV", tag: "Audit", query: exportSchema,
    description: "Written by PostgreSQL (COPY), oldest first, with a header line; streamed with backpressure.",
    responses: { 200: { description: "CSV", contentType: "text/csv", schema: { type: "string" } } },
  }), requires("audit:export", { writes: true, feature: "audit_export" }), async (req, res) => {
    const q = validateExport(req.query);
    if (q.from && q.to && q.from > q.to) throw new BadRequestError("INVALID_PARAMETER", "from must not be after to.");
    await withTenant(req, async (sql) => {
      const filters = q;
      // COPY is one statement however long it streams: it gets its own statement_timeout.
      await sql`
        select set_config('statement_timeout', ${String(exportTimeoutMs)}, true),
               set_config('app.audit_export_filters', ${JSON.stringify(filters)}, true),
               app.audit_event('audit.export', 'audit_log', null, ${sql.json(filters)})`;
      await sql`savepoint audit_export`;
      const setting = (f: Filter) => sql.unsafe(`(current_setting('app.audit_export_filters')::jsonb ->> '${f}')`);
      const copy = sql`
        copy (select id, to_char(occurred_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') as occurred_at,
                     actor_user_id, actor_role, request_id, action, entity, entity_id, change, seq
                from app.audit_log where true ${filtersOf(sql, q, setting)} order by id)
          to stdout with (format csv, header)`;
      const rows = await copy.readable();
      res.status(200).type("text/csv; charset=utf-8").attachment(`audit-${new Date().toISOString().slice(0, 10)}.csv`);
      const complete = await relayCopy(rows, res, () => copy.cancel());
      // The client left: the cancelled COPY is undone, the export's audit row commits.
      if (!complete) await sql`rollback to savepoint audit_export`;
    }, { budget: "export" }).catch(mayExport(req));
    res.end();
  });
}
