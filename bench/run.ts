// `npm run bench`: API throughput and latency against the database's own limit, measured
// side by side in one run, with RLS and write-trigger (audit) overhead. Never part of npm test.
// Starts its own embedded PostgreSQL unless DATABASE_URL and DATABASE_OWNER_URL are given.
// Knobs: BENCH_SECONDS (per phase, default 10), BENCH_CONNECTIONS (64), BENCH_TENANTS (100),
// BENCH_CUSTOMERS (1000 per tenant), BENCH_POOL (16: API pool = direct-SQL pool = pgbench clients).
import { execFileSync, spawn, spawnSync } from "node:child_process";
import { randomUUID } from "node:crypto";
import { mkdirSync, mkdtempSync, chmodSync, rmSync, writeFileSync } from "node:fs";
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
import { seedBench } from "./seed.ts";
import { sqlLoad, type LoadResult } from "./sqlLoad.ts";

const env = (name: string, fallback: number) => Number(process.env[name] ?? fallback);
const SECONDS = env("BENCH_SECONDS", 10);
const CONNECTIONS = env("BENCH_CONNECTIONS", 64);
const TENANTS = env("BENCH_TENANTS", 100);
const CUSTOMERS = env("BENCH_CUSTOMERS", 1000);
const POOL = env("BENCH_POOL", 16);
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

async function startApi(urls: DatabaseUrls): Promise<{ url: string; stop: () => Promise<void> }> {
  const port = await freePort();
  // BENCH_API_NODE_OPTIONS (e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof") profiles the API process.
  const nodeOptions = (process.env.BENCH_API_NODE_OPTIONS ?? "").split(" ").filter(Boolean);
  const child = spawn(process.execPath, [...nodeOptions, "--import", "tsx", "server/main.ts"], {
    env: {
      ...process.env, NODE_ENV: "production", PORT: String(port), LOG_LEVEL: "info", DB_POOL_MAX: String(POOL),
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
    stop: () => new Promise<void>((resolve) => (child.once("exit", () => resolve()), child.kill("SIGTERM"))),
  };
}

type HttpResult = LoadResult & { statuses: Record<string, number> };
type Shape = { method: "GET" | "POST"; path: string; headers: Record<string, string>; body?: string };

function httpLoad(url: string, build: (i: number) => Shape): Promise<HttpResult> {
  let i = 0;
  return new Promise((resolve, reject) => {
    autocannon(
      {
        url,
        connections: CONNECTIONS,
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

function pgbenchLimit(ownerUrl: string): LoadResult | string {
  const which = spawnSync("sh", ["-c", "command -v pgbench"], { encoding: "utf8" });
  if (which.status !== 0) return "pgbench not installed (Debian: apt-get install postgresql-client)";
  const dir = mkdtempSync(join(tmpdir(), "rls-shop-pgbench-"));
  const script = join(dir, "by-id.sql");
  writeFileSync(script, `\\set k random(1, ${TENANTS * CUSTOMERS})
select c.id, c.name, c.email, c.phone, c.notes, c.created_at, c.updated_at from app.customers c
 where (c.tenant_id, c.id) = (select tenant_id, id from public.bench_keys where n = :k);
`);
  try {
    const out = execFileSync("pgbench", ["-n", "-M", "prepared", "-c", String(POOL), "-j", "2", "-T", String(SECONDS), "-f", script, ownerUrl], { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
    const tps = Number(/tps = ([\d.]+) \(without initial connection time\)/.exec(out)?.[1] ?? /tps = ([\d.]+)/.exec(out)?.[1]);
    const latency = Number(/latency average = ([\d.]+) ms/.exec(out)?.[1]);
    return { requests: Math.round(tps * SECONDS), seconds: SECONDS, rps: tps, p50: latency, p99: NaN, errors: 0 };
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
  let api: { url: string; stop: () => Promise<void> } | undefined;
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
    log("RLS on (app_user)");
    const rlsOn = await sqlLoad(shape(app, `select ${cols} from app.customers where id = $1`), CONNECTIONS, SECONDS);
    log("RLS off (BYPASSRLS + explicit filter)");
    const rlsOff = await sqlLoad(shape(owner, `select ${cols} from app.customers where id = $1 and tenant_id = $2`), CONNECTIONS, SECONDS);
    results["RLS overhead"] = { rls: rlsOn, explicit_filter_bypassrls: rlsOff };
    ratios["RLS overhead (1 - rls/explicit)"] = 1 - rlsOn.rps / rlsOff.rps;

    // 3. Write-trigger (audit) overhead: POST through the API with the user triggers on
    //    app.customers enabled against disabled.
    const triggers = (await owner`select tgname from pg_trigger where tgrelid = 'app.customers'::regclass and not tgisinternal order by 1`).map((r) => r.tgname);
    await owner`alter table app.customers disable trigger user`;
    log("POST with triggers off");
    const off = await httpLoad(api.url, endpoints[2].http);
    await owner`alter table app.customers enable trigger user`;
    log("POST with triggers on");
    const on = await httpLoad(api.url, endpoints[2].http);
    results["write triggers overhead"] = { triggers, on, off };
    ratios["write trigger overhead (1 - on/off)"] = 1 - on.rps / off.rps;

    // 4. pgbench, where installed: the same by-id SELECT, prepared, as the owner.
    log("pgbench");
    results["pgbench by id (owner, no RLS)"] = pgbenchLimit(urls.ownerUrl);

    const summary = {
      started: started.toISOString(),
      machine: { cores: cpus().length, cpu: cpus()[0]?.model, node: process.version },
      database: { version, tenants: TENANTS, customers_per_tenant: CUSTOMERS },
      settings: { seconds: SECONDS, connections: CONNECTIONS, pool: POOL },
      ratios,
      results,
      notes: [
        "One network round trip per read request is asserted by test/round-trips.test.ts (a TCP proxy counts client flights).",
        "Export streaming (1M audit rows) is not measured yet: it needs the audit export endpoint.",
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

function markdown(s: { started: string; machine: { cores: number; cpu?: string; node: string }; database: { version: string }; settings: object; ratios: Record<string, number>; results: Record<string, unknown> }): string {
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
  lines.push("", "| ratio | value |", "|---|---|");
  for (const [k, v] of Object.entries(s.ratios)) lines.push(`| ${k} | ${(v * 100).toFixed(1)}% |`);
  return `${lines.join("\n")}\n`;
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
