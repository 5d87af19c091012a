// Production instances (NODE_ENV=production) as an operator rolls them out: they hold app_user's URL,
// CONTEXT_KEY and the JWT key only, and never connect as the owner; any number start at once
// against a deployed database and all serve; one started before the deploy answers 503
// SCHEMA_BEHIND naming the deploy command, and serves once the deploy lands, without a restart;
// and a rolling deploy (load on A, a deploy, B started, traffic moved, A drained) answers no 5xx
// and loses no acknowledged write.
import { randomUUID } from "node:crypto";
import postgres from "postgres";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { deploy } from "../server/setup/deploy.ts";
import { behindRelease, thisRelease } from "../server/setup/release.ts";
import { provisionDatabase } from "../server/setup/provision.ts";
import { db, makeUser, tokenFor, type User } from "./fixtures.ts";
import { connectionCounter, startInstance, stopInstance, type Instance } from "./instances.ts";
import { createGolden, run, runSql, type Golden, type Scratch } from "./scratch.ts";
import { waitFor } from "./waits.ts";

let golden: Golden;
let user: User;

beforeAll(async () => {
  golden = await createGolden("production");
  const owner = postgres(golden.ownerUrl, { max: 1, onnotice: () => {} });
  try {
    user = await makeUser(owner, golden.tenants[0], "owner");
  } finally {
    await owner.end();
  }
});

afterAll(async () => {
  await golden?.drop();
});

/** What a production instance is given: app_user's URL, the context key, the JWT key. Nothing of the owner. */
const productionEnv = (s: { appUrl: string }, extra: Record<string, string> = {}) => ({
  NODE_ENV: "production", DATABASE_URL: s.appUrl, CONTEXT_KEY: db.contextKey, JWT_SECRET: db.jwtSecret, ...extra,
});

const auth = () => ({ authorization: `Bearer ${tokenFor(user)}`, "x-tenant-id": golden.tenants[0].slug });

async function status(url: string, init?: RequestInit): Promise<{ status: number; body: any }> {
  const res = await fetch(url, init);
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : undefined };
}

describe("the production API holds no owner credentials", () => {
  it("three instances started at once against a deployed database all serve, and none connects as the owner (even with DATABASE_OWNER_URL in its environment)", async () =>
    golden.withClone(async (s) => {
      // The owner URL handed to the instances leads to a listener that only counts dials; the real
      // owner's sessions on the database are sampled from pg_stat_activity the whole time.
      const trap = await connectionCounter();
      const su = postgres(db.superuserUrl, { max: 1, onnotice: () => {} });
      let ownerSessions = 0;
      let sampling = true;
      const sampler = (async () => {
        while (sampling) {
          const [{ n }] = await su`select count(*)::int as n from pg_stat_activity where datname = ${s.name} and usename = 'app_owner'`;
          ownerSessions = Math.max(ownerSessions, n);
          await new Promise((r) => setTimeout(r, 10));
        }
      })();
      const instances: Instance[] = [];
      try {
        const env = productionEnv(s, { DATABASE_OWNER_URL: `postgres://app_owner:secret@127.0.0.1:${trap.port}/${s.name}` });
        instances.push(...(await Promise.all([1, 2, 3].map(() => startInstance(env)))));
        for (const instance of instances) {
          expect((await status(`${instance.url}/readyz`)).status, instance.output()).toBe(200);
          const customers = await status(`${instance.url}/api/v1/customers`, { headers: auth() });
          expect(customers.status).toBe(200);
          expect(customers.body.data.length).toBe(3);
          expect(instance.output()).toContain("DATABASE_OWNER_URL is set, and the production API does not use it");
        }
      } finally {
        const codes = await Promise.all(instances.map(stopInstance));
        sampling = false;
        await sampler;
        await su.end();
        await trap.close();
        expect(codes).toEqual(instances.map(() => 0));
      }
      expect(trap.connections(), "connections to DATABASE_OWNER_URL").toBe(0);
      expect(ownerSessions, "owner sessions on the database while the instances started and served").toBe(0);
    }));

  it("an instance started before the deploy answers 503 SCHEMA_BEHIND naming the command, then serves once `npm run cli -- deploy` has run, without a restart", async () => {
    const name = `behind_${randomUUID().slice(0, 8)}`;
    const urls = await provisionDatabase(db.superuserUrl, name, db.passwords);
    let instance: Instance | undefined;
    try {
      instance = await startInstance(productionEnv(urls));
      const ready = await status(`${instance.url}/readyz`);
      expect(ready.status).toBe(503);
      expect(ready.body.error).toMatchObject({ code: "SCHEMA_BEHIND", message: expect.stringContaining("Run the deploy: npm run cli -- deploy") });
      expect(ready.body.error.details.pending_migrations).toEqual(thisRelease().migrations);
      const refused = await status(`${instance.url}/api/v1/customers`, { headers: auth() });
      expect(refused.status).toBe(503);
      expect(refused.body.error.code).toBe("SCHEMA_BEHIND");
      expect(instance.output()).toMatch(/"level":50[^\n]*refusing API requests \(503 SCHEMA_BEHIND\) until it is deployed: run npm run cli -- deploy/);

      const deployed = await run("node_modules/.bin/tsx", ["server/cli.ts", "deploy"], { DATABASE_OWNER_URL: urls.ownerUrl, CONTEXT_KEY: db.contextKey });
      expect(deployed.output).toContain("deploy: done");
      expect(deployed.code).toBe(0);
      // The instance asks again by itself (every 2 s while behind): no /readyz needed to notice.
      await waitFor(() => instance!.output().includes("the database is at this release now; serving"), { timeoutMs: 15_000, what: "the instance to notice the deploy" });
      expect((await status(`${instance.url}/readyz`)).status).toBe(200);
      const me = await status(`${instance.url}/api/v1/customers`, { headers: auth() });
      // The user lives in another database: this one answers for it as for any unknown account.
      expect(me.status).not.toBe(503);
    } finally {
      expect(await stopInstance(instance)).toBe(0);
      await runSql(db.superuserUrl, `drop database if exists ${name} with (force)`);
    }
  });

  it("behind or not: missing migrations and an undeployed policy version are behind; a newer release's deploy after this one's is not", () => {
    const r = { migrations: ["0001_a", "0002_b"], policyVersion: "v2" };
    expect(behindRelease(["0001_a", "0002_b"], ["v2", "v1"], r)).toBeNull();
    expect(behindRelease(["0001_a", "0002_b", "0003_c"], ["v3", "v2", "v1"], r)).toBeNull();
    expect(behindRelease(["0001_a"], ["v2"], r)).toEqual({ pending: ["0002_b"], policies: null });
    expect(behindRelease(["0001_a", "0002_b"], ["v1"], r)).toEqual({ pending: [], policies: { release: "v2", deployed: "v1" } });
    expect(behindRelease([], [], r)).toEqual({ pending: ["0001_a", "0002_b"], policies: { release: "v2", deployed: null } });
  });
});

