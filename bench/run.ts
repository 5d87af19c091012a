// `npm run bench`: API throughput and latency against the database's own limit, measured
// side by side in one run, with RLS and write-trigger (audit) overhead. Never part of npm test.
// Starts its own embedded PostgreSQL unless DATABASE_URL and DATABASE_OWNER_URL are given.
// Knobs: BENCH_SECONDS (per phase, default 10), BENCH_CONNECTIONS (64), BENCH_TENANTS (100),
// BENCH_CUSTOMERS (1000 per tenant), BENCH_POOL (16: API pool = direct-SQL pool = pgbench clients),
// BENCH_EXPORT_ROWS (1,000,000 audit rows exported), BENCH_SEAL_ROWS (100,000 rows sealed),
// BENCH_ROUNDS (3 interleaved rounds of the RLS, audit write-cost and floor comparisons),
// BENCH_FLOOR_SECONDS (per round of the API against the floor and of the WEB_CONCURRENCY row, default 50% of BENCH_SECONDS, at least 5),
// BENCH_FLOOR_ROUNDS (interleaved rounds against the floor: 5, or BENCH_ROUNDS when that is set),
// BENCH_WARMUP_SECONDS (each side's load before the floor and WEB_CONCURRENCY rounds, 3),
// BENCH_ONLY=floor (only the API against the floor, the plain floor and the cluster row, to iterate quickly),
// BENCH_BASELINE_DIR (a checkout of another commit, with node_modules: its API joins the floor
// rounds as a third side, so a lever is measured side by side with the code before it),
// BENCH_BASELINE_NODE_OPTIONS (Node options of that third side only, e.g. to measure a V8 flag),
// BENCH_OVERLOAD_CONNECTIONS (256: the list of 50 at 16 connections against this many, clients that
// retry at once and clients that honour Retry-After, bench/overload.ts), BENCH_OVERLOAD_SECONDS
// (per phase, BENCH_SECONDS), BENCH_ONLY=overload (only that row, with BENCH_BASELINE_DIR's API beside it),
// BENCH_ONLY=replica (only GET by id with the primary alone against primary + one hot standby, bench/replica.ts),
// BENCH_API_LOG (a file the APIs' logs are appended to instead of being dropped).
import { execFileSync, spawn, spawnSync } from "node:child_process";
import { randomBytes, randomUUID } from "node:crypto";
import { closeSync, mkdirSync, mkdtempSync, chmodSync, openSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { cpus, tmpdir } from "node:os";
import { join } from "node:path";
import autocannon from "autocannon";
import postgres from "postgres";
import { tenantContextProof, useContextKey } from "../server/db/contextProof.ts";
import { streamGuard, type ProofState } from "../server/db/proofGuards.ts";
import { deploy } from "../server/setup/deploy.ts";
import { provisionDatabase, type DatabaseUrls } from "../server/setup/provision.ts";
import { startEmbedded } from "../server/setup/embedded.ts";
import { hs256Keys, signAccessToken, type TokenKeys } from "../server/auth/tokens.ts";
import { freePort } from "../test/testDatabase.ts";
import { cpuMeter } from "./cpu.ts";
import { auditRows, exportThroughApi, exportThroughPsql, seedAuditTenant, type ExportResult } from "./exportLoad.ts";
import { contextCallCost, contextCallCostPerTransaction, requestShapes } from "./contextCost.ts";
import { seedBench } from "./seed.ts";
import { overloadRounds, type OverloadSide } from "./overload.ts";
import { replicaRow, type ReplicaRow } from "./replica.ts";
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
// The speed targets are judged on the floor rounds: 5 of 5 s by default, not 3 of 3 s, since on a
// shared 2-core machine single rounds read 0.65× to 1.0× of the floor beside them (bench/README.md).
const FLOOR_SECONDS = env("BENCH_FLOOR_SECONDS", Math.max(5, Math.round(SECONDS * 0.5)));
const FLOOR_ROUNDS = env("BENCH_FLOOR_ROUNDS", process.env.BENCH_ROUNDS || process.env.BENCH_WRITE_ROUNDS ? ROUNDS : 5);
// Each side's load before its first round, so the rounds measure code V8 has finished optimizing:
// after 1 s the API's first round of GET by id could still read 0.65× of the floor's (bench/README.md).
const WARMUP_SECONDS = env("BENCH_WARMUP_SECONDS", 3);
const ONLY = process.env.BENCH_ONLY;
if (ONLY !== undefined && !["floor", "context", "overload", "replica"].includes(ONLY)) throw new Error(`BENCH_ONLY=${ONLY}: only "floor", "context", "overload" and "replica" are known`);
const OVERLOAD_SECONDS = env("BENCH_OVERLOAD_SECONDS", SECONDS);
const JWT_SECRET = "bench-secret-bench-secret-bench-secret-0123";
const keys: TokenKeys = hs256Keys(JWT_SECRET);
const CONTEXT_KEY = randomBytes(32).toString("hex");
// Production requires a credentials key ring (issue 33); the bench stores no credentials.
const CREDENTIALS_KEYS = `*bench=${randomBytes(32).toString("hex")}`;

const log = (...args: unknown[]) => console.error("[bench]", ...args);
const pick = <T>(xs: T[], i: number) => xs[(i * 7919) % xs.length];
const middleOf = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

/** `superuserUrl`: the embedded server's (the replica row makes its standby with it); none for an external one. */
async function database(): Promise<DatabaseUrls & { superuserUrl?: string; stop: () => Promise<void> }> {
  if (process.env.DATABASE_URL && process.env.DATABASE_OWNER_URL) {
    return { appUrl: process.env.DATABASE_URL, ownerUrl: process.env.DATABASE_OWNER_URL, biUrl: "", stop: async () => {} };
  }
  const root = mkdtempSync(join(tmpdir(), "rls-shop-bench-"));
  chmodSync(root, 0o755);
  const server = await startEmbedded({ dir: join(root, "pg"), port: await freePort(), superuserPassword: "bench" });
  const urls = await provisionDatabase(server.superuserUrl, "shop_bench", { owner: "bench-owner", app: "bench-app", bi: "bench-bi" });
  return { ...urls, superuserUrl: server.superuserUrl, stop: async () => (await server.stop(), rmSync(root, { recursive: true, force: true })) };
}

type Api = { url: string; pid: number; stop: () => Promise<void> };

/**
 * The API as production runs it: compiled by `npm run build` and started as `node dist/main.js`
 * (docs/operations.md, runbooks/go-live.md), in production mode; with workers > 1, WEB_CONCURRENCY workers
 * share the port and the pool. Not under tsx, the development loader: it wraps every function
 * created per request in a defineProperty (esbuild's keepNames) and maps stack traces, which
 * measured about 70 µs of Node CPU per GET that production never pays.
 */
function startApi(urls: DatabaseUrls, workers = 1, dir = process.cwd(), nodeOptions = process.env.BENCH_API_NODE_OPTIONS, extra: Record<string, string> = {}): Promise<Api> {
  return startServer(compiled(dir), dir, nodeOptions, {
    NODE_ENV: "production", LOG_LEVEL: "info", DB_POOL_MAX: String(Math.ceil(POOL / workers)), WEB_CONCURRENCY: String(workers),
    DATABASE_URL: urls.appUrl, JWT_SECRET, CONTEXT_KEY, CREDENTIALS_KEYS, ...extra,
    // This API never uses the owner (the bench deployed already); a baseline from before the deploy
    // command (BENCH_BASELINE_DIR) still needs the owner's URL to start in production.
    ...(dir === process.cwd() ? {} : { DATABASE_OWNER_URL: urls.ownerUrl }),
  });
}

/**
 * The floor (bench/floor.ts): a bare Express + postgres.js handler, same database, role and pool
 * size. It runs under tsx: compiled with esbuild it measured the same (289 against 282 µs of
 * Node CPU per GET, 3 interleaved rounds), having no per-request closures for keepNames to wrap.
 */
function startFloor(urls: DatabaseUrls, plain = false): Promise<Api> {
  return startServer("bench/floor.ts", process.cwd(), process.env.BENCH_API_NODE_OPTIONS, {
    NODE_ENV: "production", DB_POOL_MAX: String(POOL), DATABASE_URL: urls.appUrl, CONTEXT_KEY, FLOOR_PLAIN: plain ? "1" : "0",
  });
}

const builtDirs = new Set<string>();

/** Builds dir's dist/ once per run (tsc, as `npm run build`) and answers its entry point. */
function compiled(dir: string): string {
  if (!builtDirs.has(dir)) {
    log(`building ${dir}/dist (npm run build)`);
    execFileSync(process.execPath, [join(dir, "node_modules", "typescript", "bin", "tsc"), "-p", "tsconfig.build.json"], { cwd: dir, stdio: "inherit" });
    builtDirs.add(dir);
  }
  return "dist/main.js";
}

async function startServer(entry: string, cwd: string, options: string | undefined, env: Record<string, string>): Promise<Api> {
  const port = await freePort();
  // BENCH_API_NODE_OPTIONS (e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof") profiles the server processes.
  const nodeOptions = (options ?? "").split(" ").filter(Boolean);
  // TypeScript sources (the floor) run under tsx; the API runs compiled.
  const loader = entry.endsWith(".ts") ? ["--import", "tsx"] : [];
  // Production logs go to stdout; here they go to /dev/null, after being produced as in production,
  // or, with BENCH_API_LOG (a path), appended to that file, to read the access lines of a run.
  const stdout = process.env.BENCH_API_LOG ? openSync(process.env.BENCH_API_LOG, "a") : "ignore";
  const child = spawn(process.execPath, [...nodeOptions, ...loader, entry], {
    cwd,
    env: { ...process.env, ...env, PORT: String(port) },
    stdio: ["ignore", stdout, "pipe"],
  });
  if (typeof stdout === "number") closeSync(stdout);
  await new Promise<void>((resolve, reject) => {
    const deadline = setTimeout(() => reject(new Error(`${entry} did not start in 60 s`)), 60_000);
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
    child.once("exit", (code) => (clearInterval(poll), clearTimeout(deadline), reject(new Error(`${entry} exited ${code}`))));
  });
  return {
    url: `http://127.0.0.1:${port}`,
    pid: child.pid!,
    stop: () => new Promise<void>((resolve) => (child.once("exit", () => resolve()), child.kill("SIGTERM"))),
  };
}

type HttpResult = LoadResult & { statuses: Record<string, number> };
type Measured = HttpResult & { node_cpu_us: number; pg_cpu_us: number };
/** One shape's interleaved rounds against the floor; GET by id also against the plain floor. */
type AgainstFloor = { api: Measured; floor: Measured; floor_plain?: Measured; api_baseline?: Measured; rounds: Record<string, number[]> };
type Shape = { method: "GET" | "POST"; path: string; headers: Record<string, string>; body?: string };

function httpLoad(url: string, build: (i: number) => Shape, seconds = SECONDS, connections = CONNECTIONS): Promise<HttpResult> {
  let i = 0;
  return new Promise((resolve, reject) => {
    autocannon(
      {
        url,
        connections,
        duration: seconds,
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
  let floor: Api | undefined;
  let plainFloor: Api | undefined;
  let baseline: Api | undefined;
  let cluster: Api | undefined;
  try {
    log("migrating and applying policies");
    await deploy(urls.ownerUrl, { contextKey: CONTEXT_KEY });
    useContextKey(CONTEXT_KEY);
    log(`seeding ${TENANTS} tenants x ${CUSTOMERS} customers`);
    const data = await seedBench(owner, TENANTS, CUSTOMERS);
    const tokens = new Map(data.tenants.map((t) => [t.id, signAccessToken(keys, { userId: t.userId })]));
    const [{ version }] = await owner`select current_setting('server_version') as version`;
    if (ONLY === "context") {
      // The opener's cost alone (bench/contextCost.ts), in about a minute.
      const member = { tenantId: data.tenants[0].id, userId: data.tenants[0].userId };
      const measured: Record<string, unknown> = {
        "tenant context: µs per call (in the database, one statement of 5,000 calls)": await contextCallCost(urls.appUrl, member),
        "tenant context: µs per call, one per transaction (backend CPU, one client)":
          (await contextCallCostPerTransaction(urls.appUrl, member)) ?? "not measured: the backend's CPU is read from /proc",
      };
      console.log(JSON.stringify({ version, results: measured, target: contextTarget(measured) }, null, 2));
      return;
    }
    api = await startApi(urls);
    log(`API up at ${api.url}; ${SECONDS}s per phase, ${CONNECTIONS} connections, pool ${POOL}`);

    const auth = (tenantId: string) => ({ authorization: `Bearer ${tokens.get(tenantId)}`, "x-tenant-id": tenantId });
    const cols = "id, name, email, phone, notes, created_at, updated_at";
    const results: Record<string, unknown> = {};
    const ratios: Record<string, number> = {};

    // 0. The API against the floor (bench/floor.ts): GET by id, list of 50 and POST (without an
    //    Idempotency-Key, so both sides run BEGIN, context, INSERT, COMMIT), in interleaved rounds,
    //    with CPU per request in Node (the server's process tree) and in PostgreSQL (its pool's backends).
    if (process.env.BENCH_BASELINE_DIR) {
      baseline = await startApi(urls, 1, process.env.BENCH_BASELINE_DIR, process.env.BENCH_BASELINE_NODE_OPTIONS ?? process.env.BENCH_API_NODE_OPTIONS);
    }
    const user = new Map(data.tenants.map((t) => [t.id, t.userId]));
    const headersFor = (tenantId: string, onFloor: boolean) => (onFloor ? { "x-tenant-id": tenantId, "x-user-id": user.get(tenantId)! } : auth(tenantId));
    const floorShapes: { name: string; status: number; http: (onFloor: boolean) => (i: number) => Shape }[] = [
      {
        name: "GET customer by id", status: 200,
        http: (onFloor) => (i) => { const c = pick(data.customers, i); return { method: "GET", path: `/api/v1/customers/${c.id}`, headers: headersFor(c.tenantId, onFloor) }; },
      },
      {
        name: "GET customer list of 50", status: 200,
        http: (onFloor) => (i) => { const t = pick(data.tenants, i); return { method: "GET", path: "/api/v1/customers?limit=50", headers: headersFor(t.id, onFloor) }; },
      },
      {
        name: "POST customer", status: 201,
        http: (onFloor) => (i) => {
          const t = pick(data.tenants, i);
          return { method: "POST", path: "/api/v1/customers", headers: { ...headersFor(t.id, onFloor), "content-type": "application/json" }, body: JSON.stringify({ name: `Bench floor ${i}` }) };
        },
      },
    ];
    const measured = async (server: Api, applicationName: string, build: (i: number) => Shape, status: number, seconds = FLOOR_SECONDS): Promise<Measured> => {
      const meter = await cpuMeter(owner, server.pid, applicationName);
      const r = await httpLoad(server.url, build, seconds);
      const cpu = await meter(r.requests);
      // An answer other than the expected status is an error here (a floor whose set_config stopped working answers 404).
      const wrong = Math.max(0, r.requests - (r.statuses[String(status)] ?? 0));
      return { ...r, errors: r.errors + wrong, ...cpu };
    };
    const againstFloor: Record<string, AgainstFloor> = {};
    if (ONLY !== "overload" && ONLY !== "replica") {
      floor = await startFloor(urls);
      // The plain floor: the same handler without the two library mends the API and the floor carry
      // (bench/floor.ts), on GET by id only; what a bare Express handler costs as written today.
      plainFloor = await startFloor(urls, true);
      for (const f of floorShapes) {
        const byId = f === floorShapes[0];
        const sides: Record<string, Api> = { api, floor, ...(byId ? { floor_plain: plainFloor } : {}), ...(baseline ? { api_baseline: baseline } : {}) };
        const onFloor = (side: string) => side.startsWith("floor");
        log(`API against the floor, ${f.name}: warm-up`);
        for (const [side, server] of Object.entries(sides)) await httpLoad(server.url, f.http(onFloor(side)), WARMUP_SECONDS);
        const cmp = await interleaved(`API against the floor, ${f.name}`, Object.keys(sides).map((side) => ({
          name: side,
          load: () => measured(sides[side], side === "floor_plain" ? "rls-service-shop-floor-plain" : onFloor(side) ? "rls-service-shop-floor" : "rls-service-shop", f.http(onFloor(side)), f.status),
        })), FLOOR_ROUNDS);
        // CPU per request: each side's median over its rounds (steadier than the median round's own
        // figure when the machine is shared); req/s, p50 and p99: the median round.
        const middle = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
        const sidesMeasured = Object.fromEntries(Object.entries(cmp.runs as Record<string, Measured[]>).map(([side, runs]) => [side, {
          ...(cmp.medians[side] as Measured),
          node_cpu_us: middle(runs.map((r) => r.node_cpu_us)),
          pg_cpu_us: middle(runs.map((r) => r.pg_cpu_us)),
        }]));
        againstFloor[f.name] = { ...(sidesMeasured as Record<"api" | "floor", Measured>), rounds: cmp.rounds };
        ratios[`${f.name}: API / floor`] = cmp.medians.api.rps / cmp.medians.floor.rps;
        if (byId) ratios[`${f.name}: API / plain floor (without the library mends)`] = cmp.medians.api.rps / cmp.medians.floor_plain.rps;
        if (baseline) ratios[`${f.name}: API / API at BENCH_BASELINE_DIR`] = cmp.medians.api.rps / cmp.medians.api_baseline.rps;
      }
      results["API against the floor"] = againstFloor;
      await floor.stop();
      floor = undefined;
      await plainFloor.stop();
      plainFloor = undefined;
    }
    if (!ONLY || ONLY === "overload") {
      // 0b. Overload: the list of 50 at 16 connections against OVERLOAD_CONNECTIONS, clients that
      //     retry at once and clients that honour Retry-After, interleaved (bench/overload.ts); the
      //     API at BENCH_BASELINE_DIR beside it when given, so "before" and "after" share the run.
      const sides: Record<string, Api> = { api, ...(baseline ? { api_baseline: baseline } : {}) };
      const overload = await overloadRounds(sides, floorShapes[1].http(false), 200, {
        seconds: OVERLOAD_SECONDS, rounds: ROUNDS, connections: OVERLOAD_CONNECTIONS, warmupSeconds: WARMUP_SECONDS, log,
        meter: async (pid) => {
          const m = await cpuMeter(owner, pid, "rls-service-shop");
          return async () => (await m(1)).node_cpu_us;
        },
      });
      results["overload: GET customer list of 50"] = overload;
      for (const [side, o] of Object.entries(overload)) {
        ratios[`overload (${side}): goodput at ${OVERLOAD_CONNECTIONS} impatient / at 16 (median round)`] = middleOf(o.ratio_rounds);
      }
    }
    await baseline?.stop();
    baseline = undefined;

    if (!ONLY) {
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
      // GET by id and the list reuse the API's median round against the floor (same load, shorter rounds).
      const measure = async (e: (typeof endpoints)[number]) => {
        log(`HTTP  ${e.name}`);
        const http = e.name.startsWith("GET") && againstFloor[e.name] ? againstFloor[e.name].api : await httpLoad(api!.url, e.http);
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
      //    as app_user under RLS against the owner (BYPASSRLS) with an explicit tenant filter. Both
      //    open the context by proof, so the difference is what RLS costs the statement.
      const members = new Map(data.tenants.map((t) => [t.id, t.userId]));
      const shape = (sql: postgres.Sql, query: string) => async (i: number) => {
        const c = pick(data.customers, i);
        // Both sides open alike; reserved connections have no identity to bind a read proof to,
        // so the expiry guard (contextCost.ts measures each guard's cost on its own).
        const a = { userId: members.get(c.tenantId)!, tenantRefs: [c.tenantId], scope: null, requestId: `bench-rls-${i}`, permission: "customers:read", forRow: true, writes: false };
        const p = tenantContextProof(a, "e", Date.now() + 10_000);
        const r = await sql.reserve();
        try {
          await Promise.all([
            r`begin`.execute(),
            r`select from app.open_tenant_context(${a.userId}::uuid, ${a.tenantRefs}::text[], null, ${a.requestId}, ${a.permission}::text, true, false, 'e', ${p.expiresAt}::int8, ${p.nonce}, ${p.proof})`.execute(),
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

      // 2b. The tenant context's cost: one opener call against a bare set_config, fresh and after
      //     100 prepared statements; and a request's transaction in the API's shape against the
      //     bare set_config shape, interleaved (bench/contextCost.ts).
      log("tenant context: cost per call");
      const member = { tenantId: data.tenants[0].id, userId: data.tenants[0].userId };
      results["tenant context: µs per call (in the database, one statement of 5,000 calls)"] = await contextCallCost(urls.appUrl, member);
      results["tenant context: µs per call, one per transaction (backend CPU, one client)"] =
        (await contextCallCostPerTransaction(urls.appUrl, member)) ?? "not measured: the backend's CPU is read from /proc, and PostgreSQL is not on this machine";
      const shapes = requestShapes(urls.appUrl, urls.ownerUrl, POOL, data.customers, new Map(data.tenants.map((t) => [t.id, { tenantId: t.id, userId: t.userId }])));
      try {
        const s = await interleaved("context shape", [
          { name: "api_shape_proof_rls", load: () => shapes.load("api", CONNECTIONS, SECONDS) },
          { name: "bare_set_config_explicit_filter", load: () => shapes.load("bare", CONNECTIONS, SECONDS) },
        ]);
        results["request transaction: API shape against bare set_config shape"] = s.medians;
        results["request transaction rounds, tx/s"] = s.rounds;
        ratios["API transaction shape / bare set_config shape (tx/s)"] = s.medians.api_shape_proof_rls.rps / s.medians.bare_set_config_explicit_filter.rps;
      } finally {
        await shapes.end();
      }

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
      // Write proofs on streams: one per concurrent writer, each used by one transaction at a time.
      const streams: ProofState[] = Array.from({ length: CONNECTIONS }, () => ({}));
      const insertAsAppUser = async (i: number) => {
        const t = pick(data.tenants, i);
        const a = { userId: t.userId, tenantRefs: [t.id], scope: null, requestId: `bench-sql-${i}`, permission: "customers:write", forRow: false, writes: true };
        const state = streams.pop() ?? {};
        const r = await app.reserve();
        try {
          const g = await streamGuard(r as never, state);
          const p = tenantContextProof(a, g.guard, g.expiresAt);
          await Promise.all([
            r`begin`.execute(),
            r`select from app.open_tenant_context(${a.userId}::uuid, ${a.tenantRefs}::text[], null, ${a.requestId}, ${a.permission}::text, false, true, ${g.guard}, ${p.expiresAt}::int8, ${p.nonce}, ${p.proof})`.execute(),
            r.unsafe(`insert into app.customers (tenant_id, name) values (app.current_tenant_id(), $1) returning ${cols}`, [`Bench sql ${i}`], { prepare: true }).execute(),
            r`commit`.execute(),
          ]);
        } finally {
          r.release();
          streams.push(state);
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
    }

    // 6. GET by id: one API process against WEB_CONCURRENCY=2 (two workers sharing the port, the
    //    same pool in total), in interleaved rounds; Node CPU counts every process of the tree.
    if (ONLY !== "overload" && ONLY !== "replica") {
      try {
        cluster = await startApi(urls, 2);
        const byId = floorShapes[0].http(false);
        await httpLoad(cluster.url, byId, WARMUP_SECONDS);
        const servers: Record<string, Api> = { one_process: api, web_concurrency_2: cluster };
        const cmp = await interleaved("GET customer by id, WEB_CONCURRENCY", Object.keys(servers).map((name) => ({
          name, load: () => measured(servers[name], "rls-service-shop", byId, 200),
        })));
        results["GET customer by id, WEB_CONCURRENCY=2"] = cmp.medians.web_concurrency_2;
        results["GET customer by id, one process (beside WEB_CONCURRENCY=2)"] = cmp.medians.one_process;
        ratios["GET customer by id: WEB_CONCURRENCY=2 / one process"] = cmp.medians.web_concurrency_2.rps / cmp.medians.one_process.rps;
      } catch (error) {
        results["GET customer by id, WEB_CONCURRENCY=2"] = `failed: ${(error as Error).message}`;
      } finally {
        await cluster?.stop();
        cluster = undefined;
      }
    }
    // 6b. GET by id with the primary alone against primary + one hot standby on this machine
    //     (DATABASE_READ_URLS), interleaved rounds (bench/replica.ts).
    if (!ONLY || ONLY === "replica") {
      const byId = floorShapes[0].http(false);
      try {
        results["GET customer by id, read replica"] = urls.superuserUrl
          ? await replicaRow({
            superuserUrl: urls.superuserUrl, appUrl: urls.appUrl, primaryAlone: api, rounds: FLOOR_ROUNDS, seconds: FLOOR_SECONDS, warmupSeconds: WARMUP_SECONDS, log,
            startApi: (extra) => startApi(urls, 1, process.cwd(), process.env.BENCH_API_NODE_OPTIONS, extra),
            load: (url, seconds) => httpLoad(url, byId, seconds),
          })
          : "not measured: the standby is made from the embedded server (unset DATABASE_URL)";
      } catch (error) {
        results["GET customer by id, read replica"] = `failed: ${(error as Error).message}`;
      }
      const r = results["GET customer by id, read replica"];
      if (typeof r === "object") ratios["GET customer by id: primary + standby / primary alone (same machine)"] = (r as ReplicaRow).primary_and_standby.rps / (r as ReplicaRow).primary_alone.rps;
    }
    await api.stop();
    api = undefined;

    if (!ONLY) {
      // 7. pgbench, where installed: the same reads, prepared, as the owner.
      for (const [name, script] of Object.entries(pgbenchScripts(TENANTS * CUSTOMERS))) {
        log(`pgbench ${name}`);
        results[`pgbench ${name} (owner, no RLS)`] = pgbenchLimit(urls.ownerUrl, script);
      }
    }

    const summary = {
      started: started.toISOString(),
      machine: { cores: cpus().length, cpu: cpus()[0]?.model, node: process.version },
      database: { version, tenants: TENANTS, customers_per_tenant: CUSTOMERS },
      settings: { seconds: SECONDS, connections: CONNECTIONS, pool: POOL, rounds: ROUNDS, floor_rounds: FLOOR_ROUNDS, floor_seconds: FLOOR_SECONDS, warmup_seconds: WARMUP_SECONDS, overload_connections: OVERLOAD_CONNECTIONS, overload_seconds: OVERLOAD_SECONDS },
      ratios,
      targets: targets(ratios, results),
      results,
      notes: [
        "The machine may be shared: read ratios of phases run side by side, not absolute figures.",
        "One network round trip per read request is asserted by test/round-trips.test.ts (a TCP proxy counts client flights), not measured by the bench.",
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
    await floor?.stop();
    await plainFloor?.stop();
    await baseline?.stop();
    await cluster?.stop();
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
async function interleaved(label: string, configurations: { name: string; load: () => Promise<LoadResult> }[], rounds = ROUNDS) {
  const runs: Record<string, LoadResult[]> = {};
  for (let round = 1; round <= rounds; round++) {
    for (const c of configurations) {
      log(`${label}: ${c.name} (round ${round} of ${rounds})`);
      (runs[c.name] ??= []).push(await c.load());
    }
  }
  const median = (xs: LoadResult[]) => [...xs].sort((a, b) => a.rps - b.rps)[Math.floor(xs.length / 2)];
  return {
    runs,
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

type PerTransaction = { open_tenant_context_us: number; transaction_with_opener_us: number; transaction_without_us: number };

/**
 * The context opener's cost on the read path (issue 29): ≤ 50 µs of backend CPU per transaction
 * above an empty read-only transaction, one call per transaction as a GET makes it (its proof
 * bound to the connection: no transaction id, nothing written). The write path (its proof
 * recorded on the connection's stream) is reported beside it, with no target. The 5,000-call
 * figure shares one transaction's set-up among its calls and is shown for comparison.
 */
function contextTarget(results: Record<string, unknown>): Target | undefined {
  const perTx = results["tenant context: µs per call, one per transaction (backend CPU, one client)"];
  if (typeof perTx !== "object" || perTx === null) return undefined;
  const { read, read_nonce: readNonce, write } = perTx as { read: PerTransaction; read_nonce: PerTransaction; write: PerTransaction };
  const c = results["tenant context: µs per call (in the database, one statement of 5,000 calls)"] as { fresh: { open_tenant_context_us: number } } | undefined;
  const met = read.open_tenant_context_us <= 50;
  return {
    target: "context opener on the read path ≤ 50 µs backend CPU per transaction above an empty read-only one",
    measured: `read ${read.open_tenant_context_us.toFixed(1)} µs (${read.transaction_with_opener_us.toFixed(1)} against ${read.transaction_without_us.toFixed(1)}); ` +
      `read recorded on a stream (CONTEXT_READ_GUARD=nonce) ${readNonce.open_tenant_context_us.toFixed(1)} µs; ` +
      `write ${write.open_tenant_context_us.toFixed(1)} µs (${write.transaction_with_opener_us.toFixed(1)} against ${write.transaction_without_us.toFixed(1)}, no target)` +
      (c ? `; ${c.fresh.open_tenant_context_us.toFixed(1)} µs a call in one statement of 5,000` : ""),
    met,
    note: met ? undefined : "profile the opener with perf on the backend (README, Speed); the guard's share: bench/contextCost.ts",
  };
}

/** The issues' targets, each with the figure it is judged on and, when missed, what limits it; only those this run measured. */
function targets(ratios: Record<string, number>, results: Record<string, unknown>): Target[] {
  const pct = (v: number) => `${(v * 100).toFixed(1)}%`;
  const list: Target[] = [];
  const floor = results["API against the floor"] as Record<string, { api: Measured; floor: Measured }> | undefined;
  const two = results["GET customer by id, WEB_CONCURRENCY=2"];
  const twoWorkers: Measured | undefined = typeof two === "object" ? (two as Measured) : undefined;
  for (const name of ["GET customer by id", "GET customer list of 50"]) {
    const r = ratios[`${name}: API / floor`];
    if (r === undefined) continue;
    const f = floor![name];
    list.push({
      target: `${name}: API ≥ 0.8× the floor`, measured: `${r.toFixed(2)}× (${f.api.rps.toFixed(0)} against ${f.floor.rps.toFixed(0)} req/s)`, met: r >= 0.8,
      note: r >= 0.8 ? undefined
        : `the API's Node CPU per request (${f.api.node_cpu_us.toFixed(0)} µs against the floor's ${f.floor.node_cpu_us.toFixed(0)}: JWT, Express routing and middleware, the access log, prom-client, validation, JSON) and its context call in PostgreSQL (${f.api.pg_cpu_us.toFixed(0)} µs against ${f.floor.pg_cpu_us.toFixed(0)}: app.open_tenant_context checks the proof, its nonce, membership, tenant and permission), on 2 cores shared with PostgreSQL and the load generator`,
    });
  }
  if (floor?.["GET customer by id"]) {
    const cpu = floor["GET customer by id"].api.node_cpu_us;
    list.push({
      target: "GET customer by id: Node CPU per request ≤ 450 µs", measured: `${cpu.toFixed(0)} µs (the floor: ${floor["GET customer by id"].floor.node_cpu_us.toFixed(0)} µs)`, met: cpu <= 450,
      note: cpu <= 450 ? undefined : "profile with BENCH_ONLY=floor BENCH_API_NODE_OPTIONS=\"--cpu-prof --cpu-prof-dir=/tmp/prof\"; bench/README.md lists what each lever bought",
    });
  }
  const rls = ratios["RLS overhead (1 - rls/explicit)"];
  if (rls !== undefined) {
    list.push({
      target: "RLS overhead ≤ 10%", measured: pct(rls), met: rls <= 0.1,
      note: rls <= 0.1 ? undefined : "the policy's once-per-statement initplan (app.current_tenant_id(): the context seal's HMAC, about 5 µs) on a ~0.1 ms primary-key read; run-to-run noise on a shared 2-core machine is several points, so compare runs before acting",
    });
  }
  const chain = ratios["INSERT customer, database: audit + hash chain overhead on writes (1 - audit_on_with_sealer/role_check_only)"];
  const chainApi = ratios["POST customer, API: audit + hash chain overhead on writes (1 - audit_on_with_sealer/role_check_only)"];
  if (chain !== undefined) {
    list.push({
      target: "audit with hash chain costs writes ≤ 35%", measured: `${pct(chain)} at the database (${pct(chainApi)} through the API)`, met: chain <= 0.35,
      note: chain <= 0.35 ? undefined : "every audited write also builds the row's jsonb image, redacts it and inserts an audit row (four index entries and a foreign-key check), and with the sealer running the same 2 cores also hash the chain; through the API (a keyed POST also writes and audits its idempotency key) the API's own CPU hides most of it. Lift: a core for PostgreSQL apart from the API, fewer audit indexes, or sealing less often",
    });
  }
  const exported = results["export CSV (API)"] as { rows: number; rss_growth_mb: number } | undefined;
  if (exported) {
    list.push({
      target: `export peak RSS growth < 64 MB (${exported.rows.toLocaleString("en")} rows)`, measured: `${exported.rss_growth_mb.toFixed(1)} MB`, met: exported.rss_growth_mb < 64,
      note: exported.rss_growth_mb < 64 ? undefined : "the COPY stream (16 KB) and the socket's write buffer bound what the export holds; growth beyond that is the V8 heap of the process; look for a consumer slower than the producer without backpressure",
    });
  }
  const byId = floor?.["GET customer by id"]?.api;
  if (byId) {
    const p99Two = twoWorkers?.p99 ?? NaN;
    const met = byId.p99 < 25 || p99Two < 25;
    const needed = CONNECTIONS / 0.025;
    list.push({
      target: "GET by id p99 < 25 ms at concurrency 64", measured: `${byId.p99.toFixed(0)} ms (1 API process), ${p99Two.toFixed(0)} ms (2)`, met,
      note: met ? undefined
        : `at concurrency 64, p99 < 25 ms needs more than ~${needed.toFixed(0)} req/s (64 requests in flight / 25 ms); the API reached ${byId.rps.toFixed(0)} req/s with one process and ${(twoWorkers?.rps ?? NaN).toFixed(0)} with two, CPU-bound on 2 cores shared with PostgreSQL and the load generator`,
    });
  }
  const overload = (results["overload: GET customer list of 50"] as Record<string, OverloadSide> | undefined)?.api;
  if (overload) {
    const ratio = middleOf(overload.ratio_rounds);
    const high = overload.phases[`${OVERLOAD_CONNECTIONS} impatient`];
    const spread = `rounds ${overload.ratio_rounds.map((r) => r.toFixed(2)).join(", ")}`;
    list.push({
      target: `overload: successful answers/s at ${OVERLOAD_CONNECTIONS} impatient connections ≥ 80% of 16`, measured: `${(ratio * 100).toFixed(0)}% (${spread}; ${high.goodput.toFixed(0)} against ${overload.phases["16 impatient"].goodput.toFixed(0)} in the median round)`, met: ratio >= 0.8,
      note: ratio >= 0.8 ? undefined : "Node CPU spent on refusals: see µs per refusal in the overload table and README (Overload)",
    });
    const worst = Math.max(...Object.values(overload.phases).map((p) => p.p99));
    // A connection's first answer includes its wait in the kernel's accept queue, which Node drains one
    // connection per event-loop iteration (bench/README.md, Overload): reported beside the target.
    const worstEstablished = Math.max(...Object.values(overload.phases).map((p) => p.p99_established));
    list.push({ target: "overload: successful answers p99 ≤ 250 ms", measured: `${worst.toFixed(0)} ms (the worst phase's median round); ${worstEstablished.toFixed(0)} ms without each connection's first answer`, met: worst <= 250,
      note: worst <= 250 ? undefined : "a connection opened while the API is saturated waits to be accepted: bench/README.md (Overload)" });
    const other = Object.values(overload.phases).reduce((n, p) => n + p.other_5xx, 0);
    list.push({ target: "overload: no 5xx other than 503", measured: `${other} (median rounds)`, met: other === 0 });
  }
  const context = contextTarget(results);
  if (context) list.push(context);
  // One round trip per request is not measured here: test/round-trips.test.ts asserts it (see the notes).
  return list;
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
  const floor = s.results["API against the floor"] as Record<string, AgainstFloor> | undefined;
  if (floor) {
    lines.push("", "API against the floor (bench/floor.ts: Express + postgres.js, BEGIN / the context by proof / query / COMMIT pipelined, no auth, no logs): req/s, p50 and p99 of the median of interleaved rounds; CPU per request from /proc, the median over the rounds:", "",
      "| endpoint | API req/s | floor req/s | API / floor | API p50 / p99 ms | floor p50 / p99 ms | Node CPU µs/req API / floor | PostgreSQL CPU µs/req API / floor | errors API / floor | rounds req/s API; floor |",
      "|---|---|---|---|---|---|---|---|---|---|");
    for (const [name, v] of Object.entries(floor)) {
      lines.push(`| ${name} | ${f(v.api.rps)} | ${f(v.floor.rps)} | ${(v.api.rps / v.floor.rps).toFixed(2)} | ${f(v.api.p50)} / ${f(v.api.p99)} | ${f(v.floor.p50)} / ${f(v.floor.p99)} | ${v.api.node_cpu_us.toFixed(0)} / ${v.floor.node_cpu_us.toFixed(0)} | ${v.api.pg_cpu_us.toFixed(0)} / ${v.floor.pg_cpu_us.toFixed(0)} | ${v.api.errors} / ${v.floor.errors} | ${v.rounds.api.join(" / ")}; ${v.rounds.floor.join(" / ")} |`);
    }
    for (const [name, v] of Object.entries(floor).filter(([, v]) => v.floor_plain)) {
      const p = v.floor_plain!;
      lines.push("", `${name}, the plain floor (bench/floor.ts with FLOOR_PLAIN=1: the same handler without the two library mends, server/db/postgresClasses.ts and server/http/httpServer.ts) in the same rounds: ${f(p.rps)} req/s, API / plain floor ${(v.api.rps / p.rps).toFixed(2)}; p50 / p99 ${f(p.p50)} / ${f(p.p99)} ms; Node CPU ${p.node_cpu_us.toFixed(0)} µs/req (API ${v.api.node_cpu_us.toFixed(0)}, floor ${v.floor.node_cpu_us.toFixed(0)}); PostgreSQL ${p.pg_cpu_us.toFixed(0)} µs/req; errors ${p.errors}; rounds ${v.rounds.floor_plain.join(" / ")}.`);
    }
    const base = Object.entries(floor).filter(([, v]) => v.api_baseline);
    if (base.length) {
      lines.push("", "The API at BENCH_BASELINE_DIR, in the same rounds:", "", "| endpoint | API req/s | baseline req/s | API / baseline | API p50 / p99 ms | baseline p50 / p99 ms | Node CPU µs/req API / baseline | PostgreSQL CPU µs/req API / baseline | rounds req/s baseline |", "|---|---|---|---|---|---|---|---|---|");
      for (const [name, v] of base) {
        const b = v.api_baseline!;
        lines.push(`| ${name} | ${f(v.api.rps)} | ${f(b.rps)} | ${(v.api.rps / b.rps).toFixed(2)} | ${f(v.api.p50)} / ${f(v.api.p99)} | ${f(b.p50)} / ${f(b.p99)} | ${v.api.node_cpu_us.toFixed(0)} / ${b.node_cpu_us.toFixed(0)} | ${v.api.pg_cpu_us.toFixed(0)} / ${b.pg_cpu_us.toFixed(0)} | ${v.rounds.api_baseline.join(" / ")} |`);
      }
    }
  }
  const two = s.results["GET customer by id, WEB_CONCURRENCY=2"] as Measured | string | undefined;
  const one = s.results["GET customer by id, one process (beside WEB_CONCURRENCY=2)"] as Measured | undefined;
  if (two && typeof two === "object" && one) {
    lines.push("", `GET customer by id, WEB_CONCURRENCY=2 against one process (interleaved rounds, median round): ${f(two.rps)} against ${f(one.rps)} req/s; Node CPU ${two.node_cpu_us.toFixed(0)} against ${one.node_cpu_us.toFixed(0)} µs/req (every process of the tree); PostgreSQL ${two.pg_cpu_us.toFixed(0)} against ${one.pg_cpu_us.toFixed(0)} µs/req.`);
  }
  const replica = s.results["GET customer by id, read replica"] as ReplicaRow | string | undefined;
  if (replica && typeof replica === "object") {
    lines.push("", "GET customer by id, the primary alone against the primary + one hot standby (DATABASE_READ_URLS) on the same machine, interleaved rounds, median round (bench/replica.ts; the standby competes for the same 2 cores):", "",
      "| side | req/s | p50 / p99 ms | errors | Node CPU µs/req | PostgreSQL CPU µs/req primary / standby | reads the standby answered | rounds req/s |", "|---|---|---|---|---|---|---|---|");
    for (const [side, r] of Object.entries({ primary_alone: replica.primary_alone, primary_and_standby: replica.primary_and_standby })) {
      lines.push(`| ${side} | ${f(r.rps)} | ${f(r.p50)} / ${f(r.p99)} | ${r.errors} | ${r.node_cpu_us.toFixed(0)} | ${r.pg_cpu_us.toFixed(0)} / ${r.standby_cpu_us.toFixed(0)} | ${(r.replica_share * 100).toFixed(1)}% | ${replica.rounds[side].join(" / ")} |`);
    }
  }
  const overload = s.results["overload: GET customer list of 50"] as Record<string, OverloadSide> | undefined;
  if (overload) {
    lines.push("", "Overload, GET customer list of 50 (bench/overload.ts; impatient clients retry at once, polite ones wait out Retry-After): successful answers per second, their p50 / p99, of each phase's median round; µs of Node CPU per refusal beyond the successes' own:", "",
      "| server | phase | successes/s | p50 / p99 ms (successes) | answers/s | statuses | no answer | other 5xx | rounds successes/s | rounds p99 ms | rounds p99 ms, connections' first answers left out |", "|---|---|---|---|---|---|---|---|---|---|---|");
    for (const [side, o] of Object.entries(overload)) {
      for (const [name, p] of Object.entries(o.phases)) {
        lines.push(`| ${side} | ${name} | ${f(p.goodput)} | ${f(p.p50)} / ${f(p.p99)} | ${f(p.answers / p.seconds)} | ${Object.entries(p.statuses).map(([k, n]) => `${k}: ${n}`).join(", ")} | ${p.errors} | ${p.other_5xx} | ${p.rounds.join(" / ")} | ${p.rounds_p99.join(" / ")} | ${p.rounds_p99_established.join(" / ")} |`);
      }
      lines.push("", `${side}: successes at ${OVERLOAD_CONNECTIONS} impatient / at 16, per round: ${o.ratio_rounds.map((r) => r.toFixed(2)).join(", ")}; Node CPU per refusal, per round: ${o.cpu_per_refusal_rounds.map((c) => (Number.isFinite(c) ? `${c.toFixed(0)} µs` : "no refusals")).join(", ")}; Node CPU beyond the successes' own, share of one core: ${o.cpu_beyond_successes_rounds.map((c) => `${(c * 100).toFixed(0)}%`).join(", ")}.`, "");
    }
  }
  const exports = Object.entries(s.results).filter(([k]) => k.startsWith("export CSV"));
  if (exports.length) lines.push("", "| export | rows | MB | seconds | rows/s | MB/s | API RSS baseline → peak (growth) MB |", "|---|---|---|---|---|---|---|");
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
