// The one authorize path. A route names the permission it needs and the feature its shop must be
// entitled to with `requires(...)`; the tenant-context helper hands both to
// app.open_tenant_context, so SQL decides, in the same round trip as the route's query:
//   * a collection route (list, create, export) without the permission is refused by SQL
//     before any of its queries runs (403 FORBIDDEN naming the permission);
//   * a route naming one row (a path parameter) runs its query first: a row the caller cannot
//     see stays 404 whatever the role, and a row it can see is refused with 403. Writes are
//     refused by SQL triggers in any case; this path is what guards reads;
//   * a shop whose plan, override or kill switch does not let it use the feature is refused by
//     SQL before any query runs (403 FEATURE_NOT_ENABLED naming the feature). `feature: "none"`
//     says the route needs none; a route that says nothing fails the contract tests.
// The proof names the permission, the feature and whether the transaction writes: a GET's
// transaction is read-only (PostgreSQL refuses its writes) unless the route says it writes
// (`{ writes: true }`, e.g. an export that audits itself), and a transaction uses only the
// permission it names and what that opens (policies/permissions.sql), never the member's whole role.
import type { RequestHandler } from "express";
import { toAppError, type ForbiddenError } from "../core/errors.ts";
import { requestState } from "../core/requestContext.ts";

export type Permission = `${string}:${string}`;
/** A feature of the catalogue (policies/features.sql), or "none". */
export type FeatureDecision = string;

const PERMISSION = Symbol.for("rls-service-shop.permission");
const WRITES = Symbol.for("rls-service-shop.writes");
const FEATURE = Symbol.for("rls-service-shop.feature");

/**
 * Middleware: this route needs `permission` in the caller's tenant (policies/permissions.sql),
 * and its shop must be entitled to `feature` ("none": no feature). `writes`: whether its
 * transaction writes; by default every method but GET and HEAD does.
 */
export function requires(permission: Permission, options: { writes?: boolean; feature?: FeatureDecision } = {}): RequestHandler {
  const feature = options.feature === undefined || options.feature === "none" ? null : options.feature;
  // The route's own answers, built once: whether it names a row (has path parameters) is the
  // same for every request it serves, and so is whether it writes (given, or by its method).
  const answers = (writes: boolean) => ({
    collection: Object.freeze({ name: permission, forRow: false, writes, feature }), row: Object.freeze({ name: permission, forRow: true, writes, feature }),
  });
  const reads = answers(options.writes ?? false);
  const writes = answers(options.writes ?? true);
  const handler: RequestHandler = function requiresPermission(req, _res, next) {
    const state = requestState(req);
    if (!state) throw new Error("request state missing");
    const byMethod = req.method === "GET" || req.method === "HEAD" ? reads : writes;
    state.permission = hasParams(req.params) ? byMethod.row : byMethod.collection;
    next();
  };
  return Object.assign(handler, { [PERMISSION]: permission, [WRITES]: options.writes, [FEATURE]: options.feature });
}

function hasParams(params: Record<string, unknown> | undefined): boolean {
  for (const _ in params) return true;
  return false;
}

/** The permission a route's `requires` middleware names (the contract and matrix tests read it). */
export function permissionOf(handler: unknown): Permission | undefined {
  return typeof handler === "function" ? (handler as { [PERMISSION]?: Permission })[PERMISSION] : undefined;
}

/** Whether a route's `requires` says its transaction writes, when it says (the API document reads it). */
export function writesOf(handler: unknown): boolean | undefined {
  return typeof handler === "function" ? (handler as { [WRITES]?: boolean })[WRITES] : undefined;
}

/** The feature decision a route's `requires` middleware names: a feature, "none", or undefined when it names none. */
export function featureOf(handler: unknown): FeatureDecision | undefined {
  return typeof handler === "function" ? (handler as { [FEATURE]?: FeatureDecision })[FEATURE] : undefined;
}

/** The 403 for a missing permission: the same answer SQL's refusal maps to (core/errors.ts). */
export function forbidden(permission: string): ForbiddenError {
  return toAppError({ code: "SS403", constraint_name: "permission", detail: permission }) as ForbiddenError;
}
