// Admission control in front of the app (server/admission.ts): a bounded number of API requests
// inside, the rest waiting with a deadline, oldest first until the oldest has waited lifoAfterMs
// and newest first after, refusals written without the app (503 OVERLOADED in the error shape, Retry-After) and
// answered once the request has waited refuseAfterMs, and past the queue's bound refused at once
// with the connection closed. A real HTTP server; the app behind it holds /api/v1/hold/* requests
// until the test lets them go.
import { Agent, createServer, request, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { afterEach, describe, expect, it } from "vitest";
import { admissionControl, type Admission, type AdmissionOptions } from "../server/http/admission.ts";

let server: Server | undefined;
let gate: Admission;
let base: string;
const held = new Map<string, ServerResponse>();
const entered: string[] = [];

afterEach(async () => {
  for (const res of held.values()) res.end("released");
  held.clear();
  entered.length = 0;
  server?.closeAllConnections();
  await new Promise((resolve) => (server ? server.close(resolve) : resolve(undefined)));
  server = undefined;
});

async function start(options: AdmissionOptions): Promise<void> {
  const app = (req: IncomingMessage, res: ServerResponse) => {
    entered.push(req.url!);
    if (req.url!.startsWith("/api/v1/hold/")) held.set(req.url!, res);
    else res.end("ok");
  };
  gate = admissionControl(app, options);
  server = createServer(gate);
  await new Promise<void>((resolve) => server!.listen(0, "127.0.0.1", resolve));
  base = `http://127.0.0.1:${(server!.address() as { port: number }).port}`;
}

type Answer = { status: number; headers: IncomingMessage["headers"]; text: string; ms: number };

/** A request on a connection of its own (no agent), so each one queues separately. */
function get(path: string, headers: Record<string, string> = {}, agent: Agent | false = false): Promise<Answer> {
  const started = performance.now();
  return new Promise((resolve, reject) => {
    const req = request(`${base}${path}`, { agent, headers }, (res) => {
      let text = "";
      res.on("data", (c) => (text += c));
      res.on("end", () => resolve({ status: res.statusCode!, headers: res.headers, text, ms: performance.now() - started }));
    });
    req.on("error", reject);
    req.end();
  });
}

async function until(condition: () => boolean, ms = 5000): Promise<void> {
  const deadline = performance.now() + ms;
  while (!condition()) {
    if (performance.now() > deadline) throw new Error(`condition not met within ${ms} ms (entered: ${entered.join(", ")})`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

const release = (path: string) => held.get(path)!.end("released");
const roomy = { queueMax: 100, deadlineMs: 10_000, refuseAfterMs: 10_000 };

describe("admission control", () => {
  it("lets `limit` API requests in at once; the next waits and enters when one leaves", async () => {
    await start({ limit: 2, ...roomy });
    const a = get("/api/v1/hold/a");
    const b = get("/api/v1/hold/b");
    await until(() => held.size === 2);
    const c = get("/api/v1/hold/c");
    // The third is queued: the server has it (a non-API request passes it), the app does not.
    expect((await get("/healthz")).text).toBe("ok");
    expect(entered).not.toContain("/api/v1/hold/c");
    release("/api/v1/hold/a");
    await until(() => entered.includes("/api/v1/hold/c"));
    release("/api/v1/hold/b");
    release("/api/v1/hold/c");
    expect((await Promise.all([a, b, c])).map((r) => r.status)).toEqual([200, 200, 200]);
  });

  it("answers a request not let in by its deadline with 503 OVERLOADED, Retry-After and the error shape, once it has waited refuseAfterMs", async () => {
    await start({ limit: 1, queueMax: 100, deadlineMs: 50, refuseAfterMs: 300 });
    const first = get("/api/v1/hold/first");
    await until(() => held.size === 1);
    const keepAlive = new Agent({ keepAlive: true });
    const refused = await get("/api/v1/customers", { "x-request-id": "overload-probe-1" }, keepAlive);
    keepAlive.destroy();
    expect(refused.status).toBe(503);
    expect(refused.headers["retry-after"]).toBe("1");
    expect(refused.headers["x-request-id"]).toBe("overload-probe-1");
    expect(refused.headers["content-type"]).toBe("application/json; charset=utf-8");
    expect(JSON.parse(refused.text)).toEqual({
      error: { code: "OVERLOADED", message: "The service is at capacity; retry shortly.", request_id: "overload-probe-1", help: "runbooks/incident-database-unavailable.md" },
    });
    expect(refused.ms).toBeGreaterThanOrEqual(290);
    expect(entered).not.toContain("/api/v1/customers");
    // Kept alive: only a refusal past the queue's bound closes its connection.
    expect(refused.headers.connection).toBe("keep-alive");
    release("/api/v1/hold/first");
    expect((await first).status).toBe(200);
    expect((await get("/api/v1/customers")).text).toBe("ok");
  });

  it("past queueMax waiting requests refuses a newcomer at once and closes its connection", async () => {
    await start({ limit: 1, queueMax: 1, deadlineMs: 10_000, refuseAfterMs: 10_000 });
    const first = get("/api/v1/hold/first");
    await until(() => held.size === 1);
    const second = get("/api/v1/hold/second");
    await until(() => gate.stats().waiting === 1);
    const third = await get("/api/v1/hold/third");
    expect([third.status, JSON.parse(third.text).error.code, third.headers.connection]).toEqual([503, "OVERLOADED", "close"]);
    expect(third.ms).toBeLessThan(1000);
    release("/api/v1/hold/first");
    await until(() => held.has("/api/v1/hold/second"));
    release("/api/v1/hold/second");
    expect((await Promise.all([first, second])).map((r) => r.status)).toEqual([200, 200]);
  });

  it("serves the oldest first while the oldest waiter is younger than lifoAfterMs, the newest first beyond", async () => {
    for (const [lifoAfterMs, expected] of [[60_000, "/api/v1/hold/w1"], [0, "/api/v1/hold/w3"]] as const) {
      await start({ limit: 1, ...roomy, lifoAfterMs });
      const inside = get("/api/v1/hold/inside");
      await until(() => held.size === 1);
      const waiters = [];
      for (const name of ["w1", "w2", "w3"]) {
        waiters.push(get(`/api/v1/hold/${name}`));
        await until(() => gate.stats().waiting === waiters.length);
      }
      release("/api/v1/hold/inside");
      await until(() => entered.length === 2);
      expect(entered[1]).toBe(expected);
      for (let n = 2; n <= 4; n++) {
        release(entered[n - 1]);
        if (n < 4) await until(() => entered.length === n + 1);
      }
      await Promise.all([inside, ...waiters]);
      for (const res of held.values()) res.end();
      held.clear();
      entered.length = 0;
      server!.closeAllConnections();
      await new Promise((resolve) => server!.close(resolve));
      server = undefined;
    }
  });

  it("a waiter whose client went away takes no place", async () => {
    await start({ limit: 1, ...roomy });
    const first = get("/api/v1/hold/first");
    await until(() => held.size === 1);
    const gone = request(`${base}/api/v1/hold/gone`, { agent: false });
    gone.on("error", () => undefined);
    gone.end();
    await until(() => gate.stats().waiting === 1);
    gone.destroy();
    const next = get("/api/v1/hold/next");
    await until(() => gate.stats().waiting === 2);
    // The server notices the departure when the socket closes: let the closed one go first.
    await until(() => (server as unknown as { _connections: number })._connections === 2);
    release("/api/v1/hold/first");
    await until(() => held.has("/api/v1/hold/next"));
    expect(entered).not.toContain("/api/v1/hold/gone");
    release("/api/v1/hold/next");
    expect((await Promise.all([first, next])).map((r) => r.status)).toEqual([200, 200]);
  });
});
