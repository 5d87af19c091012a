// Prometheus metrics on GET /metrics: requests by route template and status, latency, 503s,
// 304s, authorization denials (RLS/privilege 42501 and HTTP 403) and tenant-pool use. One
// registry per process; route labels are templates (/api/v1/customers/:id), never raw paths.
import type { Request, RequestHandler, Response } from "express";
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";

export const registry = new Registry();
collectDefaultMetrics({ register: registry });

const requests = new Counter({
  name: "http_requests_total",
  help: "HTTP requests by method, route template and status.",
  labelNames: ["method", "route", "status"] as const,
  registers: [registry],
});
const latency = new Histogram({
  name: "http_request_duration_seconds",
  help: "HTTP request latency by method and route template.",
  labelNames: ["method", "route"] as const,
  buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
  registers: [registry],
});
const unavailable = new Counter({
  name: "http_unavailable_total",
  help: "503 answers by error code (DATABASE_UNAVAILABLE, DATABASE_TIMEOUT, MIGRATIONS_NOT_AT_HEAD).",
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
// Read from the pool when scraped (collect), not counted up and down by every request.
let poolInUseNow: (() => number) | undefined;
new Gauge({
  name: "db_pool_connections_in_use", help: "Tenant-pool connections leased right now (requests and exports).", registers: [registry],
  collect() {
    this.set(poolInUseNow?.() ?? 0);
  },
});
const poolMax = new Gauge({ name: "db_pool_connections_max", help: "Configured size of the tenant pool (DB_POOL_MAX).", registers: [registry] });

/** Where db_pool_connections_in_use reads its value (the tenant-context helper's pool). */
export function observePoolInUse(inUse: (() => number) | undefined): void {
  poolInUseNow = inUse;
}

export function setPoolMax(max: number): void {
  poolMax.set(max);
}

/** What the error handler tells the metrics about an error answer (kept on res.locals). */
export function noteError(res: Response, code: string, causeCode: string | undefined): void {
  res.locals.errorCode = code;
  res.locals.causeCode = causeCode;
}

/**
 * The route template of a request (/api/v1/customers/:id), never its raw path. documented()
 * (contract.ts), first on every route, records it while the router dispatches, the one moment
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
type Bound = { count: { inc: () => void }; latency: { observe: (seconds: number) => void } };
const bound = new Map<string, Bound>();

function boundFor(method: string, route: string, status: number): Bound {
  const key = `${method} ${status} ${route}`;
  let b = bound.get(key);
  if (!b) {
    b = { count: requests.labels(method, route, String(status)), latency: latency.labels(method, route) };
    bound.set(key, b);
  }
  return b;
}

/** Counts one answered request (accessLog.ts calls it when the response ends). */
export function recordRequest(method: string, route: string, status: number, seconds: number, locals: Record<string, unknown>): void {
  const b = boundFor(method, route, status);
  b.count.inc();
  b.latency.observe(seconds);
  if (status === 503) unavailable.inc({ code: String(locals.errorCode ?? "UNKNOWN") });
  if (status === 304) notModified.inc({ route });
  if (locals.causeCode === "42501") denials.inc({ source: "database", code: String(locals.errorCode) });
  else if (status === 403) denials.inc({ source: "http", code: String(locals.errorCode ?? "FORBIDDEN") });
}

export const metricsEndpoint: RequestHandler = async (_req, res) => {
  res.setHeader("Content-Type", registry.contentType);
  res.send(await registry.metrics());
};
