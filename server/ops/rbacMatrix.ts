// Renders runbooks/rbac-matrix.md from the SQL matrix, the tenant tables and the API's routes. The
// matrix is read from the database after applying policies/permissions.sql and the definition of
// app.table_write_permissions() (policies/rbac.sql) inside a transaction that is rolled back, so the
// page always shows the files as they stand, whatever the database last received. The tables are
// the database's own (app.tenant_tables(): every table of schema app with a tenant_id that is not
// global). Only the function is applied, not the whole of rbac.sql: re-creating its triggers would
// lock every tenant table.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { ROLES as roles } from "../core/roles.ts";
import type { Sql } from "../db/connections.ts";
import type { RouteEntry } from "../http/routeInventory.ts";
import { policiesDir } from "../setup/policies.ts";

export const rbacMatrixFile = fileURLToPath(new URL("../../runbooks/rbac-matrix.md", import.meta.url));
export type TenantTable = { name: string; permission: string | null; checkFunction: string | null; listed: boolean; appendOnly: boolean; readPermission: string | null };
export type Matrix = { permissions: { name: string; description: string }[]; granted: Set<string>; tables: TenantTable[] };

const grant = (role: string, permission: string) => `${role} ${permission}`;

/** policies/permissions.sql as the database reads it (applied, read, rolled back). */
export async function readMatrix(owner: Sql): Promise<Matrix> {
  let matrix: Matrix | undefined;
  await owner
    .begin(async (tx) => {
      await tx.unsafe(readFileSync(join(policiesDir, "permissions.sql"), "utf8"));
      const permissions = await tx`select name, description from app.permissions order by name`;
      const pairs = await tx`select role, permission from app.role_permissions`;
      const rbacSql = readFileSync(join(policiesDir, "rbac.sql"), "utf8");
      await tx.unsafe(writePermissionsFunction(rbacSql));
      await tx.unsafe(registryFunction(rbacSql, "table_read_permissions"));
      const tables = await tx`
        select c.relname as name, w.permission, w.check_function, w.table_name is not null as listed,
               c.relname = any (app.append_only_table_names()) as append_only, r.permission as read_permission
          from app.tenant_tables() t
          join pg_catalog.pg_class c on c.oid = t
          left join app.table_write_permissions() w on w.table_name = c.relname
          left join app.table_read_permissions() r on r.table_name = c.relname
         order by c.relname`;
      matrix = {
        permissions: permissions.map((p) => ({ name: p.name as string, description: p.description as string })),
        granted: new Set(pairs.map((p) => grant(p.role as string, p.permission as string))),
        tables: tables.map((t) => ({
          name: t.name as string, permission: t.permission as string | null, checkFunction: t.check_function as string | null,
          listed: t.listed as boolean, appendOnly: t.append_only as boolean, readPermission: t.read_permission as string | null,
        })),
      };
      throw new Error("rollback");
    })
    .catch((error: Error) => {
      if (error.message !== "rollback") throw error;
    });
  return matrix!;
}

/** The `create or replace function app.table_write_permissions()` statement of policies/rbac.sql. */
export function writePermissionsFunction(rbacSql: string): string {
  return registryFunction(rbacSql, "table_write_permissions");
}

/** The `create or replace function app.<name>()` statement of policies/rbac.sql (a registry without arguments). */
function registryFunction(rbacSql: string, name: string): string {
  const statement = rbacSql.match(new RegExp(`^create or replace function app\\.${name}\\(\\)[\\s\\S]*?^\\$\\$;$`, "m"))?.[0];
  if (!statement) throw new Error(`policies/rbac.sql defines no app.${name}() (as $$ ... $$;)`);
  return statement;
}

/** What a write to `t` needs, in the page's words. */
function writeRule(t: TenantTable): string {
  if (t.appendOnly) return "none: app_user may only read it (append-only)";
  if (!t.listed) return "**missing** from `app.table_write_permissions()`: applying policies fails";
  if (!t.permission) return "no check of its own (NULL in `app.table_write_permissions()`, which says why)";
  return `\`${t.permission}\``;
}

/** Who may call a route that names no tenant permission (its contract's auth). */
const callers: Record<string, string> = {
  public: "anyone: no token",
  bearer: "any valid token: the caller's own account, no tenant",
  admin: "platform administrators only",
};

