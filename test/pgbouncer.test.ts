// The API's pool through a real PgBouncer in transaction mode, with a stock configuration (no
// ignore_startup_parameters): DB_PREPARE=false and timeouts set per transaction, never as
// startup parameters. 10,000 requests from 32 concurrent clients over three tenants, reads and
// writes mixed, every answer checked: no 5xx, no row of another tenant. PgBouncer is not an npm
// package: without it installed, this file is skipped with a message (.ci/run installs it).
import postgres from "postgres";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Sql } from "../server/db/connections.ts";
import { db, makeCustomers, makeTenant, makeUser, ownerSql, startApi, tokenFor, type Api, type Tenant, type User } from "./fixtures.ts";
import { skipWithoutPgbouncer, startPgbouncer, type Bouncer } from "./pgbouncer.ts";

const REQUESTS = 10_000;
const CLIENTS = 32;

let bouncer: Bouncer;
let bouncerUrl: string;
let owner: Sql;
let api: Api;
type Shop = { tenant: Tenant; users: User[]; ids: string[] };
const shops: Shop[] = [];

describe.skipIf(skipWithoutPgbouncer("test/pgbouncer.test.ts"))("the API behind PgBouncer 1.18 in transaction mode", () => {
  beforeAll(async () => {
    const app = new URL(db.appUrl);
    bouncer = await startPgbouncer(db.appUrl, `"${decodeURIComponent(app.username)}" "${decodeURIComponent(app.password)}"\n`);
    bouncerUrl = bouncer.url;

    owner = ownerSql();
    for (let i = 0; i < 3; i++) {
      const tenant = await makeTenant(owner, { prefix: `pgb${i}` });
      const users = [await makeUser(owner, tenant, "owner"), await makeUser(owner, tenant, "staff")];
      shops.push({ tenant, users, ids: await makeCustomers(owner, tenant, 20) });
    }
    api = await startApi({ databaseUrl: bouncerUrl, prepare: false, poolMax: CLIENTS, maxSockets: CLIENTS, acquireTimeoutMs: 5000, readGuard: "nonce" });
  }, 60_000);

  afterAll(async () => {
    await api?.close();
    await owner?.end();
    await bouncer?.stop();
  });

  it("is a stock configuration: it refuses a timeout sent as a startup parameter", async () => {
    const startupTimeout = postgres(bouncerUrl, { max: 1, connection: { statement_timeout: 1000 }, onnotice: () => {} });
    try {
      await expect(startupTimeout`select 1`).rejects.toThrow(/unsupported startup parameter: statement_timeout/);
    } finally {
      await startupTimeout.end({ timeout: 1 });
    }
  });

  /** Sends `requests` mixed requests from CLIENTS clients; returns what was not right. */
  async function mixedLoad(target: Api, requests: number): Promise<{ ok: number; problems: string[]; seconds: number }> {
    const pick = <T>(xs: T[]): T => xs[Math.floor(Math.random() * xs.length)];
    let sent = 0;
    let ok = 0;
    const problems: string[] = [];
    const one = async (i: number): Promise<string> => {
      const shop = pick(shops);
      const other = pick(shops.filter((s) => s !== shop));
      const token = tokenFor(pick(shop.users));
      const mine = (c: { name: string }) => c.name.startsWith(`${shop.tenant.slug} `);
      switch (i % 5) {
        case 0: {
          const res = await target.request("GET", "/api/v1/customers?limit=200", { token, tenant: shop.tenant.slug });
          if (res.status !== 200) return `list ${res.status} ${res.body?.error?.code}`;
          const foreign = res.body.data.filter((c: { name: string }) => !mine(c));
          return foreign.length > 0 || res.body.data.length < shop.ids.length ? `list: ${foreign.length} foreign of ${res.body.data.length}` : "ok";
        }
        case 1: {
          const id = pick(shop.ids);
          const res = await target.request("GET", `/api/v1/customers/${id}`, { token, tenant: shop.tenant.id });
          return res.status === 200 && res.body.id === id && mine(res.body) ? "ok" : `own id ${res.status} ${res.body?.error?.code}`;
        }
        case 2: {
          const res = await target.request("GET", `/api/v1/customers/${pick(other.ids)}`, { token, tenant: shop.tenant.slug });
          return res.status === 404 && res.body.error.code === "CUSTOMER_NOT_FOUND" ? "ok" : `foreign id answered ${res.status} ${res.body?.error?.code}`;
        }
        case 3: {
          const res = await target.request("GET", "/api/v1/customers?limit=5", { token, tenant: other.tenant.slug });
          return res.status === 404 && res.body.error.code === "TENANT_NOT_FOUND" ? "ok" : `foreign tenant answered ${res.status} ${res.body?.error?.code}`;
        }
        default: {
          const owner = shop.users[0];
          const name = `${shop.tenant.slug} created ${i}`;
          const res = await target.request("POST", "/api/v1/customers", { token: tokenFor(owner), tenant: shop.tenant.slug, body: { name } });
          return res.status === 201 && res.body.name === name ? "ok" : `create ${res.status} ${res.body?.error?.code}`;
        }
      }
    };
    const started = performance.now();
    await Promise.all(Array.from({ length: CLIENTS }, async () => {
      while (sent < requests) {
        const outcome = await one(sent++);
        if (outcome === "ok") ok++;
        else problems.push(outcome);
      }
    }));
    return { ok, problems, seconds: (performance.now() - started) / 1000 };
  }

  it(`answers ${REQUESTS.toLocaleString("en")} mixed-tenant requests from ${CLIENTS} clients, every one right (reads guarded by a recorded nonce)`, async () => {
    const { ok, problems, seconds } = await mixedLoad(api, REQUESTS);
    console.log(`pgbouncer (CONTEXT_READ_GUARD=nonce): ${REQUESTS} requests from ${CLIENTS} clients in ${seconds.toFixed(1)} s, ${ok} right, ${problems.length} wrong`);
    expect(problems.slice(0, 20)).toEqual([]);
    expect(ok).toBe(REQUESTS);

    // Every created row is in its own tenant: counted as the owner, by name prefix.
    const rows = await owner`
      select t.slug, count(*) filter (where c.name not like t.slug || ' %')::int as foreign_rows
        from app.customers c join app.tenants t on t.id = c.tenant_id
       where t.id in ${owner(shops.map((s) => s.tenant.id))}
       group by t.slug`;
    expect(rows.map((r) => r.foreign_rows)).toEqual([0, 0, 0]);
  }, 300_000);

  it("with reads guarded by their expiry alone, every answer is right too", async () => {
    const expiry = await startApi({ databaseUrl: bouncerUrl, prepare: false, poolMax: CLIENTS, maxSockets: CLIENTS, acquireTimeoutMs: 5000, readGuard: "expiry" });
    try {
      const { ok, problems } = await mixedLoad(expiry, 2000);
      expect(problems.slice(0, 20)).toEqual([]);
      expect(ok).toBe(2000);
    } finally {
      await expiry.close();
    }
  }, 120_000);

  it("reads bound to their connection (the direct-connection default) fail closed behind it: refused, never another's rows", async () => {
    const misconfigured = await startApi({ databaseUrl: bouncerUrl, prepare: false, poolMax: CLIENTS, maxSockets: CLIENTS, acquireTimeoutMs: 5000, readGuard: "connection" });
    try {
      const { problems } = await mixedLoad(misconfigured, 1000);
      // A read whose proof names another server connection is refused (503 CONTEXT_PROOF_REFUSED,
      // after a rebind and retry); nothing else goes wrong.
      expect(problems.filter((p) => !/ 503 CONTEXT_PROOF_REFUSED$/.test(p))).toEqual([]);
    } finally {
      await misconfigured.close();
    }
  }, 120_000);
});
