// Routes tests add to a built app: canaries that mount a route without a permission or a contract,
// and probe routes that answer what no real route can be made to (a 304, a database denial).
import type express from "express";
import { notFound } from "../server/http/errorHandler.ts";
import type { Layer } from "../server/http/routeInventory.ts";
import { isTenantPath } from "../server/auth/tenantResolution.ts";
import { mountRoutes, type Routes } from "../server/routes/mount.ts";

const stackOf = (app: express.Express) => (app as unknown as { router: { stack: Layer[] } }).router.stack;

/**
 * Routes registered as the tenant resource at /api/v1{path} registers its own: on the app, behind
 * the same middleware its first route has (up to and including resolveTenant).
 */
export function tenantRoutesAt(app: express.Express, path: string): Routes {
  const base = `/api/v1${path}`;
  const first = stackOf(app).find((l) => l.route && (l.route.path === base || l.route.path.startsWith(`${base}/`)));
  const chain = first?.route?.stack.map((l) => l.handle) ?? [];
  const guard = chain.findIndex((h) => isTenantPath(h));
  if (guard < 0) throw new Error(`no tenant routes at ${base}`);
  return mountRoutes(app, base, chain.slice(0, guard + 1) as express.RequestHandler[]);
}

/**
 * Registers routes on a built app where requests reach them: in front of its 404 and error
 * handler, which createApp registers last.
 */
export function addReachableRoutes(app: express.Express, register: (app: express.Express) => void): void {
  const stack = stackOf(app);
  const at = stack.findIndex((l) => l.handle === notFound);
  if (at < 0) throw new Error("no 404 handler on the app: was it built by createApp?");
  const tail = stack.splice(at);
  register(app);
  stack.push(...tail);
}
