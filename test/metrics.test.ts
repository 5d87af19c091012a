// The request metrics are counted by server/core/metrics.ts itself and handed to prom-client when
// scraped: what /metrics shows must be what prom-client's own Counter and Histogram would show. With
// WEB_CONCURRENCY workers, one scrape answers the sum over all of them.
import { randomUUID } from "node:crypto";
import { request } from "node:http";
import { Counter, Histogram, Registry } from "prom-client";
import { describe, expect, it } from "vitest";
import { recordRequest, registry } from "../server/core/metrics.ts";
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
