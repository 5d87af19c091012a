// The logger writes its lines in batches (server/core/log.ts: up to 4 KB, or LOG_FLUSH_MS after the
// first): none may be lost, reordered or split, also when the process exits right after logging
// (a fatal start-up error), and a lone line must not wait for the process to end.
import { spawn, spawnSync } from "node:child_process";
import { describe, expect, it } from "vitest";
import { loadConfig } from "../server/core/config.ts";

function run(script: string, env: Record<string, string> = {}): { status: number | null; lines: string[] } {
  const r = spawnSync(process.execPath, ["--import", "tsx", "--input-type=module", "-e", script], { encoding: "utf8", env: { ...process.env, LOG_LEVEL: "info", ...env } });
  return { status: r.status, lines: r.stdout.split("\n").filter(Boolean) };
}

describe("the log format", () => {
  const script = `
    import { logger, writeLine } from "./server/core/log.ts";
    logger.info({ migrations: 3 }, "migrations applied");
    writeLine(JSON.stringify({ level: 40, time: Date.now(), request_id: "r-1", req: { method: "GET", url: "/api/v1/customers" }, res: { statusCode: 404 }, responseTime: 7, msg: "request completed" }) + "\\n");
    logger.fatal("database set-up failed");
    process.exit(3);
  `;

  it("LOG_FORMAT=pretty: a line a person reads (level, message, then the fields), the access line led by method, path, status and time", () => {
    const { status, lines } = run(script, { LOG_FORMAT: "pretty", NODE_ENV: "development" });
    expect(status).toBe(3);
    expect(lines[0]).toMatch(/^\[\d\d:\d\d:\d\d\.\d{3}\] INFO.*: migrations applied/);
    expect(lines).toContainEqual(expect.stringMatching(/^\s+migrations: 3$/));
    expect(lines).toContainEqual(expect.stringMatching(/WARN.*: GET \/api\/v1\/customers 404 7 ms: request completed/));
    expect(lines).toContainEqual(expect.stringMatching(/^\s+request_id: "r-1"$/));
    expect(lines.at(-1)).toMatch(/FATAL.*: database set-up failed/);
  });

  it("JSON lines when stdout is not a terminal, in development too, or with LOG_FORMAT=json", () => {
    for (const env of [{ NODE_ENV: "development" }, { NODE_ENV: "development", LOG_FORMAT: "json" }] as Record<string, string>[]) {
      const { lines } = run(script, env);
      expect(lines.map((l) => JSON.parse(l).msg)).toEqual(["migrations applied", "request completed", "database set-up failed"]);
    }
  });
});

