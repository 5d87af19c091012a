// Reads from a hot standby (issue 38), through the API, against a real streaming replica of the
// test server (test/standby.ts): which server answers a GET (a probe route asks the backend that
// ran it, pg_is_in_recovery() and its port), writes on the primary with their consistency token,
// reads that send the token back while replay is paused, a replica paused past the lag limit, a
// replica frozen and then killed under a read load, and what /readyz and /metrics say of it.
// Each scenario runs its own API (one at a time: the pool and replicas are the process's).
import type express from "express";
import postgres from "postgres";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { requires } from "../server/auth/authorize.ts";
import { ConfigError, loadConfig } from "../server/core/config.ts";
import { withTenant } from "../server/db/tenantContext.ts";
import type { Sql } from "../server/db/connections.ts";
import { formatLsn, positionOfToken } from "../server/db/walPosition.ts";
import { db, makeCustomers, makeTenant, makeUser, ownerSql, startApi, tokenFor, type Api, type Tenant, type User } from "./fixtures.ts";
import { tenantRoutesAt } from "./routeProbes.ts";
import { findForgeryLeaks } from "./contextForgery.ts";
import { findBiLeaks, findLeaks, makeBiLogin, type BiLogin } from "./isolationProbe.ts";
import { toolMismatch } from "./clientTools.ts";
import { waitFor } from "./waits.ts";
import { pgBasebackup, standbyMissingMessage, standbyRequired, startStandby, type Standby } from "./standby.ts";

const available = pgBasebackup() !== undefined;
if (!available && !standbyRequired) console.warn(`test/read-replicas.test.ts skipped: ${standbyMissingMessage}`);
// Installed but older than the server (Debian's 15 against EMBEDDED_PG_MAJOR=18): skipped, saying so,
// whether required or not, as test/standby.test.ts does; REQUIRE_PG_BASEBACKUP asks for the tool, not a newer one.
const tooOld = available ? toolMismatch("pg_basebackup") : undefined;
if (tooOld) console.warn(`test/read-replicas.test.ts skipped: ${tooOld}`);

/**
 * A tenant read that says which server ran it, as a GET and as a POST that only reads (as
 * POST /integrations/{provider}/test does); not in the API document, so asked with fetch.
 */
function probeRoute(app: express.Express): void {
  const routes = tenantRoutesAt(app, "/customers");
  const answer: express.RequestHandler = async (req, res) => {
    const [r] = await withTenant(req, (sql) => sql`select pg_is_in_recovery() as standby, inet_server_port() as port, count(*)::int as customers from app.customers`);
    res.json(r);
  };
  routes.get("/served-by/probe", requires("customers:read"), answer);
  routes.post("/served-by/probe", requires("customers:read", { writes: false }), answer);
}

const tokenShape = /^1\.[0-9a-f]{16}$/;

describe("DATABASE_READ_URLS and READ_REPLICA_MAX_LAG_MS", () => {
  it("unset, no replica and a lag limit of 1 s; set, each URL in order, blanks around commas dropped", () => {
    expect(loadConfig({})).toMatchObject({ databaseReadUrls: [], readReplicaMaxLagMs: 1000 });
    const urls = "postgres://app_user:p%2Cw@10.0.0.12:5432/shop , postgresql://app_user:x@replica-2/shop";
    expect(loadConfig({ DATABASE_READ_URLS: urls, READ_REPLICA_MAX_LAG_MS: "250" })).toMatchObject({
      databaseReadUrls: ["postgres://app_user:p%2Cw@10.0.0.12:5432/shop", "postgresql://app_user:x@replica-2/shop"], readReplicaMaxLagMs: 250,
    });
  });

  it("refuses at boot what is not a list of postgres URLs, and a lag limit out of range, naming the key", () => {
    for (const bad of ["mysql://x/y", "postgres://a/b,,postgres://c/d", "postgres://a/b,", " "]) {
      expect(() => loadConfig({ DATABASE_READ_URLS: bad }), bad).toThrow(ConfigError);
      expect(() => loadConfig({ DATABASE_READ_URLS: bad }), bad).toThrow(/DATABASE_READ_URLS/);
    }
    expect(() => loadConfig({ READ_REPLICA_MAX_LAG_MS: "5" })).toThrow(/READ_REPLICA_MAX_LAG_MS/);
  });
});

