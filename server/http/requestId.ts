// The first step of every request (app.ts): a request id (X-Request-Id accepted when sane, else
// generated), echoed on the response, and the request state on the request for everything after it.
import { randomUUID } from "node:crypto";
import type { Request, Response } from "express";
import { attachRequestState } from "../core/requestContext.ts";

const acceptable = /^[A-Za-z0-9._:-]{1,128}$/;

export function assignRequestId(req: Request, res: Response): void {
  const given = req.get("x-request-id");
  const id = given && acceptable.test(given) ? given : randomUUID();
  res.setHeader("X-Request-Id", id);
  attachRequestState(req, { requestId: id, tenantRefs: [] });
}
