// Customers, the first tenant-owned resource. Each handler: validate, one withTenant call,
// shape the answer. Isolation is RLS's job: no handler names a tenant_id.
import { requires } from "../auth/authorize.ts";
import { documented, named, nullable, page as pageSchema, row, timestamp, uuid } from "../http/contract.ts";
import { NotFoundError } from "../core/errors.ts";
import { after, keyColumns, orderBy, page, pageQuerySchema, type Keyset } from "../db/keyset.ts";
import { withTenantOnce } from "../http/idempotency.ts";
import { withTenant } from "../db/tenantContext.ts";
import { bodyValidator, parseId, queryValidator } from "../http/validate.ts";
import type { Routes } from "./mount.ts";

type CustomerInput = { name: string; email?: string | null; phone?: string | null; notes?: string | null };

const fields = {
  name: { type: "string", minLength: 1, maxLength: 200, pattern: "\\S" },
  email: { type: ["string", "null"], format: "email", maxLength: 320 },
  phone: { type: ["string", "null"], minLength: 1, maxLength: 40 },
  notes: { type: ["string", "null"], maxLength: 4000 },
};
const createSchema = named("CustomerCreate", { type: "object", additionalProperties: false, required: ["name"], properties: fields });
const patchSchema = named("CustomerChanges", { type: "object", additionalProperties: false, minProperties: 1, properties: fields });
const validateCreate = bodyValidator<CustomerInput>(createSchema);
const validatePatch = bodyValidator<Partial<CustomerInput>>(patchSchema);
const listSchema = {
  type: "object",
  additionalProperties: false,
  properties: {
    ...pageQuerySchema(50, 200),
    q: { type: "string", minLength: 1, maxLength: 200, description: "Case-insensitive substring of name or email." },
  },
};
const validateList = queryValidator<{ limit: number; cursor?: string; q?: string }>(listSchema);
const customer = named("Customer", row({
  id: uuid, name: { type: "string" }, email: nullable({ type: "string" }), phone: nullable({ type: "string" }),
  notes: nullable({ type: "string" }), created_at: timestamp, updated_at: timestamp,
}));
const tag = "Customers";

const notFound = () => new NotFoundError("CUSTOMER_NOT_FOUND", "Customer not found.");

const byName: Keyset = { keys: [{ expr: "name", type: "text" }, { expr: "id", type: "uuid" }] };

export function customerRoutes(router: Routes): void {

  router.get("/", documented({
    summary: "List customers", tag, query: listSchema,
    description: "Ordered by name, then id. Keyset paginated: pass next_cursor back as cursor; null on the last page.",
    responses: { 200: { description: "A page of customers", schema: pageSchema(customer) } },
  }), requires("customers:read", { feature: "none" }), async (req, res) => {
    const { limit, cursor, q } = validateList(req.query);
    const like = q ? `%${q.replace(/[\\%_]/g, "\\$&")}%` : undefined;
    const rows = await withTenant(req, (sql) => sql`
      select id, name, email, phone, notes, created_at, updated_at ${keyColumns(sql, byName)}
        from app.customers
       where true
         ${like ? sql`and (name ilike ${like} or email ilike ${like})` : sql``}
         ${after(sql, byName, cursor)}
       order by ${orderBy(sql, byName)}
       limit ${limit + 1}
    `);
    res.json(page(byName, rows, limit));
  });

  router.post("/", documented({
    summary: "Create a customer", tag, body: createSchema,
    description: "Answers the customer as a read does, with its URL in Location. A retry with the same Idempotency-Key replays the first answer.",
    responses: { 201: { description: "The customer, as a read answers it", schema: customer, headers: { Location: { description: "The new row's URL", schema: { type: "string" } } } } },
  }), requires("customers:write", { feature: "none" }), async (req, res) => {
    const input = validateCreate(req.body);
    await withTenantOnce(
      req,
      res,
      (sql) => sql`
        insert into app.customers (name, email, phone, notes)
        values (${input.name}, ${input.email ?? null}, ${input.phone ?? null}, ${input.notes ?? null})
        returning id, name, email, phone, notes, created_at, updated_at
      `,
      ([customer]) => ({ status: 201, body: customer, headers: { Location: `${router.base}/${customer.id}` } }),
    );
  });

  router.get("/:id", documented({ summary: "Read a customer", tag, description: "Another shop's customer answers 404 CUSTOMER_NOT_FOUND, as one that does not exist.", responses: { 200: { description: "The customer", schema: customer } } }), requires("customers:read", { feature: "none" }), async (req, res) => {
    const id = parseId(req.params.id);
    const [customer] = await withTenant(req, (sql) => sql`
      select id, name, email, phone, notes, created_at, updated_at from app.customers where id = ${id}::uuid
    `);
    if (!customer) throw notFound();
    res.json(customer);
  });

  router.patch("/:id", documented({ summary: "Change a customer", tag, body: patchSchema, description: "Changes the properties the body names (at least one); answers the customer as a read does.", responses: { 200: { description: "The customer, as a read answers it", schema: customer } } }), requires("customers:write", { feature: "none" }), async (req, res) => {
    const id = parseId(req.params.id);
    const changes = validatePatch(req.body);
    const [customer] = await withTenant(req, (sql) => sql`
      update app.customers set ${sql(changes, Object.keys(changes) as (keyof CustomerInput)[])}
       where id = ${id}::uuid
      returning id, name, email, phone, notes, created_at, updated_at
    `);
    if (!customer) throw notFound();
    res.json(customer);
  });

  router.delete("/:id", documented({ summary: "Delete a customer", tag, description: "409 REFERENCE_IN_USE while vehicles reference it.", responses: { 204: { description: "Deleted" } } }), requires("customers:write", { feature: "none" }), async (req, res) => {
    const id = parseId(req.params.id);
    const deleted = await withTenant(req, (sql) => sql`delete from app.customers where id = ${id}::uuid returning id`);
    if (deleted.length === 0) throw notFound();
    res.status(204).end();
  });

}
