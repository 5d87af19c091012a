// Role defaults are watched (issue 29, finding 5). A role may change its own defaults:
// app_user's `alter role app_user set debug_print_plan = on` was accepted, and every new
// connection then wrote its plans, proofs included, into the server log; it could drop its own
// statement_timeout backstop too. verify/role_defaults.sql judges every stored default of the
// application roles against the allow-list (policies/role_defaults.sql), verify/statement_logging.sql
// what the server would log of app_user's bind parameters, and /readyz answers 503
// ROLE_DEFAULTS_CHANGED when app_user's own defaults leave the allow-list.
// Role defaults are cluster-wide and other test files run against the same server at the same
// time: every default set here is scoped to one scratch database (ALTER ROLE ... IN DATABASE,
// ALTER DATABASE), which takes it along when dropped, or set on a scratch role dropped afterwards.
import { randomUUID } from "node:crypto";
import postgres from "postgres";
import { describe, expect, it } from "vitest";
import { startApi } from "./fixtures.ts";
import { psqlFile, run, runSql, superuserUrlFor, useGolden, type Scratch } from "./scratch.ts";

const golden = useGolden("roledefaults");
const withClone = <T>(fn: (s: Scratch) => Promise<T>) => golden.withClone(fn);

/** The first column of the first row of `query`, run on a new connection as the URL's role. */
async function one(url: string, query: string): Promise<unknown> {
  const sql = postgres(url, { max: 1, onnotice: () => {} });
  try {
    const rows = await sql.unsafe(query);
    return rows[0] ? Object.values(rows[0])[0] : undefined;
  } finally {
    await sql.end();
  }
}

const verifyRoleDefaults = (s: Scratch, vars: Record<string, string> = {}) => psqlFile(s.ownerUrl, "verify/role_defaults.sql", vars);
const verifyLogging = (s: Scratch, vars: Record<string, string> = {}) => psqlFile(s.ownerUrl, "verify/statement_logging.sql", vars);

type Check = { status: string; check: string; object: string | null; message: string; fix: string | null };
async function goliveFailures(s: Scratch): Promise<Check[]> {
  const r = await run("verify/golive-status.sh", ["--skip-api", "--json"], { DATABASE_URL: s.appUrl, DATABASE_OWNER_URL: s.ownerUrl, JWT_SECRET: "x".repeat(32) });
  return (JSON.parse(r.output) as { checks: Check[] }).checks.filter((c) => c.status === "FAIL");
}

/** A scratch login standing in for the API role (role-wide defaults of the shared app_user would reach every test file). */
async function withScratchLogin(s: Scratch, setup: (role: string) => string, fn: (role: string, url: string) => Promise<void>) {
  const role = `scratch_api_${randomUUID().slice(0, 8)}`;
  const url = new URL(s.ownerUrl);
  url.username = role;
  url.password = "scratch";
  try {
    await runSql(superuserUrlFor(s.name), `create role ${role} login password 'scratch' nosuperuser nobypassrls noinherit;
      grant connect on database ${s.name} to ${role}; grant usage on schema app to ${role};
      grant execute on function app.role_defaults_changed() to ${role}; ${setup(role)}`);
    await fn(role, url.toString());
  } finally {
    await s.drop();
    await runSql(superuserUrlFor("postgres"), `drop role if exists ${role}`);
  }
}

describe("on the correctly deployed database", () => {
  it("verify/role_defaults.sql and verify/statement_logging.sql pass, and app_user carries its two backstops", async () => {
    const defaults = await psqlFile(golden.ownerUrl, "verify/role_defaults.sql");
    expect(defaults.output).toContain("role_defaults: ok");
    expect(defaults.code).toBe(0);
    const logging = await psqlFile(golden.ownerUrl, "verify/statement_logging.sql");
    expect(logging.output).toContain("statement_logging: ok");
    expect(logging.code).toBe(0);
    expect(await one(golden.appUrl, "show statement_timeout")).toBe("5s");
    expect(await one(golden.appUrl, "show idle_in_transaction_session_timeout")).toBe("10s");
  });
});

