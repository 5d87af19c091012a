// Degraded mode: with the database down every API route answers 503 DATABASE_UNAVAILABLE
// fast (about the connect timeout), /healthz stays 200 and /readyz says 503; when the database is back the
// API recovers without a restart. This file starts, stops and restarts its OWN embedded
// PostgreSQL (the shared test database is never stopped).
import { chmod, mkdtemp, rm } from "node:fs/promises";
import type { Server } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import postgres from "postgres";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createApp } from "../server/app.ts";
import { createPool, type Pool } from "../server/db/connections.ts";
import { startEmbedded, type EmbeddedServer } from "../server/setup/embedded.ts";
import { deploy } from "../server/setup/deploy.ts";
import { provisionDatabase } from "../server/setup/provision.ts";
import { useTenantPool } from "../server/db/tenantContext.ts";
import { credentialRing, db, keys, makeCustomers, makeTenant, makeUser, tokenFor, type Tenant, type User } from "./fixtures.ts";
import { routeInventory } from "../server/http/routeInventory.ts";
import { freePort } from "./testDatabase.ts";

const password = "degraded-superuser";
let root: string;
let port: number;
let pg: EmbeddedServer;
let pool: Pool;
let server: Server;
let base: string;
let tenant: Tenant;
let user: User;
let customer: string;
let app: ReturnType<typeof createApp>;

const start = () => startEmbedded({ dir: join(root, "pg"), port, superuserPassword: password });

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), "rls-shop-degraded-"));
  await chmod(root, 0o755);
  port = await freePort();
  pg = await start();
  const urls = await provisionDatabase(pg.superuserUrl, "shop_degraded", { owner: "o-degraded", app: "a-degraded", bi: "b-degraded" });
  await deploy(urls.ownerUrl, { contextKey: db.contextKey });
  const owner = postgres(urls.ownerUrl, { max: 1, onnotice: () => {} });
  try {
    tenant = await makeTenant(owner);
    user = await makeUser(owner, tenant, "owner");
    [customer] = await makeCustomers(owner, tenant, 2);
  } finally {
    await owner.end();
  }
  pool = createPool({ url: urls.appUrl, max: 4, connectTimeoutMs: 500, statementTimeoutMs: 2000 });
  useTenantPool(pool);
  app = createApp({ keys, bodyLimit: "100kb", deployment: { commit_sha: "test", deployed_at: "now" }, credentialKeys: credentialRing });
  server = await new Promise((resolve) => {
    const s = app.listen(0, "127.0.0.1", () => resolve(s));
  });
  base = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
}, 120_000);

afterAll(async () => {
  server?.closeAllConnections();
  await new Promise((resolve) => server?.close(resolve));
  await pool?.end({ timeout: 1 });
  await pg?.stop();
  await rm(root, { recursive: true, force: true });
});

