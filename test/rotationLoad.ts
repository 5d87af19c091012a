// A rolling deploy in one process, for the key rotation tests: API instances behind a round-robin
// balancer, each replaced by a new one started with other keys (started first, then the old one
// leaves the rotation, finishes what it serves and stops), and a load of clients that counts every
// answer that is not what it should be. The instances share one pool (the pool holds no key).
import { Agent, request as httpRequest, type Server } from "node:http";
import { createApp, type AppOptions } from "../server/app.ts";
import { createHttpServer } from "../server/http/httpServer.ts";

export type Instance = { name: string; url: string; agent: Agent; server: Server };
export type Answer = { status: number; body: any };

export async function startInstance(name: string, options: AppOptions): Promise<Instance> {
  const server: Server = await new Promise((resolve) => {
    const s = createHttpServer(createApp(options)).listen(0, "127.0.0.1", () => resolve(s));
  });
  return { name, url: `http://127.0.0.1:${(server.address() as { port: number }).port}`, agent: new Agent({ keepAlive: true, maxSockets: 64 }), server };
}

async function stopInstance(i: Instance): Promise<void> {
  await new Promise<void>((resolve) => i.server.close(() => resolve()));
  i.agent.destroy();
}

export function send(i: Instance, method: string, path: string, o: { token?: string; tenant?: string; body?: unknown } = {}): Promise<Answer> {
  const headers: Record<string, string> = {};
  if (o.token) headers.authorization = `Bearer ${o.token}`;
  if (o.tenant) headers["x-tenant-id"] = o.tenant;
  const body = o.body === undefined ? undefined : JSON.stringify(o.body);
  if (body) headers["content-type"] = "application/json";
  return new Promise((resolve, reject) => {
    const req = httpRequest(i.url + path, { method, headers, agent: i.agent }, (r) => {
      const chunks: Buffer[] = [];
      r.on("data", (c: Buffer) => chunks.push(c));
      r.on("end", () => {
        const text = Buffer.concat(chunks).toString("utf8");
        resolve({ status: r.statusCode ?? 0, body: text ? JSON.parse(text) : undefined });
      });
      r.on("error", reject);
    });
    req.on("error", reject);
    req.end(body);
  });
}

/** Instances behind a round-robin balancer; `roll` replaces each in turn, as a rolling deploy does. */
export class Fleet {
  private live: Instance[] = [];
  private inFlight = new Map<Instance, number>();
  private turn = 0;
  private generation = 0;

  static async start(count: number, options: AppOptions): Promise<Fleet> {
    const fleet = new Fleet();
    for (let n = 0; n < count; n++) fleet.live.push(await startInstance(`i${n}.0`, options));
    return fleet;
  }

  /** A request to the next instance in turn. */
  async request(method: string, path: string, o: { token?: string; tenant?: string; body?: unknown } = {}): Promise<Answer & { instance: string }> {
    const i = this.live[this.turn++ % this.live.length];
    this.inFlight.set(i, (this.inFlight.get(i) ?? 0) + 1);
    try {
      return { ...(await send(i, method, path, o)), instance: i.name };
    } finally {
      this.inFlight.set(i, this.inFlight.get(i)! - 1);
    }
  }

  /** Replaces every instance, one at a time, by one started with `options`; waits `pauseMs` after each (traffic on the mixed fleet). */
  async roll(options: AppOptions, pauseMs = 300): Promise<void> {
    this.generation++;
    for (let n = 0; n < this.live.length; n++) {
      const old = this.live[n];
      this.live[n] = await startInstance(`i${n}.${this.generation}`, options);
      while ((this.inFlight.get(old) ?? 0) > 0) await new Promise((r) => setTimeout(r, 5));
      await stopInstance(old);
      await new Promise((r) => setTimeout(r, pauseMs));
    }
  }

  async stop(): Promise<void> {
    await Promise.all(this.live.map(stopInstance));
    this.live = [];
  }
}

/** Runs `clients` loops of `step` until `done()` says so; returns how many steps ran. A step records its own failures. */
export async function runLoad(clients: number, step: (client: number) => Promise<void>, done: () => boolean): Promise<number> {
  let steps = 0;
  await Promise.all(Array.from({ length: clients }, async (_, c) => {
    while (!done()) {
      await step(c);
      steps++;
    }
  }));
  return steps;
}
