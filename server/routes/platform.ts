// Platform administration under /api/v1/platform: the plan grid, shops' plans, overrides and kill
// switches, their versions and rollback. Every handler runs in a platform context that the
// database opens only for a platform admin (app.users.is_platform_admin), from the API's proof
// (withPlatform; 403 PLATFORM_ADMIN_REQUIRED from SQL otherwise), and every change is a numbered
// version with its actor and reason (policies/platform.sql); a change that alters nothing makes
// none (version null). The CLI does the same as the owner: `npm run cli -- features ...`.
import { BadRequestError } from "../core/errors.ts";
import { documented, named, nullable, row, timestamp, uuid, type JsonSchema } from "../http/contract.ts";
import { withPlatform } from "../db/tenantContext.ts";
import { decodeCursor, page, pageQuerySchema, type Keyset } from "../db/keyset.ts";
import { bodyValidator, queryValidator } from "../http/validate.ts";
import { entitlement, entitlementOf } from "./features.ts";
import { newInvitationToken } from "../auth/invitationTokens.ts";
import type { Routes } from "./mount.ts";

const tag = "Platform";
const auth = "admin" as const;
const namePattern = "^[a-z][a-z0-9_]{1,39}$";
const featureName = { type: "string", pattern: namePattern, description: "A feature of the catalogue." };
const planName = { type: "string", pattern: namePattern, description: "A plan of the catalogue." };
// withPlatform runs on the primary, reads too (db/tenantContext.ts); the API document says why.
const primary = "Platform administration reads the primary: the admin check refuses a revoked administrator at once, and an administrator reads the grid as their last change left it, not as a replica's lag has it.";
const reason = { type: "string", minLength: 1, maxLength: 500, pattern: "\\S", description: "Why: kept with the version." };

/** A path segment naming a feature or plan: a name that cannot exist is 400, not a lookup. */
function parseName(value: unknown, what: string): string {
  if (typeof value !== "string" || !new RegExp(namePattern).test(value)) throw new BadRequestError("INVALID_PARAMETER", `The ${what} in the path is not a valid name.`);
  return value;
}

const change = named("EntitlementChange", row({
  version: { type: ["integer", "null"], description: "The version this change made; null when it changed nothing (no version is made)." },
  changed: { type: "boolean" },
}));
const answer = (version: unknown) => ({ version: version === null || version === undefined ? null : Number(version), changed: version !== null && version !== undefined });

const overview = named("PlatformFeatures", row({
  version: { type: ["integer", "null"], description: "The latest version." },
  plans: { type: "array", items: named("Plan", row({ name: { type: "string" }, description: { type: "string" }, for_new_shops: { type: "boolean" }, features: { type: "array", items: { type: "string" } } })) },
  features: { type: "array", items: named("Feature", row({ name: { type: "string" }, description: { type: "string" }, killed: { type: "boolean" }, plans: { type: "array", items: { type: "string" } } })) },
}));
const tenantEntitlements = named("TenantEntitlements", row({
  tenant: row({ id: uuid, slug: { type: "string" }, name: { type: "string" } }),
  plan: { type: ["string", "null"] },
  features: { type: "array", items: entitlement },
}));
const version = named("EntitlementVersion", row({
  version: { type: "integer" }, created_at: timestamp, actor: { type: "string", description: "The platform admin's email, or the CLI operator." },
  actor_user_id: nullable(uuid), action: { type: "string" }, reason: { type: "string" }, rolled_back_to: { type: ["integer", "null"] },
  changes: { type: "array", items: row({ entity: { enum: ["plan_feature", "tenant_plan", "feature_override", "kill_switch"] }, key: { type: "object" }, old: { type: ["object", "null"] }, new: { type: ["object", "null"] } }) },
}));

