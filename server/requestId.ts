// First middleware: a request id (X-Request-Id accepted when sane, else generated), echoed
// on the response, and the request state on the request for everything after it.
import { randomUUID } from "node:crypto";
import type { RequestHandler } from "express";
import { attachRequestState } from "./requestContext.ts";

const acceptable = /^[A-Za-z0-9._:-]{1,128}$/;

export const requestId: RequestHandler = (req, res, next) => {
  const given = req.get("x-request-id");
  const id = given && acceptable.test(given) ? given : randomUUID();
  res.setHeader("X-Request-Id", id);
  attachRequestState(req, { requestId: id, tenantRefs: [] });
  next();
};