describe("app_user changes its own defaults: verification and /readyz name it", () => {
  it("debug_print_plan, set by app_user for itself, is accepted; verification and /readyz name it until it is reset", async () =>
    withClone(async (s) => {
      // The finding: no privilege is needed to change one's own defaults.
      await runSql(s.appUrl, `alter role app_user in database ${s.name} set debug_print_plan = on`);
      expect(await one(s.appUrl, "show debug_print_plan"), "a new connection takes it").toBe("on");

      const defaults = await verifyRoleDefaults(s);
      expect(defaults.output).toContain(`FAIL role app_user: default debug_print_plan = on in database ${s.name} (not on the allow-list). FIX: alter role app_user in database ${s.name} reset debug_print_plan`);
      expect(defaults.code).not.toBe(0);
      const logging = await verifyLogging(s);
      expect(logging.output).toContain(`FAIL setting debug_print_plan: is on for app_user (the default of app_user in database ${s.name})`);
      expect(logging.output).toContain(`FIX: alter role app_user in database ${s.name} reset debug_print_plan`);
      expect(logging.code).not.toBe(0);
      const failed = await goliveFailures(s);
      expect(failed.find((c) => c.check === "role-defaults")).toMatchObject({ object: "role app_user", fix: `alter role app_user in database ${s.name} reset debug_print_plan` });
      expect(failed.find((c) => c.check === "logging")).toMatchObject({ object: "setting debug_print_plan", fix: `alter role app_user in database ${s.name} reset debug_print_plan` });

      const api = await startApi({ databaseUrl: s.appUrl });
      try {
        const ready = await api.request("GET", "/readyz");
        expect(ready.status).toBe(503);
        expect(ready.headers.get("retry-after")).toBe("30");
        expect(ready.body.error).toMatchObject({
          code: "ROLE_DEFAULTS_CHANGED", details: { settings: ["debug_print_plan: not on the allow-list"] }, help: "runbooks/role-defaults.md",
        });
        expect(ready.body.error.request_id).toEqual(expect.any(String));
        // The FIX, as printed, run by the role itself.
        await runSql(s.appUrl, `alter role app_user in database ${s.name} reset debug_print_plan`);
        expect((await api.request("GET", "/readyz")).status).toBe(200);
      } finally {
        await api.close();
      }
      expect((await verifyRoleDefaults(s)).code).toBe(0);
      expect((await verifyLogging(s)).code).toBe(0);
    }));

  it("dropping its statement_timeout backstop (set to 0 by app_user) is accepted; verification and /readyz name it", async () =>
    withClone(async (s) => {
      await runSql(s.appUrl, `alter role app_user in database ${s.name} set statement_timeout = 0`);
      expect(await one(s.appUrl, "show statement_timeout")).toBe("0");

      const defaults = await verifyRoleDefaults(s);
      expect(defaults.output).toContain(`FAIL role app_user: default statement_timeout = 0 in database ${s.name} (outside the allowed 1000 to 60000 ms). FIX: alter role app_user in database ${s.name} reset statement_timeout`);
      expect(defaults.code).not.toBe(0);
      const api = await startApi({ databaseUrl: s.appUrl });
      try {
        const ready = await api.request("GET", "/readyz");
        expect(ready.status).toBe(503);
        expect(ready.body.error).toMatchObject({ code: "ROLE_DEFAULTS_CHANGED", details: { settings: ["statement_timeout: outside the allowed 1000 to 60000 ms"] } });
        await runSql(s.appUrl, `alter role app_user in database ${s.name} reset statement_timeout`);
        expect((await api.request("GET", "/readyz")).status).toBe(200);
      } finally {
        await api.close();
      }
      expect((await verifyRoleDefaults(s)).code).toBe(0);
    }));

  it("read-only transactions by default (set by app_user for itself) are named", async () =>
    withClone(async (s) => {
      await runSql(s.appUrl, `alter role app_user in database ${s.name} set default_transaction_read_only = on`);
      const defaults = await verifyRoleDefaults(s);
      expect(defaults.output).toContain(`FAIL role app_user: default default_transaction_read_only = on in database ${s.name} (not on the allow-list). FIX: alter role app_user in database ${s.name} reset default_transaction_read_only`);
      expect(await one(s.appUrl, "select array(select setting || ': ' || problem from app.role_defaults_changed())")).toEqual(["default_transaction_read_only: not on the allow-list"]);
    }));

  it("a backstop reset for every database (a scratch API role, by itself) is named missing, with the FIX that sets it back", async () => {
    const s = await golden.clone();
    await withScratchLogin(s, (role) => `alter role ${role} set statement_timeout = '5s'; alter role ${role} set idle_in_transaction_session_timeout = '10s'`, async (role, url) => {
      expect(await one(url, "select count(*)::int from app.role_defaults_changed()")).toBe(0);
      expect((await verifyRoleDefaults(s, { app_role: role })).code).toBe(0);
      await runSql(url, `alter role ${role} reset statement_timeout`);
      const defaults = await verifyRoleDefaults(s, { app_role: role });
      expect(defaults.output).toContain(`FAIL role ${role}: default statement_timeout in every database (missing: the backstop policies/role_defaults.sql sets). FIX: alter role ${role} set statement_timeout = '5s'`);
      expect(defaults.code).not.toBe(0);
      expect(await one(url, "select array(select setting || ': ' || problem from app.role_defaults_changed())")).toEqual(["statement_timeout: missing: the backstop policies/role_defaults.sql sets"]);
    });
  });

  it("log_parameter_max_length_on_error, set by app_user for itself, would log a refused proof: named", async () =>
    withClone(async (s) => {
      await runSql(s.appUrl, `alter role app_user in database ${s.name} set log_parameter_max_length_on_error = -1`);
      const logging = await verifyLogging(s);
      expect(logging.output).toContain(`FAIL setting log_parameter_max_length_on_error: is -1 for app_user (the default of app_user in database ${s.name}), so a failed statement is logged with its parameters`);
      expect(logging.output).toContain(`FIX: alter role app_user in database ${s.name} reset log_parameter_max_length_on_error`);
      expect(logging.code).not.toBe(0);
      expect((await verifyRoleDefaults(s)).output).toContain(`FAIL role app_user: default log_parameter_max_length_on_error = -1 in database ${s.name} (outside the allowed 0 bytes)`);
    }));
});

