// The three ways to name the tenant (header, subdomain, path prefix), their conflicts, and
// tokens scoped to one tenant.
import { beforeAll, describe, expect, it } from "vitest";
import { makeCustomers, makeTenant, makeUser, tokenFor, useApi, type Tenant, type User } from "./fixtures.ts";

const { owner, api } = useApi({ baseDomain: "shop.test" });
let a: Tenant, b: Tenant;
let both: User;
let aIds: Set<string>;

beforeAll(async () => {
  a = await makeTenant(owner);
  b = await makeTenant(owner);
  both = await makeUser(owner, a, "owner");
  await owner`insert into app.memberships (tenant_id, user_id, role) values (${b.id}, ${both.id}, 'staff')`;
  aIds = new Set(await makeCustomers(owner, a, 3));
  await makeCustomers(owner, b, 3);
});

const onlyA = (body: { data: { id: string }[] }) => body.data.length > 0 && body.data.every((c) => aIds.has(c.id));

describe("naming the tenant", () => {
  it("by X-Tenant-Id header, as slug or as uuid", async () => {
    for (const tenant of [a.slug, a.id, a.slug.toUpperCase()]) {
      const res = await api.request("GET", "/api/v1/customers", { token: tokenFor(both), tenant });
      expect(res.status, tenant).toBe(200);
      expect(onlyA(res.body)).toBe(true);
    }
  });

  it("by subdomain of BASE_DOMAIN", async () => {
    const res = await api.request("GET", "/api/v1/customers", { token: tokenFor(both), headers: { host: `${a.slug}.shop.test` } });
    expect(res.status).toBe(200);
    expect(onlyA(res.body)).toBe(true);
  });

  it("by path prefix /api/v1/t/{slug}/", async () => {
    const res = await api.request("GET", `/api/v1/t/${a.slug}/customers?limit=10`, { token: tokenFor(both) });
    expect(res.status).toBe(200);
    expect(onlyA(res.body)).toBe(true);
  });

  it("several sources that agree (even uuid and slug) are fine", async () => {
    const res = await api.request("GET", `/api/v1/t/${a.slug}/customers`, { token: tokenFor(both), tenant: a.id, headers: { host: `${a.slug}.shop.test` } });
    expect(res.status).toBe(200);
    expect(onlyA(res.body)).toBe(true);
  });

  const conflicts: [string, { tenant?: string; host?: string; path: string }][] = [
    ["header and path", { tenant: "{a}", path: "/api/v1/t/{b}/customers" }],
    ["header and subdomain", { tenant: "{a}", host: "{b}.shop.test", path: "/api/v1/customers" }],
    ["subdomain and path", { host: "{a}.shop.test", path: "/api/v1/t/{b}/customers" }],
    ["header uuid and path slug", { tenant: "{aid}", path: "/api/v1/t/{b}/customers" }],
  ];
  for (const [label, c] of conflicts) {
    it(`two sources that disagree (${label}) → 400 TENANT_CONFLICT`, async () => {
      const fill = (s: string) => s.replace("{aid}", a.id).replace("{a}", a.slug).replace("{b}", b.slug);
      const headers: Record<string, string> = {};
      if (c.host) headers.host = fill(c.host);
      const res = await api.request("GET", fill(c.path), { token: tokenFor(both), tenant: c.tenant && fill(c.tenant), headers });
      expect(res.status).toBe(400);
      expect(res.body.error.code).toBe("TENANT_CONFLICT");
    });
  }

  it("no tenant at all → 400 TENANT_REQUIRED", async () => {
    const res = await api.request("GET", "/api/v1/customers", { token: tokenFor(both) });
    expect(res.status).toBe(400);
    expect(res.body.error.code).toBe("TENANT_REQUIRED");
  });

  it("a tenant name that is neither slug nor uuid → 400 INVALID_TENANT", async () => {
    const res = await api.request("GET", "/api/v1/customers", { token: tokenFor(both), tenant: "a b;drop" });
    expect(res.status).toBe(400);
    expect(res.body.error.code).toBe("INVALID_TENANT");
  });
});

describe("a token scoped to one tenant", () => {
  it("uses that tenant when the request names none", async () => {
    const res = await api.request("GET", "/api/v1/customers", { token: tokenFor(both, { tenant: a }) });
    expect(res.status).toBe(200);
    expect(onlyA(res.body)).toBe(true);
  });

  it("cannot be used for another tenant, even one the user belongs to", async () => {
    const res = await api.request("GET", "/api/v1/customers", { token: tokenFor(both, { tenant: a }), tenant: b.slug });
    expect(res.status).toBe(404);
    expect(res.body.error.code).toBe("TENANT_NOT_FOUND");
  });

  it("stops working when the membership is removed", async () => {
    const temp = await makeUser(owner, a, "staff");
    const token = tokenFor(temp, { tenant: a });
    expect((await api.request("GET", "/api/v1/customers", { token })).status).toBe(200);
    await owner`delete from app.memberships where user_id = ${temp.id}`;
    expect((await api.request("GET", "/api/v1/customers", { token })).status).toBe(404);
  });
});
