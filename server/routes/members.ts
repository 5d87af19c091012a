// Members of the caller's shop: GET|POST /api/v1/members, PATCH|DELETE /api/v1/members/:userId.
// Memberships are global rows, so every handler calls a SECURITY DEFINER function scoped to the
// caller's tenant; SQL checks members:manage and the owner rules (only an owner grants or
// removes the owner role; the last owner stays) and audits each change.
import { Router } from "express";
import { requires } from "../authorize.ts";
import { NotFoundError } from "../errors.ts";
import { withTenantOnce } from "../idempotency.ts";
import { withTenant } from "../tenantContext.ts";
import { after, keyColumns, orderBy, page, pageQuerySchema, type Keyset } from "../keyset.ts";
import { bodyValidator, parseId, queryValidator } from "../validate.ts";

const role = { enum: ["owner", "admin", "manager", "staff", "accountant"] };
const validateAdd = bodyValidator<{ email: string; role: string }>({
  type: "object", additionalProperties: false, required: ["email", "role"],
  properties: { email: { type: "string", format: "email", maxLength: 320 }, role },
});
const validateChange = bodyValidator<{ role: string }>({ type: "object", additionalProperties: false, required: ["role"], properties: { role } });

const columns = "user_id, email, role, created_at";
const byEmail: Keyset = { keys: [{ expr: "lower(email)", type: "text" }, { expr: "user_id", type: "uuid" }] };
const validateList = queryValidator<{ limit: number; cursor?: string }>({ type: "object", additionalProperties: false, properties: pageQuerySchema(100, 500) });

export function memberRoutes(): Router {
  const router = Router();

  router.get("/", requires("members:manage"), async (req, res) => {
    const { limit, cursor } = validateList(req.query);
    const rows = await withTenant((sql) => sql`
      select ${sql.unsafe(columns)} ${keyColumns(sql, byEmail)} from app.list_members()
       where true ${after(sql, byEmail, cursor)}
       order by ${orderBy(sql, byEmail)}
       limit ${limit + 1}`);
    res.json(page(byEmail, rows, limit));
  });

  router.post("/", requires("members:manage"), async (req, res) => {
    const input = validateAdd(req.body);
    await withTenantOnce(
      req,
      res,
      (sql) => sql`select ${sql.unsafe(columns)} from app.add_member(${input.email}, ${input.role})`,
      ([member]) => ({ status: 201, body: member, headers: { Location: `${req.baseUrl}/${member.user_id}` } }),
    );
  });

  router.patch("/:userId", requires("members:manage"), async (req, res) => {
    const userId = parseId(req.params.userId);
    const { role: next } = validateChange(req.body);
    const [member] = await withTenant((sql) => sql`select ${sql.unsafe(columns)} from app.change_member_role(${userId}::uuid, ${next})`);
    if (!member) throw new NotFoundError("MEMBER_NOT_FOUND", "Member not found.");
    res.json(member);
  });

  router.delete("/:userId", requires("members:manage"), async (req, res) => {
    const userId = parseId(req.params.userId);
    await withTenant((sql) => sql`select app.remove_member(${userId}::uuid)`);
    res.status(204).end();
  });

  return router;
}
