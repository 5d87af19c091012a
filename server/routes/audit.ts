// GET /api/v1/audit: the tenant's audit trail, newest first, keyset-paginated by id. RLS
// scopes it to the caller's tenant; app_user can only read it. Needs audit:read (the export audit:export).
import type { Readable } from "node:stream";
import { Router, type Response } from "express";
import type { Sql } from "../db.ts";
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

type Filter = "from" | "to" | "action" | "entity" | "entity_id" | "actor";
type Fragment = ReturnType<Sql["unsafe"]>;

/**
 * The filters the list and the export share, as one SQL fragment. `value` says where a
 * filter's value comes from: a bind parameter (the list), or a transaction-local setting (the
 * export: COPY takes no parameters, so no value ever enters the SQL text).
 */
function filtersOf(sql: Sql, q: AuditQuery, value: (f: Filter) => Fragment) {
  return sql`
    ${q.from ? sql`and occurred_at >= ${value("from")}::timestamptz` : sql``}
    ${q.to ? sql`and occurred_at < ${value("to")}::timestamptz` : sql``}
    ${q.action ? sql`and action = ${value("action")}` : sql``}
    ${q.entity ? sql`and entity = ${value("entity")}` : sql``}
    ${q.entity_id ? sql`and entity_id = ${value("entity_id")}` : sql``}
    ${q.actor ? sql`and actor_user_id = ${value("actor")}::uuid` : sql``}`;
}

/** How long one export may stream (a client that stops reading holds a connection until then). */
const exportTimeoutMs = 30 * 60 * 1000;

export function auditRoutes(): Router {
  const router = Router();
  router.get("/", requires("audit:read"), async (req, res) => {
    const q = validate(req.query);
    if (q.from && q.to && q.from > q.to) throw new BadRequestError("INVALID_PARAMETER", "from must not be after to.");
    const rows = await withTenant((sql) => sql`
      select id::text as id, occurred_at, actor_user_id, actor_role, request_id, action, entity, entity_id, change, seq
        from app.audit_log
       where true ${filtersOf(sql, q, (f) => sql`${q[f]!}`)}
         ${q.cursor ? sql`and id < ${q.cursor}::bigint` : sql``}
       order by id desc
       limit ${q.limit + 1}
    `);
    const page = rows.slice(0, q.limit);
    res.json({ data: page, next_cursor: rows.length > q.limit ? page[page.length - 1].id : null });
  });

  // The same filters as CSV, written by PostgreSQL itself (COPY of the query, RLS applies)
  // and relayed with backpressure: memory stays flat whatever the row count, and the quoting is
  // PostgreSQL's. The export is itself audited, also when the client leaves half way.
  router.get("/export.csv", requires("audit:export"), async (req, res) => {
    const q = validate(req.query);
    if (q.from && q.to && q.from > q.to) throw new BadRequestError("INVALID_PARAMETER", "from must not be after to.");
    await withTenant(async (sql) => {
      const { limit: _limit, cursor: _cursor, ...filters } = q;
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
      const complete = await relay(rows, res, () => copy.cancel());
      // The client left: the cancelled COPY is undone, the export's audit row commits.
      if (!complete) await sql`rollback to savepoint audit_export`;
    }, { budget: "export" });
    res.end();
  });
  return router;
}

/**
 * Relays a COPY's output to the response, pausing the COPY while the client is slower. Resolves
 * false when the client left first: the COPY is then cancelled and its remaining output read
 * and dropped, because a paused COPY would hold the connection forever.
 */
function relay(rows: Readable, res: Response, cancel: () => void): Promise<boolean> {
  return new Promise((resolve, reject) => {
    let left = false;
    const forward = (chunk: Buffer) => {
      if (!res.write(chunk)) rows.pause();
    };
    const resume = () => rows.resume();
    const leave = () => {
      if (res.writableFinished) return;
      left = true;
      cancel();
      rows.off("data", forward).resume();
    };
    const done = () => {
      res.off("drain", resume).off("close", leave);
      // postgres.js 3.4.9 can leave its socket paused when the COPY's last data filled the
      // stream (porsager/postgres#499, fix pending in #1016): the rest of the answer then sits
      // unread and the next statement (our COMMIT) never returns. The stream's read() resumes it.
      (rows as Readable & { _read: (size: number) => void })._read(0);
    };
    rows.on("data", forward);
    res.on("drain", resume).on("close", leave);
    rows.once("end", () => (done(), resolve(!left)));
    rows.once("error", (error) => (done(), left ? resolve(false) : reject(error)));
  });
}
