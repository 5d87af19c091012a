// Authentication: only a valid, unexpired HS256 token signed with our key gets in.
import jwt from "jsonwebtoken";
import { beforeAll, describe, expect, it } from "vitest";
import { hashPassword } from "../server/auth/passwords.ts";
import { db, keys, makeTenant, makeUser, tokenFor, useApi, type Tenant, type User } from "./fixtures.ts";

const { owner, api } = useApi();
let tenant: Tenant;
let user: User;

beforeAll(async () => {
  tenant = await makeTenant(owner);
  user = await makeUser(owner, tenant, "staff");
  await owner`update app.users set password_hash = ${await hashPassword("correct horse")} where id = ${user.id}`;
});

const b64 = (o: object) => Buffer.from(JSON.stringify(o)).toString("base64url");

describe("a request without a good token", () => {
  const now = () => Math.floor(Date.now() / 1000);
  const cases: [string, () => string | undefined, string][] = [
    ["no Authorization header", () => undefined, "AUTH_REQUIRED"],
    ["a malformed header", () => "Token abc", "INVALID_TOKEN"],
    ["a malformed token", () => "Bearer not.a.jwt", "INVALID_TOKEN"],
    ["an expired token", () => `Bearer ${jwt.sign({ sub: user.id, exp: now() - 10 }, db.jwtSecret, { algorithm: "HS256", issuer: keys.issuer })}`, "TOKEN_EXPIRED"],
    ["an unsigned alg:none token", () => `Bearer ${b64({ alg: "none", typ: "JWT" })}.${b64({ sub: user.id, iss: keys.issuer, exp: now() + 600 })}.`, "INVALID_TOKEN"],
    ["a token forged with another secret", () => `Bearer ${jwt.sign({ sub: user.id }, "another-secret-another-secret-another", { algorithm: "HS256", issuer: keys.issuer, expiresIn: 600 })}`, "INVALID_TOKEN"],
    ["a token with another algorithm (HS512)", () => `Bearer ${jwt.sign({ sub: user.id }, db.jwtSecret, { algorithm: "HS512", issuer: keys.issuer, expiresIn: 600 })}`, "INVALID_TOKEN"],
    ["a token without expiry", () => `Bearer ${jwt.sign({ sub: user.id }, db.jwtSecret, { algorithm: "HS256", issuer: keys.issuer })}`, "INVALID_TOKEN"],
    ["a token from another issuer", () => `Bearer ${jwt.sign({ sub: user.id }, db.jwtSecret, { algorithm: "HS256", issuer: "elsewhere", expiresIn: 600 })}`, "INVALID_TOKEN"],
    ["a token whose subject is not a uuid", () => `Bearer ${jwt.sign({ sub: "admin" }, db.jwtSecret, { algorithm: "HS256", issuer: keys.issuer, expiresIn: 600 })}`, "INVALID_TOKEN"],
  ];
  for (const [label, header, code] of cases) {
    for (const path of ["/api/v1/customers", "/api/v1/me", "/api/v1/tenants"]) {
      it(`gets 401 ${code} on ${path} with ${label}`, async () => {
        const h = header();
        const res = await api.request("GET", path, { tenant: tenant.slug, headers: h ? { authorization: h } : {} });
        expect(res.status).toBe(401);
        expect(res.body.error.code).toBe(code);
        expect(res.headers.get("www-authenticate")).toMatch(/^Bearer/);
      });
    }
  }
});

describe("a path under /api/v1 that no route serves", () => {
  for (const [method, path] of [["GET", "/api/v1/nothing-here"], ["PUT", "/api/v1/nothing-here/else"], ["DELETE", "/api/v1/t/some-shop/reports"]]) {
    it(`${method} ${path} is 401 AUTH_REQUIRED without a token and 404 ROUTE_NOT_FOUND with one`, async () => {
      const anonymous = await api.request(method, path);
      expect(anonymous.status).toBe(401);
      expect(anonymous.body.error.code).toBe("AUTH_REQUIRED");
      const member = await api.request(method, path, { token: tokenFor(user), tenant: tenant.slug });
      expect(member.status).toBe(404);
      expect(member.body.error.code).toBe("ROUTE_NOT_FOUND");
    });
  }
});

