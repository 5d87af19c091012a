// The overload row of `npm run bench`: one endpoint at 16 connections against the same endpoint
// at BENCH_OVERLOAD_CONNECTIONS (256), in interleaved rounds, with two kinds of client:
// - impatient (raw sockets): a refused client retries at once, ignoring Retry-After, as a
//   misbehaving SDK or an attacker does, and reconnects at once when the server closes its socket;
// - polite (node:http, keep-alive): a client answered 503 waits the Retry-After it was given.
// Each phase counts successful answers (the expected status) per second, their p50 and p99 (the
// latency of successes only: a fast refusal must not flatter the percentiles), every status, and
// the server's Node CPU; CPU per refusal is what the phase cost beyond its successes (at the
// 16-connection phase's CPU per success, which has no refusals), over its refusals.
import { Agent, request } from "node:http";
import { createConnection, type Socket } from "node:net";
import { monitorEventLoopDelay } from "node:perf_hooks";
import { percentile } from "./sqlLoad.ts";

export type Shape = { method: "GET" | "POST"; path: string; headers: Record<string, string>; body?: string };

export type OverloadPhase = {
  connections: number;
  clients: "impatient" | "polite";
  seconds: number;
  answers: number;
  successes: number;
  /** Successful answers per second. */
  goodput: number;
  p50: number;
  p99: number;
  /** p99 of the successes that were not their connection's first answer: what a client already connected waited. */
  p99_established: number;
  statuses: Record<string, number>;
  /** Connection errors and timeouts (no answer at all). */
  errors: number;
  /** 5xx answers other than 503: the target is none. */
  other_5xx: number;
  /** Node CPU of the server's process tree over the phase, µs. */
  node_cpu_us: number;
  /** The load generator's own longest event-loop stall over the phase, ms: it counts in every latency measured then. */
  client_stall_ms: number;
};

/** What a phase counts: answers by status, the latency of successful ones, answers that never came. */
function tally(clients: OverloadPhase["clients"], connections: number, seconds: number, ok: number) {
  const started = performance.now();
  const stalls = monitorEventLoopDelay({ resolution: 10 });
  stalls.enable();
  const latencies: number[] = [];
  const established: number[] = [];
  const statuses: Record<string, number> = {};
  const t = {
    deadline: started + seconds * 1000,
    /** The next request's number, for the shape builder. */
    next: 0,
    errors: 0,
    /** `first`: the first answer on its connection, whose time includes waiting to be accepted. */
    answered(status: number, ms: number, first: boolean) {
      statuses[status] = (statuses[status] ?? 0) + 1;
      if (status === ok) {
        latencies.push(ms);
        if (!first) established.push(ms);
      }
    },
    done(): Omit<OverloadPhase, "node_cpu_us"> {
      const elapsed = (performance.now() - started) / 1000;
      stalls.disable();
      latencies.sort((x, y) => x - y);
      established.sort((x, y) => x - y);
      const successes = statuses[ok] ?? 0;
      const other5xx = Object.entries(statuses).filter(([s]) => s.startsWith("5") && s !== "503").reduce((n, [, c]) => n + c, 0);
      return {
        connections, clients, seconds: elapsed, answers: Object.values(statuses).reduce((x, y) => x + y, 0), successes, goodput: successes / elapsed,
        p50: percentile(latencies, 50), p99: percentile(latencies, 99), p99_established: established.length > 0 ? percentile(established, 99) : NaN, statuses, errors: t.errors, other_5xx: other5xx,
        client_stall_ms: stalls.max / 1e6,
      };
    },
  };
  return t;
}

/**
 * `connections` clients on raw keep-alive sockets, each sending its next request the moment an
 * answer arrives, whatever it was, and reconnecting at once when the server closes its socket.
 * Not autocannon: when the server closes a connection after an answer, autocannon 8 writes its
 * next request into the closing socket and, reconnected, sends another without dropping the
 * first from its queue of requests awaiting answers, so every later answer on that client is
 * timed from an older request (latencies grew to seconds that the server never took).
 */
