// Liveness and readiness. /healthz: the process answers. /readyz: the database answers as
// app_user and every migration file has been applied (otherwise 503).
import { Router } from "express";
import { AppError, databaseUnavailable } from "../errors.ts";
import { migrationNames } from "../migrate.ts";
import { probeDatabase } from "../tenantContext.ts";

export function healthRoutes(): Router {
  const router = Router();
  const expected = migrationNames();
  router.get("/healthz", (_req, res) => {
    res.json({ status: "ok" });
  });
  router.get("/readyz", async (_req, res) => {
    let applied: string[];
    try {
      applied = (await probeDatabase((sql) => sql`select name from app.applied_migrations() as name`)).map((r) => r.name);
    } catch (error) {
      throw databaseUnavailable(error);
    }
    const pending = expected.filter((name) => !applied.includes(name));
    if (pending.length > 0) {
      throw new AppError(503, "MIGRATIONS_NOT_AT_HEAD", "The database schema is behind this release.", {
        details: { pending },
        help: "runbooks/go-live.md",
      });
    }
    res.json({ status: "ready", migrations: applied.length });
  });
  return router;
}
