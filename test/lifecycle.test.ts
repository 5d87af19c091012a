// The process around the API, from outside, as an operator meets it:
//  - the compiled entry point (`npm run build`, then `node dist/main.js`) serves;
//  - in embedded mode it restarts its PostgreSQL when that dies (SIGKILL) and logs the recovery;
//  - SIGTERM stops accepting, answers what is in flight with `Connection: close`, closes idle
//    keep-alive sockets, then ends the pool and stops PostgreSQL, exit code 0; a response still
//    streaming at SIGTERM has its socket closed after it, so the exit does not wait for the client;
//  - `npm start` signalled (SIGTERM, and SIGKILL, which npm cannot pass on) leaves no API or
//    PostgreSQL behind.
import { execFile, spawn, type ChildProcess } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { chmod, mkdtemp, rm } from "node:fs/promises";
import { Agent, request as httpRequest, type ClientRequest, type IncomingMessage } from "node:http";
import { connect as connectTcp, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import postgres from "postgres";
import { clusterDir } from "../server/setup/embedded.ts";
import { hs256Keys, signAccessToken } from "../server/auth/tokens.ts";
import { makeCustomers, makeTenant, makeUser } from "./fixtures.ts";
import { freePort } from "./testDatabase.ts";

let dataDir: string;
let pgPort: number;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

type Started = { child: ChildProcess; base: string; output: () => string; exited: Promise<number | null>; apiPid: number };

async function start(command: string, args: string[]): Promise<Started> {
  const child = spawn(command, args, {
    env: { ...process.env, NODE_ENV: "development", HOST: "127.0.0.1", PORT: "0", DATA_DIR: dataDir, EMBEDDED_PG_PORT: String(pgPort), LOG_LEVEL: "info", SEED_DEMO: "false" },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  child.stdout!.on("data", (c) => (out += c));
  child.stderr!.on("data", (c) => (out += c));
  const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
  const base = await waitFor(() => /API ready on (http:\/\/[^\s]+)/.exec(out)?.[1], 90_000, exited, () => out);
  // The log line and the banner are two writes: wait for the log line too (they can arrive apart).
  const apiPid = Number(await waitFor(() => /"pid":(\d+)[^\n]*"msg":"API listening"/.exec(out)?.[1], 10_000, exited, () => out));
  return { child, base, output: () => out, exited, apiPid };
}

async function waitFor<T>(probe: () => T | undefined, ms: number, exited?: Promise<unknown>, output?: () => string): Promise<T> {
  let gone = false;
  void exited?.then(() => (gone = true));
  const until = performance.now() + ms;
  for (;;) {
    const value = probe();
    if (value !== undefined) return value;
    if (gone) throw new Error(`the process exited early:\n${output?.()}`);
    if (performance.now() > until) throw new Error(`timed out after ${ms} ms:\n${output?.().slice(-3000)}`);
    await sleep(50);
  }
}

function postmasterPid(): number | undefined {
  const pidFile = join(clusterDir(dataDir), "postmaster.pid");
  if (!existsSync(pidFile)) return undefined;
  const pid = Number(readFileSync(pidFile, "utf8").split("\n")[0]);
  return alive(pid) ? pid : undefined;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

beforeAll(async () => {
  dataDir = await mkdtemp(join(tmpdir(), "rls-shop-lifecycle-"));
  await chmod(dataDir, 0o755);
  pgPort = await freePort();
  await promisify(execFile)("npm", ["run", "-s", "build"], { cwd: process.cwd() });
}, 120_000);

afterAll(async () => {
  await rm(dataDir, { recursive: true, force: true });
});

describe("the compiled API in embedded mode", () => {
  it("restarts its PostgreSQL after a SIGKILL, then drains and stops everything on SIGTERM", async () => {
    const api = await start(process.execPath, ["dist/main.js"]);
    try {
      // 1. PostgreSQL dies; the API brings it back and says so.
      const first = postmasterPid()!;
      expect(first).toBeGreaterThan(0);
      process.kill(first, "SIGKILL");
      await waitFor(() => (/embedded PostgreSQL exited unexpectedly/.test(api.output()) ? true : undefined), 10_000, api.exited, api.output);
      await waitFor(() => (/embedded PostgreSQL recovered/.test(api.output()) ? true : undefined), 30_000, api.exited, api.output);
      const second = postmasterPid();
      expect(second).toBeGreaterThan(0);
      expect(second).not.toBe(first);
      // Ready again by itself; the bound only keeps a failure from hanging (a busy 2-core machine is slow).
      let ready = 0;
      for (const until = performance.now() + 15_000; ready !== 200 && performance.now() < until; await sleep(50)) {
        ready = (await fetch(`${api.base}/readyz`)).status;
      }
      expect(ready, "/readyz 200 after the recovery").toBe(200);

      // 2. SIGTERM with one idle keep-alive socket and one request in flight.
      const agent = new Agent({ keepAlive: true, maxSockets: 4 });
      const idle = await new Promise<Socket>((resolve, reject) => {
        const req = httpRequest(`${api.base}/healthz`, { agent }, (res) => {
          res.resume();
          res.on("end", () => resolve(req.socket!));
        });
        req.on("error", reject);
        req.end();
      });
      const idleClosed = new Promise<void>((resolve) => idle.once("close", () => resolve()));
      // The request's head has arrived, its body has not: the server is waiting for it. The server's
      // "100 Continue" (Expect: 100-continue) says it parsed the head: a barrier, not a guess.
      const body = JSON.stringify({ email: "nobody@example.test", password: "not-the-password" });
      let inFlight!: ClientRequest;
      let headArrived!: () => void;
      const parsed = new Promise<void>((resolve) => (headArrived = resolve));
      const answer = new Promise<(IncomingMessage & { text?: string }) | Error>((resolve) => {
        inFlight = httpRequest(`${api.base}/api/v1/auth/login`, {
          method: "POST", headers: { "content-type": "application/json", "content-length": String(Buffer.byteLength(body)), expect: "100-continue" },
        }, (res) => {
          let text = "";
          res.on("data", (c) => (text += c));
          res.on("end", () => resolve(Object.assign(res, { text })));
        });
        inFlight.on("error", resolve);
        inFlight.on("continue", () => {
          inFlight.write(body.slice(0, 10));
          headArrived();
        });
        inFlight.flushHeaders();
      });
      await parsed;

      api.child.kill("SIGTERM");
      await idleClosed;
      await waitFor(() => (/shutting down/.test(api.output()) ? true : undefined), 5000);
      // A new connection is refused (fetch would reuse a kept-alive socket, so plain TCP here).
      const refused = await new Promise<string>((resolve) => {
        const socket = connectTcp(Number(new URL(api.base).port), "127.0.0.1", () => (socket.destroy(), resolve("accepted")));
        socket.on("error", (error: NodeJS.ErrnoException) => resolve(error.code ?? error.message));
      });
      expect(refused).toBe("ECONNREFUSED");
      inFlight.end(body.slice(10));
      const res = await answer;
      if (res instanceof Error) throw res;
      expect(res.statusCode).toBe(401);
      expect(res.headers.connection).toBe("close");
      expect(JSON.parse(res.text!).error.code).toBe("INVALID_CREDENTIALS");

      expect(await api.exited).toBe(0);
      expect(api.output()).toMatch(/"step":"close database pool","msg":"cleanup step done"/);
      expect(api.output()).toMatch(/"step":"stop embedded database","msg":"cleanup step done"/);
      expect(postmasterPid()).toBeUndefined();
      agent.destroy();
    } finally {
      api.child.kill("SIGKILL");
      const left = postmasterPid();
      if (left) process.kill(left, "SIGKILL");
    }
  }, 150_000);
});

describe("the drain and kept-alive sockets", () => {
  it("exits within 1 s of the last in-flight response: a streaming answer's socket is closed after it, though the client keeps it open", async () => {
    const api = await start(process.execPath, ["dist/main.js"]);
    const secrets = JSON.parse(readFileSync(join(dataDir, "secrets.json"), "utf8")) as { owner: string; jwtSecret: string };
    const owner = postgres(`postgres://app_owner:${encodeURIComponent(secrets.owner)}@127.0.0.1:${pgPort}/shop`, { max: 2, onnotice: () => {} });
    let socket: Socket | undefined;
    try {
      const tenant = await makeTenant(owner, { prefix: "drain" });
      const user = await makeUser(owner, tenant, "owner");
      // Enough audit rows that the export outgrows the socket buffers of a reader that pauses.
      await makeCustomers(owner, tenant, 30_000);
      const token = signAccessToken(hs256Keys(secrets.jwtSecret), { userId: user.id });
      // A kept-alive connection whose client never closes it: only the server can.
      socket = connectTcp(Number(new URL(api.base).port), "127.0.0.1");
      const s = socket;
      let received = "";
      let lastByte = 0;
      let serverClosed = false;
      s.on("data", (chunk: Buffer) => {
        received += chunk.toString("latin1");
        lastByte = performance.now();
      });
      s.on("end", () => (serverClosed = true));
      s.write(`GET /api/v1/audit/export.csv?entity=customers HTTP/1.1\r\nHost: drain\r\nConnection: keep-alive\r\n` +
        `Authorization: Bearer ${token}\r\nX-Tenant-Id: ${tenant.slug}\r\n\r\n`);
      // The answer has begun (status line and headers out): pause, so it is still streaming at SIGTERM.
      await waitFor(() => (received.includes("\r\n\r\n") ? true : undefined), 30_000, api.exited, api.output);
      s.pause();
      expect(received.slice(0, 12)).toBe("HTTP/1.1 200");
      expect(received).toMatch(/\r\nconnection: keep-alive\r\n/i);
      api.child.kill("SIGTERM");
      await waitFor(() => (/shutting down/.test(api.output()) ? true : undefined), 5000);
      s.resume();
      // The chunked body's last chunk: the in-flight response is complete.
      await waitFor(() => (received.endsWith("\r\n0\r\n\r\n") ? true : undefined), 60_000, api.exited, api.output);
      const last = lastByte;
      expect(await api.exited).toBe(0);
      const exitedAfter = performance.now() - last;
      expect(serverClosed, "the server closed the kept-alive socket").toBe(true);
      expect(exitedAfter, "exit after the last response, ms").toBeLessThanOrEqual(1000);
    } finally {
      socket?.destroy();
      await owner.end({ timeout: 1 });
      api.child.kill("SIGKILL");
      const left = postmasterPid();
      if (left) process.kill(left, "SIGKILL");
    }
  }, 150_000);
});

describe("npm start", () => {
  for (const signal of ["SIGTERM", "SIGKILL"] as const) {
    it(`leaves no API and no PostgreSQL behind when npm gets ${signal}`, async () => {
      const npm = await start("npm", ["start"]);
      const postgres = postmasterPid()!;
      try {
        expect(alive(npm.apiPid)).toBe(true);
        expect(postgres).toBeGreaterThan(0);
        npm.child.kill(signal);
        await waitFor(() => (!alive(npm.apiPid) && !alive(postgres) ? true : undefined), 20_000, undefined, npm.output);
      } finally {
        if (alive(npm.apiPid)) process.kill(npm.apiPid, "SIGKILL");
        if (alive(postgres)) process.kill(postgres, "SIGKILL");
      }
    }, 120_000);
  }
});
