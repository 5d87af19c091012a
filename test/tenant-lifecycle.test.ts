// Tenant lifecycle (issue 34), by persona: a platform admin creates a shop and invites its first
// owner; the invitee accepts (a new account, or an existing one with its own password); members
// invite others; every bad token is refused the same way whether or not its email has an account;
// invitations are a tenant table, isolated as app_user; suspension and resumption with a reason,
// audited, and 403 TENANT_SUSPENDED for members meanwhile.
import { createHash, randomBytes, randomUUID } from "node:crypto";
import { beforeAll, describe, expect, it } from "vitest";
import { hashPassword } from "../server/auth/passwords.ts";
import { invitationAcceptProof, invitationLookupProof } from "../server/db/contextProof.ts";
import type { Sql } from "../server/db/connections.ts";
import { asMember, asTenant, guardOn, makeTenant, makeUser, tokenFor, useApi, type Tenant, type User } from "./fixtures.ts";

const { owner, app, api } = useApi();

let admin: User;
let shop: Tenant;
let shopOwner: User;
let other: Tenant;
let otherOwner: User;

const uniq = () => randomUUID().slice(0, 8);
const sha256 = (text: string) => createHash("sha256").update(text).digest("hex");
const accept = (token: string, password = "a long enough password") => api.request("POST", "/api/v1/invitations/accept", { body: { token, password } });
const asAdmin = (method: string, path: string, body?: unknown) => api.request(method, path, { token: tokenFor(admin), body });
const invite = (by: User, tenant: Tenant, email: string, role = "staff") =>
  api.request("POST", "/api/v1/members", { token: tokenFor(by), tenant: tenant.slug, body: { email, role } });
/** An error answer without its request id, to compare two answers. */
const errorOf = (res: { status: number; body: any }) => ({ status: res.status, code: res.body?.error?.code, message: res.body?.error?.message });

beforeAll(async () => {
  admin = await makeUser(owner);
  await owner`update app.users set is_platform_admin = true where id = ${admin.id}`;
  shop = await makeTenant(owner, { prefix: "life" });
  shopOwner = await makeUser(owner, shop, "owner");
  other = await makeTenant(owner, { prefix: "life-other" });
  otherOwner = await makeUser(owner, other, "owner");
});

describe("onboarding: a platform admin creates a shop and invites its first owner", () => {
  it("the shop exists on its plan, the owner accepts with a password, logs in and acts as owner; only the token's hash is stored", async () => {
    const slug = `new-${uniq()}`;
    const email = `founder-${uniq()}@test.test`;
    const created = await asAdmin("POST", "/api/v1/platform/tenants", { slug, name: "New Motors", plan: "pro", owner_email: email, reason: "signed up" });
    expect(created.status).toBe(201);
    expect(created.body.tenant).toMatchObject({ slug, name: "New Motors", status: "active", plan: "pro" });
    expect(created.body.invitation).toMatchObject({ email, role: "owner" });
    const token = created.body.invitation.token as string;

    const [stored] = await owner`select to_jsonb(i)::text as row, token_hash from app.invitations i where id = ${created.body.invitation.id}`;
    expect(stored.token_hash).toBe(sha256(token));
    expect(stored.row).not.toContain(token);
    expect(await owner`select plan from app.tenant_plans where tenant_id = ${created.body.tenant.id}`).toEqual([{ plan: "pro" }]);
    const [event] = await owner`select action, actor, actor_user_id, reason from app.tenant_lifecycle_events where tenant_id = ${created.body.tenant.id}`;
    expect(event).toEqual({ action: "tenant.created", actor: admin.email, actor_user_id: admin.id, reason: "signed up" });

    const accepted = await accept(token, "founder's own password");
    expect(accepted.status).toBe(200);
    expect(accepted.body).toMatchObject({ tenant_id: created.body.tenant.id, tenant_slug: slug, email, role: "owner" });
    const login = await api.request("POST", "/api/v1/auth/login", { body: { email, password: "founder's own password" } });
    expect(login.status).toBe(200);
    const settings = await api.request("PATCH", "/api/v1/settings", { token: login.body.access_token, tenant: slug, body: { name: "Renamed by its owner" } });
    expect(settings.status).toBe(200);
    const [audited] = await owner`select actor_user_id, actor_role from app.audit_log where tenant_id = ${created.body.tenant.id} and action = 'invitation.accepted'`;
    expect(audited).toEqual({ actor_user_id: accepted.body.user_id, actor_role: "owner" });
    // The invitation's rows are audited (made by the admin, accepted by the owner) without its hash.
    const trail = await owner`select action, actor_user_id, change::text as change from app.audit_log
                               where tenant_id = ${created.body.tenant.id} and entity = 'invitations' order by id`;
    expect(trail.map((r) => [r.action, r.actor_user_id])).toEqual([["insert", admin.id], ["update", accepted.body.user_id]]);
    expect(trail.every((r) => !r.change.includes(stored.token_hash) && !r.change.includes("token_hash"))).toBe(true);
  });

  it("refuses a taken slug (409 SLUG_TAKEN), an unknown plan (404 PLAN_NOT_FOUND) and anyone but a platform admin (403), creating nothing", async () => {
    const body = (slug: string, plan = "basic") => ({ slug, name: "X", plan, owner_email: `x-${uniq()}@test.test` });
    expect(errorOf(await asAdmin("POST", "/api/v1/platform/tenants", body(shop.slug))).code).toBe("SLUG_TAKEN");
    const slug = `nope-${uniq()}`;
    expect(errorOf(await asAdmin("POST", "/api/v1/platform/tenants", body(slug, "no_such_plan"))).code).toBe("PLAN_NOT_FOUND");
    const byOwner = await api.request("POST", "/api/v1/platform/tenants", { token: tokenFor(shopOwner), body: body(slug) });
    expect(errorOf(byOwner)).toMatchObject({ status: 403, code: "PLATFORM_ADMIN_REQUIRED" });
    expect(await owner`select 1 from app.tenants where slug = ${slug}`).toHaveLength(0);
    expect(errorOf(await asAdmin("POST", "/api/v1/platform/tenants", { ...body(`Bad Slug ${uniq()}`) })).status).toBe(422);
  });
});