describe.skipIf((!available && !standbyRequired) || tooOld !== undefined)("reads from a hot standby", () => {
  let standby: Standby;
  let owner: Sql;
  let shop: Tenant;
  let boss: User;
  let admin: User;
  let ids: string[];
  let api: Api | undefined;

  beforeAll(async () => {
    if (!available) throw new Error(`REQUIRE_PG_BASEBACKUP=1 but ${standbyMissingMessage}`);
    owner = ownerSql();
    shop = await makeTenant(owner, { prefix: "replica" });
    boss = await makeUser(owner, shop, "owner");
    admin = await makeUser(owner);
    await owner`update app.users set is_platform_admin = true where id = ${admin.id}`;
    ids = await makeCustomers(owner, shop, 3);
    standby = await startStandby(db.superuserUrl);
    await standby.caughtUp();
  }, 120_000);

  afterAll(async () => {
    await api?.close();
    await owner?.end({ timeout: 5 });
    await standby?.stop();
  });

  const auth = () => ({ authorization: `Bearer ${tokenFor(boss)}`, "x-tenant-id": shop.slug });
  const replicaName = () => `127.0.0.1:${standby.port}`;

  async function servedBy(headers: Record<string, string> = {}): Promise<{ standby: boolean; port: number; customers: number }> {
    const res = await fetch(`${api!.url}/api/v1/customers/served-by/probe`, { headers: { ...auth(), ...headers } });
    expect(res.status).toBe(200);
    return (await res.json()) as { standby: boolean; port: number; customers: number };
  }

  /** Waits, polling /readyz, until the replica is in `state`. */
  async function replicaIs(state: string, timeoutMs = 30_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    let seen: unknown;
    while (Date.now() < deadline) {
      const r = await api!.request("GET", "/readyz");
      expect(r.status).toBe(200);
      seen = r.body.replicas;
      if (r.body.replicas?.[0]?.state === state) return;
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
    throw new Error(`the replica did not become ${state} within ${timeoutMs} ms: /readyz said ${JSON.stringify(seen)}`);
  }

  const metrics = async () => (await fetch(`${api!.url}/metrics`)).text();
  const create = (name: string, headers: Record<string, string> = {}) => api!.request("POST", "/api/v1/customers", { token: tokenFor(boss), tenant: shop.slug, body: { name }, headers });
  const read = (id: string, headers: Record<string, string> = {}) => api!.request("GET", `/api/v1/customers/${id}`, { token: tokenFor(boss), tenant: shop.slug, headers });

  async function useApiWith(options: Parameters<typeof startApi>[0]): Promise<void> {
    await api?.close();
    api = await startApi({ readUrls: [standby.url(db.appUrl)], probeRoutes: probeRoute, ...options });
    await replicaIs("ok");
  }

  describe("routing (lag limit 60 s, so a paused replica stays in use)", () => {
    beforeAll(() => useApiWith({ replicaMaxLagMs: 60_000 }));

    it("answers GETs from the standby and writes on the primary, with a consistency token", async () => {
      for (let i = 0; i < 5; i++) expect(await servedBy()).toMatchObject({ standby: true, port: standby.port, customers: 3 });
      // Only GETs read from replicas: a POST that only reads acts on what its client just wrote.
      const post = await fetch(`${api!.url}/api/v1/customers/served-by/probe`, { method: "POST", headers: auth() });
      expect(post.status).toBe(200);
      expect(await post.json()).toMatchObject({ standby: false });
      expect(post.headers.get("x-consistency-token")).toBeNull();
      expect((await read(ids[0])).status).toBe(200);
      const created = await create("written on the primary");
      expect(created.status).toBe(201);
      const token = created.headers.get("x-consistency-token");
      expect(token).toMatch(tokenShape);
      // The token names a position the primary has reached, at or past this write's commit.
      const [{ reached }] = await owner`select pg_current_wal_insert_lsn() >= ${positionOf(token!)}::pg_lsn as reached`;
      expect(reached).toBe(true);
      const [row] = await owner`select name from app.customers where id = ${created.body.id}`;
      expect(row.name).toBe("written on the primary");
    });

    it("reads its own write with the token while replay is paused; without it the paused replica answers from before the write", async () => {
      await standby.pauseReplay();
      try {
        const created = await create("read your writes");
        expect(created.status).toBe(201);
        const token = created.headers.get("x-consistency-token")!;
        const mine = await read(created.body.id, { "x-consistency-token": token });
        expect(mine.status).toBe(200);
        expect(mine.body.name).toBe("read your writes");
        expect(await servedBy({ "x-consistency-token": token })).toMatchObject({ standby: false });
        // Without the token a replica within the lag limit may serve data from before the client's
        // own write: here it does (replay is paused), which is what the token is for.
        expect((await read(created.body.id)).status).toBe(404);
        expect(await servedBy()).toMatchObject({ standby: true });
        expect(await metrics()).toMatch(new RegExp(`db_replica_skipped_total\\{replica="${replicaName()}",reason="behind_token"\\} [1-9]`));
      } finally {
        await standby.resumeReplay();
      }
      // Replayed, the token no longer keeps reads on the primary.
      const created = await create("replayed");
      const token = created.headers.get("x-consistency-token")!;
      await standby.replayed(positionOf(token));
      await api!.replicas!.poll();
      expect(await servedBy({ "x-consistency-token": token })).toMatchObject({ standby: true });
      expect((await read(created.body.id, { "x-consistency-token": token })).body.name).toBe("replayed");
    });

    it("a route that documents it needs the primary reads there: a revoked platform admin is refused at once", async () => {
      await standby.caughtUp();
      await api!.replicas!.poll();
      expect((await api!.request("GET", "/ops/current-commit", { token: tokenFor(admin) })).status).toBe(200);
      await standby.pauseReplay();
      try {
        await owner`update app.users set is_platform_admin = false where id = ${admin.id}`;
        // The replica has not replayed the change (GET /me reads there)...
        expect((await api!.request("GET", "/api/v1/me", { token: tokenFor(admin) })).body.is_platform_admin).toBe(true);
        // ...and the ops routes' admin check reads the primary (their x-consistency says so).
        const refused = await api!.request("GET", "/ops/current-commit", { token: tokenFor(admin) });
        expect(refused.status).toBe(403);
        expect(refused.body.error.code).toBe("PLATFORM_ADMIN_REQUIRED");
      } finally {
        await standby.resumeReplay();
      }
    });

    it("an idempotent replay answers a token too, at or after the first answer's", async () => {
      const key = { "idempotency-key": `replica-${Date.now()}` };
      const first = await create("replayed once", key);
      const again = await create("replayed once", key);
      expect(again.headers.get("idempotent-replayed")).toBe("true");
      expect(again.body.id).toBe(first.body.id);
      const [a, b] = [first, again].map((r) => positionOfToken(r.headers.get("x-consistency-token")!)!);
      expect(b >= a).toBe(true);
    });

    it("refuses a malformed token with 400 INVALID_CONSISTENCY_TOKEN, on reads and writes", async () => {
      const good = (await create("token source")).headers.get("x-consistency-token")!;
      // Upper-case hex is not a token this API writes (a WAL position without a-f upper-cases to
      // itself, so the case is spelled out); two headers reach the API joined by a comma: refused as well.
      for (const bad of ["nope", "1.ABCDEF0123456789", `${good}0`, good.slice(0, -1), `${good}, ${good}`, `2${good.slice(1)}`, "1.-123456789abcdef"]) {
        const r = await read(ids[0], { "x-consistency-token": bad });
        expect(r.status, bad).toBe(400);
        expect(r.body.error.code).toBe("INVALID_CONSISTENCY_TOKEN");
      }
      expect((await create("bad token", { "x-consistency-token": "nope" })).status).toBe(400);
      expect((await create("good token", { "x-consistency-token": good })).status).toBe(201);
    });

    it("/readyz lists the replica's state and /metrics counts reads by target", async () => {
      await servedBy();
      const r = await api!.request("GET", "/readyz");
      expect(r.status).toBe(200);
      expect(r.body.replicas).toEqual([{ name: replicaName(), state: "ok", lag_seconds: expect.any(Number) }]);
      const text = await metrics();
      expect(text).toMatch(new RegExp(`db_reads_total\\{target="${replicaName()}"\\} [1-9]`));
      expect(text).toMatch(/db_reads_total\{target="primary"\} [1-9]/);
      expect(text).toMatch(new RegExp(`db_replica_lag_seconds\\{replica="${replicaName()}"\\} \\d`));
      expect(text).toMatch(new RegExp(`db_replica_usable\\{replica="${replicaName()}"\\} 1`));
    });
  });

  describe("lag (limit 500 ms)", () => {
    beforeAll(() => useApiWith({ replicaMaxLagMs: 500 }));

    it("replay paused past the limit: reads move to the primary; resumed: they come back", async () => {
      expect(await servedBy()).toMatchObject({ standby: true });
      await standby.pauseReplay();
      try {
        // WAL the paused standby does not replay: the primary moves on without it.
        await owner`insert into app.customers (tenant_id, name) values (${shop.id}, 'while paused')`;
        await replicaIs("lagging");
        expect(await servedBy()).toMatchObject({ standby: false });
        expect(await metrics()).toMatch(new RegExp(`db_replica_skipped_total\\{replica="${replicaName()}",reason="lag"\\} [1-9]`));
        expect(await metrics()).toMatch(new RegExp(`db_replica_usable\\{replica="${replicaName()}"\\} 0`));
      } finally {
        await standby.resumeReplay();
      }
      await replicaIs("ok");
      expect(await servedBy()).toMatchObject({ standby: true });
    });

    it("an idle primary does not make the replica look behind", async () => {
      // Nothing this test does writes; the replica stays ok over more than the limit (other test
      // files may write meanwhile: it then replays them, as a streaming standby does).
      await replicaIs("ok");
      const until = Date.now() + 1500;
      while (Date.now() < until) {
        const r = await api!.request("GET", "/readyz");
        expect(r.body.replicas[0].lag_seconds).toBeLessThan(0.5);
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    });
  });

  // The same probes the primary's suites run (test/sql-isolation, test/context-proof), pointed at
  // the standby: what it serves is the primary's data under the primary's policies, replayed, and a
  // hole there would be a hole in every replica read.
  describe("isolation on the standby", () => {
    let other: Tenant;
    let login: BiLogin | undefined;
    let bi: postgres.Sql | undefined;

    beforeAll(async () => {
      other = await makeTenant(owner, { prefix: "replica-b" });
      await makeCustomers(owner, other, 2);
      for (const t of [shop, other]) {
        const [c] = await owner`select id from app.customers where tenant_id = ${t.id} limit 1`;
        await owner`insert into app.invoices (tenant_id, customer_id) values (${t.id}, ${c.id})`;
      }
      login = await makeBiLogin(db.superuserUrl, owner as unknown as postgres.Sql, shop.id, "bi_replica");
      await standby.caughtUp();
      bi = login.connect(standby.url(db.biUrl));
    });

    afterAll(async () => {
      await login?.drop();
    });

    it("is a standby, and app_user sees no row across tenants there, with or without a context", async () => {
      const [r] = await bi!`select pg_is_in_recovery() as standby`;
      expect(r.standby).toBe(true);
      expect(await findLeaks(standby.url(db.appUrl), standby.url(db.ownerUrl), [shop.id, other.id])).toEqual([]);
    });

    it("no forged context reads or writes a row there", async () => {
      expect(await findForgeryLeaks(db.appUrl, db.ownerUrl, { userId: boss.id, tenantId: shop.id }, standby.url(db.appUrl))).toEqual([]);
    });

    it("a BI login reads only its granted tenant's views there, whatever it sets, and no table", async () => {
      const [totals] = await bi!`select count(*)::int as n from app.invoice_totals where tenant_id = ${shop.id}`;
      expect(totals.n).toBeGreaterThan(0);
      expect(await findBiLeaks(bi!, owner as unknown as postgres.Sql, shop.id, other.id)).toEqual([]);
      await expect(bi!`select * from app.customers`).rejects.toMatchObject({ code: "42501" });
    });
  });

  // Pools of 4 under 8 readers: when the replica stops answering, half the reads hang on its
  // connections and the other half wait for one of them, until the acquire timeout.
  describe("failure (acquire timeout 1 s: polls at most 0.5 s apart, each answered within 0.5 s; pools of 4, 8 readers)", () => {
    beforeAll(() => useApiWith({ replicaMaxLagMs: 60_000, acquireTimeoutMs: 1000, replicaAnswerWithinMs: 1000, poolMax: 4 }));

    /**
     * Reads by id from `clients` loops until `stop()` says so, recording each status and time; `during`
     * runs once the replica has served `warm` of them.
     */
    async function underLoad(during: () => Promise<void>, after: number): Promise<{ statuses: Record<number, number>; slowestMs: number }> {
      const statuses: Record<number, number> = {};
      let slowestMs = 0;
      let answeredAfter = -1;
      const loop = async (c: number) => {
        for (let i = c; answeredAfter < after; i++) {
          const started = performance.now();
          const r = await read(ids[i % ids.length]);
          slowestMs = Math.max(slowestMs, performance.now() - started);
          statuses[r.status] = (statuses[r.status] ?? 0) + 1;
          if (answeredAfter >= 0) answeredAfter++;
        }
      };
      const served = () => api!.replicas!.report().replicas[0].served;
      const start = served();
      const loops = Array.from({ length: 8 }, (_, c) => loop(c));
      const event = (async () => {
        while (served() < start + 50) await new Promise((resolve) => setTimeout(resolve, 10));
        await during();
        answeredAfter = 0;
      })();
      await Promise.all([...loops, event]);
      return { statuses, slowestMs };
    }

    it("a replica that stops answering (SIGSTOP) under a read load: no 5xx, reads move to the primary within the acquire timeout", async () => {
      try {
        // Frozen just after a poll found it well, the worst moment: a read caught there waits for
        // the next poll (half the acquire timeout away) to give up on it (after the other half) and
        // end its connections; then the primary answers. Without that it would wait for the TCP
        // connection to die; with a poll a full interval away and the whole timeout to answer it
        // waited about 2 s. The bound leaves 0.8 s for a loaded machine.
        const { statuses, slowestMs } = await underLoad(async () => {
          const polls = api!.replicas!.report().polls;
          await waitFor(() => api!.replicas!.report().polls > polls, { what: "a poll of the replicas", timeoutMs: 5000, intervalMs: 1 });
          standby.freeze();
        }, 300);
        expect(statuses).toEqual({ 200: expect.any(Number) });
        expect(slowestMs).toBeLessThan(1000 + 800);
        expect(await servedBy()).toMatchObject({ standby: false });
        const r = await api!.request("GET", "/readyz");
        expect(r.status).toBe(200);
        expect(r.body.replicas[0].state).toBe("unreachable");
      } finally {
        standby.thaw();
      }
      await replicaIs("ok");
      expect(await servedBy()).toMatchObject({ standby: true });
    });

    it("the standby killed under a read load: no 5xx, reads continue from the primary", async () => {
      const { statuses, slowestMs } = await underLoad(() => standby.kill(), 300);
      expect(statuses).toEqual({ 200: expect.any(Number) });
      // A killed server closes its connections: the reads on it move at once (measured: about 0.2 s).
      expect(slowestMs).toBeLessThan(1000);
      expect(await servedBy()).toMatchObject({ standby: false });
      const r = await api!.request("GET", "/readyz");
      expect(r.status).toBe(200);
      expect(r.body.replicas[0]).toMatchObject({ state: "unreachable", lag_seconds: null });
    });
  });
});

/** A token's position as pg_lsn text. */
const positionOf = (token: string) => formatLsn(positionOfToken(token)!);
