// CONTEXT_KEY rotates with no refused request (issue 33): the database accepts proofs under the
// old and the new key while the instances roll over (a proof names its key id), then the old key
// is retired. Under a load of 16 clients: instance A runs with the old key, the deploy runs with
// the new one (`npm run cli -- deploy`, which adds its key beside the installed ones: one that
// replaced them would refuse A's requests from then on), instance B starts with it in production
// (app_user's URL only, no owner credentials), the load moves to B, A stops, the new key is
// promoted and the old one retired.
import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { contextKeyId } from "../server/db/contextProof.ts";
import type { Sql } from "../server/db/connections.ts";
import postgres from "postgres";
import { callOpener, db, guardOn, makeCustomers, makeTenant, makeUser, proofFor, startApi, tokenFor, type Api, type Tenant, type User } from "./fixtures.ts";
import { startInstance, stopInstance } from "./instances.ts";
import { createGolden, run, type Scratch } from "./scratch.ts";

// A database of its own: the rotation retires the suite's key, which the files running beside
// this one must keep.
let scratch: Scratch;
let owner: Sql;
let app: Sql;
let shop: Tenant;
let boss: User;
let ids: string[];
let a: Api;

beforeAll(async () => {
  scratch = await createGolden("rotate");
  owner = postgres(scratch.ownerUrl, { max: 2, onnotice: () => {} }) as unknown as Sql;
  app = postgres(scratch.appUrl, { max: 2, onnotice: () => {} }) as unknown as Sql;
  shop = await makeTenant(owner, { prefix: "rotate" });
  boss = await makeUser(owner, shop, "owner");
  ids = await makeCustomers(owner, shop, 20);
  a = await startApi({ databaseUrl: scratch.appUrl });
}, 60_000);

afterAll(async () => {
  await a?.close();
  await app?.end({ timeout: 5 });
  await owner?.end({ timeout: 5 });
  await scratch?.drop();
});

describe("CONTEXT_KEY rotation", () => {
  it("rolls from the old key to the new one under a load of 16 clients with no refused request", async () => {
    const next = randomBytes(32).toString("hex");
    let target = a.url;
    let running = true;
    const outcomes: Record<string, number> = {};
    const token = tokenFor(boss);
    const load = Array.from({ length: 16 }, async (_, client) => {
      for (let i = 0; running; i++) {
        const write = (client + i) % 4 === 0;
        const res = await fetch(`${target}/api/v1/customers${write ? "" : `/${ids[(client + i) % ids.length]}`}`, {
          method: write ? "POST" : "GET",
          headers: { authorization: `Bearer ${token}`, "x-tenant-id": shop.slug, "content-type": "application/json" },
          body: write ? JSON.stringify({ name: `rotated ${client}-${i}` }) : undefined,
        });
        const body = res.status >= 400 ? ((await res.json()) as { error: { code: string } }).error.code : (await res.arrayBuffer(), "");
        const key = `${res.status}${body ? ` ${body}` : ""}`;
        outcomes[key] = (outcomes[key] ?? 0) + 1;
      }
    });
    const refusals = () => Object.entries(outcomes).filter(([k]) => !/^20[01]$/.test(k));
    const served = async (n: number) => {
      const start = Object.values(outcomes).reduce((x, y) => x + y, 0);
      while (Object.values(outcomes).reduce((x, y) => x + y, 0) < start + n) await new Promise((r) => setTimeout(r, 20));
    };
    let deployed = { code: -1, output: "" };
    try {
      await served(200);
      // The release's deploy, as an operator runs it, with the next key: nothing else to do, so
      // it only adds the key. A keeps serving on the old key meanwhile and after.
      deployed = await run("node_modules/.bin/tsx", ["server/cli.ts", "deploy"], { DATABASE_OWNER_URL: scratch.ownerUrl, CONTEXT_KEY: next });
      await served(200);
      expect(refusals(), `A's requests after the deploy: ${JSON.stringify(outcomes)}`).toEqual([]);
      const b = await startInstance({
        NODE_ENV: "production", DATABASE_URL: scratch.appUrl, CONTEXT_KEY: next, JWT_SECRET: db.jwtSecret, JWT_ISSUER: "rls-service-shop", DB_POOL_MAX: "8",
      });
      try {
        await served(200);
        target = b.url;
        await served(200);
        await a.close();
        await owner`select app.promote_context_key(${contextKeyId(next)})`;
        await owner`select app.retire_context_key(${contextKeyId(db.contextKey)})`;
        await served(300);
        expect((await fetch(`${b.url}/readyz`)).status).toBe(200);
      } finally {
        running = false;
        await Promise.all(load);
        await stopInstance(b);
      }
    } finally {
      running = false;
      await Promise.allSettled(load);
    }
    expect(refusals(), JSON.stringify(outcomes)).toEqual([]);
    expect(deployed.output).toContain("context key: added");
    expect(deployed.code).toBe(0);
    // And the retired key opens nothing any more.
    await expect(app.begin(async (tx) => {
      const args = { userId: boss.id, tenantRefs: [shop.slug], permission: "customers:read" };
      return callOpener(tx as unknown as Sql, args, proofFor(args, await guardOn(tx as unknown as Sql, false)));
    })).rejects.toMatchObject({ code: "TN401" });
  }, 120_000);
});
