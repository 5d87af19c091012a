// The caller: GET /api/v1/me and GET /api/v1/tenants (memberships with role). Global data,
// reached through SECURITY DEFINER functions that answer only the user of the transaction's
// context, opened by proof for the verified token subject (withUser).
import type { Request } from "express";
import { documented, named, page, row, uuid } from "../http/contract.ts";
import { UnauthorizedError } from "../core/errors.ts";
import { requestState } from "../core/requestContext.ts";
import { withUser } from "../db/tenantContext.ts";
import type { Routes } from "./mount.ts";

function callerId(req: Request): string {
  const id = requestState(req)?.userId;
  if (!id) throw new UnauthorizedError("AUTH_REQUIRED", "An access token is required.");
  return id;
}

export function meRoutes(router: Routes): void {
  router.get("/me", documented({
    summary: "The caller", tag: "Caller",
    description: "The account the token names, and the shop a scoped token is limited to (token_tenant_id; null for a token valid in every shop of the account).",
    responses: { 200: { description: "The caller's account", schema: named("Caller", row({ id: uuid, email: { type: "string" }, is_platform_admin: { type: "boolean" }, token_tenant_id: { type: ["string", "null"], format: "uuid" } })) } },
  }), async (req, res) => {
    callerId(req);
    const [user] = await withUser(req, (sql) => sql`select id, email, is_platform_admin from app.get_user()`);
    // A valid signature for a user that no longer exists is still no user.
    if (!user) throw new UnauthorizedError("INVALID_TOKEN", "The access token is invalid.");
    res.json({ id: user.id, email: user.email, is_platform_admin: user.is_platform_admin, token_tenant_id: requestState(req)?.tokenTenantId ?? null });
  });
  router.get("/tenants", documented({
    summary: "The caller's shops and role in each", tag: "Caller",
    description: "Every membership (a person belongs to few shops): not paginated, next_cursor is always null.",
    responses: { 200: { description: "Memberships", schema: page(named("Membership", row({ id: uuid, slug: { type: "string" }, name: { type: "string" }, status: { type: "string" }, role: { type: "string" } }))) } },
  }), async (req, res) => {
    callerId(req);
    const rows = await withUser(req, (sql) => sql`select tenant_id, slug, name, status, role from app.list_memberships()`);
    res.json({ data: rows.map((r) => ({ id: r.tenant_id, slug: r.slug, name: r.name, status: r.status, role: r.role })), next_cursor: null });
  });
}
