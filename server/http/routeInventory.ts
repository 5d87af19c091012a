// Reads the Express app's router stack (Express 5: app.router.stack, nested routers in
// layer.handle.stack) and lists every route with whether it runs behind the tenant-context
// middleware (resolveTenant, recognised by its TENANT_PATH marker), the permission and the feature
// decision its `requires(...)` middleware names and the contract its `documented(...)` mark
// carries, without grepping source.
import type express from "express";
import { featureOf, permissionOf, writesOf } from "../auth/authorize.ts";
import { docOf, type Doc } from "./contract.ts";
import { isTenantPath } from "../auth/tenantResolution.ts";

/** `writes`: what the route's `requires` says of its transaction, when it says (by default every method but GET and HEAD writes). */
export type RouteEntry = { method: string; path: string; tenantPath: boolean; permission?: string; feature?: string; writes?: boolean; doc?: Doc };

/** A layer of an Express 5 router stack, as far as the walk reads it. */
export type Layer = { rawPath?: unknown; handle: unknown; route?: { path: string; methods: Record<string, boolean>; stack: Layer[] } };

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
      const feature = layer.route.stack.map((l) => featureOf(l.handle)).find(Boolean);
      const writes = layer.route.stack.map((l) => writesOf(l.handle)).find((w) => w !== undefined);
      const doc = layer.route.stack.map((l) => docOf(l.handle)).find(Boolean);
      // A catch-all (route.all(): methodNotAllowed.ts) serves no method of its own.
      for (const method of Object.keys(layer.route.methods).filter((m) => m !== "_all")) {
        out.push({ method: method.toUpperCase(), path: join(prefix, layer.route.path), tenantPath: covered || inRoute, permission, feature, writes, doc });
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
