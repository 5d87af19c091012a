// Prometheus metrics on GET /metrics: requests by route template and status, latency, error
// answers by code, 503s (also those written before routing), 304s, authorization denials
// (RLS/privilege 42501 and HTTP 403), tenant-pool use, audit export bytes and,
// where replicas serve reads, reads by the server that answered them. One registry per
// process; route labels are templates (/api/v1/customers/:id), never raw paths. deploy/monitoring/
// holds the alert rules and the dashboard built on them (test/monitoring.test.ts checks that every
// name they use is exported here).
// With WEB_CONCURRENCY > 1 each worker counts its own requests, and a scrape, which reaches one
// worker, answers the sum over all of them: the worker asks the primary, which gathers every
// worker's registry with prom-client's AggregatorRegistry (each metric by its aggregator: counters
// and histograms summed). Before, a scrape answered from whichever worker it reached, and
// counters jumped between scrapes.
import cluster from "node:cluster";
import type { Request, RequestHandler, Response } from "express";
import { AggregatorRegistry, Counter, Gauge, Registry, collectDefaultMetrics, type Metric } from "prom-client";

export const registry = new Registry();
collectDefaultMetrics({ register: registry });

// Requests and their latency by route: counted here, per request one Map lookup and a few
// additions, and handed to prom-client when scraped. prom-client's own inc and observe hash and
// validate their labels on every call, even on bound label children: 18 µs of Node CPU per GET
// in the running API (371 against 389 µs with request metrics off, 11 interleaved rounds; 5% of
// its req/s), though well under a microsecond each in a tight loop.
const latencyBuckets = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5];
type RouteSeries = {
  labels: { method: string; route: string };
  /** Answers by status code. */
  statuses: Map<number, number>;
  /** Observations per latency bucket, not cumulative; the last one is above every bound (+Inf). */
  buckets: number[];
  sum: number;
  count: number;
};
const routeSeries = new Map<string, RouteSeries>();

new Counter({
  name: "http_requests_total",
  help: "HTTP requests by method, route template and status.",
  labelNames: ["method", "route", "status"] as const,
  registers: [registry],
  collect() {
    this.reset();
    for (const s of routeSeries.values()) for (const [status, n] of s.statuses) this.inc({ ...s.labels, status: String(status) }, n);
  },
});

// prom-client has no way to hand a Histogram counts it did not observe itself, so the latency
// is a metric of its own kind: an object the registry asks for its values (get) and formats,
// escapes and exports like every other (prom-client's Registry.registerMetric).
const latency = {
  name: "http_request_duration_seconds",
  help: "HTTP request latency by method and route template.",
  type: "histogram",
  aggregator: "sum",
  get: async () => ({
    name: latency.name, help: latency.help, type: latency.type, aggregator: latency.aggregator,
    values: [...routeSeries.values()].flatMap((s) => {
      let cumulative = 0;
      const bucketValues = s.buckets.map((n, i) => {
        cumulative += n;
        return { metricName: `${latency.name}_bucket`, labels: { le: i < latencyBuckets.length ? latencyBuckets[i] : "+Inf", ...s.labels }, value: cumulative };
      });
      return [...bucketValues, { metricName: `${latency.name}_sum`, labels: s.labels, value: s.sum }, { metricName: `${latency.name}_count`, labels: s.labels, value: s.count }];
    }),
  }),
  reset: () => routeSeries.clear(),
};
registry.registerMetric(latency as unknown as Metric);
const unavailable = new Counter({
  name: "http_unavailable_total",
  help: "503 answers by error code (DATABASE_UNAVAILABLE, DATABASE_BUSY, OVERLOADED, SCHEMA_BEHIND, ...).",
  labelNames: ["code"] as const,
  registers: [registry],
});
const notModified = new Counter({
  name: "http_not_modified_total",
  help: "304 Not Modified answers (conditional GET with a matching ETag) by route template.",
  labelNames: ["route"] as const,
  registers: [registry],
});
const denials = new Counter({
  name: "authorization_denials_total",
  help: "Denied actions: source=database for SQLSTATE 42501 (RLS WITH CHECK or privilege), source=http for other 403s.",
  labelNames: ["source", "code"] as const,
  registers: [registry],
});
// Error answers by status and stable code (404 TENANT_NOT_FOUND, 422 VALIDATION_FAILED, ...),
// counted like the requests above: a Map entry per (status, code), handed over when scraped. The
// codes are the server's own fixed set (core/errors.ts and the routes), never client text.
type ErrorSeries = { labels: { status: string; code: string }; count: number };
const errorSeries = new Map<string, ErrorSeries>();
new Counter({
  name: "http_errors_total",
  help: "Error answers (4xx and 5xx) by status and error code.",
  labelNames: ["status", "code"] as const,
  registers: [registry],
  collect() {
    this.reset();
    for (const s of errorSeries.values()) this.inc(s.labels, s.count);
  },
});

