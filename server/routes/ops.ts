// Operator endpoints, for platform admins only (401 without a token, 403 for anyone else):
//   GET /ops/current-commit  {commit_sha, deployed_at}
//   GET /ops/env-sanity      {db, migrations, policies, env_vars}: names of variables, never values.
import { execFileSync } from "node:child_process";
import { Router, type Request } from "express";
import { authenticate } from "../auth/authenticate.ts";
import { configKeys } from "../core/config.ts";
import { documented, named, row } from "../http/contract.ts";
import { ForbiddenError, UnauthorizedError } from "../core/errors.ts";
import { migrationNames } from "../setup/migrate.ts";
import { requestState } from "../core/requestContext.ts";
import { withoutTenant, withUser } from "../db/tenantContext.ts";
import type { TokenKeys } from "../auth/tokens.ts";

export type Deployment = { commit_sha: string; deployed_at: string };

/** The running release: GIT_COMMIT/DEPLOYED_AT when the deploy sets them, else git and boot time. */
export function currentDeployment(env: NodeJS.ProcessEnv = process.env): Deployment {
  let sha = env.GIT_COMMIT;
  if (!sha) {
    try {
      sha = execFileSync("git", ["rev-parse", "HEAD"], { stdio: ["ignore", "pipe", "ignore"], timeout: 2000 }).toString().trim();
    } catch {
      sha = "unknown";
    }
  }
  return { commit_sha: sha, deployed_at: env.DEPLOYED_AT ?? new Date().toISOString() };
}

// Where replicas serve reads, the platform-admin check still reads the primary: an admin whose
// flag was just taken away is refused at once, not up to READ_REPLICA_MAX_LAG_MS later. Set here,
// before the check, since the routes' documented() marks run after it.
const fromPrimary = "Platform-admin checks read the primary: an administrator whose rights were taken away is refused at once, not after a replica's lag.";

const requirePlatformAdmin = async (req: Request): Promise<void> => {
  const state = requestState(req);
  const userId = state?.userId;
  if (!userId) throw new UnauthorizedError("AUTH_REQUIRED", "An access token is required.");
  state.primary = true;
  const [user] = await withUser(req, (sql) => sql`select is_platform_admin from app.get_user()`);
  if (!user) throw new UnauthorizedError("INVALID_TOKEN", "The access token is invalid.");
  if (!user.is_platform_admin) throw new ForbiddenError("PLATFORM_ADMIN_REQUIRED", "Only platform administrators may use the ops endpoints.");
};

export function opsRoutes(keys: TokenKeys, deployment: Deployment = currentDeployment()): Router {
  const router = Router();
  router.use(authenticate(keys));
  router.use(async (req, _res, next) => {
    await requirePlatformAdmin(req);
    next();
  });

  router.get("/current-commit", documented({
    summary: "The running release", tag: "Operations", auth: "admin", primary: fromPrimary,
    description: "GIT_COMMIT and DEPLOYED_AT as the deploy set them, else the checkout's commit and the boot time. Platform administrators only (403 PLATFORM_ADMIN_REQUIRED).",
    responses: { 200: { description: "Commit and deploy time", schema: named("Deployment", row({ commit_sha: { type: "string" }, deployed_at: { type: "string" } })) } },
  }), (_req, res) => {
    res.json(deployment);
  });

  router.get("/env-sanity", documented({
    summary: "Environment sanity: database, migrations, policies, variable names (never values)", tag: "Operations", auth: "admin",
    primary: `${fromPrimary} Its checks are the primary's: the database migrations and policies are applied to.`,
    description: "The database's reachability and version as the API's role sees it, migrations applied against expected, tenant tables whose RLS or policies are missing, and which configuration variables are set (names only). Platform administrators only (403 PLATFORM_ADMIN_REQUIRED).",
    responses: { 200: { description: "Checks", schema: named("EnvSanity", row({ db: { type: "object" }, migrations: { type: "object" }, policies: { type: "object" }, env_vars: { type: "object" } })) } },
  }), async (_req, res) => {
    const started = Date.now();
    const [info] = await withoutTenant((sql) => sql`select current_setting('server_version') as version, current_user as role`);
    const latency = Date.now() - started;
    const applied = (await withoutTenant((sql) => sql`select name from app.applied_migrations() as name`)).map((r) => r.name as string);
    const expected = migrationNames();
    // Catalog rows are readable by every role: the API role checks its own protections (RLS on
    // and forced, a policy for every command it holds a privilege for).
    const tables = await withoutTenant((sql) => sql`
      select c.oid::regclass::text as name, c.relrowsecurity as rls, c.relforcerowsecurity as forced,
             (select count(*) from unnest(array['SELECT', 'INSERT', 'UPDATE', 'DELETE']) cmd
               where has_table_privilege(c.oid, cmd)
                 and not exists (select 1 from pg_catalog.pg_policies p
                                  where p.schemaname = 'app' and p.tablename = c.relname and p.cmd in (cmd, 'ALL'))) as uncovered
        from pg_catalog.pg_class c join pg_catalog.pg_namespace n on n.oid = c.relnamespace
       where n.nspname = 'app' and c.relkind in ('r', 'p') and not c.relispartition
         and c.relname <> all (app.global_table_names())
         and exists (select 1 from pg_catalog.pg_attribute a where a.attrelid = c.oid and a.attname = 'tenant_id' and not a.attisdropped)
       order by 1`);
    const unprotected = tables.filter((t) => !t.rls || !t.forced || Number(t.uncovered) > 0).map((t) => t.name as string);
    const names = [...configKeys(), "GIT_COMMIT", "DEPLOYED_AT"];
    res.json({
      db: { reachable: true, latency_ms: latency, server_version: info.version, role: info.role },
      migrations: { applied: applied.length, expected: expected.length, pending: expected.filter((n) => !applied.includes(n)), at_head: expected.every((n) => applied.includes(n)) },
      policies: { tenant_tables: tables.length, unprotected, ok: unprotected.length === 0 },
      env_vars: { set: names.filter((n) => process.env[n] !== undefined && process.env[n] !== ""), unset: names.filter((n) => !process.env[n]) },
    });
  });
  return router;
}
