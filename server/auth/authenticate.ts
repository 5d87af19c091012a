// Bearer authentication. The verified identity goes into the request state; no header, a
// malformed header or a bad token is 401 (see tokens.ts). There is no anonymous fallback.
import type { RequestHandler } from "express";
import { UnauthorizedError } from "../core/errors.ts";
import { requestState } from "../core/requestContext.ts";
import { verifyAccessToken, type TokenKeys } from "./tokens.ts";

export function authenticate(keys: TokenKeys): RequestHandler {
  return (req, _res, next) => {
    const header = req.get("authorization");
    if (!header) throw new UnauthorizedError("AUTH_REQUIRED", "An access token is required.");
    // A token of the wrong shape (RFC 6750's b64token) is refused by verifyAccessToken.
    const token = header.startsWith("Bearer ") ? header.slice(7) : "";
    const identity = verifyAccessToken(keys, token);
    const state = requestState(req);
    if (!state) throw new Error("request state missing");
    state.userId = identity.userId;
    state.tokenTenantId = identity.tenantId;
    next();
  };
}
