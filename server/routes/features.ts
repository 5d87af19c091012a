// GET /api/v1/features: what the caller's shop may use (features:read): every feature of the
// catalogue, enabled or not and why (its plan, an override in force, a kill switch), read from
// the same SQL definition that decides every route's feature (policies/features.sql).
import { requires } from "../auth/authorize.ts";
import { documented, named, nullable, row, timestamp } from "../http/contract.ts";
import { withTenant } from "../db/tenantContext.ts";
import type { Routes } from "./mount.ts";

export const entitlement = named("Entitlement", row({
  name: { type: "string", description: "The feature (the catalogue: policies/features.sql)." },
  description: { type: "string" },
  enabled: { type: "boolean", description: "Whether the shop may use it now." },
  source: { enum: ["kill_switch", "override", "plan", "none"], description: "What decides: a kill switch (off for every shop), an override of this shop, its plan, or nothing (off)." },
  in_plan: { type: "boolean", description: "Whether the shop's plan grants it." },
  override: nullable({ ...row({ enabled: { type: "boolean" }, expires_at: nullable(timestamp) }), description: "The override in force (an expired one counts for nothing), or null." }),
  killed: { type: "boolean", description: "Whether the platform switched it off for every shop." },
}));

export const entitlements = named("Entitlements", row({
  plan: { type: ["string", "null"], description: "The shop's plan (null: none)." },
  features: { type: "array", items: entitlement },
}));

type EntitlementRow = { feature: string; description: string; enabled: boolean; source: string; plan: string | null; in_plan: boolean; override_enabled: boolean | null; override_expires_at: Date | null; killed: boolean };

/** An entitlement row of app.entitlements_of(), as the API answers it. */
export function entitlementOf(r: EntitlementRow) {
  return {
    name: r.feature, description: r.description, enabled: r.enabled, source: r.source, in_plan: r.in_plan,
    override: r.override_enabled === null ? null : { enabled: r.override_enabled, expires_at: r.override_expires_at },
    killed: r.killed,
  };
}

export function featureRoutes(router: Routes): void {
  router.get("/", documented({
    summary: "What the shop may use", tag: "Features",
    description: "Every feature of the catalogue for the caller's shop: enabled or not, and why. A kill switch wins over plan and override; an override wins over the plan until it expires.",
    responses: { 200: { description: "The shop's plan and entitlements", schema: entitlements } },
  }), requires("features:read", { feature: "none" }), async (req, res) => {
    const rows = await withTenant(req, (sql) => sql`select * from app.current_entitlements()`);
    res.json({ plan: (rows[0]?.plan as string | undefined) ?? null, features: rows.map((r) => entitlementOf(r as unknown as EntitlementRow)) });
  });
}
