// Liveness and readiness. /healthz: the process answers. /readyz: the database answers as
// app_user, is at this release (its migrations applied, its policies deployed: setup/release.ts),
// holds this API's context key, and app_user's own role defaults are on the allow-list (policies/role_defaults.sql; a role
// may change its own defaults, e.g. log its plans with the proofs in them). Otherwise 503.
// Read replicas (DATABASE_READ_URLS) are reported as the monitor last found them (server/db/
// replicas.ts) and never make it fail: the primary alone can serve every request.
import { Router } from "express";
import { contextKeyId } from "../db/contextProof.ts";
import { documented, named, row } from "../http/contract.ts";
import { AppError, databaseUnavailable, roleDefaultsChanged } from "../core/errors.ts";
import { checkRelease, thisRelease } from "../setup/release.ts";
import { noteSchema, schemaBehindError } from "../http/schemaGate.ts";
import { currentReplicas, probeDatabase } from "../db/tenantContext.ts";

const replicaReadiness = named("ReplicaReadiness", row({
  name: { type: "string", description: "host:port of the replica's URL" },
  state: {
    enum: ["starting", "ok", "lagging", "unreachable", "not_standby"],
    description: "ok: serves reads. lagging: more than READ_REPLICA_MAX_LAG_MS behind; unreachable: did not answer; not_standby: not in recovery (promoted?); starting: not polled yet. Each is skipped until it is ok again.",
  },
  lag_seconds: { type: ["number", "null"], description: "Behind the primary at the last poll, when known." },
}));

const readiness = named("Readiness", {
  type: "object",
  additionalProperties: false,
  required: ["status", "migrations"],
  properties: {
    status: { const: "ready" },
    migrations: { type: "integer" },
    replicas: { type: "array", items: replicaReadiness, description: "Only where the deployment reads from hot standbys (DATABASE_READ_URLS)." },
  },
});

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
    description: "200 when the database answers as app_user on a connection of its own, has every migration of this release applied and this release's policies deployed (or a newer release's, during a rolling deploy), holds this API's context key, and app_user's role defaults are on the allow-list (policies/role_defaults.sql); otherwise 503 DATABASE_UNAVAILABLE, SCHEMA_BEHIND (run `npm run cli -- deploy`), CONTEXT_KEY_MISMATCH or ROLE_DEFAULTS_CHANGED. Read replicas are listed with their state and never make it fail.",
    primary: "Readiness is the primary's, which alone can serve every request; each read replica's state is the monitor's last poll of it.",
    responses: { 200: { description: "Ready", schema: readiness } },
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
    const replicas = currentReplicas()?.report().replicas;
    res.json({
      status: "ready", migrations: thisRelease().migrations.length,
      ...(replicas ? { replicas: replicas.map((r) => ({ name: r.name, state: r.state, lag_seconds: r.lagSeconds })) } : {}),
    });
  });
  return router;
}