/** The page, from the matrix and the app's routes (routeInventory(app): those naming a permission are listed, in mount order). */
export function renderMatrix(matrix: Matrix, routes: readonly RouteEntry[]): string {
  const mark = (role: string, permission: string) => (matrix.granted.has(grant(role, permission)) ? "✓" : "–");
  const lines = [
    "# RBAC matrix",
    "",
    "Generated by `npm run cli -- rbac matrix --write` from `policies/permissions.sql` (the one place",
    "to change it), `app.table_write_permissions()` in `policies/rbac.sql`, the tenant tables and the",
    "API's routes. Do not edit by hand: a test fails when this page and the SQL disagree, and when a",
    "route of the API document or a tenant table is missing from it (`test/rbac-matrix.test.ts`).",
    "",
    "## Permissions by role",
    "",
    `| permission | what it allows | ${roles.join(" | ")} |`,
    `|---|---|${roles.map(() => ":-:").join("|")}|`,
    ...matrix.permissions.map((p) => `| \`${p.name}\` | ${p.description} | ${roles.map((r) => mark(r, p.name)).join(" | ")} |`),
    "",
    "## Routes",
    "",
    "A route naming one row (`:id`, `:userId`) answers 404 for a row of another shop, or one the",
    "caller cannot see, before it answers 403 for a missing permission. A route naming a feature",
    "answers 403 `FEATURE_NOT_ENABLED` in a shop that may not use it, whatever the role",
    "([features](features.md)).",
    "",
    `| route | needs | feature | ${roles.join(" | ")} |`,
    `|---|---|---|${roles.map(() => ":-:").join("|")}|`,
    ...routes.flatMap((r) => (r.permission
      ? [`| \`${r.method} ${r.path}\` | \`${r.permission}\` | ${r.feature && r.feature !== "none" ? `\`${r.feature}\`` : "–"} | ${roles.map((role) => mark(role, r.permission!)).join(" | ")} |`]
      : [])),
    "",
    "Each of them is also served with the tenant in the path, `/api/v1/t/{tenant}/...` (the same",
    "route, the same permission).",
    "",
    "## Routes without a tenant permission",
    "",
    "They act in no shop, so no role of a shop applies.",
    "",
    "| route | who may call |",
    "|---|---|",
    ...routes.flatMap((r) => (r.permission ? [] : [`| \`${r.method} ${r.path}\` | ${callers[r.doc?.auth ?? "bearer"]} |`])),
    "",
    "## Tenant tables",
    "",
    "Every table of schema `app` with a `tenant_id` that is not global (`app.tenant_tables()`), and the",
    "permission a write to it needs, checked by its `_authorize_write` trigger (`app.table_write_permissions()`",
    "in `policies/rbac.sql`). Reads are bounded by RLS to the caller's shop and by the route's permission,",
    "the one its routes open a read with (`app.table_read_permissions()`). Why one member may or may not",
    "act on one row: `npm run cli -- explain` ([access questions](access-questions.md)).",
    "",
    `| table | a read needs | a write needs | checked by | ${roles.join(" | ")} |`,
    `|---|---|---|---|${roles.map(() => ":-:").join("|")}|`,
    ...matrix.tables.map((t) =>
      `| \`${t.name}\` | ${t.readPermission ? `\`${t.readPermission}\`` : "no permission of its own"} | ${writeRule(t)} | ${t.checkFunction ? `\`${t.checkFunction}\`` : "–"} | ${roles.map((role) => (t.permission ? mark(role, t.permission) : " ")).join(" | ")} |`),
    "",
    "## Rules beyond the grid (enforced in SQL)",
    "",
    "- Without `appointments:all`, `appointments:read` and `appointments:write` cover only the",
    "  appointments assigned to oneself; the others answer 404 (`policies/rbac.sql`). Assigning an",
    "  appointment to someone else needs `appointments:all` (403). Without `appointments:read` no",
    "  appointment exists to a role in SQL: the list is 403, a single appointment 404.",
    "- Issuing an invoice (draft → issued, by `POST .../issue` or any UPDATE) takes the shop's next",
    "  number under the counter's lock, whatever the statement wrote, and needs a line (422).",
    "- An invoice's status change needs the permission of its transition: issued → `invoices:issue`,",
    "  paid → `invoices:pay`, void → `invoices:void`; every other invoice write `invoices:write`.",
    "- Only an owner grants or removes the owner role (403 `OWNER_REQUIRED`); a shop never loses its",
    "  last owner, by demotion or removal (409 `LAST_OWNER`) (`app.membership_owner_rules`).",
    "- Roles that bypass RLS (the owner role, operators) bypass these checks too; inside a request",
    "  every write is checked by the `_authorize_write` trigger of its table.",
    "",
  ];
  return lines.join("\n");
}
