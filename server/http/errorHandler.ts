// The one error middleware: every error becomes {"error": {code, message, request_id}}
// (plus details/help when there are any). No stack traces, no SQL text. Operational errors
// are logged at warn with their code; anything else at error with the cause.
import type { ErrorRequestHandler, RequestHandler } from "express";
import { NotFoundError, toAppError } from "../core/errors.ts";
import { logger } from "../core/log.ts";
import { noteError } from "../core/metrics.ts";
import { logBindings, requestState } from "../core/requestContext.ts";

export const notFound: RequestHandler = (req) => {
  throw new NotFoundError("ROUTE_NOT_FOUND", `No route for ${req.method} ${req.path}.`);
};

export const errorHandler: ErrorRequestHandler = (err, req, res, next) => {
  if (res.headersSent) return next(err);
  const error = toAppError(err);
  const requestId = requestState(req)?.requestId;
  if (error.operational) {
    logger.warn({ ...logBindings(req), code: error.code, status: error.status, cause_code: (error.cause as { code?: string })?.code }, error.message);
  } else {
    logger.error({ ...logBindings(req), err: err instanceof Error ? { type: err.name, message: err.message, stack: err.stack, code: (err as { code?: string }).code } : err }, "unhandled error");
  }
  noteError(res, error.code, (error.cause as { code?: string } | undefined)?.code);
  for (const [name, value] of Object.entries(error.headers ?? {})) res.setHeader(name, value);
  const body: Record<string, unknown> = { code: error.code, message: error.message, request_id: requestId };
  if (error.details !== undefined) body.details = error.details;
  if (error.help !== undefined) body.help = error.help;
  res.status(error.status).json({ error: body });
};