describe("the server's logging of app_user's bind parameters", () => {
  it("a database-wide log_min_duration_statement (as a superuser) is named, and passes once app_user's parameters are kept out of the log", async () =>
    withClone(async (s) => {
      const su = superuserUrlFor(s.name);
      await runSql(su, `alter database ${s.name} set log_min_duration_statement = 0`);
      const logging = await verifyLogging(s);
      expect(logging.output).toContain(`FAIL setting log_min_duration_statement: is 0 for app_user (the default of database ${s.name}) and log_parameter_max_length is -1, so statements slower than that are logged with their parameters, context proofs included. FIX: alter database ${s.name} reset log_min_duration_statement`);
      expect(logging.code).not.toBe(0);
      // Database-wide defaults reach the application roles too.
      expect((await verifyRoleDefaults(s)).output).toContain(`FAIL role ALL (every role): default log_min_duration_statement = 0 in database ${s.name} (outside the allowed -1 ms). FIX: alter database ${s.name} reset log_min_duration_statement`);
      expect(await one(s.appUrl, "select array(select setting from app.role_defaults_changed())")).toEqual(["log_min_duration_statement"]);

      // Statements logged without parameters carry no proof.
      await runSql(su, `alter role app_user in database ${s.name} set log_parameter_max_length = 0`);
      const without = await verifyLogging(s);
      expect(without.output).toContain("statement_logging: ok");
      expect(without.code).toBe(0);
      await runSql(su, `alter database ${s.name} reset log_min_duration_statement`);
      const defaults = await verifyRoleDefaults(s);
      expect(defaults.output, "log_parameter_max_length = 0 on app_user is on the allow-list").toContain("role_defaults: ok");
      expect(defaults.code).toBe(0);
    }));

  it("log_statement = 'all' is named; 'mod' is not (proofs travel in a SELECT)", async () =>
    withClone(async (s) => {
      const su = superuserUrlFor(s.name);
      await runSql(su, `alter role app_user in database ${s.name} set log_statement = 'all'`);
      const all = await verifyLogging(s);
      expect(all.output).toContain(`FAIL setting log_statement: is 'all' for app_user (the default of app_user in database ${s.name})`);
      expect(all.code).not.toBe(0);
      await runSql(su, `alter role app_user in database ${s.name} set log_statement = 'mod'`);
      expect((await verifyLogging(s)).code).toBe(0);
      expect((await verifyRoleDefaults(s)).code).toBe(0);
    }));

  it("sampled statements and transactions are named", async () =>
    withClone(async (s) => {
      const su = superuserUrlFor(s.name);
      await runSql(su, `alter role app_user in database ${s.name} set log_min_duration_sample = 0; alter role app_user in database ${s.name} set log_transaction_sample_rate = 0.01`);
      const logging = await verifyLogging(s);
      expect(logging.output).toContain("FAIL setting log_min_duration_sample: is 0 with log_statement_sample_rate 1 for app_user");
      expect(logging.output).toContain(`FAIL setting log_transaction_sample_rate: is 0.01 for app_user (the default of app_user in database ${s.name})`);
      expect(logging.code).not.toBe(0);
    }));

  it("auto_explain for the API role is named (a scratch API role: the library preloaded for it, as a superuser)", async () => {
    const s = await golden.clone();
    await withScratchLogin(s, (role) => `alter role ${role} set session_preload_libraries = 'auto_explain'; alter role ${role} set auto_explain.log_min_duration = 0`, async (role) => {
      const logging = await verifyLogging(s, { app_role: role });
      expect(logging.output).toContain(`FAIL setting auto_explain.log_min_duration: is 0 for ${role} (the default of ${role}), so auto_explain writes the plans of its statements to the server log`);
      expect(logging.output).toContain(`FIX: alter role ${role} reset auto_explain.log_min_duration`);
      expect(logging.code).not.toBe(0);
    });
  });
});

describe("what the allow-list accepts", () => {
  it("backstops within bounds (60 s passes, 61 s does not)", async () =>
    withClone(async (s) => {
      await runSql(s.appUrl, `alter role app_user in database ${s.name} set statement_timeout = '60s'; alter role app_user in database ${s.name} set idle_in_transaction_session_timeout = '5min'`);
      const inBounds = await verifyRoleDefaults(s);
      expect(inBounds.output).toContain("role_defaults: ok");
      expect(inBounds.code).toBe(0);
      await runSql(s.appUrl, `alter role app_user in database ${s.name} set statement_timeout = '61s'`);
      expect((await verifyRoleDefaults(s)).output).toContain(`FAIL role app_user: default statement_timeout = 61s in database ${s.name} (outside the allowed 1000 to 60000 ms)`);
    }));
});
