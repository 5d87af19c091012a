// What is recorded when a response ends: one access log line and the request metrics, from a
// single listener. It replaces pino-http, which built two child loggers (serializing the request
// into each) and added and removed three listeners per request, for the same line; the bench
// table in README (Speed) says what that bought.
//
// The line: {request_id, tenant_id, user_id, req: {method, url, remoteAddress}, res: {statusCode},
// responseTime (whole ms)} "request completed", at info below 400 and warn for 4xx; a 5xx is
// "request errored" at error with err.message, as pino-http wrote it; a response the client
// abandoned before it was sent is "request aborted" at warn. The query
// string is not logged (it may carry a cursor or a search term); the path is.
import type { Request, RequestHandler, Response } from "express";
import { logger } from "./log.ts";
import { recordRequest, routeTemplate } from "./metrics.ts";
import { logBindings } from "./requestContext.ts";

// The line's fields are fixed and never hold a secret: it skips the logger's redaction pass,
// which doubled the cost of writing it (5.5 against 2.8 µs a line).
const accessLogger = logger.child({}, { redact: { paths: [] } });

export const accessLog: RequestHandler = (req, res, next) => {
  const started = performance.now();
  res.once("close", () => ended(req, res, performance.now() - started));
  next();
};

function ended(req: Request, res: Response, ms: number): void {
  const status = res.statusCode;
  const completed = res.writableFinished;
  // The metrics count answers: an abandoned response has no status to count.
  if (completed) recordRequest(req.method, routeTemplate(req, res), status, ms / 1000, res.locals);
  const level = !completed ? "warn" : status >= 500 ? "error" : status >= 400 ? "warn" : "info";
  if (!accessLogger.isLevelEnabled(level)) return;
  // The messages and fields pino-http wrote, so alerts keyed on them keep working.
  const errored = completed && status >= 500;
  accessLogger[level]({
    ...logBindings(req),
    req: { method: req.method, url: pathOf(req), remoteAddress: req.socket?.remoteAddress },
    res: { statusCode: status },
    ...(errored ? { err: { message: `failed with status code ${status}` } } : {}),
    responseTime: Math.round(ms),
  }, !completed ? "request aborted" : errored ? "request errored" : "request completed");
}

function pathOf(req: Request): string {
  const url = req.originalUrl ?? req.url;
  const q = url.indexOf("?");
  return q < 0 ? url : url.slice(0, q);
}
