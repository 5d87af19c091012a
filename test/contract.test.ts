// Contracts that make an unprotected table, view, function or route fail loudly, each
// failure naming the object and a FIX:
//   * catalog: verify/catalog.sql's checks, verify/verify_rls.sql's probe and verify/verify_functions.sql's
//     probe of every function the application roles can execute, on the test database;
//   * routes: every route under /api/v1 other than login, accepting an invitation, me, the caller's
//     tenants and the platform administrators' routes runs behind the tenant-context middleware and names the
//     permission it needs and its feature decision (requires(..., { feature })), read from the
//     Express router stack; every permission and feature a route names exists in SQL, and a
//     route whose permission reads data a feature guards (app.features_required_by) names it.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import postgres from "postgres";
import { describe, expect, it } from "vitest";
import { createApp, tenantResources } from "../server/app.ts";
import { db, keys } from "./fixtures.ts";
import { routeInventory, type RouteEntry } from "../server/http/routeInventory.ts";
import { tenantRoutesAt } from "./routeProbes.ts";
import { requires } from "../server/auth/authorize.ts";
import { root } from "./scratch.ts";

/** The DO block of a verify/*.sql file, so the suite runs exactly what operators run. */
function doBlock(file: string): string {
  const text = readFileSync(join(root, "verify", file), "utf8");
  const match = /^do \$(\w+)\$[\s\S]*?^\$\1\$;/m.exec(text);
  if (!match) throw new Error(`no DO block in verify/${file}`);
  return match[0];
}

async function failuresOf(file: string): Promise<string> {
  const sql = postgres(db.ownerUrl, { max: 1, onnotice: () => {} });
  try {
    await sql.begin(async (tx) => {
      await tx`select set_config('verify.app_role', 'app_user', true)`;
      await tx.unsafe(doBlock(file));
      throw new Error("rollback");
    });
    return "";
  } catch (error) {
    const message = (error as Error).message;
    return message === "rollback" ? "" : message;
  } finally {
    await sql.end();
  }
}

describe("catalog contract", () => {
  it("every app table is tenant-owned with every protection or on the global list; every SECURITY DEFINER function pins search_path; every view is security_invoker", async () => {
    expect(await failuresOf("catalog.sql"), "verify/catalog.sql found unprotected objects (each line has a FIX)").toBe("");
  });

  it("every tenant table and view isolates tenants and fails closed as app_user (verify_rls.sql)", async () => {
    expect(await failuresOf("verify_rls.sql"), "verify/verify_rls.sql found leaks (each line has a FIX)").toBe("");
  });

  it("no function app_user or app_bi may execute answers without a context, or tells another tenant's ids from unknown ones (verify_functions.sql)", async () => {
    expect(await failuresOf("verify_functions.sql"), "verify/verify_functions.sql found oracles (each line has a FIX)").toBe("");
  });
});

const callerRoutes = new Set(["POST /api/v1/auth/login", "POST /api/v1/invitations/accept", "GET /api/v1/me", "GET /api/v1/tenants"]);

/** A platform administrators' route: under /api/v1/platform/, documented as admin-only (its context is the platform's, opened by SQL for admins only). */
const platformRoute = (r: RouteEntry) => r.path.startsWith("/api/v1/platform/") && r.doc?.auth === "admin";

function unguarded(routes: RouteEntry[]): string[] {
  return routes
    .filter((r) => r.path.startsWith("/api/v1/") && !r.tenantPath && !callerRoutes.has(`${r.method} ${r.path}`) && !platformRoute(r))
    .map((r) => `${r.method} ${r.path}: not behind the tenant-context middleware. FIX: mount its router in tenantResources() (server/app.ts), which puts resolveTenant in front, and reach the database only through withTenant()`);
}

function withoutPermission(routes: RouteEntry[]): string[] {
  return routes
    .filter((r) => r.tenantPath && !r.permission)
    .map((r) => `${r.method} ${r.path}: names no permission. FIX: add requires("<area>:<action>") before its handler, with a permission of policies/permissions.sql`);
}

function withoutFeatureDecision(routes: RouteEntry[]): string[] {
  return routes
    .filter((r) => r.tenantPath && r.feature === undefined)
    .map((r) => `${r.method} ${r.path}: names no feature decision. FIX: requires("${r.permission ?? "<area>:<action>"}", { feature: "<feature of policies/features.sql>" }), or { feature: "none" } when it needs none`);
}