describe("accepting an invitation", () => {
  it("an existing account joins with its own password only (401 otherwise), which stays as it was", async () => {
    const person = await makeUser(owner);
    const hash = await hashPassword("the person's password");
    await owner`update app.users set password_hash = ${hash} where id = ${person.id}`;
    const { body } = await invite(shopOwner, shop, person.email, "manager");
    const wrong = await accept(body.token, "somebody else's password");
    expect(errorOf(wrong)).toMatchObject({ status: 401, code: "INVALID_CREDENTIALS" });
    expect(await owner`select 1 from app.memberships where tenant_id = ${shop.id} and user_id = ${person.id}`).toHaveLength(0);
    const right = await accept(body.token, "the person's password");
    expect([right.status, right.body.user_id, right.body.role]).toEqual([200, person.id, "manager"]);
    expect((await owner`select password_hash from app.users where id = ${person.id}`)[0].password_hash).toBe(hash);
  });

  it("an email without an account gets one with the password given; an account made by an operator without a password takes it", async () => {
    const email = `new-${uniq()}@test.test`;
    const fresh = await accept((await invite(shopOwner, shop, email)).body.token, "brand new password");
    expect(fresh.status).toBe(200);
    const passwordless = await makeUser(owner);
    const linked = await accept((await invite(shopOwner, shop, passwordless.email)).body.token, "now it has one");
    expect(linked.body.user_id).toBe(passwordless.id);
    for (const [e, password] of [[email, "brand new password"], [passwordless.email, "now it has one"]]) {
      expect((await api.request("POST", "/api/v1/auth/login", { body: { email: e, password } })).status, e).toBe(200);
    }
  });

  it("every bad token is refused with 4xx, the same answer whether or not the email has an account", async () => {
    const known = await makeUser(owner);
    const unknown = `nobody-${uniq()}@test.test`;
    const answers = async (email: string) => {
      const used = (await invite(shopOwner, shop, email)).body.token as string;
      expect((await accept(used)).status).toBe(200);
      const expired = await invite(shopOwner, shop, email);
      await owner`update app.invitations set created_at = now() - interval '8 days', expires_at = now() - interval '1 day' where id = ${expired.body.id}`;
      // Another shop's invitation for the same email, revoked by hand: its token is no key to this one.
      const foreign = (await invite(otherOwner, other, email)).body.token as string;
      await owner`delete from app.invitations where tenant_id = ${other.id} and token_hash = ${sha256(foreign)}`;
      return {
        reused: errorOf(await accept(used)),
        expired: errorOf(await accept(expired.body.token)),
        foreign: errorOf(await accept(foreign)),
        forged: errorOf(await accept(randomBytes(32).toString("base64url"))),
        malformed: errorOf(await accept("not-a-token")),
      };
    };
    const forKnown = await answers(known.email);
    const forUnknown = await answers(unknown);
    expect(forKnown).toEqual(forUnknown);
    expect(forKnown).toEqual({
      reused: { status: 409, code: "INVITATION_USED", message: expect.any(String) },
      expired: { status: 410, code: "INVITATION_EXPIRED", message: expect.any(String) },
      foreign: { status: 404, code: "INVITATION_NOT_FOUND", message: expect.any(String) },
      forged: { status: 404, code: "INVITATION_NOT_FOUND", message: expect.any(String) },
      malformed: { status: 404, code: "INVITATION_NOT_FOUND", message: expect.any(String) },
    });
    expect(await owner`select 1 from app.memberships where tenant_id = ${other.id} and user_id = ${known.id}`).toHaveLength(0);
  });

  it("a revoked invitation's token is 404 like an unknown one; the list shows the shop's invitations without any hash, and not another shop's", async () => {
    const email = `revoked-${uniq()}@test.test`;
    const { body } = await invite(shopOwner, shop, email);
    const list = await api.request("GET", "/api/v1/members/invitations?limit=500", { token: tokenFor(shopOwner), tenant: shop.slug });
    const listed = list.body.data.find((i: { id: string }) => i.id === body.id);
    expect(listed).toMatchObject({ email, role: "staff", accepted_at: null, invited_by: shopOwner.id });
    expect(JSON.stringify(list.body)).not.toContain(sha256(body.token));
    expect(JSON.stringify(list.body)).not.toContain("token");
    const foreign = await api.request("DELETE", `/api/v1/members/invitations/${body.id}`, { token: tokenFor(otherOwner), tenant: other.slug });
    expect(errorOf(foreign)).toMatchObject({ status: 404, code: "INVITATION_NOT_FOUND" });
    expect((await api.request("DELETE", `/api/v1/members/invitations/${body.id}`, { token: tokenFor(shopOwner), tenant: shop.slug })).status).toBe(204);
    expect(errorOf(await accept(body.token))).toMatchObject({ status: 404, code: "INVITATION_NOT_FOUND" });
    const [audited] = await owner`select action, actor_user_id from app.audit_log where tenant_id = ${shop.id} and entity = 'invitations' and entity_id = ${body.id} and action = 'delete'`;
    expect(audited).toEqual({ action: "delete", actor_user_id: shopOwner.id });
  });

  it("a short password is refused (422) and the invitation stays usable", async () => {
    const { body } = await invite(shopOwner, shop, `short-${uniq()}@test.test`);
    expect((await accept(body.token, "short")).status).toBe(422);
    expect((await accept(body.token)).status).toBe(200);
  });
});

