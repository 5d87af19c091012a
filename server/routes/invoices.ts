// Invoices. Drafts change freely; issuing numbers them (gapless per tenant, in SQL); after
// issue only pay and void remain (INVOICE_IMMUTABLE otherwise). Totals come from SQL.
import type postgres from "postgres";
import { requires } from "../auth/authorize.ts";
import { documented, named, nullable, page as pageSchema, row, timestamp, uuid } from "../http/contract.ts";
import type { Sql } from "../db/connections.ts";
import { NotFoundError, ValidationError } from "../core/errors.ts";
import { resourceRoutes } from "./resource.ts";
import type { Routes } from "./mount.ts";
import { withTenantOnce } from "../http/idempotency.ts";
import { withTenant } from "../db/tenantContext.ts";
import { after, keyColumns, orderBy, page, pageQuerySchema, type Keyset } from "../db/keyset.ts";
import { bodyValidator, parseId, queryValidator } from "../http/validate.ts";

const columns = ["id", "customer_id", "appointment_id", "status", "number", "invoice_number", "due_date", "notes", "issued_at", "paid_at", "voided_at", "created_at", "updated_at"];
// quantity is numeric(10,2): answered as a JSON number by every route, never as a string.
const lineSelect = "id, invoice_id, service_operation_id, description, quantity::float8 as quantity, unit_price_cents, line_total_cents, created_at";

/** An invoice write answers what a read of app.invoice_summaries answers: the row plus its totals. */
function answer(sql: Sql, written: postgres.PendingQuery<postgres.Row[]>) {
  // The statement's snapshot predates the write: a new invoice has no totals row yet (and no lines).
  return sql`
    with w as (${written})
    select ${sql(columns.map((c) => `w.${c}`))}, coalesce(t.total_cents, 0)::bigint as total_cents, coalesce(t.line_count, 0)::int as line_count
      from w left join app.invoice_totals t on t.tenant_id = w.tenant_id and t.invoice_id = w.id`;
}

const invoiceRow = {
  id: uuid, customer_id: uuid, appointment_id: nullable(uuid), status: { enum: ["draft", "issued", "paid", "void"] },
  number: { type: ["integer", "null"], description: "Assigned on issue: gapless per tenant." },
  invoice_number: { type: ["string", "null"], description: "The printed number, assigned on issue: the shop's invoice number prefix at that moment, then number." },
  due_date: { type: ["string", "null"], format: "date", description: "Assigned on issue: the issue day in the shop's timezone plus its payment terms." },
  notes: nullable({ type: "string" }),
  issued_at: nullable(timestamp), paid_at: nullable(timestamp), voided_at: nullable(timestamp), created_at: timestamp, updated_at: timestamp,
  total_cents: { type: "integer" }, line_count: { type: "integer" },
};
const invoice = named("Invoice", row(invoiceRow));
const line = named("InvoiceLine", row({
  id: uuid, invoice_id: uuid, service_operation_id: nullable(uuid), description: { type: "string" },
  quantity: { type: "number", description: "Two decimals (numeric(10,2)), as a JSON number." },
  unit_price_cents: { type: "integer" }, line_total_cents: { type: "integer" }, created_at: timestamp,
}));

type LineInput = { service_operation_id?: string; quantity: number; description?: string; unit_price_cents?: number };
// quantity is numeric(10,2) and above zero (invoice_lines_quantity_check): a third decimal is
// refused here, never rounded away by the database.
const quantity = { type: "number", exclusiveMinimum: 0, maximum: 100000, multipleOf: 0.01, description: "Above zero, with at most two decimals." };
const lineSchema = named("InvoiceLineCreate", {
  oneOf: [
    {
      type: "object", additionalProperties: false, required: ["service_operation_id", "quantity"],
      properties: { service_operation_id: uuid, quantity },
    },
    {
      type: "object", additionalProperties: false, required: ["description", "quantity", "unit_price_cents"],
      properties: {
        description: { type: "string", minLength: 1, maxLength: 500, pattern: "\\S" },
        quantity,
        unit_price_cents: { type: "integer", minimum: 0, maximum: 100000000 },
      },
    },
  ],
});
const validateLine = bodyValidator<LineInput>(lineSchema);

const lineOrder: Keyset = { keys: [{ expr: "created_at", type: "timestamptz" }, { expr: "id", type: "uuid" }] };
const lineListSchema = { type: "object", additionalProperties: false, properties: pageQuerySchema(200, 500) };
const validateLineList = queryValidator<{ limit: number; cursor?: string }>(lineListSchema);

const notFound = () => new NotFoundError("INVOICE_NOT_FOUND", "Invoice not found.");