describe("route contract", () => {
  const app = () => createApp({ keys, bodyLimit: "100kb", deployment: { commit_sha: "test", deployed_at: "now" } });

  it("every /api/v1 route other than login, me and tenants runs behind resolveTenant", () => {
    const routes = routeInventory(app());
    expect(unguarded(routes)).toEqual([]);
    for (const path of Object.keys(tenantResources())) {
      expect(routes.some((r) => r.path.startsWith(`/api/v1${path}`) && r.tenantPath), `${path} has routes on the tenant path`).toBe(true);
    }
    for (const caller of callerRoutes) expect(routes.map((r) => `${r.method} ${r.path}`)).toContain(caller);
  });

  it("every tenant route names the permission it needs, and every such permission is in the SQL matrix", async () => {
    const routes = routeInventory(app());
    expect(withoutPermission(routes)).toEqual([]);
    const sql = postgres(db.ownerUrl, { max: 1, onnotice: () => {} });
    try {
      const known = new Set((await sql`select name from app.permissions`).map((r) => r.name as string));
      expect(routes.filter((r) => r.permission && !known.has(r.permission)).map((r) => `${r.method} ${r.path}: ${r.permission}`)).toEqual([]);
    } finally {
      await sql.end();
    }
  });

  it("every tenant route names its feature decision; every feature named exists in SQL, and SQL's feature for a permission is the route's", async () => {
    const routes = routeInventory(app());
    expect(withoutFeatureDecision(routes)).toEqual([]);
    const sql = postgres(db.ownerUrl, { max: 1, onnotice: () => {} });
    try {
      const known = new Set((await sql`select name from app.features`).map((r) => r.name as string));
      expect(routes.filter((r) => r.feature && r.feature !== "none" && !known.has(r.feature)).map((r) => `${r.method} ${r.path}: ${r.feature}`)).toEqual([]);
      const disagree: string[] = [];
      for (const r of routes.filter((x) => x.tenantPath && x.permission)) {
        const [{ features }] = await sql`select app.features_required_by(${r.permission!}) as features`;
        if ((features as string[]).length > 0 && !(features as string[]).includes(r.feature ?? "")) {
          disagree.push(`${r.method} ${r.path}: SQL requires ${(features as string[]).join(", ")} for ${r.permission}, the route names ${r.feature}`);
        }
      }
      expect(disagree).toEqual([]);
      expect(routes.filter((r) => r.feature === "reports" || r.feature === "audit_export").length).toBeGreaterThanOrEqual(2);
    } finally {
      await sql.end();
    }
  });

  it("the platform routes are documented as admin-only and name no tenant permission", () => {
    const platform = routeInventory(app()).filter((r) => r.path.startsWith("/api/v1/platform/"));
    expect(platform.length).toBeGreaterThanOrEqual(8);
    expect(platform.filter((r) => !platformRoute(r) || r.permission || r.tenantPath).map((r) => `${r.method} ${r.path}`)).toEqual([]);
  });

  it("canary: a tenant route that names no feature decision is caught by name", () => {
    const a = app();
    tenantRoutesAt(a, "/customers").get("/:id/loyalty", requires("customers:read"), (_req, res) => void res.json({}));
    expect(withoutFeatureDecision(routeInventory(a))).toEqual([expect.stringMatching(/^GET \/api\/v1\/customers\/:id\/loyalty: names no feature decision\. FIX: /)]);
  });

  it("canary: a tenant route without requires(...) is caught by name", () => {
    const a = app();
    tenantRoutesAt(a, "/customers").get("/:id/secrets", (_req, res) => void res.json({}));
    expect(withoutPermission(routeInventory(a))).toEqual([expect.stringMatching(/^GET \/api\/v1\/customers\/:id\/secrets: names no permission\. FIX: /)]);
  });

  it("canary: a route added to /api/v1 outside tenantResources() is caught by name", () => {
    const a = app();
    a.get("/api/v1/rogue-report", (_req, res) => void res.json({}));
    expect(unguarded(routeInventory(a))).toEqual([expect.stringMatching(/^GET \/api\/v1\/rogue-report: not behind the tenant-context middleware\. FIX: /)]);
  });
});
