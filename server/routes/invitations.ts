// POST /api/v1/invitations/accept {token, password}: the invitee joins the shop (issue 34).
// Public: the token is the credential. Two calls, each with its own proof used once
// (policies/invitations.sql): the lookup says whether the invitation holds and hands back the
// invited account's password hash, if any; the accept creates the account with the password (or
// links the existing one, whose own password must be given) and the membership, and marks the
// invitation used. An unknown, expired or used token is refused before any account is looked up.
import type { Row } from "postgres";
import { invitationAcceptProof, invitationLookupProof } from "../db/contextProof.ts";
import { documented, named, row, uuid } from "../http/contract.ts";
import { NotFoundError, UnauthorizedError } from "../core/errors.ts";
import { hashInvitationToken, isInvitationToken } from "../auth/invitationTokens.ts";
import { hashPassword, verifyPassword } from "../auth/passwords.ts";
import { requestState } from "../core/requestContext.ts";
import { withoutTenant } from "../db/tenantContext.ts";
import { bodyValidator } from "../http/validate.ts";
import { ROLES } from "../core/roles.ts";
import type { Routes } from "./mount.ts";

const acceptSchema = named("InvitationAccept", {
  type: "object", additionalProperties: false, required: ["token", "password"],
  properties: {
    token: { type: "string", minLength: 1, maxLength: 200, description: "The invitation's token, as it was handed to the invitee." },
    password: { type: "string", minLength: 10, maxLength: 1024, description: "A new account's password (10 characters or more), or the existing account's own." },
  },
});
const validateAccept = bodyValidator<{ token: string; password: string }>(acceptSchema);
const membership = named("AcceptedInvitation", row({
  tenant_id: uuid, tenant_slug: { type: "string" }, user_id: uuid, email: { type: "string" }, role: { type: "string", enum: [...ROLES] },
}));

export function invitationRoutes(router: Routes): void {
  router.post("/accept", documented({
    summary: "Accept an invitation: join the shop", tag: "Caller", auth: "public", body: acceptSchema,
    description: "Creates the invited email's account with this password, or links the existing account (whose own password must be given: 401 INVALID_CREDENTIALS), " +
      "and makes it a member of the shop with the invited role. A token is used once and expires: unknown, malformed or another deployment's 404 INVITATION_NOT_FOUND, " +
      "expired 410 INVITATION_EXPIRED, used 409 INVITATION_USED, the account already a member 409 ALREADY_A_MEMBER. Then log in (POST /api/v1/auth/login).",
    responses: { 200: { description: "The membership made", schema: membership } },
  }), async (req, res) => {
    const { token, password } = validateAccept(req.body);
    if (!isInvitationToken(token)) throw new NotFoundError("INVITATION_NOT_FOUND", "No invitation has this token.");
    const tokenHash = hashInvitationToken(token);
    const [found] = await withoutTenant(async (sql, stream): Promise<Row[]> => {
      const g = await stream();
      const p = invitationLookupProof(tokenHash, g.guard, g.expiresAt);
      return sql`select account_exists, password_hash from app.find_invitation(${tokenHash}, ${g.guard}, ${p.expiresAt}::int8, ${p.nonce}, ${p.proof})`;
    });
    // An account with a password joins only with it; one without (made by an operator) takes this one.
    let passwordHash: string | null = null;
    if (found.password_hash) {
      if (!(await verifyPassword(password, found.password_hash))) throw new UnauthorizedError("INVALID_CREDENTIALS", "This invitation is for an existing account: give its password.");
    } else {
      passwordHash = await hashPassword(password);
    }
    const requestId = requestState(req)?.requestId ?? null;
    const [m] = await withoutTenant(async (sql, stream): Promise<Row[]> => {
      const g = await stream();
      const p = invitationAcceptProof(tokenHash, passwordHash, requestId, g.guard, g.expiresAt);
      return sql`select tenant_id, slug, user_id, email, role from app.accept_invitation(${tokenHash}, ${passwordHash}, ${requestId}, ${g.guard}, ${p.expiresAt}::int8, ${p.nonce}, ${p.proof})`;
    });
    res.json({ tenant_id: m.tenant_id, tenant_slug: m.slug, user_id: m.user_id, email: m.email, role: m.role });
  });
}
