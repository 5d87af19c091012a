// `npm start` end to end, as a new user meets it: first start creates the embedded database,
// migrates, applies policies, seeds the demo and serves; SIGTERM drains and stops everything;
// a second start reuses the data without seeding again.
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { chmod, mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import postgres from "postgres";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { clusterDir } from "../server/setup/embedded.ts";
import { DEMO_PASSWORD } from "../server/setup/seed.ts";
import { freePort } from "./testDatabase.ts";
import { startInstance, stopInstance } from "./instances.ts";

let dataDir: string;
let pgPort: number;

type Started = { child: ChildProcess; base: string; output: () => string; exited: Promise<number | null> };

async function start(): Promise<Started> {
  const child = spawn(process.execPath, ["--import", "tsx", "server/main.ts"], {
    env: { ...process.env, NODE_ENV: "development", PORT: "0", DATA_DIR: dataDir, EMBEDDED_PG_PORT: String(pgPort), LOG_LEVEL: "info" },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  child.stdout!.on("data", (c) => (out += c));
  child.stderr!.on("data", (c) => (out += c));
  const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
  const base = await new Promise<string>((resolve, reject) => {
    const timer = setInterval(() => {
      const m = /API ready on (http:\/\/[^\s]+)/.exec(out);
      if (m) {
        clearInterval(timer);
        resolve(m[1]);
      }
    }, 50);
    void exited.then((code) => {
      clearInterval(timer);
      reject(new Error(`npm start exited early (${code}):\n${out}`));
    });
  });
  return { child, base, output: () => out, exited };
}

/** The first output line matching `pattern` (lines are written as they come: wait for it). */
async function waitForLine(started: Started, pattern: RegExp): Promise<string> {
  for (let i = 0; i < 100; i++) {
    const line = started.output().split("\n").find((l) => pattern.test(l));
    if (line) return line;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`no line matching ${pattern} in:\n${started.output()}`);
}

async function login(base: string) {
  const res = await fetch(`${base}/api/v1/auth/login`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ email: "owner@acme.test", password: DEMO_PASSWORD }),
  });
  return (await res.json()).access_token as string;
}

function postmasterRunning(): boolean {
  const pidFile = join(clusterDir(dataDir), "postmaster.pid");
  if (!existsSync(pidFile)) return false;
  try {
    process.kill(Number(readFileSync(pidFile, "utf8").split("\n")[0]), 0);
    return true;
  } catch {
    return false;
  }
}

beforeAll(async () => {
  dataDir = await mkdtemp(join(tmpdir(), "rls-shop-start-"));
  await chmod(dataDir, 0o755);
  pgPort = await freePort();
});

afterAll(async () => {
  await rm(dataDir, { recursive: true, force: true });
});

describe("npm start", () => {
  it("serves the seeded demo on first start and shuts down cleanly on SIGTERM", async () => {
    const first = await start();
    try {
      // The log's lines leave in batches: the seed's may follow the "API ready" banner.
      await waitForLine(first, /demo data seeded/);
      expect(first.output()).toMatch(/curl -s .*\/api\/v1\/customers/);
      const token = await login(first.base);
      const res = await fetch(`${first.base}/api/v1/customers?limit=5&q=Secret`, { headers: { authorization: `Bearer ${token}`, "x-tenant-id": "acme", "x-request-id": "start-test-list" } });
      expect(res.status).toBe(200);
      expect(Array.isArray((await res.json()).data)).toBe(true);
      const all = await fetch(`${first.base}/api/v1/customers`, { headers: { authorization: `Bearer ${token}`, "x-tenant-id": "acme" } });
      expect((await all.json()).data.length).toBeGreaterThan(0);
      // One access log line per answered request: its id, user, tenant, route and status; never the token or the query string.
      const line = await waitForLine(first, /"request_id":"start-test-list"[^\n]*"msg":"request completed"/);
      expect(JSON.parse(line)).toMatchObject({
        level: 30, request_id: "start-test-list", tenant_id: expect.stringMatching(/^[0-9a-f-]{36}$/), user_id: expect.stringMatching(/^[0-9a-f-]{36}$/),
        req: { method: "GET", url: "/api/v1/customers" }, res: { statusCode: 200 }, responseTime: expect.any(Number),
      });
      expect(first.output()).not.toContain(token);
      expect(first.output()).not.toContain("Secret");
      expect(postmasterRunning()).toBe(true);
      // The demo's BI login reads acme through the views, as the psql session of docs/audit-and-bi.md shows.
      const secrets = JSON.parse(await readFile(join(dataDir, "secrets.json"), "utf8")) as { biAcme: string };
      const bi = postgres(`postgres://bi_acme:${encodeURIComponent(secrets.biAcme)}@127.0.0.1:${pgPort}/shop`, { max: 1, onnotice: () => {} });
      try {
        const tenants = await bi`select count(distinct tenant_id)::int as n, sum(revenue_cents)::int8 as cents from app.revenue_daily`;
        expect(tenants[0]).toMatchObject({ n: 1 });
        expect(Number(tenants[0].cents)).toBeGreaterThan(0);
        await expect(bi`select * from app.invoices`).rejects.toMatchObject({ code: "42501" });
      } finally {
        await bi.end({ timeout: 5 });
      }
    } finally {
      first.child.kill("SIGTERM");
    }
    expect(await first.exited).toBe(0);
    expect(postmasterRunning()).toBe(false);
  });

  it("reuses the data on a second start without seeding again", async () => {
    const second = await start();
    try {
      expect(second.output()).not.toMatch(/demo data seeded/);
      expect(second.output()).toMatch(/migrations at head/);
      expect(await login(second.base)).toMatch(/^ey/);
    } finally {
      second.child.kill("SIGINT");
    }
    expect(await second.exited).toBe(0);
    expect(postmasterRunning()).toBe(false);
  });
});