export function impatientLoad(url: string, build: (i: number) => Shape, ok: number, seconds: number, connections: number): Promise<Omit<OverloadPhase, "node_cpu_us">> {
  const target = new URL(url);
  const port = Number(target.port);
  const t = tally("impatient", connections, seconds, ok);
  const head = (shape: Shape) => {
    const lines = [`${shape.method} ${shape.path} HTTP/1.1`, `host: ${target.host}`];
    for (const [k, v] of Object.entries(shape.headers)) lines.push(`${k}: ${v}`);
    if (shape.body !== undefined) lines.push(`content-length: ${Buffer.byteLength(shape.body)}`);
    return `${lines.join("\r\n")}\r\n\r\n${shape.body ?? ""}`;
  };
  const client = () => new Promise<void>((resolve) => {
    let socket: Socket;
    let buffered: Buffer = Buffer.alloc(0);
    let sentAt = 0;
    let waiting = false;
    let first = true;
    const send = () => {
      if (performance.now() >= t.deadline) return void (socket.destroy(), resolve());
      buffered = Buffer.alloc(0);
      sentAt = performance.now();
      waiting = true;
      socket.write(head(build(t.next++)));
    };
    const connect = () => {
      first = true;
      socket = createConnection(port, target.hostname, send);
      socket.setNoDelay(true);
      socket.on("data", (chunk: Buffer) => {
        buffered = buffered.length ? Buffer.concat([buffered, chunk]) : chunk;
        const end = buffered.indexOf("\r\n\r\n");
        if (end < 0) return;
        const headers = buffered.toString("latin1", 0, end).toLowerCase();
        const length = Number(/\r\ncontent-length: *(\d+)/.exec(headers)?.[1] ?? 0);
        if (buffered.length < end + 4 + length) return;
        t.answered(Number(headers.slice(9, 12)), performance.now() - sentAt, first);
        first = false;
        waiting = false;
        // A server that says it closes is left to close; the next request goes on a new socket.
        if (!/\r\nconnection: *close/.test(headers)) send();
      });
      socket.on("error", () => undefined);
      socket.on("close", () => {
        if (waiting) t.errors++;
        waiting = false;
        if (performance.now() < t.deadline) connect();
        else resolve();
      });
    };
    connect();
  });
  return Promise.all(Array.from({ length: connections }, client)).then(() => t.done());
}

/** `connections` keep-alive clients that each wait out the Retry-After of a 503 before their next request. */
export async function politeLoad(url: string, build: (i: number) => Shape, ok: number, seconds: number, connections: number): Promise<Omit<OverloadPhase, "node_cpu_us">> {
  const agent = new Agent({ keepAlive: true, maxSockets: connections });
  const target = new URL(url);
  const t = tally("polite", connections, seconds, ok);
  const once = (shape: Shape) =>
    new Promise<{ status: number; retryAfter: number; first: boolean }>((resolve, reject) => {
      const req = request({ host: target.hostname, port: target.port, agent, method: shape.method, path: shape.path, headers: shape.headers }, (res) => {
        res.resume();
        res.on("end", () => resolve({ status: res.statusCode!, retryAfter: Number(res.headers["retry-after"] ?? 0), first: !req.reusedSocket }));
        res.on("error", reject);
      });
      req.on("error", reject);
      req.end(shape.body);
    });
  await Promise.all(Array.from({ length: connections }, async () => {
    while (performance.now() < t.deadline) {
      const t0 = performance.now();
      try {
        const { status, retryAfter, first } = await once(build(t.next++));
        t.answered(status, performance.now() - t0, first);
        // Retry-After in seconds, never past the phase's end.
        if (status === 503) await new Promise((r) => setTimeout(r, Math.min(retryAfter * 1000, Math.max(0, t.deadline - performance.now()))));
      } catch {
        t.errors++;
      }
    }
  }));
  agent.destroy();
  return t.done();
}