describe("a rolling deploy", () => {
  it("load on A, a deploy re-applying every policy, B started, traffic moved to B, A drained with requests in flight: no 5xx, no acknowledged write lost", async () =>
    golden.withClone(async (s: Scratch) => {
      const tenant = golden.tenants[0];
      const owner = postgres(s.ownerUrl, { max: 2, onnotice: () => {} });
      const acknowledged: string[] = [];
      const answers: number[] = [];
      const failures: string[] = [];
      const inFlight = new Map<string, number>();
      let target = "";
      let stop = false;
      let a: Instance | undefined;
      let b: Instance | undefined;
      const send = async (url: string, path: string, init: RequestInit) => {
        inFlight.set(url, (inFlight.get(url) ?? 0) + 1);
        try {
          const res = await fetch(`${url}${path}`, { ...init, headers: { ...auth(), "content-type": "application/json", ...init.headers } });
          const body = await res.json().catch(() => undefined);
          answers.push(res.status);
          if (res.status >= 500) failures.push(`${res.status} ${JSON.stringify(body)}`);
          return { status: res.status, body };
        } catch (error) {
          failures.push(`${path}: ${(error as Error).message}`);
          return { status: 0, body: undefined };
        } finally {
          inFlight.set(url, inFlight.get(url)! - 1);
        }
      };
      // Writers through whichever instance the "load balancer" points at (started once it points at one).
      const writers = () => Array.from({ length: 6 }, async (_, w) => {
        for (let i = 0; !stop; i++) {
          const r = await send(target, "/api/v1/customers", { method: "POST", body: JSON.stringify({ name: `rolling ${w}-${i}` }) });
          if (r.status === 201) acknowledged.push(r.body.id);
          if (i % 3 === 0) await send(target, "/api/v1/customers?limit=5", { method: "GET" });
        }
      });
      const ackedAtLeast = (n: number) => waitFor(() => acknowledged.length >= n, { timeoutMs: 30_000, what: `${n} acknowledged writes` });
      const held = await owner.reserve();
      try {
        a = await startInstance(productionEnv(s));
        target = a.url;
        const load = Promise.all(writers());
        await ackedAtLeast(30);

        // The deploy step of the release, while A takes the load.
        const report = await deploy(s.ownerUrl, { contextKey: db.contextKey, reapplyPolicies: true });
        expect(report.policies.applied.length).toBeGreaterThan(10);
        await ackedAtLeast(acknowledged.length + 30);

        b = await startInstance(productionEnv(s));
        await waitFor(async () => (await fetch(`${b!.url}/readyz`)).status === 200, { what: "B to be ready" });

        // Requests A must drain: changes of one customer that wait on its row, held by an operator.
        const [drained] = await owner`select id from app.customers where tenant_id = ${tenant.id} limit 1`;
        await held`begin`;
        await held`select 1 from app.customers where tenant_id = ${tenant.id} and id = ${drained.id} for update`;
        const slow = Array.from({ length: 3 }, (_, i) => send(a!.url, `/api/v1/customers/${drained.id}`, { method: "PATCH", body: JSON.stringify({ notes: `drained ${i}` }) }));
        await waitFor(async () => (await owner`select count(*)::int as n from pg_stat_activity where datname = ${s.name} and usename = 'app_user' and wait_event_type = 'Lock'`)[0].n === 3,
          { what: "A's three changes to wait on the held row" });
        target = b.url; // the load balancer moves new requests to B
        await waitFor(() => (inFlight.get(a!.url) ?? 0) === 3, { what: "A's last short requests to finish" });
        a.child.kill("SIGTERM"); // A drains: the three changes are still in flight
        await waitFor(() => a!.output().includes('"msg":"shutting down"'), { what: "A to begin its shutdown" });
        await held`commit`;
        expect((await Promise.all(slow)).map((r) => r.status)).toEqual([200, 200, 200]);
        expect(await a.exited).toBe(0);

        await ackedAtLeast(acknowledged.length + 30);
        stop = true;
        await load;
      } finally {
        stop = true;
        held.release();
        await stopInstance(a);
        await stopInstance(b);
      }
      try {
        expect(failures, "5xx answers or failed requests").toEqual([]);
        expect(answers.length).toBeGreaterThan(100);
        const stored = await owner`select id from app.customers where id = any (${acknowledged}::uuid[])`;
        expect(stored.length, "acknowledged writes in the database").toBe(acknowledged.length);
      } finally {
        await owner.end();
      }
    }));
});
