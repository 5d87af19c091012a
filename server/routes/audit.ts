// GET /api/v1/audit: the tenant's audit trail, newest first, keyset-paginated by id. RLS
// scopes it to the caller's tenant; app_user can only read it. Needs audit:read (the export audit:export).
import { once } from "node:events";
import { Router } from "express";
import type { Sql } from "../db.ts";
import { csvField } from "./reports.ts";
import { requires } from "../authorize.ts";
import { BadRequestError } from "../errors.ts";
import { withTenant } from "../tenantContext.ts";
import { queryValidator } from "../validate.ts";

type AuditQuery = { limit: number; cursor?: string; from?: string; to?: string; action?: string; entity?: string; entity_id?: string; actor?: string };
const validate = queryValidator<AuditQuery>({
  type: "object",
  additionalProperties: false,
  properties: {
    limit: { type: "integer", minimum: 1, maximum: 500, default: 100 },
    cursor: { type: "string", pattern: "^[0-9]{1,19}$" },
    from: { type: "string", format: "date-time" },
    to: { type: "string", format: "date-time" },
    action: { type: "string", pattern: "^[a-z][a-z0-9_.]{1,63}$" },
    entity: { type: "string", pattern: "^[a-z_][a-z0-9_]{0,62}$" },
    entity_id: { type: "string", minLength: 1, maxLength: 100 },
    actor: { type: "string", format: "uuid" },
  },
});

/** The filters the list and the export share, as one SQL fragment. */
function filtersOf(sql: Sql, q: AuditQuery) {
  return sql`
    ${q.from ? sql`and occurred_at >= ${q.from}::timestamptz` : sql``}
    ${q.to ? sql`and occurred_at < ${q.to}::timestamptz` : sql``}
    ${q.action ? sql`and action = ${q.action}` : sql``}
    ${q.entity ? sql`and entity = ${q.entity}` : sql``}
    ${q.entity_id ? sql`and entity_id = ${q.entity_id}` : sql``}
    ${q.actor ? sql`and actor_user_id = ${q.actor}::uuid` : sql``}`;
}

/** How long one export may stream (a client that stops reading holds a connection until then). */
const exportTimeoutMs = 30 * 60 * 1000;

const exportColumns = ["id", "occurred_at", "actor_user_id", "actor_role", "request_id", "action", "entity", "entity_id", "change", "seq"];

export function auditRoutes(): Router {
  const router = Router();
  router.get("/", requires("audit:read"), async (req, res) => {
    const q = validate(req.query);
    if (q.from && q.to && q.from > q.to) throw new BadRequestError("INVALID_PARAMETER", "from must not be after to.");
    const rows = await withTenant((sql) => sql`
      select id::text as id, occurred_at, actor_user_id, actor_role, request_id, action, entity, entity_id, change, seq
        from app.audit_log
       where true ${filtersOf(sql, q)}
         ${q.cursor ? sql`and id < ${q.cursor}::bigint` : sql``}
       order by id desc
       limit ${q.limit + 1}
    `);
    const page = rows.slice(0, q.limit);
    res.json({ data: page, next_cursor: rows.length > q.limit ? page[page.length - 1].id : null });
  });

  // The same filters as CSV, streamed through a server-side cursor (2,000 rows a batch, with
  // backpressure): memory stays flat whatever the row count. The export is itself audited.
  router.get("/export.csv", requires("audit:export"), async (req, res) => {
    const q = validate(req.query);
    if (q.from && q.to && q.from > q.to) throw new BadRequestError("INVALID_PARAMETER", "from must not be after to.");
    await withTenant(async (sql) => {
      const { limit: _limit, cursor: _cursor, ...filters } = q;
      // The cursor's batches are one statement to PostgreSQL (Execute and Flush, no Sync), so
      // statement_timeout would cut a long export off mid-stream: give this transaction its own.
      await sql`select set_config('statement_timeout', ${String(exportTimeoutMs)}, true)`;
      await sql`select app.audit_event('audit.export', 'audit_log', null, ${sql.json(filters)})`;
      res.status(200).type("text/csv; charset=utf-8").attachment(`audit-${new Date().toISOString().slice(0, 10)}.csv`);
      res.write(`${exportColumns.join(",")}\r\n`);
      const rows = sql`
        select id::text, occurred_at, actor_user_id, actor_role, request_id, action, entity, entity_id, change::text, seq::text
          from app.audit_log where true ${filtersOf(sql, q)} order by id`.cursor(2000);
      for await (const batch of rows) {
        const text = batch.map((r) => exportColumns.map((c) => csvField(r[c])).join(",")).join("\r\n");
        if (!res.write(`${text}\r\n`)) await Promise.race([once(res, "drain"), once(res, "close")]);
        if (res.destroyed) break; // the client went away: stop reading, the transaction ends
      }
    });
    res.end();
  });
  return router;
}
