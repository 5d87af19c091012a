// `npm run bench`: API throughput and latency against the database's own limit, measured
// side by side in one run, with RLS and write-trigger (audit) overhead. Never part of npm test.
// Starts its own embedded PostgreSQL unless DATABASE_URL and DATABASE_OWNER_URL are given.
// Knobs: BENCH_SECONDS (per phase, default 10), BENCH_CONNECTIONS (64), BENCH_TENANTS (100),
// BENCH_CUSTOMERS (1000 per tenant), BENCH_POOL (16: API pool = direct-SQL pool = pgbench clients),
// BENCH_EXPORT_ROWS (1,000,000 audit rows exported), BENCH_SEAL_ROWS (100,000 rows sealed),
// BENCH_ROUNDS (3 interleaved rounds of the RLS and audit write-cost comparisons),
// BENCH_OVERLOAD_CONNECTIONS (256: the list under overload, p99 and the share shed as 503 OVERLOADED).
import { execFileSync, spawn, spawnSync } from "node:child_process";
import { randomUUID } from "node:crypto";
import { mkdirSync, mkdtempSync, chmodSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { cpus, tmpdir } from "node:os";
import { join } from "node:path";
import autocannon from "autocannon";
import postgres from "postgres";
import { migrate } from "../server/migrate.ts";
import { applyPolicies } from "../server/policies.ts";
import { provisionDatabase, type DatabaseUrls } from "../server/provision.ts";
import { startEmbedded } from "../server/embedded.ts";
import { hs256Keys, signAccessToken, type TokenKeys } from "../server/tokens.ts";
import { freePort } from "../test/testDatabase.ts";
import { auditRows, exportThroughApi, exportThroughPsql, seedAuditTenant, type ExportResult } from "./exportLoad.ts";
import { seedBench } from "./seed.ts";
import { percentile, sqlLoad, type LoadResult } from "./sqlLoad.ts";

const env = (name: string, fallback: number) => Number(process.env[name] ?? fallback);
const SECONDS = env("BENCH_SECONDS", 10);
const CONNECTIONS = env("BENCH_CONNECTIONS", 64);
const TENANTS = env("BENCH_TENANTS", 100);
const CUSTOMERS = env("BENCH_CUSTOMERS", 1000);
const POOL = env("BENCH_POOL", 16);
const EXPORT_ROWS = env("BENCH_EXPORT_ROWS", 1_000_000);
const SEAL_ROWS = env("BENCH_SEAL_ROWS", 100_000);
const OVERLOAD_CONNECTIONS = env("BENCH_OVERLOAD_CONNECTIONS", 256);
const ROUNDS = env("BENCH_ROUNDS", env("BENCH_WRITE_ROUNDS", 3)); // the old name still counts
const JWT_SECRET = "bench-secret-bench-secret-bench-secret-0123";
const keys: TokenKeys = hs256Keys(JWT_SECRET);

const log = (...args: unknown[]) => console.error("[bench]", ...args);
const pick = <T>(xs: T[], i: number) => xs[(i * 7919) % xs.length];

async function database(): Promise<DatabaseUrls & { stop: () => Promise<void> }> {
  if (process.env.DATABASE_URL && process.env.DATABASE_OWNER_URL) {
    return { appUrl: process.env.DATABASE_URL, ownerUrl: process.env.DATABASE_OWNER_URL, biUrl: "", stop: async () => {} };
  }
  const root = mkdtempSync(join(tmpdir(), "rls-shop-bench-"));
  chmodSync(root, 0o755);
  const server = await startEmbedded({ dir: join(root, "pg"), port: await freePort(), superuserPassword: "bench" });
  const urls = await provisionDatabase(server.superuserUrl, "shop_bench", { owner: "bench-owner", app: "bench-app", bi: "bench-bi" });
  return { ...urls, stop: async () => (await server.stop(), rmSync(root, { recursive: true, force: true })) };
}

type Api = { url: string; pid: number; stop: () => Promise<void> };

/** The API in production mode; with workers > 1, that many processes share the port (bench/cluster.ts) and the pool. */
async function startApi(urls: DatabaseUrls, workers = 1): Promise<Api> {
  const port = await freePort();
  // BENCH_API_NODE_OPTIONS (e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof") profiles the API process.
  const nodeOptions = (process.env.BENCH_API_NODE_OPTIONS ?? "").split(" ").filter(Boolean);
  const entry = workers > 1 ? "bench/cluster.ts" : "server/main.ts";
  const child = spawn(process.execPath, [...nodeOptions, "--import", "tsx", entry], {
    env: {
      ...process.env, NODE_ENV: "production", PORT: String(port), LOG_LEVEL: "info", DB_POOL_MAX: String(Math.ceil(POOL / workers)),
      BENCH_API_WORKERS: String(workers),
      DATABASE_URL: urls.appUrl, DATABASE_OWNER_URL: urls.ownerUrl, JWT_SECRET,
    },
    stdio: ["ignore", "ignore", "pipe"],
  });
  // Production logs go to stdout; here they go to /dev/null, after being produced as in production.
  await new Promise<void>((resolve, reject) => {
    const deadline = setTimeout(() => reject(new Error("API did not start in 60 s")), 60_000);
    const poll = setInterval(async () => {
      try {
        if ((await fetch(`http://127.0.0.1:${port}/readyz`)).ok) {
          clearInterval(poll);
          clearTimeout(deadline);
          resolve();
        }
      } catch {
        // not up yet
      }
    }, 200);
    child.once("exit", (code) => (clearInterval(poll), clearTimeout(deadline), reject(new Error(`API exited ${code}`))));
  });
  return {
    url: `http://127.0.0.1:${port}`,
    pid: child.pid!,
    stop: () => new Promise<void>((resolve) => (child.once("exit", () => resolve()), child.kill("SIGTERM"))),
  };
}

type HttpResult = LoadResult & { statuses: Record<string, number> };
type Shape = { method: "GET" | "POST"; path: string; headers: Record<string, string>; body?: string };

function httpLoad(url: string, build: (i: number) => Shape, connections = CONNECTIONS): Promise<HttpResult> {
  let i = 0;
  return new Promise((resolve, reject) => {
    autocannon(
      {
        url,
        connections,
        duration: SECONDS,
        requests: [{ setupRequest: (req) => ({ ...req, ...build(i++) }) }],
      },
      (err, r) => {
        if (err) return reject(err);
        const statuses: Record<string, number> = {};
        for (const [code, v] of Object.entries((r as unknown as { statusCodeStats: Record<string, { count: number }> }).statusCodeStats ?? {})) statuses[code] = v.count;
        resolve({ requests: r.requests.total, seconds: r.duration, rps: r.requests.average, p50: r.latency.p50, p99: r.latency.p99, errors: r.errors + r.timeouts, statuses });
      },
    );
  });
}

// The pgbench scripts: the by-id and list-of-50 reads, the same SQL as the direct-SQL limits,
// the keys drawn from public.bench_keys (the tenant of a random customer for the list).
const pgbenchScripts = (keys: number): Record<string, string> => ({
  "by id": `\\set k random(1, ${keys})
select c.id, c.name, c.email, c.phone, c.notes, c.created_at, c.updated_at from app.customers c
 where (c.tenant_id, c.id) = (select tenant_id, id from public.bench_keys where n = :k);
`,
  "list of 50": `\\set k random(1, ${keys})
select c.id, c.name, c.email, c.phone, c.notes, c.created_at, c.updated_at from app.customers c
 where c.tenant_id = (select tenant_id from public.bench_keys where n = :k) order by c.name, c.id limit 51;
`,
});

/** pgbench, prepared, as the owner; p50 and p99 come from its per-transaction log (-l), not its average. */
function pgbenchLimit(ownerUrl: string, script: string): LoadResult | string {
  const which = spawnSync("sh", ["-c", "command -v pgbench"], { encoding: "utf8" });
  if (which.status !== 0) return "pgbench not installed (Debian: apt-get install postgresql-client)";
  const dir = mkdtempSync(join(tmpdir(), "rls-shop-pgbench-"));
  const file = join(dir, "script.sql");
  writeFileSync(file, script);
  try {
    const out = execFileSync("pgbench", ["-n", "-M", "prepared", "-c", String(POOL), "-j", "2", "-T", String(SECONDS), "-l", `--log-prefix=${join(dir, "tx")}`, "-f", file, ownerUrl],
      { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"], maxBuffer: 64 * 1024 * 1024 });
    const tps = Number(/tps = ([\d.]+) \(without initial connection time\)/.exec(out)?.[1] ?? /tps = ([\d.]+)/.exec(out)?.[1]);
    const failed = Number(/number of failed transactions: (\d+)/.exec(out)?.[1] ?? 0);
    // Each log line: client_id transaction_no time script_no time_epoch time_us, time in µs
    // (a failed transaction's time is a word, so it counts in failed, not in the percentiles).
    const latencies: number[] = [];
    for (const name of readdirSync(dir).filter((f) => f.startsWith("tx."))) {
      for (const line of readFileSync(join(dir, name), "utf8").split("\n")) {
        const us = line ? Number(line.split(" ")[2]) : NaN;
        if (Number.isFinite(us)) latencies.push(us / 1000);
      }
    }
    latencies.sort((a, b) => a - b);
    return { requests: latencies.length, seconds: SECONDS, rps: tps, p50: percentile(latencies, 50), p99: percentile(latencies, 99), errors: failed };
  } catch (error) {
    return `pgbench failed: ${(error as Error).message.split("\n")[0]}`;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

async function main() {
  const started = new Date();
  const urls = await database();
  const owner = postgres(urls.ownerUrl, { max: POOL, onnotice: () => {} });
  const app = postgres(urls.appUrl, { max: POOL, onnotice: () => {} });
  let api: Api | undefined;
  try {
    log("migrating and applying policies");
    await migrate(urls.ownerUrl);
    await applyPolicies(urls.ownerUrl);
    log(`seeding ${TENANTS} tenants x ${CUSTOMERS} customers`);
    const data = await seedBench(owner, TENANTS, CUSTOMERS);
    const tokens = new Map(data.tenants.map((t) => [t.id, signAccessToken(keys, { userId: t.userId })]));
    const [{ version }] = await owner`select current_setting('server_version') as version`;
    api = await startApi(urls);
    log(`API up at ${api.url}; ${SECONDS}s per phase, ${CONNECTIONS} connections, pool ${POOL}`);

    const auth = (tenantId: string) => ({ authorization: `Bearer ${tokens.get(tenantId)}`, "x-tenant-id": tenantId });
    const cols = "id, name, email, phone, notes, created_at, updated_at";
    const results: Record<string, unknown> = {};
    const ratios: Record<string, number> = {};

    // 1. Endpoints, each followed by its limit: the same SQL, one prepared statement, owner, no RLS.
    const endpoints: { name: string; http: (i: number) => Shape; limit: (i: number) => Promise<unknown> }[] = [
      {
        name: "GET customer by id",
        http: (i) => { const c = pick(data.customers, i); return { method: "GET", path: `/api/v1/customers/${c.id}`, headers: auth(c.tenantId) }; },
        limit: (i) => { const c = pick(data.customers, i); return owner.unsafe(`select ${cols} from app.customers where tenant_id = $1 and id = $2`, [c.tenantId, c.id], { prepare: true }); },
      },
      {
        name: "GET customer list of 50",
        http: (i) => { const t = pick(data.tenants, i); return { method: "GET", path: "/api/v1/customers?limit=50", headers: auth(t.id) }; },
        limit: (i) => { const t = pick(data.tenants, i); return owner.unsafe(`select ${cols} from app.customers where tenant_id = $1 order by name, id limit 51`, [t.id], { prepare: true }); },
      },
      {
        name: "POST customer",
        http: (i) => {
          const t = pick(data.tenants, i);
          return { method: "POST", path: "/api/v1/customers", headers: { ...auth(t.id), "content-type": "application/json", "idempotency-key": randomUUID() }, body: JSON.stringify({ name: `Bench walk-in ${i}` }) };
        },
        limit: (i) => { const t = pick(data.tenants, i); return owner.unsafe(`insert into app.customers (tenant_id, name) values ($1, $2) returning ${cols}`, [t.id, `Bench limit ${i}`], { prepare: true }); },
      },
    ];
    const measure = async (e: (typeof endpoints)[number]) => {
      log(`HTTP  ${e.name}`);
      const http = await httpLoad(api!.url, e.http);
      log(`limit ${e.name}`);
      const limit = await sqlLoad(e.limit, CONNECTIONS, SECONDS);
      results[e.name] = { api: http, limit };
      ratios[`${e.name}: API / limit`] = http.rps / limit.rps;
    };
    for (const e of endpoints) await measure(e);
    // Overload: far more connections than the pool. Past DB_POOL_QUEUE_MAX waiting requests the
    // API answers 503 OVERLOADED at once instead of queueing: p99 stays bounded, the rest is shed.
    const overloadName = `GET customer list of 50 at ${OVERLOAD_CONNECTIONS} connections (shedding)`;
    log(`HTTP  ${overloadName}`);
    const overload = await httpLoad(api.url, endpoints[1].http, OVERLOAD_CONNECTIONS);
    results[overloadName] = overload;
    ratios[`${overloadName}: shed as 503`] = (overload.statuses["503"] ?? 0) / Math.max(1, overload.requests);
    // The catalog's 304 path: each tenant's current ETag, sent back as If-None-Match.
    const etags = new Map<string, string>();
    for (const t of data.tenants) {
      const r = await fetch(`${api.url}/api/v1/service-operations`, { headers: auth(t.id) });
      etags.set(t.id, r.headers.get("etag") ?? "");
    }
    const more: typeof endpoints = [
      {
        name: "GET catalog with If-None-Match (304)",
        http: (i) => { const t = pick(data.tenants, i); return { method: "GET", path: "/api/v1/service-operations", headers: { ...auth(t.id), "if-none-match": etags.get(t.id) ?? "" } }; },
        limit: (i) => {
          const t = pick(data.tenants, i);
          return owner.unsafe(`select id, service_id, internal_code, name, subcategory, display_order, price_cents, duration_minutes, active, created_at, updated_at
                                 from app.service_operations where tenant_id = $1 order by display_order asc nulls last, name asc, id limit 200`, [t.id], { prepare: true });
        },
      },
      {
        name: "POST an invoice line from the catalog",
        http: (i) => {
          const t = pick(data.tenants, i);
          return { method: "POST", path: `/api/v1/invoices/${t.invoiceId}/lines`, headers: { ...auth(t.id), "content-type": "application/json", "idempotency-key": randomUUID() }, body: JSON.stringify({ service_operation_id: pick(t.operationIds, i), quantity: 1 }) };
        },
        limit: (i) => {
          const t = pick(data.tenants, i);
          return owner.unsafe(`insert into app.invoice_lines (tenant_id, invoice_id, service_operation_id, description, quantity, unit_price_cents)
                               select tenant_id, $2, id, name, 1, price_cents from app.service_operations where tenant_id = $1 and id = $3 returning *`,
          [t.id, t.invoiceId, pick(t.operationIds, i)], { prepare: true });
        },
      },
    ];
    for (const e of more) await measure(e);

    // 2. RLS overhead: the API's transaction shape (BEGIN, context, SELECT, COMMIT, pipelined),
    //    as app_user under RLS against the owner (BYPASSRLS) with an explicit tenant filter.
    const shape = (sql: postgres.Sql, query: string) => async (i: number) => {
      const c = pick(data.customers, i);
      const r = await sql.reserve();
      try {
        await Promise.all([
          r`begin`.execute(),
          r`select set_config('app.tenant_id', ${c.tenantId}, true)`.execute(),
          r.unsafe(query, query.includes("$2") ? [c.id, c.tenantId] : [c.id], { prepare: true }).execute(),
          r`commit`.execute(),
        ]);
      } finally {
        r.release();
      }
    };
    const rls = await interleaved("RLS overhead", [
      { name: "rls", load: () => sqlLoad(shape(app, `select ${cols} from app.customers where id = $1`), CONNECTIONS, SECONDS) },
      { name: "explicit_filter_bypassrls", load: () => sqlLoad(shape(owner, `select ${cols} from app.customers where id = $1 and tenant_id = $2`), CONNECTIONS, SECONDS) },
    ]);
    results["RLS overhead"] = rls.medians;
    results["RLS overhead rounds, req/s"] = rls.rounds;
    ratios["RLS overhead (1 - rls/explicit)"] = 1 - rls.medians.rls.rps / rls.medians.explicit_filter_bypassrls.rps;

    // 3. Write cost of the audit, side by side in four phases: every user trigger of
    //    app.customers off; the role check on and the audit off; both on; both on while a sealer
    //    chains every bench tenant's new audit rows each second (the chain is sealed off the
    //    write path, so this is what the chain costs a writer). Measured twice: POST through the
    //    API (what a client sees, the API's CPU dominating), and the POST's transaction straight
    //    to PostgreSQL as app_user (BEGIN, the context call, INSERT, COMMIT, pipelined: what the
    //    database pays).
    const audit = ["audit_insert", "audit_update", "audit_delete"];
    const setTriggers = async (on: boolean, names?: string[]) => {
      if (!names) return owner.unsafe(`alter table app.customers ${on ? "enable" : "disable"} trigger user`);
      for (const name of names) await owner.unsafe(`alter table app.customers ${on ? "enable" : "disable"} trigger ${name}`);
    };
    const configurations: { name: string; apply: () => Promise<unknown>; sealer?: boolean }[] = [
      { name: "all_triggers_off", apply: () => setTriggers(false) },
      { name: "role_check_only", apply: async () => (await setTriggers(true), await setTriggers(false, audit)) },
      { name: "audit_on", apply: () => setTriggers(true) },
      { name: "audit_on_with_sealer", apply: () => setTriggers(true), sealer: true },
    ];
    const writeCost = async (label: string, load: () => Promise<LoadResult>) => {
      let sealedRows = 0;
      const { medians: m, rounds } = await interleaved(label, configurations.map((c) => ({
        name: c.name,
        load: async () => {
          await c.apply();
          const sealer = c.sealer ? sealLoop(urls.ownerUrl) : undefined;
          const result = await load();
          if (sealer) sealedRows += (await sealer.stop()).rows;
          return result;
        },
      })));
      await setTriggers(true);
      results[`write cost of the audit (${label})`] = m;
      results[`write cost rounds, req/s (${label})`] = rounds;
      results[`sealer during the chained phases (${label})`] = { rows_sealed: sealedRows };
      ratios[`${label}: audit trigger overhead on writes (1 - audit_on/role_check_only)`] = 1 - m.audit_on.rps / m.role_check_only.rps;
      ratios[`${label}: audit + hash chain overhead on writes (1 - audit_on_with_sealer/role_check_only)`] = 1 - m.audit_on_with_sealer.rps / m.role_check_only.rps;
      ratios[`${label}: role check overhead on writes (1 - role_check_only/all_triggers_off)`] = 1 - m.role_check_only.rps / m.all_triggers_off.rps;
    };
    const post = endpoints[2].http;
    await writeCost("POST customer, API", () => httpLoad(api!.url, post));
    const insertAsAppUser = async (i: number) => {
      const t = pick(data.tenants, i);
      const r = await app.reserve();
      try {
        await Promise.all([
          r`begin`.execute(),
          r`select from app.open_tenant_context(${t.userId}::uuid, ${[t.id]}::text[], null, ${`bench-sql-${i}`}, 'customers:write', false)`.execute(),
          r.unsafe(`insert into app.customers (tenant_id, name) values (app.current_tenant_id(), $1) returning ${cols}`, [`Bench sql ${i}`], { prepare: true }).execute(),
          r`commit`.execute(),
        ]);
      } finally {
        r.release();
      }
    };
    await writeCost("INSERT customer, database", () => sqlLoad(insertAsAppUser, CONNECTIONS, SECONDS));

    // 4. Sealing throughput: fresh audit rows of one tenant chained by app.audit_seal.
    log(`sealing ${SEAL_ROWS} audit rows`);
    const sealTenant = await seedAuditTenant(owner, "seal-bench", 0);
    await auditRows(owner, sealTenant.tenantId, sealTenant.userId, SEAL_ROWS);
    const t0 = performance.now();
    const [{ n: chained }] = await owner`select app.audit_seal(${sealTenant.tenantId}::uuid) as n`;
    const sealSeconds = (performance.now() - t0) / 1000;
    results["hash chain sealing"] = { rows: chained, seconds: sealSeconds, rows_per_second: chained / sealSeconds };

    // 5. Streaming export: EXPORT_ROWS audit rows of one tenant through the API, against psql.
    log(`seeding ${EXPORT_ROWS} audit rows for the export`);
    const exporter = await seedAuditTenant(owner, "export-bench", EXPORT_ROWS);
    const exportToken = signAccessToken(keys, { userId: exporter.userId });
    log("export through the API");
    const viaApi = await exportThroughApi(api.url, { authorization: `Bearer ${exportToken}`, "x-tenant-id": exporter.tenantId }, api.pid);
    log("export through psql \\copy");
    const viaPsql = await exportThroughPsql(urls.ownerUrl, exporter.tenantId);
    results["export CSV (API)"] = viaApi;
    results["export CSV (psql \\copy)"] = viaPsql;
    if (typeof viaPsql !== "string") ratios["export: API rows/s / psql rows/s"] = viaApi.rows_per_second / viaPsql.rows_per_second;

    // 6. GET by id against two API processes sharing the port (bench/cluster.ts), same pool in total.
    await api.stop();
    api = undefined;
    log("GET customer by id, 2 API workers");
    try {
      const cluster = await startApi(urls, 2);
      try {
        results["GET customer by id, 2 API workers"] = await httpLoad(cluster.url, endpoints[0].http);
      } finally {
        await cluster.stop();
      }
    } catch (error) {
      results["GET customer by id, 2 API workers"] = `failed: ${(error as Error).message}`;
    }

    // 7. pgbench, where installed: the same reads, prepared, as the owner.
    for (const [name, script] of Object.entries(pgbenchScripts(TENANTS * CUSTOMERS))) {
      log(`pgbench ${name}`);
      results[`pgbench ${name} (owner, no RLS)`] = pgbenchLimit(urls.ownerUrl, script);
    }

    const summary = {
      started: started.toISOString(),
      machine: { cores: cpus().length, cpu: cpus()[0]?.model, node: process.version },
      database: { version, tenants: TENANTS, customers_per_tenant: CUSTOMERS },
      settings: { seconds: SECONDS, connections: CONNECTIONS, pool: POOL },
      ratios,
      targets: targets(ratios, results),
      results,
      notes: [
        "One network round trip per read request is asserted by test/round-trips.test.ts (a TCP proxy counts client flights).",
        "The hash chain is sealed off the write path (app.audit_seal); its cost to writers is the chained phase against role_check_only.",
      ],
    };
    mkdirSync("bench-results", { recursive: true });
    const stamp = started.toISOString().replace(/[:.]/g, "-");
    writeFileSync(join("bench-results", `${stamp}.json`), `${JSON.stringify(summary, null, 2)}\n`);
    const md = markdown(summary);
    writeFileSync(join("bench-results", `${stamp}.md`), md);
    process.stdout.write(md);
  } finally {
    await api?.stop();
    await app.end({ timeout: 5 });
    await owner.end({ timeout: 5 });
    await urls.stop();
  }
}

/**
 * Runs configurations that are compared with each other in ROUNDS interleaved rounds and keeps
 * each one's median round: on a shared machine, and with tables growing as they are written,
 * one pass in a fixed order would charge the drift to whichever configuration runs last.
 */
async function interleaved(label: string, configurations: { name: string; load: () => Promise<LoadResult> }[]) {
  const runs: Record<string, LoadResult[]> = {};
  for (let round = 1; round <= ROUNDS; round++) {
    for (const c of configurations) {
      log(`${label}: ${c.name} (round ${round} of ${ROUNDS})`);
      (runs[c.name] ??= []).push(await c.load());
    }
  }
  const median = (xs: LoadResult[]) => [...xs].sort((a, b) => a.rps - b.rps)[Math.floor(xs.length / 2)];
  return {
    medians: Object.fromEntries(Object.entries(runs).map(([k, v]) => [k, median(v)])),
    rounds: Object.fromEntries(Object.entries(runs).map(([k, v]) => [k, v.map((r) => Math.round(r.rps))])),
  };
}

/** Polls app.audit_seal for every bench tenant each second on its own connection, until stopped. */
function sealLoop(ownerUrl: string): { stop: () => Promise<{ rows: number; calls: number }> } {
  const sql = postgres(ownerUrl, { max: 1, onnotice: () => {} });
  let running = true;
  let rows = 0;
  let calls = 0;
  const loop = (async () => {
    while (running) {
      const [{ n }] = await sql`select coalesce(sum(app.audit_seal(id)), 0)::int as n from app.tenants where slug like 'bench-%'`;
      rows += n;
      calls++;
      await new Promise((r) => setTimeout(r, 1000));
    }
  })();
  return { stop: async () => ((running = false), await loop, await sql.end({ timeout: 5 }), { rows, calls }) };
}

type Target = { target: string; measured: string; met: boolean; note?: string };

/** The issue's targets, each with the figure it is judged on and, when missed, what limits it. */
function targets(ratios: Record<string, number>, results: Record<string, unknown>): Target[] {
  const pct = (v: number) => `${(v * 100).toFixed(1)}%`;
  const byId = (results["GET customer by id"] as { api: LoadResult }).api;
  const two = results["GET customer by id, 2 API workers"];
  const twoWorkers: LoadResult = typeof two === "object" ? (two as LoadResult) : { requests: 0, seconds: 0, rps: NaN, p50: NaN, p99: NaN, errors: 0 };
  const exported = results["export CSV (API)"] as { rows: number; rss_growth_mb: number };
  const rls = ratios["RLS overhead (1 - rls/explicit)"];
  const chain = ratios["INSERT customer, database: audit + hash chain overhead on writes (1 - audit_on_with_sealer/role_check_only)"];
  const chainApi = ratios["POST customer, API: audit + hash chain overhead on writes (1 - audit_on_with_sealer/role_check_only)"];
  const needed = CONNECTIONS / 0.025;
  return [
    {
      target: "RLS overhead ≤ 10%", measured: pct(rls), met: rls <= 0.1,
      note: rls <= 0.1 ? undefined : "the policy's once-per-statement initplan (app.current_tenant_id(): current_setting and a uuid check) on a ~0.1 ms primary-key read; run-to-run noise on a shared 2-core machine is several points, so compare runs before acting",
    },
    {
      target: "audit with hash chain costs writes ≤ 35%", measured: `${pct(chain)} at the database (${pct(chainApi)} through the API)`, met: chain <= 0.35,
      note: chain <= 0.35 ? undefined : "every audited write also builds the row's jsonb image, redacts it and inserts an audit row (four index entries and a foreign-key check), and with the sealer running the same 2 cores also hash the chain; through the API (a keyed POST also writes and audits its idempotency key) the API's own CPU hides most of it. Lift: a core for PostgreSQL apart from the API, fewer audit indexes, or sealing less often",
    },
    {
      target: `export peak RSS growth < 64 MB (${exported.rows.toLocaleString("en")} rows)`, measured: `${exported.rss_growth_mb.toFixed(1)} MB`, met: exported.rss_growth_mb < 64,
      note: exported.rss_growth_mb < 64 ? undefined : "the COPY stream (16 KB) and the socket's write buffer bound what the export holds; growth beyond that is the V8 heap of the process; look for a consumer slower than the producer without backpressure",
    },
    {
      target: "GET by id p99 < 25 ms at concurrency 64", measured: `${byId.p99.toFixed(0)} ms (1 API process), ${twoWorkers.p99.toFixed(0)} ms (2)`, met: byId.p99 < 25 || twoWorkers.p99 < 25,
      note: byId.p99 < 25 ? undefined
        : `at concurrency 64, p99 < 25 ms needs more than ~${needed.toFixed(0)} req/s (64 requests in flight / 25 ms); the API reached ${byId.rps.toFixed(0)} req/s with one process and ${twoWorkers.rps.toFixed(0)} with two, CPU-bound (about 1 ms of CPU per request: JWT verification, Express routing, the pino access log line, JSON) on 2 cores shared with PostgreSQL and the load generator. Lift: more cores per API process pair, a leaner HTTP layer than Express, or caching verified tokens`,
    },
    { target: "one network round trip of database work per read request", measured: "1 (test/round-trips.test.ts, a TCP proxy counting client flights)", met: true },
  ];
}

function markdown(s: { targets: Target[]; started: string; machine: { cores: number; cpu?: string; node: string }; database: { version: string }; settings: object; ratios: Record<string, number>; results: Record<string, unknown> }): string {
  const f = (n: number) => (Number.isFinite(n) ? n.toFixed(1) : "n/a");
  const lines = [
    `# Bench ${s.started}`,
    "",
    `${s.machine.cores} cores (${s.machine.cpu}), Node ${s.machine.node}, PostgreSQL ${s.database.version}; ${JSON.stringify(s.settings)}`,
    "",
    "| measurement | req/s | p50 ms | p99 ms | errors |",
    "|---|---|---|---|---|",
  ];
  const row = (name: string, r: LoadResult) => lines.push(`| ${name} | ${f(r.rps)} | ${f(r.p50)} | ${f(r.p99)} | ${r.errors} |`);
  for (const [name, v] of Object.entries(s.results)) {
    if (typeof v === "string") lines.push(`| ${name} | ${v} | | | |`);
    else if (v && typeof v === "object" && "rps" in v) row(name, v as LoadResult);
    else if (v && typeof v === "object") for (const [k, r] of Object.entries(v)) if (r && typeof r === "object" && "rps" in r) row(`${name}: ${k}`, r as LoadResult);
  }
  const exports = Object.entries(s.results).filter(([k]) => k.startsWith("export CSV"));
  lines.push("", "| export | rows | MB | seconds | rows/s | MB/s | API RSS baseline → peak (growth) MB |", "|---|---|---|---|---|---|---|");
  for (const [name, v] of exports) {
    if (typeof v === "string") lines.push(`| ${name} | ${v} | | | | | |`);
    else {
      const e = v as ExportResult;
      const rss = e.rss_peak_mb === undefined ? "" : `${f(e.rss_baseline_mb!)} → ${f(e.rss_peak_mb)} (${f(e.rss_growth_mb!)})`;
      lines.push(`| ${name} | ${e.rows} | ${f(e.bytes / 1048576)} | ${f(e.seconds)} | ${e.rows_per_second.toFixed(0)} | ${f(e.mb_per_second)} | ${rss} |`);
    }
  }
  const seal = s.results["hash chain sealing"] as { rows: number; seconds: number; rows_per_second: number } | undefined;
  if (seal) lines.push("", `Hash chain sealing: ${seal.rows} rows in ${f(seal.seconds)} s (${seal.rows_per_second.toFixed(0)} rows/s), off the write path.`);
  for (const [name, v] of Object.entries(s.results).filter(([k]) => k.includes(" rounds, req/s"))) {
    lines.push("", `${name}: ${Object.entries(v as Record<string, number[]>).map(([k, r]) => `${k} ${r.join(" / ")}`).join("; ")} (the median round of each is in the table above).`);
  }
  lines.push("", "| ratio | value |", "|---|---|");
  for (const [k, v] of Object.entries(s.ratios)) lines.push(`| ${k} | ${(v * 100).toFixed(1)}% |`);
  lines.push("", "| target | measured | met | what limits it |", "|---|---|---|---|");
  for (const t of s.targets) lines.push(`| ${t.target} | ${t.measured} | ${t.met ? "yes" : "**no**"} | ${t.note ?? ""} |`);
  return `${lines.join("\n")}\n`;
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
