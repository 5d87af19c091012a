// Operator endpoints (platform admins only) and the Prometheus metrics.
import type { Server } from "node:http";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createApp } from "../server/app.ts";
import { createPool } from "../server/db/connections.ts";
import { useTenantPool } from "../server/db/tenantContext.ts";
import { db, keys, makeCustomers, makeTenant, makeUser, tokenFor, useApi, type Tenant, type User } from "./fixtures.ts";
import { addReachableRoutes } from "./routeProbes.ts";

const { owner, api } = useApi();
let admin: User, member: User, suspendedOwner: User;
let tenant: Tenant, suspendedTenant: Tenant;

beforeAll(async () => {
  tenant = await makeTenant(owner);
  await makeCustomers(owner, tenant, 2);
  admin = await makeUser(owner);
  await owner`update app.users set is_platform_admin = true where id = ${admin.id}`;
  member = await makeUser(owner, tenant, "owner");
  suspendedTenant = await makeTenant(owner, { status: "suspended" });
  suspendedOwner = await makeUser(owner, suspendedTenant, "owner");
});

describe("GET /ops/current-commit and /ops/env-sanity", () => {
  it("answer 401 without a token", async () => {
    for (const path of ["/ops/current-commit", "/ops/env-sanity"]) {
      const r = await api.request("GET", path);
      expect(r.status, path).toBe(401);
      expect(r.body.error.code).toBe("AUTH_REQUIRED");
    }
  });

  it("answer 403 to a tenant member who is not a platform admin", async () => {
    for (const path of ["/ops/current-commit", "/ops/env-sanity"]) {
      const r = await api.request("GET", path, { token: tokenFor(member) });
      expect(r.status, path).toBe(403);
      expect(r.body.error.code).toBe("PLATFORM_ADMIN_REQUIRED");
    }
  });

  it("current-commit tells a platform admin which release runs", async () => {
    const r = await api.request("GET", "/ops/current-commit", { token: tokenFor(admin) });
    expect(r.status).toBe(200);
    expect(r.body.commit_sha).toMatch(/^([0-9a-f]{40}|unknown)$/);
    expect(new Date(r.body.deployed_at).toString()).not.toBe("Invalid Date");
  });

  it("env-sanity reports db, migrations, policies and variable names, never values", async () => {
    process.env.JWT_SECRET = "a-secret-value-that-must-never-appear-in-output";
    try {
      const r = await api.request("GET", "/ops/env-sanity", { token: tokenFor(admin) });
      expect(r.status).toBe(200);
      expect(r.body.db).toMatchObject({ reachable: true, role: "app_user" });
      expect(r.body.migrations).toMatchObject({ at_head: true, pending: [] });
      expect(r.body.policies).toMatchObject({ ok: true, unprotected: [] });
      expect(r.body.policies.tenant_tables).toBeGreaterThan(0);
      expect(r.body.env_vars.set).toContain("JWT_SECRET");
      expect(JSON.stringify(r.body)).not.toContain("a-secret-value");
    } finally {
      delete process.env.JWT_SECRET;
    }
  });
});

describe("GET /metrics", () => {
  let server: Server;
  let base: string;

  beforeAll(async () => {
    // The real app plus two synthetic routes: a 304 and a 42501 from the database.
    const app = createApp({ keys, bodyLimit: "100kb", deployment: { commit_sha: "test", deployed_at: "now" } });
    addReachableRoutes(app, (a) => {
      a.get("/api/v1/probe-not-modified", (_req, res) => void res.status(304).end());
      a.get("/api/v1/probe-denied", () => {
        throw Object.assign(new Error("new row violates row-level security policy"), { code: "42501" });
      });
    });
    server = await new Promise((resolve) => {
      const s = app.listen(0, "127.0.0.1", () => resolve(s));
    });
    base = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
  });

  afterAll(async () => {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  });

  it("counts requests by route template and status, latency, 304s, denials and pool use", async () => {
    const auth = { authorization: `Bearer ${tokenFor(member)}`, "x-tenant-id": tenant.slug };
    const list = await fetch(`${base}/api/v1/customers`, { headers: auth });
    expect(list.status).toBe(200);
    const one = await fetch(`${base}/api/v1/customers/00000000-0000-4000-8000-000000000000`, { headers: auth });
    expect(one.status).toBe(404);
    expect((await fetch(`${base}/api/v1/probe-not-modified`, { headers: auth })).status).toBe(304);
    expect((await fetch(`${base}/api/v1/probe-denied`, { headers: auth })).status).toBe(403);
    const suspended = await fetch(`${base}/api/v1/customers`, { headers: { authorization: `Bearer ${tokenFor(suspendedOwner)}`, "x-tenant-id": suspendedTenant.slug } });
    expect(suspended.status).toBe(403);

    const res = await fetch(`${base}/metrics`);
    expect(res.status).toBe(200);
    const text = await res.text();
    expect(text).toMatch(/http_requests_total\{method="GET",route="\/api\/v1\/customers",status="200"\} [1-9]/);
    expect(text).toMatch(/http_requests_total\{method="GET",route="\/api\/v1\/customers\/:id",status="404"\} [1-9]/);
    expect(text).toMatch(/http_request_duration_seconds_bucket\{le="0.5",method="GET",route="\/api\/v1\/customers"\} [1-9]/);
    expect(text).toMatch(/http_not_modified_total\{route="\/api\/v1\/probe-not-modified"\} 1/);
    expect(text).toMatch(/authorization_denials_total\{source="database",code="FORBIDDEN"\} 1/);
    expect(text).toMatch(/authorization_denials_total\{source="http",code="TENANT_SUSPENDED"\} 1/);
    expect(text).toMatch(/db_pool_connections_in_use 0/);
    expect(text).not.toContain("00000000-0000-4000-8000-000000000000");
  });

  it("reports the connections leased from the pool at the moment it is scraped", async () => {
    const pool = createPool({ url: db.appUrl, max: 3, connectTimeoutMs: 2000, statementTimeoutMs: 10_000 });
    const previous = useTenantPool(pool);
    const scrape = async () => (await (await fetch(`${base}/metrics`)).text()).match(/^db_pool_connections_in_use (\d+)$/m)?.[1];
    try {
      const leases = [await pool.acquire(), await pool.acquire(), await pool.acquire("export")];
      expect(await scrape()).toBe("3");
      leases[0].release();
      expect(await scrape()).toBe("2");
      leases.slice(1).forEach((l) => l.release());
      expect(await scrape()).toBe("0");
    } finally {
      useTenantPool(previous);
      await pool.end({ timeout: 1 });
    }
  });
});