describe("invitations in SQL, as app_user", () => {
  const tx = (t: unknown) => t as Sql;

  it("a shop's invitations are invisible without a context and to another shop's members, and cannot be written into another shop", async () => {
    await invite(shopOwner, shop, `iso-${uniq()}@test.test`);
    expect(await app`select 1 from app.invitations`).toHaveLength(0);
    const seen = await asMember(app, otherOwner, other, { permission: "members:manage" }, (t) => t`select tenant_id from app.invitations`);
    expect(seen.every((r) => r.tenant_id === other.id)).toBe(true);
    await expect(asMember(app, otherOwner, other, { permission: "members:manage", writes: true }, (t) =>
      t`insert into app.invitations (tenant_id, email, role, token_hash) values (${shop.id}, 'x@test.test', 'staff', ${"a".repeat(64)})`,
    )).rejects.toMatchObject({ code: "42501" });
    const mine = await asTenant(owner, shop, (t) => t`select count(*)::int as n from app.invitations`);
    expect(mine[0].n).toBeGreaterThan(0);
  });

  it("only members:manage invites, and only an owner invites an owner", async () => {
    const staff = await makeUser(owner, shop, "staff");
    const admin2 = await makeUser(owner, shop, "admin");
    const row = (role: string) => (t: Sql) => t`insert into app.invitations (tenant_id, email, role, token_hash) values (${shop.id}, 'x@test.test', ${role}, ${randomBytes(32).toString("hex")})`;
    await expect(asMember(app, staff, shop, { permission: "customers:write", writes: true }, row("staff"))).rejects.toMatchObject({ code: "SS403" });
    await expect(asMember(app, admin2, shop, { permission: "members:manage", writes: true }, row("owner"))).rejects.toMatchObject({ code: "SS403", constraint_name: "owner_only" });
    await asMember(app, admin2, shop, { permission: "members:manage", writes: true }, row("staff"));
  });

  it("looking up or accepting an invitation needs the API's proof, used once", async () => {
    const { body } = await invite(shopOwner, shop, `proof-${uniq()}@test.test`);
    const hash = sha256(body.token);
    await expect(app`select * from app.find_invitation(${hash}, 'e', ${Date.now() + 10_000}::int8, ${randomUUID()}, 'forged.proof')`).rejects.toMatchObject({ code: "TN401" });
    await expect(app`select * from app.accept_invitation(${hash}, null, null, 'e', ${Date.now() + 10_000}::int8, ${randomUUID()}, 'forged.proof')`).rejects.toMatchObject({ code: "TN401" });
    await app.begin(async (t) => {
      const g = await guardOn(tx(t), true);
      const p = invitationLookupProof(hash, g.guard, g.expiresAt);
      const call = (s: Sql) => s`select account_exists from app.find_invitation(${hash}, ${g.guard}, ${p.expiresAt}::int8, ${p.nonce}, ${p.proof})`;
      expect(await call(tx(t))).toEqual([{ account_exists: false }]);
      await expect(t.savepoint((s) => call(tx(s)))).rejects.toMatchObject({ code: "TN401" });
    });
    // A proof over another password hash than the one sent opens nothing.
    await expect(app.begin(async (t) => {
      const g = await guardOn(tx(t), true);
      const p = invitationAcceptProof(hash, "scrypt$signed", null, g.guard, g.expiresAt);
      return t`select * from app.accept_invitation(${hash}, ${"scrypt$swapped"}, null, ${g.guard}, ${p.expiresAt}::int8, ${p.nonce}, ${p.proof})`;
    })).rejects.toMatchObject({ code: "TN401" });
    expect((await owner`select accepted_at from app.invitations where token_hash = ${hash}`)[0].accepted_at).toBeNull();
  });
});

