// Reads the Express app's router stack (Express 5: app.router.stack, nested routers in
// layer.handle.stack) and lists every route with whether it runs behind the tenant-context
// middleware (resolveTenant, recognised by its TENANT_PATH marker), the permission its
// `requires(...)` middleware names and the contract its `documented(...)` mark carries, without grepping source.
import type express from "express";
import { permissionOf } from "./authorize.ts";
import { docOf, type Doc } from "./contract.ts";
import { isTenantPath } from "./tenantResolution.ts";

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

/** The /api/v1 router itself, to add a deliberately unguarded route in the canary. */
export function apiRouter(app: express.Express): express.Router {
  const layer = (app as unknown as { router: { stack: Layer[] } }).router.stack.find((l) => l.rawPath === "/api/v1");
  if (!layer) throw new Error("no /api/v1 router on the app");
  return layer.handle as express.Router;
}

/** The router mounted at /api/v1{path} behind resolveTenant, to add a route without a permission in the canary. */
export function tenantResourceRouter(app: express.Express, path: string): express.Router {
  const api = apiRouter(app) as unknown as { stack: Layer[] };
  const layer = api.stack.find((l) => l.rawPath === path && !isTenantPath(l.handle));
  if (!layer) throw new Error(`no router at /api/v1${path}`);
  return layer.handle as express.Router;
}
