// Every migration says why it exists and how it is undone, and holds tables and data only
// (runbooks/migrations.md, "Naming and shape"): its first line is `-- Intent: ...`, a
// `-- Rollback plan: ...` line comes before `-- Up Migration`, a plan that starts "down
// migration" has its `-- Down Migration` section (deploy/rollback.sh --previous-migration runs
// it) and a file with one says so in its plan; it creates no trigger, view or policy, and a
// function only as the stub of one policies/ defines (each is defined once, re-applied on deploy).
import { readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { root } from "./scratch.ts";

/** What is wrong with a migration's header, one line per problem. */
function headerProblems(name: string, text: string): string[] {
  const problems: string[] = [];
  const up = text.indexOf("-- Up Migration");
  const head = up < 0 ? "" : text.slice(0, up);
  const plan = head.match(/^-- Rollback plan: (.+)$/m)?.[1];
  if (!/^-- Intent: \S/.test(text)) problems.push(`${name}: the first line is not "-- Intent: ..."`);
  if (up < 0) problems.push(`${name}: no "-- Up Migration" marker`);
  if (!plan) problems.push(`${name}: no "-- Rollback plan: ..." line before "-- Up Migration"`);
  const down = /^-- Down Migration\s*$/m.test(text);
  if (plan && /^down migration/i.test(plan) !== down) {
    problems.push(down ? `${name}: has a Down Migration section its rollback plan does not name` : `${name}: its rollback plan names a down migration it does not have`);
  }
  for (const [, kind] of text.matchAll(/^\s*create\s+(?:or\s+replace\s+)?(trigger|view|materialized\s+view|policy)\b/gim)) {
    problems.push(`${name}: creates a ${kind.toLowerCase()}; it belongs in policies/ (defined once, re-applied on every deploy)`);
  }
  for (const [, fn] of text.matchAll(/^\s*create\s+(?:or\s+replace\s+)?function\s+([\w.]+)/gim)) {
    if (!policyFunctions().has(fn.toLowerCase())) problems.push(`${name}: creates function ${fn}, which policies/ does not define; a migration holds only a stub of one`);
  }
  return problems.map((p) => `${p}. FIX: see runbooks/migrations.md, "Naming and shape" and "The rollback plan each migration carries"`);
}

let defined: Set<string> | undefined;
/** The functions policies/ defines. */
function policyFunctions(): Set<string> {
  defined ??= new Set(readdirSync(join(root, "policies")).filter((f) => f.endsWith(".sql"))
    .flatMap((f) => [...readFileSync(join(root, "policies", f), "utf8").matchAll(/^\s*create\s+(?:or\s+replace\s+)?function\s+([\w.]+)/gim)].map((m) => m[1].toLowerCase())));
  return defined;
}

describe("migration headers", () => {
  it("every migration in sql/ states its intent and its rollback plan, and defines no function, trigger, view or policy of its own", () => {
    const files = readdirSync(join(root, "sql")).filter((f) => f.endsWith(".sql"));
    expect(files.length).toBeGreaterThan(10);
    expect(files.flatMap((f) => headerProblems(f, readFileSync(join(root, "sql", f), "utf8")))).toEqual([]);
  });

  it("canary: a migration without intent or plan, and one whose plan and Down section disagree, are named", () => {
    expect(headerProblems("9999_x.sql", "create table app.x ();\n-- Up Migration\n")).toEqual([
      '9999_x.sql: the first line is not "-- Intent: ..."',
      '9999_x.sql: no "-- Rollback plan: ..." line before "-- Up Migration"',
    ].map((p) => `${p}. FIX: see runbooks/migrations.md, "Naming and shape" and "The rollback plan each migration carries"`));
    const planned = "-- Intent: x\n-- Rollback plan: down migration.\n-- Up Migration\ncreate table app.x ();\n";
    expect(headerProblems("9998_y.sql", planned)[0]).toMatch(/names a down migration it does not have/);
    expect(headerProblems("9998_y.sql", `${planned}-- Down Migration\ndrop table app.x;\n`)).toEqual([]);
    expect(headerProblems("9997_z.sql", "-- Intent: x\n-- Rollback plan: forward fix.\n-- Up Migration\n\n-- Down Migration\n")[0]).toMatch(/does not name/);
    const body = "-- Intent: x\n-- Rollback plan: forward fix; no down migration.\n-- Up Migration\n";
    expect(headerProblems("9996_f.sql", `${body}create or replace function app.current_tenant_id() returns uuid language sql as $$ select null::uuid $$;\n`)).toEqual([]);
    expect(headerProblems("9996_f.sql", `${body}create function app.helper() returns int language sql as $$ select 1 $$;\n  create trigger t before insert on app.x for each row execute function app.helper();\ncreate or replace view app.v as select 1;\n`)).toEqual([
      "9996_f.sql: creates a trigger; it belongs in policies/ (defined once, re-applied on every deploy)",
      "9996_f.sql: creates a view; it belongs in policies/ (defined once, re-applied on every deploy)",
      "9996_f.sql: creates function app.helper, which policies/ does not define; a migration holds only a stub of one",
    ].map((p) => `${p}. FIX: see runbooks/migrations.md, "Naming and shape" and "The rollback plan each migration carries"`));
  });
});