/** µs of Node CPU per refusal: the phase's CPU beyond its successes (each at `perSuccessUs`), over its refusals (503s). */
export function cpuPerRefusal(phase: OverloadPhase, perSuccessUs: number): number {
  const refusals = phase.statuses["503"] ?? 0;
  return refusals === 0 ? NaN : Math.max(0, phase.node_cpu_us - phase.successes * perSuccessUs) / refusals;
}

type Server = { url: string; pid: number };
type Meter = (pid: number) => Promise<() => Promise<number>>;
export type OverloadSide = {
  /** Each phase's median round (by goodput), and every round's goodput and p99. */
  phases: Record<string, OverloadPhase & { rounds: number[]; rounds_p99: number[]; rounds_p99_established: number[]; rounds_client_stall_ms: number[] }>;
  /** Per round: goodput at the high count (impatient) over goodput at 16; µs of Node CPU per refusal. */
  ratio_rounds: number[];
  cpu_per_refusal_rounds: number[];
  /** Per round: the Node CPU of the high-count impatient phase beyond its successes, as a share of one core over the phase. */
  cpu_beyond_successes_rounds: number[];
};

const middle = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

/**
 * The phases of each server (the API; the API of another checkout as "api_baseline"), in
 * interleaved rounds: 16 impatient, `connections` impatient, `connections` polite.
 */
export async function overloadRounds(servers: Record<string, Server>, build: (i: number) => Shape, ok: number,
  o: { seconds: number; rounds: number; connections: number; warmupSeconds: number; meter: Meter; log: (m: string) => void }): Promise<Record<string, OverloadSide>> {
  const phases = [
    { name: "16 impatient", connections: 16, load: impatientLoad },
    { name: `${o.connections} impatient`, connections: o.connections, load: impatientLoad },
    { name: `${o.connections} polite`, connections: o.connections, load: politeLoad },
  ];
  // Each count warms up: the queue and refusal paths run only past capacity, and V8 optimizes them
  // only once they run (the first round at 256 read 0.66x and 0.69x of 16 against 0.84x to 0.90x
  // after it, with the warm-up at 16 only).
  for (const [side, s] of Object.entries(servers)) {
    o.log(`overload: ${side} warm-up`);
    for (const p of phases.slice(0, 2)) await p.load(s.url, build, ok, o.warmupSeconds, p.connections);
  }
  const runs: Record<string, Record<string, OverloadPhase[]>> = {};
  for (let round = 1; round <= o.rounds; round++) {
    for (const [side, s] of Object.entries(servers)) {
      for (const p of phases) {
        o.log(`overload: ${side}, ${p.name} (round ${round} of ${o.rounds})`);
        const meter = await o.meter(s.pid);
        const r = await p.load(s.url, build, ok, o.seconds, p.connections);
        ((runs[side] ??= {})[p.name] ??= []).push({ ...r, node_cpu_us: await meter() });
      }
    }
  }
  const out: Record<string, OverloadSide> = {};
  for (const [side, byPhase] of Object.entries(runs)) {
    const base = byPhase[phases[0].name];
    const high = byPhase[phases[1].name];
    out[side] = {
      phases: Object.fromEntries(Object.entries(byPhase).map(([name, rs]) => {
        const m = middle(rs.map((r) => r.goodput));
        return [name, { ...rs.find((r) => r.goodput === m)!, rounds: rs.map((r) => Math.round(r.goodput)), rounds_p99: rs.map((r) => Math.round(r.p99)), rounds_p99_established: rs.map((r) => Math.round(r.p99_established)), rounds_client_stall_ms: rs.map((r) => Math.round(r.client_stall_ms)) }];
      })),
      ratio_rounds: high.map((h, i) => h.goodput / base[i].goodput),
      cpu_per_refusal_rounds: high.map((h, i) => cpuPerRefusal(h, base[i].node_cpu_us / Math.max(1, base[i].successes))),
      cpu_beyond_successes_rounds: high.map((h, i) => Math.max(0, h.node_cpu_us - h.successes * (base[i].node_cpu_us / Math.max(1, base[i].successes))) / (h.seconds * 1e6)),
    };
  }
  return out;
}
