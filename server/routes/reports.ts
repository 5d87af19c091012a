// Reports from the security_invoker views: RLS scopes them to the caller's tenant.
// GET /reports/revenue-daily?from&to answers JSON, or CSV with Accept: text/csv.
import { stringify } from "csv-stringify/sync";
import { requires } from "../auth/authorize.ts";
import { documented, named, row } from "../http/contract.ts";
import { BadRequestError } from "../core/errors.ts";
import { withTenant } from "../db/tenantContext.ts";
import { queryValidator } from "../http/validate.ts";
import type { Routes } from "./mount.ts";

const rangeSchema = {
  type: "object",
  additionalProperties: false,
  required: ["from", "to"],
  properties: { from: { type: "string", format: "date" }, to: { type: "string", format: "date" } },
};
const validateRange = queryValidator<{ from: string; to: string }>(rangeSchema);
const day = named("RevenueDay", row({ day: { type: "string", format: "date" }, invoices: { type: "integer" }, revenue_cents: { type: "integer" }, paid_cents: { type: "integer" } }));


export function reportRoutes(router: Routes): void {
  router.get("/revenue-daily", documented({
    summary: "Revenue per day", tag: "Reports", query: rangeSchema,
    description: "Every day from..to (inclusive) that has issued invoices, ordered by day; bounded by the range, never truncated. CSV with Accept: text/csv.",
    responses: {
      200: {
        description: "JSON (or CSV with Accept: text/csv)",
        schema: named("RevenueDaily", { type: "object", additionalProperties: false, required: ["from", "to", "data"], properties: { from: { type: "string" }, to: { type: "string" }, data: { type: "array", items: day } } }),
      },
    },
  }), requires("reports:read", { feature: "reports" }), async (req, res) => {
    const { from, to } = validateRange(req.query);
    if (from > to) throw new BadRequestError("INVALID_PARAMETER", "from must not be after to.");
    const rows = await withTenant(req, (sql) => sql`
      select to_char(day, 'YYYY-MM-DD') as day, invoices, revenue_cents, paid_cents
        from app.revenue_daily where day between ${from}::date and ${to}::date order by day
    `);
    const data = rows.map((r) => ({ day: r.day, invoices: r.invoices, revenue_cents: Number(r.revenue_cents), paid_cents: Number(r.paid_cents) }));
    if (req.accepts(["application/json", "text/csv"]) === "text/csv") {
      // RFC 4180 (quoting, CRLF line ends) by csv-stringify rather than by hand.
      const csv = stringify(data, { header: true, columns: ["day", "invoices", "revenue_cents", "paid_cents"], record_delimiter: "windows" });
      res.type("text/csv; charset=utf-8").attachment(`revenue-daily-${from}-${to}.csv`).send(csv);
      return;
    }
    res.json({ from, to, data });
  });
}
