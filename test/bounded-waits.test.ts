// Every wait is bounded, and past the bound the answer is an immediate 503 with Retry-After:
// taking a connection (DATABASE_BUSY after DB_ACQUIRE_TIMEOUT_MS), queueing for one (OVERLOADED
// past DB_POOL_QUEUE_MAX waiting), exports (their own DB_EXPORT_POOL_MAX connections, so slow
// export readers cannot starve ordinary requests: EXPORTS_BUSY), a statement and an idle
// transaction (server-side timeouts set per transaction and on the role, not at connect).
import type { Server } from "node:http";
import { request as httpRequest, type ClientRequest } from "node:http";
import postgres from "postgres";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { createApp } from "../server/app.ts";
import { createPool, type Lease, type Pool, type PoolOptions } from "../server/db/connections.ts";
import type { Request } from "express";
import { attachRequestState } from "../server/core/requestContext.ts";
import { useTenantPool, withTenant } from "../server/db/tenantContext.ts";
import { db, keys, makeCustomers, makeTenant, makeUser, tokenFor, useDatabase, type Tenant, type User } from "./fixtures.ts";
import { waitFor } from "./waits.ts";

// Times are judged against the alternative each bound rules out, with room for a busy 2-core
// machine: a request that did not give up would wait for a held connection released only after the
// assertion, or for an acquire timeout of several seconds; "at once" is well under that.

const { owner } = useDatabase();
let tenant: Tenant;
let user: User;
let pool: Pool | undefined;
let server: Server | undefined;
let base: string;
const held: Lease[] = [];
const exports: ClientRequest[] = [];

beforeAll(async () => {
  tenant = await makeTenant(owner, { prefix: "bounded" });
  user = await makeUser(owner, tenant, "owner");
  // Enough audit rows that an export's CSV outgrows the socket buffers of a reader that stalls.
  await makeCustomers(owner, tenant, 30_000);
}, 60_000);

afterEach(async () => {
  for (const lease of held.splice(0)) lease.release();
  for (const req of exports.splice(0)) req.destroy();
  server?.closeAllConnections();
  await new Promise((resolve) => (server ? server.close(resolve) : resolve(undefined)));
  await pool?.end({ timeout: 2 });
  useTenantPool(undefined);
  server = pool = undefined;
});

async function startApi(options: Partial<PoolOptions>): Promise<void> {
  pool = createPool({ url: db.appUrl, max: 1, connectTimeoutMs: 1000, statementTimeoutMs: 5000, ...options });
  useTenantPool(pool);
  const app = createApp({ keys, bodyLimit: "100kb" });
  server = await new Promise<Server>((resolve) => {
    const s = app.listen(0, "127.0.0.1", () => resolve(s));
  });
  base = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
}

/** A request of the fixture's owner in its tenant, as the middleware leaves it for withTenant. */
function asRequest(): Request {
  const req = { method: "GET", headers: {} } as Request;
  attachRequestState(req, { requestId: "bounded-waits", userId: user.id, tenantRefs: [tenant.slug], permission: { name: "customers:read", forRow: false, writes: false } });
  return req;
}

async function get(path: string) {
  const started = performance.now();
  const res = await fetch(base + path, { headers: { authorization: `Bearer ${tokenFor(user)}`, "x-tenant-id": tenant.slug } });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : undefined, retryAfter: res.headers.get("retry-after"), ms: performance.now() - started };
}

/** An export whose reader takes the first bytes and then stops reading. Resolves once it streams. */
function stalledExport(): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(`${base}/api/v1/audit/export.csv?entity=customers`, { headers: { authorization: `Bearer ${tokenFor(user)}`, "x-tenant-id": tenant.slug } }, (res) => {
      res.once("data", () => (res.pause(), resolve(res.statusCode!)));
    });
    req.on("error", (error: NodeJS.ErrnoException) => (error.code === "ECONNRESET" ? undefined : reject(error)));
    req.end();
    exports.push(req);
  });
}

describe("taking a connection", () => {
  it("waits at most DB_ACQUIRE_TIMEOUT_MS, then answers 503 DATABASE_BUSY with Retry-After", async () => {
    await startApi({ max: 1, acquireTimeoutMs: 300 });
    held.push(await pool!.acquire());
    const res = await get("/api/v1/customers?limit=1");
    expect([res.status, res.body.error.code, res.retryAfter]).toEqual([503, "DATABASE_BUSY", "1"]);
    expect(res.ms).toBeGreaterThanOrEqual(290);
    expect(res.ms).toBeLessThan(3000);
    held.pop()!.release();
    expect((await get("/api/v1/customers?limit=1")).status).toBe(200);
  });

  it("past DB_POOL_QUEUE_MAX waiting requests answers 503 OVERLOADED at once; /healthz and /readyz stay fast", async () => {
    await startApi({ max: 1, maxWaiting: 2, acquireTimeoutMs: 5000 });
    held.push(await pool!.acquire());
    const waiting = [get("/api/v1/customers?limit=1"), get("/api/v1/customers?limit=1")];
    await waitFor(() => pool!.stats().waiting === 2, { what: "two requests waiting for the connection" });
    const shed = await get("/api/v1/customers?limit=1");
    expect([shed.status, shed.body.error.code, shed.retryAfter]).toEqual([503, "OVERLOADED", "1"]);
    // At once: well under the 5 s a queued request would wait.
    expect(shed.ms).toBeLessThan(2500);
    const [healthz, readyz] = [await get("/healthz"), await get("/readyz")];
    expect([healthz.status, readyz.status]).toEqual([200, 200]);
    expect(Math.max(healthz.ms, readyz.ms)).toBeLessThan(2500);
    held.pop()!.release();
    expect((await Promise.all(waiting)).map((r) => r.status)).toEqual([200, 200]);
  });
});

