// Members of the caller's shop: GET|POST /api/v1/members, PATCH|DELETE /api/v1/members/:userId.
// Memberships are global rows, so every handler calls a SECURITY DEFINER function scoped to the
// caller's tenant; SQL checks members:manage and the owner rules (only an owner grants or
// removes the owner role; the last owner stays) and audits each change.
import { requires } from "../auth/authorize.ts";
import { documented, named, page as pageSchema, row, timestamp, uuid } from "../http/contract.ts";
import { NotFoundError } from "../core/errors.ts";
import { ROLES } from "../core/roles.ts";
import { withTenantOnce } from "../http/idempotency.ts";
import { withTenant } from "../db/tenantContext.ts";
import { after, keyColumns, orderBy, page, pageQuerySchema, type Keyset } from "../db/keyset.ts";
import { bodyValidator, parseId, queryValidator } from "../http/validate.ts";
import type { Routes } from "./mount.ts";

const role = named("Role", { type: "string", enum: [...ROLES], description: "What each may do: runbooks/rbac-matrix.md." });
const addSchema = named("MemberCreate", {
  type: "object", additionalProperties: false, required: ["email", "role"],
  properties: { email: { type: "string", format: "email", maxLength: 320 }, role },
});
const changeSchema = named("MemberRoleChange", { type: "object", additionalProperties: false, required: ["role"], properties: { role } });
const validateAdd = bodyValidator<{ email: string; role: string }>(addSchema);
const validateChange = bodyValidator<{ role: string }>(changeSchema);
const member = named("Member", row({ user_id: uuid, email: { type: "string" }, role, created_at: timestamp }));
const tag = "Members";

const columns = "user_id, email, role, created_at";
const byEmail: Keyset = { keys: [{ expr: "lower(email)", type: "text" }, { expr: "user_id", type: "uuid" }] };
const listSchema = { type: "object", additionalProperties: false, properties: pageQuerySchema(100, 500) };
const validateList = queryValidator<{ limit: number; cursor?: string }>(listSchema);

export function memberRoutes(router: Routes): void {

  router.get("/", documented({
    summary: "List the shop's members", tag, query: listSchema,
    description: "Ordered by lower(email), then user_id. Keyset paginated: pass next_cursor back as cursor.",
    responses: { 200: { description: "A page of members", schema: pageSchema(member) } },
  }), requires("members:manage", { feature: "none" }), async (req, res) => {
    const { limit, cursor } = validateList(req.query);
    const rows = await withTenant(req, (sql) => sql`
      select ${sql.unsafe(columns)} ${keyColumns(sql, byEmail)} from app.list_members()
       where true ${after(sql, byEmail, cursor)}
       order by ${orderBy(sql, byEmail)}
       limit ${limit + 1}`);
    res.json(page(byEmail, rows, limit));
  });

  // The same answer whether or not the email has an account: a shop's admin must not learn it
  // from here (issue 37). The member list then shows who was added; invitations are to replace this.
  router.post("/", documented({
    summary: "Add an existing account as a member", tag, body: addSchema,
    description: "If an account has this email, it becomes a member with this role. The answer is the same whether or not one has: " +
      "202 with the email and role asked for (GET /members shows who is a member). Already a member: 409 ALREADY_A_MEMBER. " +
      "Only an owner grants the owner role (403 OWNER_REQUIRED).",
    responses: { 202: { description: "Accepted: the email and role asked for", schema: row({ email: { type: "string" }, role }) } },
  }), requires("members:manage", { feature: "none" }), async (req, res) => {
    const input = validateAdd(req.body);
    await withTenantOnce(
      req,
      res,
      (sql) => sql`select ${sql.unsafe(columns)} from app.add_member(${input.email}, ${input.role})`,
      () => ({ status: 202, body: { email: input.email, role: input.role } }),
    );
  });

  router.patch("/:userId", documented({
    summary: "Change a member's role", tag, body: changeSchema,
    description: "The last owner cannot be demoted (409 LAST_OWNER).",
    responses: { 200: { description: "The member, as the list answers it", schema: member } },
  }), requires("members:manage", { feature: "none" }), async (req, res) => {
    const userId = parseId(req.params.userId);
    const { role: next } = validateChange(req.body);
    const [member] = await withTenant(req, (sql) => sql`select ${sql.unsafe(columns)} from app.change_member_role(${userId}::uuid, ${next})`);
    if (!member) throw new NotFoundError("MEMBER_NOT_FOUND", "Member not found.");
    res.json(member);
  });

  router.delete("/:userId", documented({ summary: "Remove a member", tag, description: "The last owner cannot be removed (409 LAST_OWNER).", responses: { 204: { description: "Removed" } } }), requires("members:manage", { feature: "none" }), async (req, res) => {
    const userId = parseId(req.params.userId);
    await withTenant(req, (sql) => sql`select app.remove_member(${userId}::uuid)`);
    res.status(204).end();
  });

}