// Read from the pool when scraped (collect), not counted up and down by every request.
type PoolUse = { inUse: number; waiting: number };
let poolNow: (() => PoolUse) | undefined;
new Gauge({
  name: "db_pool_connections_in_use", help: "Tenant-pool connections leased right now (requests and exports).", registers: [registry],
  collect() {
    this.set(poolNow?.().inUse ?? 0);
  },
});
new Gauge({
  name: "db_pool_requests_waiting", help: "Requests waiting for a free tenant-pool connection right now (at most DB_POOL_QUEUE_MAX).", registers: [registry],
  collect() {
    this.set(poolNow?.().waiting ?? 0);
  },
});
const poolMax = new Gauge({ name: "db_pool_connections_max", help: "Configured size of the tenant pool (DB_POOL_MAX).", registers: [registry] });

// Reads by target, replicas' lag and skips: counted by server/db/replicas.ts as plain numbers
// (a read adds one to a field, as the route series above do) and read from it when scraped.
/** What the read replicas report when scraped: each replica by name (host:port), never its URL. */
export type ReadTargets = {
  primaryServed: number;
  replicas: { name: string; state: string; lagSeconds: number | null; served: number; skipped: Record<string, number>; failovers: number }[];
};
let readTargets: (() => ReadTargets) | undefined;
new Counter({
  name: "db_reads_total", help: "Read transactions answered, by the server that answered: primary, or a replica by host:port (only where DATABASE_READ_URLS is set).",
  labelNames: ["target"] as const, registers: [registry],
  collect() {
    this.reset();
    const r = readTargets?.();
    if (!r) return;
    this.inc({ target: "primary" }, r.primaryServed);
    for (const x of r.replicas) this.inc({ target: x.name }, x.served);
  },
});
new Gauge({
  name: "db_replica_lag_seconds", help: "How far a read replica was behind the primary at its last poll (server/db/replicas.ts defines it); absent while unknown.",
  labelNames: ["replica"] as const, registers: [registry],
  collect() {
    this.reset();
    for (const x of readTargets?.().replicas ?? []) if (x.lagSeconds !== null) this.set({ replica: x.name }, x.lagSeconds);
  },
});
new Gauge({
  name: "db_replica_usable", help: "1 while a read replica serves reads (state ok), else 0 (lagging, unreachable, not a standby, starting).",
  labelNames: ["replica"] as const, registers: [registry],
  collect() {
    this.reset();
    for (const x of readTargets?.().replicas ?? []) this.set({ replica: x.name }, x.state === "ok" ? 1 : 0);
  },
});
new Counter({
  name: "db_replica_skipped_total", help: "Reads a replica did not serve, by reason: lag (over READ_REPLICA_MAX_LAG_MS), unavailable (unreachable, not a standby, starting), behind_token (had not replayed the client's X-Consistency-Token).",
  labelNames: ["replica", "reason"] as const, registers: [registry],
  collect() {
    this.reset();
    for (const x of readTargets?.().replicas ?? []) for (const [reason, n] of Object.entries(x.skipped)) this.inc({ replica: x.name, reason }, n);
  },
});
new Counter({
  name: "db_replica_failovers_total", help: "Reads that failed on a replica (its connection, a recovery conflict, a refused proof) and were answered by the primary.",
  labelNames: ["replica"] as const, registers: [registry],
  collect() {
    this.reset();
    for (const x of readTargets?.().replicas ?? []) this.inc({ replica: x.name }, x.failovers);
  },
});

/** Where the read-target metrics read their values (the tenant-context helper's replicas), or none. */
export function observeReadTargets(report: (() => ReadTargets) | undefined): void {
  readTargets = report;
}

/** Where db_pool_connections_in_use and db_pool_requests_waiting read their values (the tenant-context helper's pool). */
export function observePool(use: (() => PoolUse) | undefined): void {
  poolNow = use;
}

// Bytes of audit CSV relayed to clients (db/copyRelay.ts): a plain addition per chunk, handed over
// when scraped, so a 30-minute export shows its throughput while it runs, not at its end.
let exportBytes = 0;
new Counter({
  name: "audit_export_bytes_total", help: "Bytes of audit exports (CSV) written to clients.", registers: [registry],
  collect() {
    this.reset();
    this.inc(exportBytes);
  },
});

/** Counts `n` bytes of an export written to its client. */
export function countExportBytes(n: number): void {
  exportBytes += n;
}

export function setPoolMax(max: number): void {
  poolMax.set(max);
}

// Answers written before routing reach neither http_requests_total nor http_errors_total (they have
// no route): counted here too, so a share of answers (deploy/monitoring/alerts.yml) can include them.
// Unlabelled, so the series exists from the start at 0 and a sum with it never comes out empty.
const refusedBeforeRouting = new Counter({
  name: "http_refused_before_routing_total",
  help: "503 answers written before routing (admission control's OVERLOADED), also counted in http_unavailable_total; never in http_requests_total.",
  registers: [registry],
});

/** 503s answered outside Express (admission.ts counts its refusals and reports them here). */
export function countUnavailable(code: string, n: number): void {
  unavailable.inc({ code }, n);
  refusedBeforeRouting.inc(n);
}

