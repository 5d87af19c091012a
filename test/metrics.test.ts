// The request metrics (and the error answers by code) are counted by server/core/metrics.ts itself
// and handed to prom-client when scraped: what /metrics shows must be what prom-client's own
// Counter and Histogram would show. With WEB_CONCURRENCY workers, one scrape answers the sum over
// all of them.
import { randomUUID } from "node:crypto";
import { createServer, request, type ServerResponse } from "node:http";
import { Counter, Histogram, Registry } from "prom-client";
import { describe, expect, it } from "vitest";
import { recordRequest, registry } from "../server/core/metrics.ts";
import { admissionControl } from "../server/http/admission.ts";
import { db } from "./fixtures.ts";
import { startInstance, stopInstance, type Instance } from "./instances.ts";
import { waitFor } from "./waits.ts";

const lines = (text: string, name: string, route: string) => text.split("\n").filter((l) => l.startsWith(name) && l.includes(`route="${route}"`));

describe("request metrics", () => {
  it("export the counts, buckets, sum and count prom-client's own Counter and Histogram would", async () => {
    const route = `/metrics-test/${Math.random().toString(36).slice(2)}`;
    // The reference: prom-client's own metrics, fed the same requests.
    const reference = new Registry();
    const counter = new Counter({ name: "http_requests_total", help: "x", labelNames: ["method", "route", "status"], registers: [reference] });
    const histogram = new Histogram({
      name: "http_request_duration_seconds", help: "x", labelNames: ["method", "route"],
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5], registers: [reference],
    });
    // Bounds themselves (a bucket holds values up to and including its bound), between, above all.
    const requests: [string, number, number][] = [
      ["GET", 200, 0.005], ["GET", 200, 0.0051], ["GET", 404, 0.3], ["GET", 200, 5], ["GET", 200, 7.5], ["POST", 201, 0], ["POST", 422, 0.02],
    ];
    for (const [method, status, seconds] of requests) {
      recordRequest(method, route, status, seconds, {});
      counter.inc({ method, route, status: String(status) });
      histogram.observe({ method, route }, seconds);
    }
    const ours = await registry.metrics();
    const theirs = await reference.metrics();
    for (const name of ["http_requests_total", "http_request_duration_seconds_bucket", "http_request_duration_seconds_sum", "http_request_duration_seconds_count"]) {
      expect(lines(ours, name, route).sort()).toEqual(lines(theirs, name, route).sort());
      expect(lines(ours, name, route).length).toBeGreaterThan(0);
    }
    expect(ours).toContain("# TYPE http_request_duration_seconds histogram");
    expect(ours).toContain("# TYPE http_requests_total counter");
  });

  it("count error answers by status and code (4xx and 5xx only), as a prom-client Counter would", async () => {
    const route = `/metrics-test/${Math.random().toString(36).slice(2)}`;
    const code = `TEST_${Math.random().toString(36).slice(2, 8).toUpperCase()}`;
    const reference = new Registry();
    const counter = new Counter({ name: "http_errors_total", help: "x", labelNames: ["status", "code"], registers: [reference] });
    const unknown = async () => Number((await registry.metrics()).match(/^http_errors_total\{status="500",code="UNKNOWN"\} (\d+)$/m)?.[1] ?? 0);
    const unknownBefore = await unknown();
    const answers: [number, string | undefined][] = [[200, undefined], [304, undefined], [404, code], [404, code], [503, code], [422, `${code}_B`], [500, undefined]];
    for (const [status, errorCode] of answers) {
      recordRequest("GET", route, status, 0.001, errorCode ? { errorCode } : {});
      if (status >= 400 && errorCode) counter.inc({ status: String(status), code: errorCode });
    }
    const ours = (await registry.metrics()).split("\n").filter((l) => l.startsWith("http_errors_total{") && l.includes(code));
    const theirs = (await reference.metrics()).split("\n").filter((l) => l.startsWith("http_errors_total{"));
    expect(ours.sort()).toEqual(theirs.sort());
    expect(ours).toContain(`http_errors_total{status="404",code="${code}"} 2`);
    // An error answer the error handler did not name (none should exist) is counted, as UNKNOWN.
    expect(await unknown()).toBe(unknownBefore + 1);
  });

  it("count the 503s admission control writes before routing, which http_requests_total cannot", async () => {
    const value = async (series: string) => Number((await registry.metrics()).split("\n").find((l) => l.startsWith(`${series} `))?.split(" ")[1] ?? 0);
    const before = { refused: await value("http_refused_before_routing_total"), overloaded: await value('http_unavailable_total{code="OVERLOADED"}') };
    // One request held inside, no room to wait: the next one is refused at once.
    const held: ServerResponse[] = [];
    const server = createServer(admissionControl((_req, res) => held.push(res), { limit: 1, queueMax: 0, deadlineMs: 10_000, refuseAfterMs: 10_000 }));
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const url = `http://127.0.0.1:${(server.address() as { port: number }).port}/api/v1/customers`;
    const get = () => new Promise<number>((resolve, reject) => request(url, { agent: false }, (res) => (res.resume(), resolve(res.statusCode!))).on("error", reject).end());
    try {
      const first = get();
      while (held.length === 0) await new Promise((r) => setTimeout(r, 5));
      expect(await get()).toBe(503);
      // Admission reports its refusals once a second.
      for (let i = 0; i < 40 && (await value("http_refused_before_routing_total")) === before.refused; i++) await new Promise((r) => setTimeout(r, 50));
      expect(await value("http_refused_before_routing_total")).toBe(before.refused + 1);
      expect(await value('http_unavailable_total{code="OVERLOADED"}')).toBe(before.overloaded + 1);
      held[0].end("ok");
      expect(await first).toBe(200);
    } finally {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    }
  });
});