describe("a path asked with a method it does not have", () => {
  for (const [method, path, allow] of [
    ["PUT", "/api/v1/customers", "GET, HEAD, POST"],
    ["POST", "/api/v1/customers/8d1e5a8c-0000-4000-8000-000000000000", "GET, HEAD, PATCH, DELETE"],
    ["GET", "/api/v1/auth/login", "POST"],
    ["DELETE", "/api/v1/t/some-shop/invoices/8d1e5a8c-0000-4000-8000-000000000000/pay", "POST"],
    ["PUT", "/healthz", "GET, HEAD"],
  ]) {
    it(`${method} ${path} is 405 METHOD_NOT_ALLOWED with Allow: ${allow}, token or not`, async () => {
      for (const res of [await api.request(method, path), await api.request(method, path, { token: tokenFor(user), tenant: tenant.slug })]) {
        expect(res.status).toBe(405);
        expect(res.headers.get("allow")).toBe(allow);
        expect(res.body.error.code).toBe("METHOD_NOT_ALLOWED");
        expect(res.body.error.request_id).toEqual(expect.any(String));
      }
    });
  }

  it("a method the path has still answers (HEAD of a GET route), and OPTIONS names the methods", async () => {
    expect((await fetch(`${api.url}/healthz`, { method: "HEAD" })).status).toBe(200);
    const options = await fetch(`${api.url}/api/v1/customers`, { method: "OPTIONS" });
    expect([options.status, options.headers.get("allow")]).toEqual([204, "GET, HEAD, POST, OPTIONS"]);
  });
});

describe("login", () => {
  it("issues a token that works", async () => {
    const res = await api.request("POST", "/api/v1/auth/login", { body: { email: user.email.toUpperCase(), password: "correct horse" } });
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ token_type: "Bearer", expires_in: keys.ttlSeconds });
    const me = await api.request("GET", "/api/v1/me", { token: res.body.access_token });
    expect(me.body).toMatchObject({ id: user.id, email: user.email, is_platform_admin: false });
  });

  it("answers a wrong password and an unknown email identically", async () => {
    const wrong = await api.request("POST", "/api/v1/auth/login", { body: { email: user.email, password: "nope" } });
    const unknown = await api.request("POST", "/api/v1/auth/login", { body: { email: "nobody@nowhere.test", password: "nope" } });
    expect(wrong.status).toBe(401);
    expect(unknown.status).toBe(401);
    expect(wrong.body.error.code).toBe("INVALID_CREDENTIALS");
    expect({ ...wrong.body.error, request_id: "" }).toEqual({ ...unknown.body.error, request_id: "" });
  });

  it("refuses a user without a password", async () => {
    const passwordless = await makeUser(owner);
    const res = await api.request("POST", "/api/v1/auth/login", { body: { email: passwordless.email, password: "" } });
    expect(res.status).toBe(422);
    const res2 = await api.request("POST", "/api/v1/auth/login", { body: { email: passwordless.email, password: "x" } });
    expect(res2.status).toBe(401);
  });
});

describe("the caller", () => {
  it("lists its memberships with role", async () => {
    const other = await makeTenant(owner);
    await owner`insert into app.memberships (tenant_id, user_id, role) values (${other.id}, ${user.id}, 'accountant')`;
    const res = await api.request("GET", "/api/v1/tenants", { token: tokenFor(user) });
    expect(res.status).toBe(200);
    const bySlug = Object.fromEntries(res.body.data.map((t: { slug: string; role: string }) => [t.slug, t.role]));
    expect(bySlug).toEqual({ [tenant.slug]: "staff", [other.slug]: "accountant" });
  });

  it("a validly signed token for a user that does not exist is refused", async () => {
    const ghost = { id: "00000000-0000-4000-8000-000000000001", email: "ghost@test.test" };
    expect((await api.request("GET", "/api/v1/me", { token: tokenFor(ghost) })).status).toBe(401);
    expect((await api.request("GET", "/api/v1/customers", { token: tokenFor(ghost), tenant: tenant.slug })).status).toBe(404);
  });
});
