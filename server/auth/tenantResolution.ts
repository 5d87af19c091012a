// Which tenant a request names, from (in this order) the X-Tenant-Id header (uuid or slug),
// the subdomain {slug}.{BASE_DOMAIN}, and the path prefix /api/v1/t/{slug}/. The names are
// only collected here; SQL (app.open_tenant_context) checks membership and that they agree.
// Two names of the same form that differ are a 400 without asking the database.
import type { Request, RequestHandler } from "express";
import { BadRequestError } from "../core/errors.ts";
import { requestState } from "../core/requestContext.ts";
import { isTenantRef, isUuid } from "../core/ids.ts";

const pathPrefix = /^\/api\/v1\/t\/([^/?]+)(\/[^?]*)?(\?.*)?$/;

/** Rewrites /api/v1/t/{slug}/rest to /api/v1/rest and remembers the slug. Runs before routing. */
export function rewriteTenantPathPrefix(req: Request): void {
  // A malformed percent-escape anywhere in the path is malformed input, answered before authentication.
  const path = req.path;
  if (path.includes("%")) {
    try {
      decodeURIComponent(path);
    } catch (error) {
      throw new BadRequestError("MALFORMED_URI", "The URL path holds a malformed percent-escape.", { cause: error });
    }
  }
  const match = req.url.startsWith("/api/v1/t/") ? pathPrefix.exec(req.url) : null;
  if (match) {
    (req as { tenantFromPath?: string }).tenantFromPath = decodeURIComponent(match[1]);
    req.url = `/api/v1${match[2] ?? "/"}${match[3] ?? ""}`;
  }
}

function fromSubdomain(host: string | undefined, baseDomain: string | undefined): string | undefined {
  if (!host || !baseDomain) return undefined;
  const h = host.toLowerCase();
  const suffix = `.${baseDomain.toLowerCase().replace(/:\d+$/, "")}`;
  if (!h.endsWith(suffix)) return undefined;
  const label = h.slice(0, -suffix.length);
  return label && !label.includes(".") ? label : undefined;
}

function checked(source: string, value: string): string {
  if (!isTenantRef(value)) {
    throw new BadRequestError("INVALID_TENANT", `The tenant in the ${source} is neither a uuid nor a slug.`);
  }
  return value.toLowerCase();
}

/** Marks the middleware that puts a request on the tenant-context path (the route contract test looks for it). */
export const TENANT_PATH = Symbol.for("rls-service-shop.tenant-path");

export function isTenantPath(handler: unknown): boolean {
  return typeof handler === "function" && (handler as { [TENANT_PATH]?: boolean })[TENANT_PATH] === true;
}

export function resolveTenant(baseDomain: string | undefined): RequestHandler {
  const handler: RequestHandler = function resolveTenantContext(req, _res, next) {
    const refs: string[] = [];
    const header = req.get("x-tenant-id");
    if (header !== undefined) refs.push(checked("X-Tenant-Id header", header.trim()));
    const sub = baseDomain ? fromSubdomain(req.hostname, baseDomain) : undefined;
    if (sub !== undefined) refs.push(checked("subdomain", sub));
    const path = (req as { tenantFromPath?: string }).tenantFromPath;
    if (path !== undefined) refs.push(checked("path", path));

    if (refs.length > 1) {
      for (const a of refs) {
        for (const b of refs) {
          if (isUuid(a) === isUuid(b) && a !== b) {
            throw new BadRequestError("TENANT_CONFLICT", "The request names more than one tenant.");
          }
        }
      }
    }
    const state = requestState(req);
    if (!state) throw new Error("request state missing");
    if (refs.length === 0) {
      if (!state.tokenTenantId) {
        throw new BadRequestError("TENANT_REQUIRED", "Name the tenant: X-Tenant-Id header, subdomain, or /api/v1/t/{slug}/.");
      }
      refs.push(state.tokenTenantId);
    }
    state.tenantRefs = refs.length > 1 ? [...new Set(refs)] : refs;
    next();
  };
  return Object.assign(handler, { [TENANT_PATH]: true });
}
