// JSON bodies only: a body in another media type is 415, a body over the limit 413,
// malformed JSON 400, JSON nested deeper than maxJsonDepth 400. A request without a body passes
// with req.body undefined, and so does any GET, HEAD, DELETE or OPTIONS: no route reads their
// body, so it is not parsed (nor paid for).
import express, { type RequestHandler } from "express";
import { AppError, BadRequestError } from "../core/errors.ts";

function hasBody(req: Parameters<RequestHandler>[0]): boolean {
  const length = req.get("content-length");
  return req.get("transfer-encoding") !== undefined || (length !== undefined && length !== "0");
}

/** No request schema nests deeper than a few levels; far deeper JSON would overflow the stack of JSON.stringify and ajv. */
export const maxJsonDepth = 32;

/** The nesting depth of a parsed JSON value, counted iteratively (a deep value cannot overflow the stack here). */
function depthOver(value: unknown, limit: number): boolean {
  const stack: [unknown, number][] = [[value, 0]];
  while (stack.length > 0) {
    const [v, depth] = stack.pop()!;
    if (v === null || typeof v !== "object") continue;
    if (depth >= limit) return true;
    for (const child of Object.values(v)) stack.push([child, depth + 1]);
  }
  return false;
}

const withBody = new Set(["POST", "PUT", "PATCH"]);

export function jsonBody(limit: string): RequestHandler {
  const parse = express.json({ limit, strict: true, type: ["application/json", "application/*+json"] });
  return (req, res, next) => {
    if (!withBody.has(req.method)) return next();
    if (hasBody(req) && !req.is(["application/json", "application/*+json"])) {
      throw new AppError(415, "UNSUPPORTED_MEDIA_TYPE", "Send the body as application/json.");
    }
    parse(req, res, (err?: unknown) => {
      if (!err) {
        if (depthOver(req.body, maxJsonDepth)) return next(new BadRequestError("BODY_TOO_DEEP", `The body nests deeper than ${maxJsonDepth} levels.`));
        return next();
      }
      const type = (err as { type?: string }).type;
      if (type === "entity.too.large") return next(new AppError(413, "PAYLOAD_TOO_LARGE", `The body is larger than ${limit}.`));
      if (type === "encoding.unsupported" || type === "charset.unsupported") {
        return next(new AppError(415, "UNSUPPORTED_MEDIA_TYPE", "Send the body as UTF-8 application/json."));
      }
      return next(new BadRequestError("MALFORMED_JSON", "The body is not valid JSON."));
    });
  };
}
