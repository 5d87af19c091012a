// The shop's settings: GET /api/v1/settings (settings:read) and PATCH /api/v1/settings
// (settings:write): its name, timezone, currency, tax rate, invoice number prefix, payment terms,
// appointment slot length and reminders. The shop's row is global, so both go through SECURITY
// DEFINER functions (policies/settings.sql). Each bound is checked twice: here by the request
// schema, and by the CHECKs of sql/0430 (and pg_timezone_names for the timezone), which an
// operator in psql meets too; either way a refused value is 422 INVALID_SETTING naming it. SQL
// audits each real change (old → new, with the actor) and nothing for a change to the same values.
import { requires } from "../auth/authorize.ts";
import { CURRENCIES } from "../core/currencies.ts";
import { invalidSetting, ValidationError } from "../core/errors.ts";
import { documented, named, row, uuid } from "../http/contract.ts";
import { withTenant } from "../db/tenantContext.ts";
import { bodyValidator } from "../http/validate.ts";
import type { Routes } from "./mount.ts";

const settingProperties = {
  name: { type: "string", minLength: 1, maxLength: 200, pattern: "\\S", description: "The shop's name." },
  timezone: {
    type: "string", maxLength: 64, pattern: "^[A-Za-z][A-Za-z0-9_+-]*(/[A-Za-z0-9_+-]+)*$",
    description: "An IANA timezone name PostgreSQL knows (pg_timezone_names), e.g. Europe/Berlin: the day an invoice is issued on, for its due date.",
  },
  currency: { type: "string", enum: [...CURRENCIES], description: "ISO 4217 code." },
  tax_rate_bps: { type: "integer", minimum: 0, maximum: 5000, description: "Tax rate in basis points (1/100 of a percent): 0 to 5,000 (50%)." },
  invoice_number_prefix: { type: "string", pattern: "^[A-Z0-9-]{1,10}$", description: "1 to 10 of A-Z, 0-9 and '-': printed before an invoice's number when it is issued." },
  payment_terms_days: { type: "integer", minimum: 0, maximum: 120, description: "Days after the issue day an issued invoice is due." },
  appointment_slot_minutes: { type: "integer", minimum: 5, maximum: 240, description: "An appointment lasts a whole number of these slots (422 APPOINTMENT_OFF_SLOT otherwise)." },
  reminders_enabled: { type: "boolean", description: "Whether the shop sends appointment reminders." },
} as const;
type Setting = keyof typeof settingProperties;
type SettingsChange = { [K in Setting]?: string | number | boolean };

const changeSchema = named("SettingsChange", {
  type: "object", additionalProperties: false, minProperties: 1, properties: settingProperties,
});
const validateChange = bodyValidator<SettingsChange>(changeSchema);
const settings = named("Settings", row({
  id: uuid, slug: { type: "string" }, name: { type: "string" }, status: { enum: ["active", "suspended"] },
  timezone: { type: "string" }, currency: { type: "string" }, tax_rate_bps: { type: "integer" }, invoice_number_prefix: { type: "string" },
  payment_terms_days: { type: "integer" }, appointment_slot_minutes: { type: "integer" }, reminders_enabled: { type: "boolean" },
}));
const tag = "Settings";

/** The body, or 422: INVALID_SETTING naming the setting a value is refused for, VALIDATION_FAILED for anything else. */
function parseChange(body: unknown): SettingsChange {
  try {
    return validateChange(body);
  } catch (error) {
    const fields = error instanceof ValidationError ? (error.details as { field: string }[] | undefined) ?? [] : [];
    const setting = fields[0]?.field.split("/")[1];
    if (setting && setting in settingProperties && fields.every((f) => f.field.split("/")[1] === setting)) throw invalidSetting(setting, { errors: fields }, error);
    throw error;
  }
}

export function settingsRoutes(router: Routes): void {
  router.get("/", documented({
    summary: "Read the shop's settings", tag,
    description: "The shop (id, slug, name, status) and its settings. Every member may read them: they are the rules the shop books and bills by.",
    responses: { 200: { description: "The shop and its settings", schema: settings } },
  }), requires("settings:read", { feature: "none" }), async (req, res) => {
    const [row] = await withTenant(req, (sql) => sql`select * from app.current_settings()`);
    res.json(row);
  });

  router.patch("/", documented({
    summary: "Change the shop's settings", tag, body: changeSchema,
    description: "Changes the settings the body names (at least one). A value out of its range, or a timezone PostgreSQL does not know, is 422 INVALID_SETTING naming the setting; the database holds an operator in psql to the same rules. " +
      "Each change is audited (settings.changed: each setting old → new, with who changed it); a body that changes nothing writes no audit row. " +
      "The new values apply from the next statement on: an invoice issued afterwards takes the prefix and payment terms, an appointment booked afterwards the slot length.",
    responses: { 200: { description: "The shop and its settings", schema: settings } },
  }), requires("settings:write", { feature: "none" }), async (req, res) => {
    const c = parseChange(req.body);
    const [row] = await withTenant(req, (sql) => sql`
      select * from app.update_tenant_settings(
        p_name => ${c.name ?? null}::text, p_timezone => ${c.timezone ?? null}::text, p_currency => ${c.currency ?? null}::text,
        p_tax_rate_bps => ${c.tax_rate_bps ?? null}::int, p_invoice_number_prefix => ${c.invoice_number_prefix ?? null}::text,
        p_payment_terms_days => ${c.payment_terms_days ?? null}::int, p_appointment_slot_minutes => ${c.appointment_slot_minutes ?? null}::int,
        p_reminders_enabled => ${c.reminders_enabled ?? null}::boolean)`);
    res.json(row);
  });
}
