// Strong ETags computed from the exact JSON a response carries: any change to what the client
// would see changes the tag, and If-None-Match on an unchanged representation answers 304.
import { createHash } from "node:crypto";
import type { Request, Response } from "express";

export function sendWithEtag(req: Request, res: Response, body: unknown): void {
  const json = JSON.stringify(body);
  const tag = `"${createHash("sha256").update(json).digest("base64url").slice(0, 32)}"`;
  res.setHeader("ETag", tag);
  res.setHeader("Cache-Control", "private, no-cache");
  const inm = req.get("if-none-match");
  // If-None-Match uses the weak comparison (RFC 9110 13.1.2): W/ is ignored, * matches any.
  const matches = inm?.split(",").some((t) => t.trim() === "*" || t.trim().replace(/^W\//, "") === tag);
  if (matches) {
    res.status(304).end();
    return;
  }
  res.type("application/json").send(json);
}
