// runbooks/rbac-matrix.md is generated from policies/permissions.sql and policies/rbac.sql (read
// through the database), the tenant tables and the routes; this fails while the page and the SQL
// disagree, and while a route of the API document or a tenant table is missing from the page.
import { readFileSync } from "node:fs";
import { beforeAll, describe, expect, it } from "vitest";
import { createApp } from "../server/app.ts";
import { openApiDocument } from "../server/http/openApi.ts";
import { routeInventory } from "../server/http/routeInventory.ts";
import { rbacMatrixFile, readMatrix, renderMatrix as render, type Matrix } from "../server/ops/rbacMatrix.ts";
import { keys, useDatabase } from "./fixtures.ts";

const app = createApp({ keys, bodyLimit: "1kb" });
const routes = routeInventory(app);
const renderMatrix = (m: Matrix) => render(m, routes);

const { owner } = useDatabase();
let matrix: Matrix;
let tenantTables: string[];

beforeAll(async () => {
  matrix = await readMatrix(owner);
  // From the catalog itself, not through the generator's app.tenant_tables().
  tenantTables = (await owner`
    select c.relname from pg_catalog.pg_class c join pg_catalog.pg_namespace n on n.oid = c.relnamespace
     where n.nspname = 'app' and c.relkind in ('r', 'p') and not c.relispartition
       and c.relname <> all (app.global_table_names())
       and exists (select 1 from pg_catalog.pg_attribute a where a.attrelid = c.oid and a.attname = 'tenant_id' and not a.attisdropped)`).map((r) => r.relname as string);
});

/** Each operation of the API document (`GET /api/v1/customers/{id}`) as the page writes it (`GET /api/v1/customers/:id`). */
function documentedRoutes(): string[] {
  const paths = (openApiDocument(app) as { paths: Record<string, Record<string, unknown>> }).paths;
  return Object.entries(paths).flatMap(([path, operations]) => Object.keys(operations).map((method) =>
    // The path form /api/v1/t/{tenant}/... is the same route; the page names it once, for all.
    `${method.toUpperCase()} ${path.replace(/^\/api\/v1\/t\/\{tenant\}\//, "/api/v1/").replace(/\{(\w+)\}/g, ":$1")}`));
}

/** What the page lacks: routes of the API document without a row of their own, tenant tables without theirs. */
function missingFromPage(page: string, documented: string[], tables: string[]): string[] {
  const rows = new Set([...page.matchAll(/^\| `([^`]+)` \|/gm)].map((m) => m[1]));
  return [...new Set(documented)].filter((r) => !rows.has(r)).concat(tables.filter((t) => !rows.has(t)).map((t) => `table ${t}`));
}

describe("runbooks/rbac-matrix.md", () => {
  it("is exactly what `npm run cli -- rbac matrix --write` generates from the SQL matrix", () => {
    const page = readFileSync(rbacMatrixFile, "utf8");
    expect(page, "runbooks/rbac-matrix.md is stale. FIX: npm run cli -- rbac matrix --write").toBe(renderMatrix(matrix));
  });

  it("changes when the matrix changes (one grant taken away)", () => {
    const fewer: Matrix = { ...matrix, granted: new Set([...matrix.granted].filter((g) => g !== "accountant invoices:pay")) };
    expect(renderMatrix(fewer)).not.toBe(renderMatrix(matrix));
    expect(renderMatrix(matrix)).toMatch(/\| `POST \/api\/v1\/invoices\/:id\/pay` \| `invoices:pay` \| – \| ✓ \| ✓ \| ✓ \| – \| ✓ \|/);
  });

  it("names every route of the API document and every tenant table", () => {
    const page = readFileSync(rbacMatrixFile, "utf8");
    const documented = documentedRoutes();
    expect(documented.length).toBeGreaterThan(50);
    expect(tenantTables).toEqual(expect.arrayContaining(["customers", "invoices", "audit_log"]));
    expect(missingFromPage(page, documented, tenantTables), "FIX: npm run cli -- rbac matrix --write; if a route or table is still missing, renderMatrix (server/ops/rbacMatrix.ts) leaves it out").toEqual([]);
  });

  it("canary: a route and a table left off the page are both named", () => {
    const page = readFileSync(rbacMatrixFile, "utf8")
      .replace(/^\| `GET \/readyz` \|.*\n/m, "")
      .replace(/^\| `PATCH \/api\/v1\/invoices\/:id` \|.*\n/m, "")
      .replace(/^\| `invoice_lines` \|.*\n/m, "");
    const before = new Set(missingFromPage(readFileSync(rbacMatrixFile, "utf8"), documentedRoutes(), tenantTables));
    expect(missingFromPage(page, documentedRoutes(), tenantTables).filter((m) => !before.has(m))).toEqual(["PATCH /api/v1/invoices/:id", "GET /readyz", "table invoice_lines"]);
  });

  it("reading it leaves the database as it was (applied in a transaction that is rolled back)", async () => {
    const before = await owner`select count(*)::int as n from app.role_permissions`;
    await readMatrix(owner);
    expect(await owner`select count(*)::int as n from app.role_permissions`).toEqual(before);
  });
});
