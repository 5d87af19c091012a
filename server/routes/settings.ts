// The shop's settings: PATCH /api/v1/settings {name}. The tenant row is global, so the change
// goes through a SECURITY DEFINER function that checks settings:write and audits it.
import { requires } from "../auth/authorize.ts";
import { documented, named, row, uuid } from "../http/contract.ts";
import { withTenant } from "../db/tenantContext.ts";
import { bodyValidator } from "../http/validate.ts";
import type { Routes } from "./mount.ts";

const settingsSchema = named("SettingsChange", {
  type: "object", additionalProperties: false, required: ["name"],
  properties: { name: { type: "string", minLength: 1, maxLength: 200, pattern: "\\S" } },
});
const validateSettings = bodyValidator<{ name: string }>(settingsSchema);
const tenant = named("Shop", row({ id: uuid, slug: { type: "string" }, name: { type: "string" }, status: { enum: ["active", "suspended"] } }));

export function settingsRoutes(router: Routes): void {
  router.patch("/", documented({
    summary: "Change the shop's settings", tag: "Settings", body: settingsSchema,
    description: "Renames the shop; the change is audited (settings.changed). Answers the shop.",
    responses: { 200: { description: "The shop", schema: tenant } },
  }), requires("settings:write"), async (req, res) => {
    const { name } = validateSettings(req.body);
    const [tenant] = await withTenant(req, (sql) => sql`select id, slug, name, status from app.update_tenant_settings(${name})`);
    res.json(tenant);
  });
}