/** What the error handler tells the metrics about an error answer (kept on res.locals). */
export function noteError(res: Response, code: string, causeCode: string | undefined): void {
  res.locals.errorCode = code;
  res.locals.causeCode = causeCode;
}

/**
 * The route template of a request (/api/v1/customers/:id), never its raw path. documented()
 * (http/contract.ts), first on every route, records it while the router dispatches, the one moment
 * req.baseUrl is the route's mount (an error answer is sent after the routers restored it).
 * A route without a contract (tests' probes only: the contract test refuses one in the app)
 * falls back to what req.route says at the end, which after an error lacks the mount path.
 */
export function routeTemplate(req: Request, res: Response): string {
  const recorded = res.locals.route as string | undefined;
  if (recorded !== undefined) return recorded;
  const path = (req.route as { path?: unknown } | undefined)?.path;
  return typeof path === "string" ? templateOf(req.baseUrl, path) : "unmatched";
}

export function templateOf(baseUrl: string, path: string): string {
  return `${baseUrl}${path}`.replace(/(.)\/$/, "$1") || "/";
}

// Each (method, route, status) gets its label children once: prom-client otherwise sorts and
// joins the label values into a key on every inc and observe.
function seriesFor(method: string, route: string): RouteSeries {
  const key = `${method} ${route}`;
  let s = routeSeries.get(key);
  if (!s) {
    s = { labels: { method, route }, statuses: new Map(), buckets: new Array(latencyBuckets.length + 1).fill(0), sum: 0, count: 0 };
    routeSeries.set(key, s);
  }
  return s;
}

function countError(status: number, code: string): void {
  const key = `${status} ${code}`;
  const s = errorSeries.get(key);
  if (s) s.count++;
  else errorSeries.set(key, { labels: { status: String(status), code }, count: 1 });
}

/** Counts one answered request (http/accessLog.ts calls it when the response ends). */
export function recordRequest(method: string, route: string, status: number, seconds: number, locals: Record<string, unknown>): void {
  const s = seriesFor(method, route);
  s.statuses.set(status, (s.statuses.get(status) ?? 0) + 1);
  // A bucket counts observations up to and including its bound (Prometheus's le).
  let bucket = 0;
  while (bucket < latencyBuckets.length && seconds > latencyBuckets[bucket]) bucket++;
  s.buckets[bucket]++;
  s.sum += seconds;
  s.count++;
  if (status >= 400) countError(status, String(locals.errorCode ?? "UNKNOWN"));
  if (status === 503) unavailable.inc({ code: String(locals.errorCode ?? "UNKNOWN") });
  if (status === 304) notModified.inc({ route });
  if (locals.causeCode === "42501") denials.inc({ source: "database", code: String(locals.errorCode) });
  else if (status === 403) denials.inc({ source: "http", code: String(locals.errorCode ?? "FORBIDDEN") });
}

const SCRAPE = "rls-service-shop:metrics-scrape";
const SCRAPED = "rls-service-shop:metrics-scraped";
type ScrapeMessage = { type: typeof SCRAPE; id: number } | { type: typeof SCRAPED; id: number; text?: string; error?: string };

/** In the primary of WEB_CONCURRENCY workers: answers a worker's scrape with every worker's metrics, aggregated. */
export function aggregateWorkerMetrics(): void {
  const aggregator = new AggregatorRegistry();
  cluster.on("message", (worker, message: ScrapeMessage) => {
    if (message?.type !== SCRAPE) return;
    aggregator.clusterMetrics().then(
      (text) => worker.send({ type: SCRAPED, id: message.id, text }),
      (error: Error) => worker.send({ type: SCRAPED, id: message.id, error: error.message }),
    );
  });
}

let scrapes: Map<number, (answer: { text?: string; error?: string }) => void> | undefined;
let nextScrape = 0;

/** In a worker: hands this registry to the primary's aggregation, and scrapes answer the aggregate. */
export function reportMetricsToPrimary(): void {
  AggregatorRegistry.setRegistries([registry]);
  new AggregatorRegistry(); // answers the primary's requests for this worker's metrics
  scrapes = new Map();
  process.on("message", (message: ScrapeMessage) => {
    if (message?.type === SCRAPED) scrapes?.get(message.id)?.(message);
  });
}

function scrapeAllWorkers(): Promise<string> {
  const id = nextScrape++;
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => done({ error: "the primary did not answer within 5 s" }), 5000);
    const done = (answer: { text?: string; error?: string }) => {
      clearTimeout(timer);
      scrapes!.delete(id);
      if (answer.text !== undefined) resolve(answer.text);
      else reject(new Error(`metrics of all workers: ${answer.error}`));
    };
    scrapes!.set(id, done);
    process.send!({ type: SCRAPE, id });
  });
}

export const metricsEndpoint: RequestHandler = async (_req, res) => {
  res.setHeader("Content-Type", registry.contentType);
  res.send(scrapes ? await scrapeAllWorkers() : await registry.metrics());
};