describe("the logger", () => {
  it("writes every line, in order, when the process exits in the same turn", () => {
    const { status, lines } = run(`
      import { logger } from "./server/core/log.ts";
      for (let i = 0; i < 5000; i++) logger.info({ i }, "line");
      logger.fatal("database set-up failed");
      process.exit(3);
    `);
    expect(status).toBe(3);
    expect(lines).toHaveLength(5001);
    expect(lines.slice(0, 5000).map((l) => JSON.parse(l).i)).toEqual(Array.from({ length: 5000 }, (_, i) => i));
    expect(JSON.parse(lines[5000])).toMatchObject({ level: 60, msg: "database set-up failed" });
  });

  it("writes lines spread over many turns, and redacts passwords", async () => {
    const { status, lines } = run(`
      import { logger } from "./server/core/log.ts";
      let i = 0;
      const tick = () => { logger.info({ i, user: { password: "hunter2" } }, "tick"); if (++i < 200) setImmediate(tick); };
      tick();
    `);
    expect(status).toBe(0);
    expect(lines.map((l) => JSON.parse(l).i)).toEqual(Array.from({ length: 200 }, (_, i) => i));
    expect(lines.join("\n")).not.toContain("hunter2");
  });

  it("writes a lone line while the process keeps running, without waiting for its exit", async () => {
    const child = spawn(process.execPath, ["--import", "tsx", "--input-type=module", "-e", `
      import { logger } from "./server/core/log.ts";
      logger.info("alone");
      setTimeout(() => {}, 10_000);`], { stdio: ["ignore", "pipe", "inherit"], env: { ...process.env, LOG_LEVEL: "info", LOG_FLUSH_MS: "20" } });
    try {
      const line = await new Promise<string>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error("no line within 5 s")), 5_000);
        child.stdout.setEncoding("utf8").on("data", (chunk: string) => (clearTimeout(timer), resolve(chunk)));
      });
      expect(JSON.parse(line)).toMatchObject({ level: 30, msg: "alone" });
      expect(child.exitCode).toBeNull();
    } finally {
      child.kill();
    }
  });

  it("writes each access line as JSON whatever the path holds, without its query string", () => {
    // Raw paths (http.request sends them as they are): a quote, a backslash, escapes, a query.
    const paths = ['/x"y\\z?q=secret', "/a%22b%5C", "/api/v1/customers/%E2%82%AC"];
    const { status, lines } = run(`
      import http from "node:http";
      import express from "express";
      import { assignRequestId } from "./server/http/requestId.ts";
      import { startAccessLog } from "./server/http/accessLog.ts";
      const app = express();
      app.use((req, res) => {
        assignRequestId(req, res);
        startAccessLog(req, res);
        res.status(404).json({ error: { code: "NOT_FOUND" } });
      });
      const server = app.listen(0, "127.0.0.1", async () => {
        for (const path of ${JSON.stringify(paths)}) {
          await new Promise((done) => http.get({ port: server.address().port, host: "127.0.0.1", path, headers: { "x-request-id": "log-test" } }, (res) => res.resume().on("end", done)));
        }
        server.close();
      });
    `);
    expect(status).toBe(0);
    const access = lines.map((l) => JSON.parse(l)).filter((l) => l.request_id === "log-test");
    expect(access.map((l) => l.req.url)).toEqual(paths.map((p) => p.split("?")[0]));
    for (const l of access) {
      expect(l).toMatchObject({ level: 40, pid: expect.any(Number), hostname: expect.any(String), req: { method: "GET", remoteAddress: "127.0.0.1" }, res: { statusCode: 404 }, msg: "request completed" });
      expect(Object.keys(l)).toEqual(["level", "time", "pid", "hostname", "request_id", "req", "res", "responseTime", "msg"]);
    }
    expect(lines.join("\n")).not.toContain("secret");
  });

  it("refuses a LOG_FLUSH_MS that is not a whole number of milliseconds up to 1000", () => {
    expect(() => loadConfig({ ...process.env, LOG_FLUSH_MS: "soon" })).toThrow(/LOG_FLUSH_MS/);
    expect(() => loadConfig({ ...process.env, LOG_FLUSH_MS: "5000" })).toThrow(/LOG_FLUSH_MS/);
  });

  it("keeps lines whole when workers write to one pipe at once (WEB_CONCURRENCY)", async () => {
    const worker = `
      import { logger } from "./server/core/log.ts";
      let turn = 0;
      const burst = () => { for (let i = 0; i < 300; i++) logger.info({ w: process.env.W, turn, i, name: "Ünïcødé ☃ ".repeat(8) }, "burst"); if (++turn < 40) setImmediate(burst); };
      burst();`;
    const args = (w: string) => `W=${w} "${process.execPath}" --import tsx --input-type=module -e '${worker}'`;
    const child = spawn("sh", ["-c", `${args("a")} & ${args("b")} & wait`], { stdio: ["ignore", "pipe", "inherit"], env: { ...process.env, LOG_LEVEL: "info" } });
    let out = "";
    child.stdout.setEncoding("utf8").on("data", (c: string) => (out += c));
    // A reader that stalls: the pipe fills and both writers wait on it, as behind a slow collector.
    const stall = setInterval(() => (child.stdout.isPaused() ? child.stdout.resume() : child.stdout.pause()), 20);
    const code = await new Promise((resolve) => child.on("close", resolve));
    clearInterval(stall);
    expect(code).toBe(0);
    const lines = out.split("\n").filter(Boolean).map((l) => JSON.parse(l) as { w: string });
    expect(lines.filter((l) => l.w === "a")).toHaveLength(12_000);
    expect(lines.filter((l) => l.w === "b")).toHaveLength(12_000);
  }, 60_000);
});
