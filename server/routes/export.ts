// GET /api/v1/export: the shop's whole archive (issue 34), for its owner (tenant:export), also
// while the shop is suspended. One REPEATABLE READ transaction, so every table is read at one
// moment; each table COPYed by PostgreSQL under RLS and streamed with backpressure
// (db/tenantArchive.ts: flat memory), then a manifest of row counts and checksums. The export is
// recorded (tenant.exported, with the manifest) after the rows, in the same transaction.
import type { Request } from "express";
import { requires } from "../auth/authorize.ts";
import { documented } from "../http/contract.ts";
import type { AppError } from "../core/errors.ts";
import { withTenant } from "../db/tenantContext.ts";
import { writeArchive } from "../db/tenantArchive.ts";
import type { Routes } from "./mount.ts";

/** How long one export may stream (a client that stops reading holds a connection until then). */
const exportTimeoutMs = 60 * 60 * 1000;

/** EXPORTS_BUSY only for a caller who may export at all: otherwise their 403 or 404 (as routes/audit.ts). */
const mayExport = (req: Request) => async (error: unknown): Promise<never> => {
  if ((error as AppError).code === "EXPORTS_BUSY") await withTenant(req, (sql) => sql`select 1`);
  throw error;
};

export function exportRoutes(router: Routes): void {
  router.get("/", documented({
    summary: "Export every row of the shop", tag: "Export",
    description: "One archive: a header (the shop, its plan, its members' emails and roles), then every tenant table in dependency order as PostgreSQL COPY text " +
      "(`COPY app.<table> (...) FROM stdin;`, the rows by primary key, `\\.`), then a manifest line with each table's row count and SHA-256. " +
      "Read at one moment (REPEATABLE READ) and streamed with backpressure. Allowed while the shop is suspended. Re-imported with `npm run cli -- tenant import` " +
      "(runbooks/tenant-lifecycle.md). Recorded as tenant.exported in the shop's audit.",
    responses: { 200: { description: "The archive", contentType: "text/plain", schema: { type: "string" } } },
  }), requires("tenant:export", { writes: true, feature: "none" }), async (req, res) => {
    await withTenant(req, async (sql) => {
      await sql`select set_config('statement_timeout', ${String(exportTimeoutMs)}, true)`;
      await sql`savepoint tenant_export`;
      res.status(200).type("text/plain; charset=utf-8").attachment(`tenant-export-${new Date().toISOString().slice(0, 10)}.txt`);
      const manifest = await writeArchive(sql, res);
      // The client left: the cancelled COPY is undone, the export's record commits.
      if (!manifest) await sql`rollback to savepoint tenant_export`;
      await sql`select app.record_tenant_export(${manifest ? sql.json(manifest) : null}, ${manifest !== null})`;
    }, { budget: "export", repeatableRead: true }).catch(mayExport(req));
    res.end();
  });
}