/** One GET on a connection of its own (the cluster hands each new connection to the next worker). */
function getOnce(url: string, headers: Record<string, string> = {}): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { agent: false, headers: { connection: "close", ...headers } }, (res) => {
      let body = "";
      res.on("data", (c) => (body += c));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on("error", reject);
    req.end();
  });
}

const healthzCount = (text: string) => {
  const line = text.split("\n").find((l) => l.startsWith("http_requests_total{") && l.includes('route="/healthz"') && l.includes('status="200"'));
  return line ? Number(line.split(" ").at(-1)) : 0;
};

describe("metrics across WEB_CONCURRENCY workers", () => {
  it("one scrape answers the sum over both workers: counters equal the requests sent, and grow from scrape to scrape", async () => {
    let instance: Instance | undefined;
    try {
      instance = await startInstance(
        { NODE_ENV: "production", WEB_CONCURRENCY: "2", DB_POOL_MAX: "2", DATABASE_URL: db.appUrl, CONTEXT_KEY: db.contextKey, JWT_SECRET: db.jwtSecret },
        { workers: 2 },
      );
      const ids: string[] = [];
      const send = async (n: number) => {
        for (let i = 0; i < n; i++) {
          const id = `metrics-${randomUUID()}`;
          ids.push(id);
          expect((await getOnce(`${instance!.url}/healthz`, { "x-request-id": id })).status).toBe(200);
        }
      };
      await send(20);
      const first = healthzCount((await getOnce(`${instance.url}/metrics`)).body);
      await send(15);
      const second = healthzCount((await getOnce(`${instance.url}/metrics`)).body);
      expect([first, second]).toEqual([20, 35]);
      // Both workers answered: the access lines of the requests name two processes.
      await waitFor(() => ids.every((id) => instance!.output().includes(`"request_id":"${id}"`)), { what: "every request's access line" });
      const pids = new Set(ids.map((id) => new RegExp(`"pid":(\\d+)[^\\n]*"request_id":"${id}"`).exec(instance!.output())?.[1]));
      expect(pids.has(undefined), "every request has its access line").toBe(false);
      expect(pids.size).toBe(2);
    } finally {
      expect(await stopInstance(instance)).toBe(0);
    }
  });
});
