// Lists the TypeScript and the SQL share: the SQL is the source, and each TypeScript copy is
// written once (server/core/) and held equal to it here.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { isTenantRef, isUuid, tenantRefPattern } from "../server/core/ids.ts";
import { ROLES } from "../server/core/roles.ts";
import { CURRENCIES } from "../server/core/currencies.ts";
import { useDatabase } from "./fixtures.ts";
import { root } from "./scratch.ts";

const { owner } = useDatabase();

async function checkOf(constraint: string): Promise<string> {
  const [c] = await owner`select pg_get_constraintdef(oid) as def from pg_catalog.pg_constraint where conname = ${constraint}`;
  if (!c) throw new Error(`no constraint ${constraint}`);
  return c.def as string;
}

const quoted = (def: string) => [...def.matchAll(/'([^']*)'::text/g)].map((m) => m[1]);

describe("the tenant roles (server/core/roles.ts)", () => {
  it("are the roles memberships and role_permissions accept, in the same order", async () => {
    expect(quoted(await checkOf("memberships_role_check"))).toEqual([...ROLES]);
    expect(quoted(await checkOf("role_permissions_role_check"))).toEqual([...ROLES]);
  });

  it("are the columns of the permission grid in policies/permissions.sql", () => {
    const sql = readFileSync(join(root, "policies", "permissions.sql"), "utf8");
    const columns = /create temporary table rbac_grid \(([^)]*)\)/.exec(sql)?.[1] ?? "";
    const roleColumns = columns.split(",").map((c) => c.trim().split(/\s+/)).filter(([, type]) => type === "boolean").map(([name]) => name);
    expect(roleColumns).toEqual([...ROLES]);
  });
});

describe("the currencies a shop may price in (server/core/currencies.ts)", () => {
  it("are exactly the codes tenants_currency_check accepts, in the same order", async () => {
    expect(quoted(await checkOf("tenants_currency_check"))).toEqual([...CURRENCIES]);
    expect(CURRENCIES.every((c) => /^[A-Z]{3}$/.test(c))).toBe(true);
  });
});

describe("identifier shapes (server/core/ids.ts)", () => {
  it("a tenant reference is app.tenants' slug rule, either case", async () => {
    const def = await checkOf("tenants_slug_check");
    expect(def).toContain(`'${tenantRefPattern.replaceAll("A-Za-z", "a-z")}'`);
    expect(isTenantRef("Acme-Motors")).toBe(true);
    expect(isTenantRef("-acme")).toBe(false);
  });

  it("a uuid is what PostgreSQL prints, and PostgreSQL reads every string the pattern accepts", async () => {
    const samples = ["00000000-0000-0000-0000-000000000000", "8D1E5A8C-AbCd-4000-8000-0123456789ab"];
    const rows = await owner`select gen_random_uuid()::text as printed, s::uuid::text as read from unnest(${samples}::text[]) s`;
    for (const r of rows) {
      expect(isUuid(r.printed)).toBe(true);
      expect(isUuid(r.read)).toBe(true);
    }
    expect(isUuid("8d1e5a8c0000400080000123456789ab")).toBe(false);
  });
});
