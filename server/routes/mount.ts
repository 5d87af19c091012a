// Where a group of /api/v1 routes is registered: on the app's own router, each route at its full
// path with the group's middleware in front of its own handlers. Nested routers (app, then
// /api/v1, then /customers) made every request walk three routers, each matching its mount path,
// cutting req.url and restoring it: 8% of a GET's instructions (bench/README.md). A route file
// reads as before: `router.get("/:id", documented(...), requires(...), handler)`.
import type { Express, RequestHandler } from "express";

export type Routes = {
  /** The group's URL path (/api/v1/customers): where Location headers and next-page links point. */
  readonly base: string;
  get: (path: string, ...handlers: RequestHandler[]) => Routes;
  post: (path: string, ...handlers: RequestHandler[]) => Routes;
  put: (path: string, ...handlers: RequestHandler[]) => Routes;
  patch: (path: string, ...handlers: RequestHandler[]) => Routes;
  delete: (path: string, ...handlers: RequestHandler[]) => Routes;
};

/** Routes under `base` on `app`, each behind `before` (in that order). */
export function mountRoutes(app: Express, base: string, before: readonly RequestHandler[]): Routes {
  const on = (method: "get" | "post" | "put" | "patch" | "delete") => (path: string, ...handlers: RequestHandler[]): Routes => {
    app[method](path === "/" ? base : `${base}${path}`, ...before, ...handlers);
    return routes;
  };
  const routes: Routes = { base, get: on("get"), post: on("post"), put: on("put"), patch: on("patch"), delete: on("delete") };
  return routes;
}
