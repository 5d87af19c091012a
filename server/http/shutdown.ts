// Graceful shutdown that cannot run twice: stop accepting, answer what is in flight with
// `Connection: close` (and anything arriving on a kept-alive socket with 503 SHUTTING_DOWN),
// close idle keep-alive sockets, drain (bounded), then run the labelled cleanup steps in order
// (pool end, embedded server stop); exit non-zero if any failed. It also runs when the parent
// process goes away (`npm start` killed without passing the signal on), so nothing is orphaned.
import type { Server, ServerResponse } from "node:http";
import type { Response } from "express";
import { shuttingDown, type AppError } from "../core/errors.ts";
import { logger } from "../core/log.ts";

export type CleanupStep = { label: string; run: () => Promise<unknown>; timeoutMs?: number };

let draining = false;

/** Once shutdown has begun, the refusal of a request (503 SHUTTING_DOWN), its socket closed after the answer; before, nothing. */
export function drainingRefusal(res: Response): AppError | undefined {
  if (!draining) return undefined;
  res.setHeader("Connection", "close");
  return shuttingDown();
}

/**
 * A response finished during the drain leaves no kept-alive socket behind: an answer not yet
 * begun tells its client so (`Connection: close`, and Node then closes the socket itself); one
 * already streaming (an export) cannot say it any more, so its socket is ended once it is done.
 * Otherwise the drain waited for the client, or the keep-alive timeout, before the process exited.
 */
function closeAfter(res: ServerResponse): void {
  if (!res.headersSent) return void res.setHeader("Connection", "close");
  const socket = res.socket;
  if (!socket) return;
  // What Node's own destroySoon does for an answer that says Connection: close.
  res.once("finish", () => {
    if (socket.writable) socket.end();
    if (socket.writableFinished) socket.destroy();
    else socket.once("finish", () => socket.destroy());
  });
}

function withTimeout<T>(promise: Promise<T>, ms: number, label: string): Promise<T> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${label} timed out after ${ms} ms`)), ms);
    promise.then((v) => (clearTimeout(timer), resolve(v)), (e) => (clearTimeout(timer), reject(e)));
  });
}

let uninstallPrevious: (() => void) | undefined;

/** Installs the shutdown for `server` and `steps`, replacing one installed before (set-up's). */
export function installShutdown(server: Server | undefined, steps: CleanupStep[], drainMs = 10_000): (signal: string) => Promise<void> {
  uninstallPrevious?.();
  const inFlight = new Set<ServerResponse>();
  server?.on("request", (_req, res: ServerResponse) => {
    inFlight.add(res);
    res.on("close", () => inFlight.delete(res)); // "close" comes once: no once() wrapper per request
    if (draining) closeAfter(res);
  });
  let started: Promise<void> | undefined;
  const shutdown = (signal: string) =>
    (started ??= (async () => {
      logger.info({ signal }, "shutting down");
      draining = true;
      let failed = false;
      if (server) {
        const closed = new Promise<void>((resolve) => server.close(() => resolve()));
        for (const res of inFlight) closeAfter(res);
        server.closeIdleConnections();
        try {
          await withTimeout(closed, drainMs, "drain");
        } catch (error) {
          logger.warn({ err: error }, "drain timed out; closing remaining connections");
          server.closeAllConnections();
        }
      }
      for (const step of steps) {
        try {
          await withTimeout(step.run(), step.timeoutMs ?? 10_000, step.label);
          logger.info({ step: step.label }, "cleanup step done");
        } catch (error) {
          failed = true;
          logger.error({ step: step.label, err: error }, "cleanup step failed");
        }
      }
      process.exitCode = failed ? 1 : 0;
    })());
  const exitAfter = (signal: string) => void shutdown(signal).then(() => process.exit());
  const signals = ["SIGTERM", "SIGINT", "SIGHUP"] as const;
  for (const signal of signals) process.on(signal, exitAfter);
  // Orphaned: the parent (npm, a shell, a supervisor) is gone without passing a signal on.
  const parent = process.ppid;
  const watch = setInterval(() => {
    if (process.ppid !== parent) exitAfter("parent-exited");
  }, 500);
  watch.unref();
  uninstallPrevious = () => {
    for (const signal of signals) process.off(signal, exitAfter);
    clearInterval(watch);
  };
  return shutdown;
}
