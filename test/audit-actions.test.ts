// app.audit_event takes its action names from one list in SQL (app.audit_actions(),
// policies/audit_functions.sql); any other name is the caller's programming error: refused with
// SQLSTATE SS500 (constraint audit_action), which the API answers as 500 AUDIT_ACTION_UNKNOWN and
// logs as an error. Before (issue 29), audit_event accepted any action name.
import { readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Sql } from "../server/db/connections.ts";
import { toAppError } from "../server/core/errors.ts";
import { asTenant, makeTenant, ownerSql, type Tenant } from "./fixtures.ts";
import { root } from "./scratch.ts";

let owner: Sql;
let shop: Tenant;

beforeAll(async () => {
  owner = ownerSql();
  shop = await makeTenant(owner);
});

afterAll(async () => {
  await owner.end();
});

const listed = async () => ((await owner`select app.audit_actions() as a`)[0].a as string[]);

/** Every action name the code hands to app.audit_event: the string literals of its first argument. */
function actionsInCode(): string[] {
  const files = [
    ...readdirSync(join(root, "policies")).filter((f) => f.endsWith(".sql")).map((f) => join(root, "policies", f)),
    ...readdirSync(join(root, "server"), { recursive: true, encoding: "utf8" }).filter((f) => f.endsWith(".ts")).map((f) => join(root, "server", f)),
  ];
  const names = new Set<string>();
  for (const file of files) {
    for (const call of readFileSync(file, "utf8").matchAll(/audit_event\(([^,]*),/g)) {
      for (const literal of call[1].matchAll(/'([a-z][a-z0-9_]*\.[a-z0-9_.]+)'/g)) names.add(literal[1]);
    }
  }
  return [...names].sort();
}

describe("app.audit_event's actions", () => {
  it("an unknown action is refused with SS500 (audit_action), naming it, and writes nothing", async () => {
    const error = await asTenant(owner, shop, (tx) => tx`select app.audit_event('customer.teleported', 'customer', null, '{}'::jsonb)`).then(() => null, (e: unknown) => e);
    expect(error).toMatchObject({ code: "SS500", constraint_name: "audit_action", message: "unknown audit action customer.teleported" });
    const [n] = await owner`select count(*)::int as n from app.audit_log where action = 'customer.teleported'`;
    expect(n.n).toBe(0);
    // A programming error of the API, never the client's: 500, logged with its cause.
    const answer = toAppError(error);
    expect({ status: answer.status, code: answer.code, operational: answer.operational }).toEqual({ status: 500, code: "AUDIT_ACTION_UNKNOWN", operational: false });
  });

  it("without a context the context check still comes first (42501), whatever the action", async () => {
    await expect(owner.begin((tx) => tx`select app.audit_event('customer.teleported', 'customer', null, '{}'::jsonb)`)).rejects.toMatchObject({ code: "42501" });
  });

  it("every listed action is recorded as app_user in a tenant context", async () => {
    for (const action of await listed()) {
      const [row] = await asTenant(owner, shop, (tx) => tx`select app.audit_event(${action}, 'probe', null, '{}'::jsonb) as id`);
      expect(row.id, action).toBeTruthy();
    }
  });

  it("every action the code names (policies/, server/) is on the list", async () => {
    const named = actionsInCode();
    expect(named.length).toBeGreaterThanOrEqual(8);
    const list = new Set(await listed());
    expect(named.filter((a) => !list.has(a)), "named in code but not in app.audit_actions() (policies/audit_functions.sql)").toEqual([]);
  });
});
