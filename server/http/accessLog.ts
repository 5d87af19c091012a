// What is recorded when a response ends: one access log line and the request metrics, from a
// single listener. It replaces pino-http, which built two child loggers (serializing the request
// into each) and added and removed three listeners per request, for the same line; the bench
// table in bench/README.md says what that bought.
//
// The line: {request_id, tenant_id, user_id, req: {method, url, remoteAddress}, res: {statusCode},
// responseTime (whole ms)} "request completed", at info below 400 and warn for 4xx; a 5xx is
// "request errored" at error with err.message, as pino-http wrote it; a response the client
// abandoned before it was sent is "request aborted" at warn. The query
// string is not logged (it may carry a cursor or a search term); the path is.
import { hostname } from "node:os";
import type { Request, Response } from "express";
import { logger, writeLine } from "../core/log.ts";
import { recordRequest, routeTemplate } from "../core/metrics.ts";
import { requestState } from "../core/requestContext.ts";

// The line is pino's (level, time, pid, hostname, the fields, msg), written as one template: its
// fields are fixed and never hold a secret, so it needs neither pino's redaction nor its per-field
// serializers (three times the cost per line), and only the path is free text, escaped by
// JSON.stringify. The ids are safe as they stand: the request id matched [A-Za-z0-9._:-]
// (requestId.ts), the user id is a token's checked uuid and the tenant id the database's uuid.
// A building JSON.stringify of the whole line cost four times as much (test/start.test.ts parses it).
const levels = { info: 30, warn: 40, error: 50 } as const;
const head = `,"pid":${process.pid},"hostname":${JSON.stringify(hostname())}`;

/** Records the request when its response ends (app.ts calls it as a request starts). */
export function startAccessLog(req: Request, res: Response): void {
  const started = performance.now();
  // "close" comes once per response, whether it finished or was abandoned.
  res.on("close", () => ended(req, res, performance.now() - started));
}

function ended(req: Request, res: Response, ms: number): void {
  const status = res.statusCode;
  const completed = res.writableFinished;
  // The metrics count answers: an abandoned response has no status to count.
  if (completed) recordRequest(req.method, routeTemplate(req, res), status, ms / 1000, res.locals);
  const level = !completed ? "warn" : status >= 500 ? "error" : status >= 400 ? "warn" : "info";
  if (!logger.isLevelEnabled(level)) return;
  // The messages and fields pino-http wrote, so alerts keyed on them keep working.
  const errored = completed && status >= 500;
  const state = requestState(req);
  const address = req.socket?.remoteAddress;
  writeLine(`{"level":${levels[level]},"time":${Date.now()}${head}`
    + (state ? `,"request_id":"${state.requestId}"` : "")
    + (state?.tenantId ? `,"tenant_id":"${state.tenantId}"` : "")
    + (state?.userId ? `,"user_id":"${state.userId}"` : "")
    + `,"req":{"method":"${req.method}","url":${JSON.stringify(pathOf(req))}${address ? `,"remoteAddress":"${address}"` : ""}}`
    + `,"res":{"statusCode":${status}}`
    + (errored ? `,"err":{"message":"failed with status code ${status}"}` : "")
    + `,"responseTime":${Math.round(ms)},"msg":"${!completed ? "request aborted" : errored ? "request errored" : "request completed"}"}\n`);
}

function pathOf(req: Request): string {
  const url = req.originalUrl ?? req.url;
  const q = url.indexOf("?");
  return q < 0 ? url : url.slice(0, q);
}