const killSchema = named("KillSwitchChange", { type: "object", additionalProperties: false, required: ["killed", "reason"], properties: { killed: { type: "boolean", description: "true: off for every shop, whatever plan or override." }, reason } });
const gridSchema = named("PlanFeaturesChange", {
  type: "object", additionalProperties: false, required: ["features", "reason"],
  properties: {
    features: { type: "object", minProperties: 1, maxProperties: 40, propertyNames: { pattern: namePattern }, additionalProperties: { type: "boolean" }, description: "feature → whether the plan grants it." },
    reason,
  },
});
const planSchema = named("TenantPlanChange", { type: "object", additionalProperties: false, required: ["plan", "reason"], properties: { plan: planName, reason } });
const overrideSchema = named("OverrideChange", {
  type: "object", additionalProperties: false, required: ["enabled", "reason"],
  properties: {
    enabled: { type: ["boolean", "null"], description: "true: on, false: off, whatever the plan says; null: remove the override." },
    expires_at: { ...nullable(timestamp), description: "When the override lapses (in the future); absent or null: until removed." },
    reason,
  },
});
const rollbackSchema = named("RollbackRequest", {
  type: "object", additionalProperties: false, required: ["to_version", "reason"],
  properties: { to_version: { type: "integer", minimum: 1, maximum: 9007199254740991, description: "The version whose state to restore." }, reason },
});
const slugPattern = "^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$";
const tenantCreateSchema = named("TenantCreate", {
  type: "object", additionalProperties: false, required: ["slug", "name", "plan", "owner_email"],
  properties: {
    slug: { type: "string", pattern: slugPattern, maxLength: 63, description: "Lower-case letters, digits and inner hyphens; the shop's name in URLs." },
    name: { type: "string", minLength: 1, maxLength: 200, pattern: "\\S" },
    plan: planName,
    owner_email: { type: "string", format: "email", maxLength: 320, description: "Who is invited as its first owner (an account or not)." },
    reason: { ...reason, description: "Why: kept with the plan's version and the shop's lifecycle event." },
  },
});
const statusChangeSchema = named("TenantStatusChange", { type: "object", additionalProperties: false, required: ["reason"], properties: { reason: { ...reason, description: "Why: kept on the shop, in the platform's lifecycle events and in the shop's audit." } } });
const invitationIssued = named("IssuedInvitation", row({
  id: uuid, email: { type: "string" }, role: { const: "owner" }, expires_at: timestamp,
  token: { type: "string", description: "The invitation's secret, shown this once (only its SHA-256 is kept): hand it to the owner, who accepts it with POST /api/v1/invitations/accept." },
}));
const createdTenant = named("CreatedTenant", row({
  tenant: row({ id: uuid, slug: { type: "string" }, name: { type: "string" }, status: { type: "string" }, plan: { type: "string" } }),
  invitation: invitationIssued,
}));
const tenantStatus = named("TenantStatus", row({
  id: uuid, slug: { type: "string" }, status: { enum: ["active", "suspended"] }, status_reason: { type: ["string", "null"] }, status_changed_at: nullable(timestamp),
}));
const validateTenantCreate = bodyValidator<{ slug: string; name: string; plan: string; owner_email: string; reason?: string }>(tenantCreateSchema);
const validateStatusChange = bodyValidator<{ reason: string }>(statusChangeSchema);

const versionsQuery = { type: "object", additionalProperties: false, properties: pageQuerySchema(50, 200) };

const validateKill = bodyValidator<{ killed: boolean; reason: string }>(killSchema);
const validateGrid = bodyValidator<{ features: Record<string, boolean>; reason: string }>(gridSchema);
const validatePlan = bodyValidator<{ plan: string; reason: string }>(planSchema);
const validateOverride = bodyValidator<{ enabled: boolean | null; expires_at?: string | null; reason: string }>(overrideSchema);
const validateRollback = bodyValidator<{ to_version: number; reason: string }>(rollbackSchema);
const validateVersions = queryValidator<{ limit: number; cursor?: string }>(versionsQuery);
const newestFirst: Keyset = { keys: [{ expr: "version", type: "bigint" }], descending: true };

