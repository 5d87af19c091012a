// Pooled connections must never carry one request's tenant into another. 2,400 requests
// fired at once, randomly mixed over three tenants and two roles, through a pool of 8
// connections: every answer is checked against what that caller may see.
// At most 500 sockets at a time (the rest queue in the client's agent): 2,400 simultaneous
// connects overflowed the server's listen backlog (511) and the kernel reset some of them
// (ECONNRESET, a transport failure before any answer). The pool still sees 8 connections
// against hundreds of concurrent requests, which is what this test is about.
import { beforeAll, describe, expect, it } from "vitest";
import { makeCustomers, makeTenant, makeUser, tokenFor, useApi, type Tenant, type User } from "./fixtures.ts";

const { owner, api } = useApi({ poolMax: 8, maxSockets: 500 });
type Shop = { tenant: Tenant; users: User[]; ids: string[] };
const shops: Shop[] = [];

beforeAll(async () => {
  for (let i = 0; i < 3; i++) {
    const tenant = await makeTenant(owner, { prefix: `leak${i}` });
    const users = [await makeUser(owner, tenant, "owner"), await makeUser(owner, tenant, "staff")];
    shops.push({ tenant, users, ids: await makeCustomers(owner, tenant, 30) });
  }
});

function pick<T>(xs: T[]): T {
  return xs[Math.floor(Math.random() * xs.length)];
}

describe("the connection pool under concurrent mixed tenants", () => {
  it("never returns a row of a foreign tenant in 2,400 concurrent requests", async () => {
    const requests = Array.from({ length: 2400 }, async (_, i) => {
      const shop = pick(shops);
      const other = pick(shops.filter((s) => s !== shop));
      const token = tokenFor(pick(shop.users));
      const mine = new Set(shop.ids);
      switch (i % 4) {
        case 0: {
          const res = await api.request("GET", "/api/v1/customers?limit=200", { token, tenant: shop.tenant.slug });
          if (res.status !== 200) return `list ${res.status}`;
          const foreign = res.body.data.filter((c: { id: string }) => !mine.has(c.id));
          if (foreign.length > 0 || res.body.data.length !== shop.ids.length) return `list leak: ${foreign.length} foreign of ${res.body.data.length}`;
          return "ok";
        }
        case 1: {
          const id = pick(shop.ids);
          const res = await api.request("GET", `/api/v1/customers/${id}`, { token, tenant: shop.tenant.id });
          return res.status === 200 && res.body.id === id ? "ok" : `own id ${res.status}`;
        }
        case 2: {
          const res = await api.request("GET", `/api/v1/customers/${pick(other.ids)}`, { token, tenant: shop.tenant.slug });
          return res.status === 404 && res.body.error.code === "CUSTOMER_NOT_FOUND" ? "ok" : `foreign id answered ${res.status}`;
        }
        default: {
          const res = await api.request("GET", "/api/v1/customers?limit=200", { token, tenant: other.tenant.slug });
          return res.status === 404 && res.body.error.code === "TENANT_NOT_FOUND" ? "ok" : `foreign tenant answered ${res.status}`;
        }
      }
    });
    const outcomes = await Promise.all(requests);
    const problems = outcomes.filter((o) => o !== "ok");
    expect(problems).toEqual([]);
    expect(outcomes).toHaveLength(2400);
  });
});
