// Reads the Express app's router stack (Express 5: app.router.stack, nested routers in
// layer.handle.stack) and lists every route with whether it runs behind the tenant-context
// middleware (resolveTenant, recognised by its TENANT_PATH marker), the permission its
// `requires(...)` middleware names and the contract its `documented(...)` mark carries, without grepping source.
import type express from "express";
import { permissionOf } from "../auth/authorize.ts";
import { docOf, type Doc } from "./contract.ts";
import { notFound } from "./errorHandler.ts";
import { mountRoutes, type Routes } from "../routes/mount.ts";
import { isTenantPath } from "../auth/tenantResolution.ts";

export type RouteEntry = { method: string; path: string; tenantPath: boolean; permission?: string; doc?: Doc };

type Layer = { rawPath?: unknown; handle: unknown; route?: { path: string; methods: Record<string, boolean>; stack: Layer[] } };

const join = (a: string, b: string) => (`${a}/${b}`).replace(/\/+/g, "/").replace(/(.)\/$/, "$1");

function walk(stack: Layer[], prefix: string, guarded: boolean): RouteEntry[] {
  const guards: string[] = [];
  const out: RouteEntry[] = [];
  for (const layer of stack) {
    const raw = typeof layer.rawPath === "string" ? layer.rawPath : "/";
    if (isTenantPath(layer.handle)) {
      guards.push(raw);
      continue;
    }
    const covered = guarded || guards.some((g) => g === "/" || raw === g || raw.startsWith(`${g}/`));
    if (layer.route) {
      const inRoute = layer.route.stack.some((l) => isTenantPath(l.handle));
      const permission = layer.route.stack.map((l) => permissionOf(l.handle)).find(Boolean);
      const doc = layer.route.stack.map((l) => docOf(l.handle)).find(Boolean);
      for (const method of Object.keys(layer.route.methods)) {
        out.push({ method: method.toUpperCase(), path: join(prefix, layer.route.path), tenantPath: covered || inRoute, permission, doc });
      }
    } else {
      const nested = (layer.handle as { stack?: Layer[] }).stack;
      if (Array.isArray(nested)) out.push(...walk(nested, join(prefix, raw), covered));
    }
  }
  return out;
}

export function routeInventory(app: express.Express): RouteEntry[] {
  return walk((app as unknown as { router: { stack: Layer[] } }).router.stack, "/", false);
}

/**
 * Routes registered as the tenant resource at /api/v1{path} registers its own: on the app, behind
 * the same middleware its first route has (up to and including resolveTenant). For the canaries,
 * which add a route without a permission or without a contract.
 */
export function tenantRoutesAt(app: express.Express, path: string): Routes {
  const base = `/api/v1${path}`;
  const first = (app as unknown as { router: { stack: Layer[] } }).router.stack.find((l) => l.route && (l.route.path === base || l.route.path.startsWith(`${base}/`)));
  const chain = first?.route?.stack.map((l) => l.handle) ?? [];
  const guard = chain.findIndex((h) => isTenantPath(h));
  if (guard < 0) throw new Error(`no tenant routes at ${base}`);
  return mountRoutes(app, base, chain.slice(0, guard + 1) as express.RequestHandler[]);
}

/**
 * Registers routes on a built app where requests reach them: in front of its 404 and error
 * handler, which createApp registers last. For tests' probe routes (a 304, a database denial).
 */
export function addReachableRoutes(app: express.Express, register: (app: express.Express) => void): void {
  const stack = (app as unknown as { router: { stack: Layer[] } }).router.stack;
  const at = stack.findIndex((l) => l.handle === notFound);
  if (at < 0) throw new Error("no 404 handler on the app: was it built by createApp?");
  const tail = stack.splice(at);
  register(app);
  stack.push(...tail);
}
