// Liveness and readiness. /healthz: the process answers. /readyz: the database answers as
// app_user, is at this release (its migrations applied, its policies deployed: setup/release.ts),
// holds this API's context key, and app_user's own role defaults are on the allow-list (policies/role_defaults.sql; a role
// may change its own defaults, e.g. log its plans with the proofs in them). Otherwise 503.
import { Router } from "express";
import { contextKeyId } from "../db/contextProof.ts";
import { documented, named, row } from "../http/contract.ts";
import { AppError, databaseUnavailable, roleDefaultsChanged } from "../core/errors.ts";
import { checkRelease, thisRelease } from "../setup/release.ts";
import { noteSchema, schemaBehindError } from "../http/schemaGate.ts";
import { probeDatabase } from "../db/tenantContext.ts";

export function healthRoutes(): Router {
  const router = Router();
  router.get("/healthz", documented({
    summary: "Liveness", tag: "Operations", auth: "public",
    description: "200 while the process answers; asks nothing of the database, so it stays 200 while the database is down.",
    responses: { 200: { description: "The process answers", schema: named("Liveness", row({ status: { const: "ok" } })) } },
  }), (_req, res) => {
    res.json({ status: "ok" });
  });
  router.get("/readyz", documented({
    summary: "Readiness: the database answers, is at this release's schema and policies, holds the API's context key, and app_user's role defaults are on the allow-list", tag: "Operations", auth: "public",
    description: "200 when the database answers as app_user on a connection of its own, has every migration of this release applied and this release's policies deployed (or a newer release's, during a rolling deploy), holds this API's context key, and app_user's role defaults are on the allow-list (policies/role_defaults.sql); otherwise 503 DATABASE_UNAVAILABLE, SCHEMA_BEHIND (run `npm run cli -- deploy`), CONTEXT_KEY_MISMATCH or ROLE_DEFAULTS_CHANGED.",
    responses: { 200: { description: "Ready", schema: named("Readiness", row({ status: { const: "ready" }, migrations: { type: "integer" } })) } },
  }), async (_req, res) => {
    // Two statements issued together on the probe connection: one round trip (postgres.js pipelines
    // them). A database behind this release says so even when the second fails for it (no schema yet).
    const [release, settings] = await Promise.allSettled([
      probeDatabase(checkRelease),
      probeDatabase((sql) => sql`select app.context_key_ids() as key_ids, array(select setting || ': ' || problem from app.role_defaults_changed()) as role_defaults`),
    ]);
    if (release.status === "rejected") throw databaseUnavailable(release.reason);
    noteSchema(release.value);
    if (release.value) throw schemaBehindError(release.value);
    if (settings.status === "rejected") throw databaseUnavailable(settings.reason);
    const [{ key_ids: keyIds, role_defaults: roleDefaults }] = settings.value;
    // The database must hold this API's context key, or every tenant request would be refused.
    if (!keyIds.includes(contextKeyId())) {
      throw new AppError(503, "CONTEXT_KEY_MISMATCH", "The database does not hold this API's context key.", {
        help: "runbooks/context-key.md",
      });
    }
    if (roleDefaults.length > 0) throw roleDefaultsChanged(roleDefaults);
    res.json({ status: "ready", migrations: thisRelease().migrations.length });
  });
  return router;
}