describe("exports", () => {
  it("draw from their own budget: stalled readers fill it (EXPORTS_BUSY) and ordinary requests still pass", async () => {
    await startApi({ max: 1, exportMax: 2, acquireTimeoutMs: 3000 });
    expect(await Promise.all([stalledExport(), stalledExport()])).toEqual([200, 200]);
    const third = await get("/api/v1/audit/export.csv?entity=customers");
    expect([third.status, third.body.error.code, third.retryAfter]).toEqual([503, "EXPORTS_BUSY", "10"]);
    // At once, not after a wait for a connection (3 s); the margin holds on a busy 2-core machine.
    expect(third.ms).toBeLessThan(1500);
    for (let i = 0; i < 5; i++) {
      const list = await get("/api/v1/customers?limit=1");
      expect(list.status).toBe(200);
      expect(list.ms).toBeLessThan(2500);
    }
  }, 30_000);

  it("tell only a caller who may export that they are busy: another tenant's member gets 404, a member without audit:export 403", async () => {
    await startApi({ max: 1, exportMax: 2, acquireTimeoutMs: 500 });
    expect(await Promise.all([stalledExport(), stalledExport()])).toEqual([200, 200]);
    const outsider = await makeUser(owner, await makeTenant(owner, { prefix: "bounded-other" }), "owner");
    const staff = await makeUser(owner, tenant, "staff");
    const as = (who: User) => fetch(`${base}/api/v1/audit/export.csv?entity=customers`, { headers: { authorization: `Bearer ${tokenFor(who)}`, "x-tenant-id": tenant.slug } })
      .then(async (r) => [r.status, ((await r.json()) as { error: { code: string } }).error.code]);
    expect(await as(outsider)).toEqual([404, "TENANT_NOT_FOUND"]);
    expect(await as(staff)).toEqual([403, "FORBIDDEN"]);
    expect(await as(user)).toEqual([503, "EXPORTS_BUSY"]);
  }, 30_000);
});

describe("server-side timeouts", () => {
  it("are set for each request transaction by its context statement, not as startup parameters", async () => {
    await startApi({ statementTimeoutMs: 1234, idleInTransactionTimeoutMs: 2345 });
    const [inside] = await withTenant(asRequest(), (sql) => sql`
      select current_setting('statement_timeout') as s, current_setting('idle_in_transaction_session_timeout') as i`);
    expect([inside.s, inside.i]).toEqual(["1234ms", "2345ms"]);
    // Outside the API's transaction the connection has the role's defaults (policies/role_defaults.sql).
    const lease = await pool!.acquire();
    held.push(lease);
    const [outside] = await lease.sql`select current_setting('statement_timeout') as s, current_setting('idle_in_transaction_session_timeout') as i`;
    expect([outside.s, outside.i]).toEqual(["5s", "10s"]);
  });

  it("cancel a request's statement past DB_STATEMENT_TIMEOUT_MS: 503 DATABASE_TIMEOUT", async () => {
    await startApi({ statementTimeoutMs: 300 });
    const error = await withTenant(asRequest(), (sql) => sql`select pg_sleep(2)`).then(() => undefined, (e: unknown) => e);
    expect(error).toMatchObject({ status: 503, code: "DATABASE_TIMEOUT" });
  });

  it("end a transaction left idle: the connection is closed by the server and the request is not acknowledged", async () => {
    await startApi({ idleInTransactionTimeoutMs: 300 });
    const started = performance.now();
    const error = await withTenant(asRequest(), async (sql) => {
      const [{ pid }] = await sql`select pg_backend_pid() as pid`;
      // Idle in the transaction until the server has ended the session (not a guess of how long that takes).
      await waitFor(async () => (await owner`select 1 from pg_stat_activity where pid = ${pid}`).length === 0, { what: "the server to end the idle session" });
    }).then(() => undefined, (e: unknown) => e);
    expect(error).toMatchObject({ status: 503, code: "DATABASE_UNAVAILABLE" });
    // Ended by the 300 ms timeout, not by the role's 10 s backstop.
    expect(performance.now() - started).toBeLessThan(5000);
  });

  it("hold on the role: any app_user session has its statement cancelled after 5 s (57014)", async () => {
    const app = postgres(db.appUrl, { max: 1, onnotice: () => {} });
    try {
      await expect(app`select pg_sleep(6)`).rejects.toMatchObject({ code: "57014" });
    } finally {
      await app.end();
    }
  }, 15_000);
});
