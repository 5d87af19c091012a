// The first step of every request (app.ts): a request id (X-Request-Id accepted when sane, else
// generated), echoed on the response, and the request state on the request for everything after it.
import { randomUUID } from "node:crypto";
import type { Request, Response } from "express";
import { attachRequestState } from "../core/requestContext.ts";

const acceptable = /^[A-Za-z0-9._:-]{1,128}$/;

/** The request's id: the client's X-Request-Id when it is sane, else a new one. */
export function requestIdFrom(given: string | undefined): string {
  return given && acceptable.test(given) ? given : randomUUID();
}

export function assignRequestId(req: Request, res: Response): void {
  const id = requestIdFrom(req.get("x-request-id"));
  res.setHeader("X-Request-Id", id);
  attachRequestState(req, { requestId: id, tenantRefs: [] });
}
