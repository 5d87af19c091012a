// Members of the caller's shop: GET|POST /api/v1/members, PATCH|DELETE /api/v1/members/:userId.
// Memberships are global rows, so every handler but POST calls a SECURITY DEFINER function scoped
// to the caller's tenant; SQL checks members:manage and the owner rules (only an owner grants or
// removes the owner role; the last owner stays) and audits each change. POST invites (issue 34):
// a row of the shop's own app.invitations, under RLS, whatever the email.
import { requires } from "../auth/authorize.ts";
import { documented, named, nullable, page as pageSchema, row, timestamp, uuid } from "../http/contract.ts";
import { NotFoundError } from "../core/errors.ts";
import { ROLES } from "../core/roles.ts";
import { invitationTokenFrom, newInvitationToken } from "../auth/invitationTokens.ts";
import { idempotencyKeyOf, withTenantOnce } from "../http/idempotency.ts";
import { derivedSecret } from "../db/contextProof.ts";
import { requestState } from "../core/requestContext.ts";
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
const invitation = named("Invitation", row({
  id: uuid, email: { type: "string" }, role, expires_at: timestamp,
  token: { type: "string", description: "The invitation's secret, shown once: only its SHA-256 is kept." },
}));
const member = named("Member", row({ user_id: uuid, email: { type: "string" }, role, created_at: timestamp }));
const tag = "Members";

const invitationEntry = named("InvitationEntry", row({
  id: uuid, email: { type: "string" }, role, invited_by: nullable(uuid), created_at: timestamp, expires_at: timestamp,
  accepted_at: nullable(timestamp), accepted_user_id: nullable(uuid),
}));
const invitationColumns = "id, email, role, invited_by, created_at, expires_at, accepted_at, accepted_user_id";
const newestFirst: Keyset = { keys: [{ expr: "created_at", type: "timestamptz" }, { expr: "id", type: "uuid" }], descending: true };

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

  // The same answer whether or not the email has an account (issue 37): nothing looks it up.
  // The invitee joins with POST /api/v1/invitations/accept.
  router.post("/", documented({
    summary: "Invite someone to the shop by email", tag, body: addSchema,
    description: "Makes an invitation for this email and role, whether or not the email has an account (the answer is the same either way): " +
      "202 with the invitation and its token, shown this once (only its hash is kept). With an Idempotency-Key a retry answers the same invitation and token (the token is derived from the key, never stored). Hand it to the invitee, who accepts it with POST /api/v1/invitations/accept " +
      "before expires_at (7 days). Only an owner invites an owner (403 OWNER_REQUIRED).",
    responses: { 202: { description: "Invited", schema: invitation } },
  }), requires("members:manage", { feature: "none" }), async (req, res) => {
    const input = validateAdd(req.body);
    // Under an Idempotency-Key the token is derived from the key (and caller), so a replay gives
    // it again while the key's store keeps the answer without it: only its hash is ever stored.
    // The shop is part of what it is derived from (one key may be used in two shops).
    const key = idempotencyKeyOf(req);
    const state = requestState(req)!;
    const fresh = key === undefined ? newInvitationToken() : undefined;
    const tokenIn = (tenantId: string) => fresh ?? invitationTokenFrom(derivedSecret("invitation", [state.userId!, tenantId, key!]));
    await withTenantOnce(
      req,
      res,
      async (sql) => {
        const hash = fresh?.hash ?? tokenIn((await sql`select app.current_tenant_id() as t`)[0].t).hash;
        return sql`insert into app.invitations (email, role, token_hash) values (${input.email}, ${input.role}, ${hash}) returning id, email, role, expires_at`;
      },
      ([i]) => ({ status: 202, body: { id: i.id, email: i.email, role: i.role, expires_at: i.expires_at } }),
      () => ({ token: tokenIn(state.tenantId!).token }),
    );
  });

  // The shop's invitations (app.invitations, under RLS): a list without their tokens' hashes, and
  // revocation of one not yet accepted (its token then answers 404 INVITATION_NOT_FOUND).
  router.get("/invitations", documented({
    summary: "List the shop's invitations", tag: "Members", query: listSchema,
    description: "Newest first (created_at, then id), accepted and expired ones included (accepted_at, expires_at); never a token or its hash. Keyset paginated: pass next_cursor back as cursor.",
    responses: { 200: { description: "A page of invitations", schema: pageSchema(invitationEntry) } },
  }), requires("members:manage", { feature: "none" }), async (req, res) => {
    const { limit, cursor } = validateList(req.query);
    const rows = await withTenant(req, (sql) => sql`
      select ${sql.unsafe(invitationColumns)} ${keyColumns(sql, newestFirst)} from app.invitations
       where true ${after(sql, newestFirst, cursor)}
       order by ${orderBy(sql, newestFirst)}
       limit ${limit + 1}`);
    res.json(page(newestFirst, rows, limit));
  });

  router.delete("/invitations/:id", documented({
    summary: "Revoke an invitation", tag: "Members",
    description: "Deletes an invitation not yet accepted (audited): its token then answers 404 INVITATION_NOT_FOUND. An accepted or unknown one: 404 INVITATION_NOT_FOUND.",
    responses: { 204: { description: "Revoked" } },
  }), requires("members:manage", { feature: "none" }), async (req, res) => {
    const id = parseId(req.params.id);
    const [gone] = await withTenant(req, (sql) => sql`delete from app.invitations where id = ${id}::uuid and accepted_at is null returning id`);
    if (!gone) throw new NotFoundError("INVITATION_NOT_FOUND", "Invitation not found.");
    res.status(204).end();
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