export function invoiceRoutes(router: Routes): void {
  resourceRoutes(router, {
    permissions: { read: "invoices:read", write: "invoices:write" },
    feature: "none",
    table: "app.invoices",
    readFrom: "app.invoice_summaries",
    columns: [...columns, "total_cents", "line_count"],
    answer,
    fields: {
      customer_id: uuid,
      appointment_id: nullable(uuid),
      notes: { type: ["string", "null"], maxLength: 4000 },
    },
    required: ["customer_id"],
    filters: { status: { enum: ["draft", "issued", "paid", "void"] }, customer_id: uuid },
    keyset: { keys: [{ expr: "created_at", type: "timestamptz" }, { expr: "id", type: "uuid" }], descending: true },
    name: "invoice",
    tag: "Invoices",
    rules: "The customer and appointment must be this shop's (422 REFERENCE_NOT_FOUND); only a draft changes (409 INVOICE_IMMUTABLE); status changes go through issue, pay and void.",
    deleteRule: "Only a draft can be deleted (409 INVOICE_IMMUTABLE).",
    order: "created_at descending (newest first), then id descending",
    row: invoiceRow,
    notFoundCode: "INVOICE_NOT_FOUND",
    notFoundMessage: "Invoice not found.",
  });

  // Lines: a catalog operation (its price copied now) or a custom line; drafts only.
  router.post("/:id/lines", documented({
    summary: "Add a line to a draft invoice", tag: "Invoices", body: lineSchema,
    description: "Either a catalog operation (its name and price copied now) or a custom line with description and unit price.",
    responses: { 201: { description: "The line, as the list answers it", schema: line } },
  }), requires("invoices:write", { feature: "none" }), async (req, res) => {
    const id = parseId(req.params.id);
    const line = validateLine(req.body);
    await withTenantOnce(
      req,
      res,
      (sql) => sql`
      with invoice as (select id from app.invoices where id = ${id}::uuid),
      priced as (
        ${line.service_operation_id
          ? sql`select o.id as operation_id, o.name as description, o.price_cents as unit_price_cents
                  from app.service_operations o where o.id = ${line.service_operation_id}::uuid`
          : sql`select null::uuid as operation_id, ${line.description ?? ""}::text as description, ${line.unit_price_cents ?? 0}::int as unit_price_cents`}
      ),
      inserted as (
        insert into app.invoice_lines (invoice_id, service_operation_id, description, quantity, unit_price_cents)
        select invoice.id, priced.operation_id, priced.description, ${line.quantity}::numeric, priced.unit_price_cents
          from invoice, priced
        returning ${sql.unsafe(lineSelect)}
      )
      select (select count(*) from priced)::int as _prices, inserted.*
        from invoice left join inserted on true
    `,
      // No row when the invoice is not visible: a row route answers with rows only for its own row.
      ([result]) => {
        if (!result) throw notFound();
        if (result._prices === 0) throw new ValidationError("REFERENCE_NOT_FOUND", "A referenced record does not exist.");
        const { _prices, ...line } = result;
        return { status: 201, body: line };
      },
    );
  });

  router.get("/:id/lines", documented({
    summary: "List an invoice's lines", tag: "Invoices", query: lineListSchema,
    description: "Ordered by created_at, then id. Keyset paginated: pass next_cursor back as cursor.",
    responses: { 200: { description: "A page of lines", schema: pageSchema(line) } },
  }), requires("invoices:read", { feature: "none" }), async (req, res) => {
    const id = parseId(req.params.id);
    const { limit, cursor } = validateLineList(req.query);
    const [invoices, lines] = await withTenant(req, (sql) => [
      sql`select 1 from app.invoices where id = ${id}::uuid`,
      sql`select ${sql.unsafe(lineSelect)} ${keyColumns(sql, lineOrder)} from app.invoice_lines
           where invoice_id = ${id}::uuid ${after(sql, lineOrder, cursor)}
           order by ${orderBy(sql, lineOrder)} limit ${limit + 1}`,
    ]);
    if (invoices.length === 0) throw notFound();
    res.json(page(lineOrder, lines, limit));
  });

  router.post("/:id/issue", documented({
    summary: "Issue a draft invoice (numbers it)", tag: "Invoices",
    description: "Takes the shop's next invoice number (no gaps) and stamps issued_at, the printed number (the shop's invoice number prefix, then the number) and the due date (the issue day in the shop's timezone plus its payment terms); needs at least one line (422 INVOICE_EMPTY). After this only pay and void change the invoice (409 INVOICE_IMMUTABLE).",
    responses: { 200: { description: "The invoice, as a read answers it", schema: invoice } },
  }), requires("invoices:issue", { feature: "none" }), async (req, res) => {
    const id = parseId(req.params.id);
    await withTenantOnce(req, res, (sql) => answer(sql, sql`select * from app.issue_invoice(${id}::uuid)`), ([invoice]) => {
      if (!invoice) throw notFound();
      return { status: 200, body: invoice };
    });
  });

  // Pay and void: the status machine lives in app.invoice_guard(); zero rows is a foreign or unknown id.
  for (const [action, status, stamp, permission] of [["pay", "paid", "paid_at", "invoices:pay"], ["void", "void", "voided_at", "invoices:void"]] as const) {
    router.post(`/:id/${action}`, documented({
      summary: action === "pay" ? "Record payment of an issued invoice" : "Void an invoice", tag: "Invoices",
      description: action === "pay"
        ? "Marks an issued invoice paid and stamps paid_at; any other status: 409 INVALID_TRANSITION."
        : "Marks an issued or paid invoice void and stamps voided_at; its number stays taken. A draft is deleted instead: 409 INVALID_TRANSITION.",
      responses: { 200: { description: "The invoice, as a read answers it", schema: invoice } },
    }), requires(permission, { feature: "none" }), async (req, res) => {
      const id = parseId(req.params.id);
      await withTenantOnce(
        req,
        res,
        (sql) => answer(sql, sql`update app.invoices set status = ${status}, ${sql(stamp)} = now() where id = ${id}::uuid returning *`),
        ([invoice]) => {
          if (!invoice) throw notFound();
          return { status: 200, body: invoice };
        },
      );
    });
  }
}
