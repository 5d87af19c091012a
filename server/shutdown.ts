// Graceful shutdown that cannot run twice: stop accepting, let in-flight requests finish
// (bounded), then run the labelled cleanup steps in order; exit non-zero if any failed.
import type { Server } from "node:http";
import { logger } from "./log.ts";

export type CleanupStep = { label: string; run: () => Promise<unknown>; timeoutMs?: number };

function withTimeout<T>(promise: Promise<T>, ms: number, label: string): Promise<T> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${label} timed out after ${ms} ms`)), ms);
    promise.then((v) => (clearTimeout(timer), resolve(v)), (e) => (clearTimeout(timer), reject(e)));
  });
}

export function installShutdown(server: Server | undefined, steps: CleanupStep[], drainMs = 10_000): (signal: string) => Promise<void> {
  let started: Promise<void> | undefined;
  const shutdown = (signal: string) =>
    (started ??= (async () => {
      logger.info({ signal }, "shutting down");
      let failed = false;
      if (server) {
        const closed = new Promise<void>((resolve) => server.close(() => resolve()));
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
  process.once("SIGTERM", () => void shutdown("SIGTERM").then(() => process.exit()));
  process.once("SIGINT", () => void shutdown("SIGINT").then(() => process.exit()));
  return shutdown;
}