async function call(method: string, path: string, body?: unknown) {
  const started = performance.now();
  const res = await fetch(base + path, {
    method,
    headers: { authorization: `Bearer ${tokenFor(user)}`, "x-tenant-id": tenant.slug, ...(body ? { "content-type": "application/json" } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : undefined, ms: performance.now() - started };
}

/** A body the route's validation accepts, so the request reaches the database. */
function validBody(method: string, path: string): unknown {
  const id = "8d1e5a8c-0000-4000-8000-000000000000";
  if (path.startsWith("/api/v1/members")) return method === "POST" ? { email: "someone@test.test", role: "staff" } : { role: "staff" };
  if (path === "/api/v1/auth/login") return { email: "someone@test.test", password: "a-password" };
  if (path.startsWith("/api/v1/integrations")) return { secret: "degraded-mode-secret" };
  if (path.startsWith("/api/v1/vehicles")) return { customer_id: id };
  if (path === "/api/v1/catalog/change-sets") return { title: "Degraded Mode", items: [] };
  if (path.endsWith("/reject")) return { reason: "degraded mode" };
  if (path.startsWith("/api/v1/catalog/change-sets")) return { title: "Degraded Mode" };
  if (path.endsWith("/lines")) return { description: "Labour", quantity: 1, unit_price_cents: 100 };
  if (path.startsWith("/api/v1/appointments")) return { customer_id: id, starts_at: "2030-01-01T09:00:00Z", ends_at: "2030-01-01T10:00:00Z" };
  if (path.startsWith("/api/v1/invoices")) return { customer_id: id };
  if (path.startsWith("/api/v1/service-operations")) return { service_id: id, internal_code: "DM-1", name: "Degraded Mode", price_cents: 1, duration_minutes: 1 };
  if (path === "/api/v1/platform/features/:feature") return { killed: true, reason: "degraded mode" };
  if (path === "/api/v1/platform/plans/:plan") return { features: { reports: true }, reason: "degraded mode" };
  if (path === "/api/v1/platform/tenants/:tenant") return { plan: "pro", reason: "degraded mode" };
  if (path === "/api/v1/platform/tenants/:tenant/features/:feature") return { enabled: true, reason: "degraded mode" };
  if (path === "/api/v1/platform/rollback") return { to_version: 1, reason: "degraded mode" };
  if (path === "/api/v1/platform/tenants") return { slug: "degraded-mode", name: "Degraded Mode", plan: "basic", owner_email: "someone@test.test" };
  if (path.startsWith("/api/v1/platform/tenants/:tenant/")) return { reason: "degraded mode" };
  if (path === "/api/v1/invitations/accept") return { token: "A".repeat(43), password: "a long enough password" };
  return { name: "Degraded Mode" };
}

/** The query a route needs to reach its database call (a valid one: a 400 would say nothing of degraded mode). */
function queryOf(path: string): string {
  if (path.startsWith("/api/v1/reports/")) return "?from=2030-01-01&to=2030-01-31";
  if (path === "/api/v1/access/explain") return "?user=someone%40test.test&table=customers&action=select";
  return "";
}

/** Every route of the app under /api/v1, read from the router, with a plausible request. */
function apiRequests(): { method: string; path: string; body?: unknown }[] {
  return routeInventory(app)
    .filter((r) => r.path.startsWith("/api/v1/"))
    .map((r) => ({
      method: r.method,
      path: r.path.replace(/:provider/, "stripe").replace(/:feature/, "reports").replace(/:plan/, "basic").replace(/:version/, "1").replace(/:[a-z_]+/gi, customer) + queryOf(r.path),
      body: ["POST", "PUT", "PATCH"].includes(r.method) ? validBody(r.method, r.path) : undefined,
    }));
}

describe("with the database down", () => {
  it("answers 503 DATABASE_UNAVAILABLE on every API route fast (about the connect timeout), keeps /healthz 200, /readyz 503, and recovers without a restart", async () => {
    expect((await call("GET", "/api/v1/customers")).status).toBe(200);
    await pg.stop();

    const requests = apiRequests();
    expect(requests.length).toBeGreaterThanOrEqual(7);
    let slowest = 0;
    for (const r of requests) {
      const res = await call(r.method, r.path, r.body);
      expect(res.status, `${r.method} ${r.path}`).toBe(503);
      expect(res.body.error.code, `${r.method} ${r.path}`).toBe("DATABASE_UNAVAILABLE");
      // Fast: about the 500 ms connect timeout, with room for a busy 2-core machine (postgres.js's own
      // reconnect backoff would hold a request up to 20 s).
      expect(res.ms, `${r.method} ${r.path} took ${Math.round(res.ms)} ms`).toBeLessThan(2500);
      slowest = Math.max(slowest, res.ms);
    }
    console.log(`degraded mode: ${requests.length} API routes answered 503, slowest in ${Math.round(slowest)} ms`);
    expect((await call("GET", "/healthz")).status).toBe(200);
    const ready = await call("GET", "/readyz");
    expect(ready.status).toBe(503);
    expect(ready.body.error.code).toBe("DATABASE_UNAVAILABLE");
    expect(ready.ms).toBeLessThan(2500);

    const metrics = await (await fetch(`${base}/metrics`)).text();
    expect(metrics).toMatch(/http_unavailable_total\{code="DATABASE_UNAVAILABLE"\} [1-9]/);

    pg = await start();
    let recovered = 0;
    for (let i = 0; i < 50 && recovered !== 200; i++) {
      recovered = (await call("GET", "/readyz")).status;
      if (recovered !== 200) await new Promise((r) => setTimeout(r, 200));
    }
    expect(recovered).toBe(200);
    const list = await call("GET", "/api/v1/customers");
    expect(list.status).toBe(200);
    expect(list.body.data).toHaveLength(2);
  });
});