const changed = (description: string, body: JsonSchema, params: Record<string, JsonSchema>) => documented({
  summary: description, tag, auth, body, params,
  description: `${description}. A new version with the caller as actor and the reason; a request that changes nothing makes no version (version null). Platform administrators only (403 PLATFORM_ADMIN_REQUIRED).`,
  responses: { 200: { description: "The version made, if any", schema: change } },
});

export function platformRoutes(router: Routes): void {
  router.get("/features", documented({
    summary: "The plans, the features and their kill switches", tag, auth, primary,
    description: "The catalogue with the plan → feature grid, each feature's kill switch, and the latest version. Platform administrators only (403 PLATFORM_ADMIN_REQUIRED).",
    responses: { 200: { description: "Plans and features", schema: overview } },
  }), async (req, res) => {
    const [r] = await withPlatform(req, false, (sql) => sql`select app.platform_overview() as o`);
    res.json(r.o);
  });

  router.patch("/features/:feature", changed("Switch a feature off (or back on) for every shop", killSchema, { feature: featureName }), async (req, res) => {
    const feature = parseName(req.params.feature, "feature");
    const body = validateKill(req.body);
    const [r] = await withPlatform(req, true, (sql) => sql`select app.platform_set_kill_switch(${feature}, ${body.killed}, ${body.reason}) as v`);
    res.json(answer(r.v));
  });

  router.patch("/plans/:plan", changed("Change which features a plan grants", gridSchema, { plan: planName }), async (req, res) => {
    const plan = parseName(req.params.plan, "plan");
    const body = validateGrid(req.body);
    const [r] = await withPlatform(req, true, (sql) => sql`select app.platform_set_plan_features(${plan}, ${sql.json(body.features)}, ${body.reason}) as v`);
    res.json(answer(r.v));
  });

  router.get("/tenants/:tenant/features", documented({
    summary: "A shop's plan and entitlements", tag, auth, primary,
    description: "Every feature for the shop (slug or id): enabled or not, and why. Platform administrators only (403 PLATFORM_ADMIN_REQUIRED).",
    responses: { 200: { description: "The shop's plan and entitlements", schema: tenantEntitlements } },
  }), async (req, res) => {
    const [r] = await withPlatform(req, false, (sql) => sql`select app.platform_tenant_entitlements(${req.params.tenant}) as e`);
    const e = r.e as { tenant: unknown; plan: string | null; features: Parameters<typeof entitlementOf>[0][] };
    res.json({ tenant: e.tenant, plan: e.plan, features: e.features.map(entitlementOf) });
  });

  router.patch("/tenants/:tenant", changed("Put a shop on a plan", planSchema, {}), async (req, res) => {
    const body = validatePlan(req.body);
    const [r] = await withPlatform(req, true, (sql) => sql`select app.platform_set_tenant_plan(${req.params.tenant}, ${body.plan}, ${body.reason}) as v`);
    res.json(answer(r.v));
  });

  router.patch("/tenants/:tenant/features/:feature", changed("Set or remove a shop's override of a feature", overrideSchema, { feature: featureName }), async (req, res) => {
    const feature = parseName(req.params.feature, "feature");
    const body = validateOverride(req.body);
    const [r] = await withPlatform(req, true, (sql) => sql`
      select app.platform_set_override(${req.params.tenant}, ${feature}, ${body.enabled}::boolean, ${body.expires_at ?? null}::timestamptz, ${body.reason}) as v`);
    res.json(answer(r.v));
  });

  router.post("/tenants", documented({
    summary: "Create a shop and invite its first owner", tag, auth, body: tenantCreateSchema,
    description: "A new shop (slug, name) on the plan, and an invitation for its first owner's email, whether or not it has an account; the token is in the answer this once. " +
      "Recorded in the platform's lifecycle events (tenant.created) and the plan's version. Slug in use: 409 SLUG_TAKEN; unknown plan: 404 PLAN_NOT_FOUND. " +
      "Platform administrators only (403 PLATFORM_ADMIN_REQUIRED). The CLI: `npm run cli -- tenant create`.",
    responses: { 201: { description: "The shop and its owner's invitation", schema: createdTenant } },
  }), async (req, res) => {
    const body = validateTenantCreate(req.body);
    const { token, hash } = newInvitationToken();
    const [t] = await withPlatform(req, true, (sql) => sql`
      select * from app.platform_create_tenant(${body.slug}, ${body.name}, ${body.plan}, ${body.owner_email}, ${hash}, null, ${body.reason ?? null})`);
    res.status(201).json({
      tenant: { id: t.tenant_id, slug: t.slug, name: t.name, status: t.status, plan: t.plan },
      invitation: { id: t.invitation_id, email: t.invitation_email, role: "owner", expires_at: t.expires_at, token },
    });
  });

  for (const [verb, status] of [["suspend", "suspended"], ["resume", "active"]] as const) {
    router.post(`/tenants/:tenant/${verb}`, documented({
      summary: verb === "suspend" ? "Suspend a shop" : "Resume a suspended shop", tag, auth, body: statusChangeSchema, params: { tenant: { type: "string", description: "The shop's slug or id." } },
      description: (verb === "suspend"
        ? "From now on its members get 403 TENANT_SUSPENDED on every shop route but GET /api/v1/export (the platform lets a suspended shop's owner take its data out). "
        : "Its members are served again. ") +
        "With a reason, recorded on the shop, in the platform's lifecycle events and in the shop's own audit. Already so: 409 TENANT_STATUS_UNCHANGED. " +
        "Platform administrators only (403 PLATFORM_ADMIN_REQUIRED).",
      responses: { 200: { description: "The shop's status", schema: tenantStatus } },
    }), async (req, res) => {
      const body = validateStatusChange(req.body);
      const [t] = await withPlatform(req, true, (sql) => sql`select * from app.platform_set_tenant_status(${req.params.tenant}, ${status}, ${body.reason})`);
      res.json({ id: t.tenant_id, slug: t.slug, status: t.status, status_reason: t.status_reason, status_changed_at: t.status_changed_at });
    });
  }

  router.get("/versions", documented({
    summary: "The entitlement versions, newest first", tag, auth, primary, query: versionsQuery,
    description: "Each version with its actor, action, reason and the rows it changed (old and new). Keyset paginated: pass next_cursor back as cursor. Platform administrators only (403 PLATFORM_ADMIN_REQUIRED).",
    responses: { 200: { description: "A page of versions", schema: named("EntitlementVersionPage", row({ data: { type: "array", items: version }, next_cursor: { type: ["string", "null"], description: "Opaque; null on the last page." } })) } },
  }), async (req, res) => {
    const q = validateVersions(req.query);
    const before = q.cursor === undefined ? null : decodeCursor(newestFirst, q.cursor)[0];
    const rows = await withPlatform(req, false, (sql) => sql`
      select v.*, v.version::text as _k0 from app.platform_versions(${before}::bigint, ${q.limit + 1}) v order by v.version desc`);
    const p = page(newestFirst, rows, q.limit);
    res.json({ ...p, data: p.data.map((v) => ({ ...v, version: Number(v.version), rolled_back_to: v.rolled_back_to === null ? null : Number(v.rolled_back_to) })) });
  });

  router.post("/rollback", documented({
    summary: "Restore the entitlements of an earlier version", tag, auth, body: rollbackSchema,
    description: "Puts the plan grid, every shop's plan, the overrides and the kill switches back as they were at to_version, as a new version (action rollback) holding the net changes; version null when the state already was that. Unknown version: 404 VERSION_NOT_FOUND. Platform administrators only (403 PLATFORM_ADMIN_REQUIRED).",
    responses: { 200: { description: "The version made, if any", schema: change } },
  }), async (req, res) => {
    const body = validateRollback(req.body);
    const [r] = await withPlatform(req, true, (sql) => sql`select app.platform_rollback(${body.to_version}::bigint, ${body.reason}) as v`);
    res.json(answer(r.v));
  });
}