describe("npm start with DATABASE_URL", () => {
  it("uses that server, starts nothing embedded, and never seeds in production (app_user's URL only)", async () => {
    const { inject } = await import("vitest");
    const db = inject("db");
    const emptyDataDir = await mkdtemp(join(tmpdir(), "rls-shop-external-"));
    const server = await startInstance({
      NODE_ENV: "production", DATA_DIR: emptyDataDir, LOG_LEVEL: "info",
      DATABASE_URL: db.appUrl, JWT_SECRET: "x".repeat(40), CONTEXT_KEY: db.contextKey, CREDENTIALS_KEYS: `*start=${"ab".repeat(32)}`,
    });
    try {
      const ready = await fetch(`${server.url}/readyz`);
      expect(ready.status).toBe(200);
      expect(server.output()).toMatch(/"embedded":false[^\n]*"msg":"API listening"/);
      expect(server.output()).not.toMatch(/demo data seeded|API ready on/);
      expect(existsSync(join(emptyDataDir, "pg"))).toBe(false);
    } finally {
      await stopInstance(server);
      await rm(emptyDataDir, { recursive: true, force: true });
    }
  });

  it("in development with DATABASE_OWNER_URL and WEB_CONCURRENCY=2, deploys once, serves from two workers on one port, and drains both on SIGTERM", async () => {
    const { inject } = await import("vitest");
    const db = inject("db");
    const child = spawn(process.execPath, ["--import", "tsx", "server/main.ts"], {
      env: {
        ...process.env, NODE_ENV: "development", SEED_DEMO: "false", LOG_FORMAT: "json", PORT: "0", LOG_LEVEL: "info", WEB_CONCURRENCY: "2", DB_POOL_MAX: "2",
        DATABASE_URL: db.appUrl, DATABASE_OWNER_URL: db.ownerUrl, JWT_SECRET: "x".repeat(40), CONTEXT_KEY: db.contextKey,
      },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let out = "";
    child.stdout!.on("data", (c) => (out += c));
    child.stderr!.on("data", (c) => (out += c));
    const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
    const listening = () => [...out.matchAll(/"pid":(\d+)[^\n]*"port":(\d+),"embedded":false[^\n]*"msg":"API listening"/g)].map((m) => ({ pid: Number(m[1]), port: Number(m[2]) }));
    let workers: { pid: number; port: number }[] = [];
    try {
      workers = await new Promise((resolve, reject) => {
        const timer = setInterval(() => {
          if (listening().length >= 2) {
            clearInterval(timer);
            resolve(listening());
          }
        }, 50);
        void exited.then((code) => (clearInterval(timer), reject(new Error(`exited ${code}: ${out}`))));
      });
      expect(new Set(workers.map((w) => w.pid)).size).toBe(2);
      expect(workers.every((w) => w.pid !== child.pid)).toBe(true);
      expect(new Set(workers.map((w) => w.port)).size).toBe(1);
      expect(out.match(/"msg":"deploy: nothing to do, migrations at head"/g)?.length).toBe(1);
      expect((await fetch(`http://127.0.0.1:${workers[0].port}/readyz`)).status).toBe(200);
    } finally {
      child.kill("SIGTERM");
    }
    expect(await exited).toBe(0);
    for (const w of workers) expect(() => process.kill(w.pid, 0)).toThrow();
    expect(out).toMatch(/"step":"stop API workers"/);
  });

  it("refuses to start in production without DATABASE_URL, JWT_SECRET, CONTEXT_KEY and CREDENTIALS_KEYS, naming them (and needs no DATABASE_OWNER_URL)", async () => {
    const child = spawn(process.execPath, ["--import", "tsx", "server/main.ts"], {
      env: { ...process.env, NODE_ENV: "production", DATABASE_URL: "", DATABASE_OWNER_URL: "", JWT_SECRET: "", CREDENTIALS_KEYS: "" },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let out = "";
    child.stderr!.on("data", (c) => (out += c));
    const code = await new Promise<number | null>((resolve) => child.on("exit", (c) => resolve(c)));
    expect(code).toBe(2);
    expect(out).toMatch(/DATABASE_URL/);
    expect(out).not.toMatch(/DATABASE_OWNER_URL/);
    expect(out).toMatch(/JWT_SECRET/);
    expect(out).toMatch(/CONTEXT_KEY/);
    expect(out).toMatch(/CREDENTIALS_KEYS: required in production/);
  });
});