describe("suspension", () => {
  it("a platform admin suspends a shop with a reason: its members get 403 TENANT_SUSPENDED until it is resumed; both audited", async () => {
    const t = await makeTenant(owner, { prefix: "susp" });
    const member = await makeUser(owner, t, "owner");
    const read = () => api.request("GET", "/api/v1/customers", { token: tokenFor(member), tenant: t.slug });
    expect((await read()).status).toBe(200);

    const suspended = await asAdmin("POST", `/api/v1/platform/tenants/${t.slug}/suspend`, { reason: "unpaid invoices" });
    expect(suspended.status).toBe(200);
    expect(suspended.body).toMatchObject({ id: t.id, slug: t.slug, status: "suspended", status_reason: "unpaid invoices" });
    expect(errorOf(await read())).toMatchObject({ status: 403, code: "TENANT_SUSPENDED" });
    expect(errorOf(await asAdmin("POST", `/api/v1/platform/tenants/${t.id}/suspend`, { reason: "again" }))).toMatchObject({ status: 409, code: "TENANT_STATUS_UNCHANGED" });
    expect(errorOf(await api.request("POST", `/api/v1/platform/tenants/${t.slug}/resume`, { token: tokenFor(member), body: { reason: "let me in" } }))).toMatchObject({ status: 403, code: "PLATFORM_ADMIN_REQUIRED" });
    expect(errorOf(await asAdmin("POST", `/api/v1/platform/tenants/${t.slug}/suspend`, {}))).toMatchObject({ status: 422 });
    // Another shop is served meanwhile.
    expect((await api.request("GET", "/api/v1/customers", { token: tokenFor(otherOwner), tenant: other.slug })).status).toBe(200);

    const resumed = await asAdmin("POST", `/api/v1/platform/tenants/${t.slug}/resume`, { reason: "paid" });
    expect(resumed.body).toMatchObject({ status: "active", status_reason: "paid" });
    expect((await read()).status).toBe(200);

    const events = await owner`select action, actor, reason from app.tenant_lifecycle_events where tenant_id = ${t.id} order by id`;
    expect(events).toEqual([
      { action: "tenant.suspended", actor: admin.email, reason: "unpaid invoices" },
      { action: "tenant.resumed", actor: admin.email, reason: "paid" },
    ]);
    const audit = await owner`select action, actor_user_id, change->'event'->>'reason' as reason from app.audit_log where tenant_id = ${t.id} and entity = 'tenant' order by id`;
    expect(audit).toEqual([
      { action: "tenant.suspended", actor_user_id: admin.id, reason: "unpaid invoices" },
      { action: "tenant.resumed", actor_user_id: admin.id, reason: "paid" },
    ]);
  });

  it("an unknown shop is 404 TENANT_NOT_FOUND; the lifecycle events are append-only", async () => {
    expect(errorOf(await asAdmin("POST", "/api/v1/platform/tenants/no-such-shop/suspend", { reason: "x" }))).toMatchObject({ status: 404, code: "TENANT_NOT_FOUND" });
    await expect(owner`update app.tenant_lifecycle_events set reason = 'rewritten'`).rejects.toMatchObject({ code: "SS409" });
    await expect(owner`delete from app.tenant_lifecycle_events`).rejects.toMatchObject({ code: "SS409" });
  });
});
