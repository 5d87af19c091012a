// CONTEXT_KEY rotates with no refused request (issue 33): the database accepts proofs under the
// old and the new key while the instances roll over (a proof names its key id), then the old key
// is retired. Under a load of 16 clients: instance A runs with the old key, the new one is added,
// instance B starts with it (a production start adds its key beside the others), the load moves
// to B, A stops, the new key is promoted and the old one retired.
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { contextKeyId } from "../server/db/contextProof.ts";
import type { Sql } from "../server/db/connections.ts";
import postgres from "postgres";
import { callOpener, db, guardOn, makeCustomers, makeTenant, makeUser, proofFor, startApi, tokenFor, type Api, type Tenant, type User } from "./fixtures.ts";
import { createGolden, type Scratch } from "./scratch.ts";

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

/** An API process in production mode with its own CONTEXT_KEY; resolves with its URL once it listens. */
async function startProcess(contextKey: string) {
  const child = spawn(process.execPath, ["--import", "tsx", "server/main.ts"], {
    env: {
      ...process.env, NODE_ENV: "production", PORT: "0", HOST: "127.0.0.1", LOG_LEVEL: "info", DB_POOL_MAX: "8",
      DATABASE_URL: scratch.appUrl, DATABASE_OWNER_URL: scratch.ownerUrl, JWT_SECRET: db.jwtSecret, CONTEXT_KEY: contextKey, JWT_ISSUER: "rls-service-shop",
      // Production refuses to start without a credentials key ring (issue 33).
      CREDENTIALS_KEYS: `*ctx-test=${"cd".repeat(32)}`,
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  child.stdout!.on("data", (c) => (out += c));
  child.stderr!.on("data", (c) => (out += c));
  const exited = new Promise<number | null>((resolve) => child.on("exit", resolve));
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setInterval(() => {
      const m = /"port":(\d+),"embedded":false[^\n]*"msg":"API listening"/.exec(out);
      if (m) {
        clearInterval(timer);
        resolve(`http://127.0.0.1:${m[1]}`);
      }
    }, 50);
    void exited.then((code) => (clearInterval(timer), reject(new Error(`the second instance exited (${code}):\n${out}`))));
  });
  return { url, stop: async () => (child.kill("SIGTERM"), await exited) };
}

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
    const served = async (n: number) => {
      const start = Object.values(outcomes).reduce((x, y) => x + y, 0);
      while (Object.values(outcomes).reduce((x, y) => x + y, 0) < start + n) await new Promise((r) => setTimeout(r, 20));
    };
    try {
      await served(200);
      await owner`select app.add_context_key(decode(${next}, 'hex'))`;
      const b = await startProcess(next);
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
        await b.stop();
      }
    } finally {
      running = false;
    }
    const refused = Object.entries(outcomes).filter(([k]) => !/^20[01]$/.test(k));
    expect(refused, JSON.stringify(outcomes)).toEqual([]);
    // And the retired key opens nothing any more.
    await expect(app.begin(async (tx) => {
      const args = { userId: boss.id, tenantRefs: [shop.slug], permission: "customers:read" };
      return callOpener(tx as unknown as Sql, args, proofFor(args, await guardOn(tx as unknown as Sql, false)));
    })).rejects.toMatchObject({ code: "TN401" });
  }, 120_000);
});
