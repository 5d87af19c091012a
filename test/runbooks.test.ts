// The runbooks' commands are real: every script they name exists and is exercised by a test,
// and the commands specific to a runbook (onboarding, containment, go-live status with the API,
// the catalog API check) run here exactly as written.
import { accessSync, constants, readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import postgres from "postgres";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createApp } from "../server/app.ts";
import { db, keys, makeTenant, makeUser, ownerSql, startApi, tokenFor, type Api } from "./fixtures.ts";
import { routeInventory } from "../server/http/routeInventory.ts";
import { root, run, useGolden, type Scratch } from "./scratch.ts";

const runbooks = readdirSync(join(root, "runbooks")).filter((f) => f.endsWith(".md"));
const text = (file: string) => readFileSync(join(root, "runbooks", file), "utf8");

/** The fenced shell block of a runbook that contains `needle`, joined into one command. */
function command(file: string, needle: string): string {
  const blocks = [...text(file).matchAll(/```(?:sh)?\n([\s\S]*?)```/g)].map((m) => m[1]);
  const block = blocks.find((b) => b.includes(needle));
  if (!block) throw new Error(`runbooks/${file} has no command with ${needle}`);
  const line = block.replace(/\\\n\s*/g, "").split("\n").find((l) => l.includes(needle));
  return line!.replace(/\s+#.*$/, "").trim();
}

const golden = useGolden("runbook");

const withClone = <T>(fn: (s: Scratch) => Promise<T>) => golden.withClone(fn);

describe("runbooks", () => {
  it("name only scripts that exist, are executable and are exercised by a test", () => {
    const tests = readdirSync(join(root, "test")).filter((f) => f.endsWith(".test.ts")).map((f) => readFileSync(join(root, "test", f), "utf8")).join("\n");
    const named = new Set(runbooks.flatMap((f) => [...text(f).matchAll(/\b((?:deploy|verify)\/[\w.-]+)/g)].map((m) => m[1])));
    expect(named.size).toBeGreaterThan(8);
    for (const path of named) {
      if (!path.endsWith(".sql")) accessSync(join(root, path), constants.X_OK);
      else accessSync(join(root, path), constants.R_OK);
      expect(tests.includes(path), `${path} is named in a runbook but no test runs it`).toBe(true);
    }
  });

  it("tenant onboarding: the command creates the tenant and its owner, and a second run changes nothing", async () =>
    withClone(async (s) => {
      const cmd = command("tenant-onboarding.md", "deploy/onboard-tenant.sql");
      for (let i = 0; i < 2; i++) {
        const r = await run("bash", ["-c", cmd], { DATABASE_OWNER_URL: s.ownerUrl });
        expect(r.code, r.output).toBe(0);
        expect(r.output).toMatch(/acme\s+\|\s+active\s+\|\s+owner@acme\.example\s+\|\s+owner/);
      }
      const sql = postgres(s.ownerUrl, { max: 1, onnotice: () => {} });
      try {
        const [n] = await sql`select count(*)::int as n from app.memberships m join app.tenants t on t.id = m.tenant_id where t.slug = 'acme'`;
        expect(n.n).toBe(1);
      } finally {
        await sql.end();
      }
    }));

  it("added to a shop without asking: the operator's command removes the membership, audited, and refuses a shop's last owner", async () =>
    withClone(async (s) => {
      const onboard = command("tenant-onboarding.md", "deploy/onboard-tenant.sql");
      expect((await run("bash", ["-c", onboard], { DATABASE_OWNER_URL: s.ownerUrl })).code).toBe(0);
      const sql = postgres(s.ownerUrl, { max: 1, onnotice: () => {} });
      try {
        await sql`insert into app.users (email) values ('person@example.test')`;
        await sql`insert into app.memberships (tenant_id, user_id, role)
                  select t.id, u.id, 'staff' from app.tenants t, app.users u where t.slug = 'acme' and u.email = 'person@example.test'`;
        const remove = command("tenant-onboarding.md", "deploy/remove-member.sql");
        const r = await run("bash", ["-c", remove], { DATABASE_OWNER_URL: s.ownerUrl });
        expect(r.code, r.output).toBe(0);
        expect(r.output).toMatch(/acme\s+\|\s+person@example\.test\s+\|\s+removed/);
        const rows = await sql`
          select (select count(*)::int from app.memberships m join app.users u on u.id = m.user_id where u.email = 'person@example.test') as memberships,
                 (select count(*)::int from app.audit_log a join app.users u on a.entity_id = u.id::text where u.email = 'person@example.test' and a.action = 'member.removed') as audited`;
        expect(rows[0]).toEqual({ memberships: 0, audited: 1 });
        const lastOwner = await run("bash", ["-c", remove.replace("person@example.test", "owner@acme.example")], { DATABASE_OWNER_URL: s.ownerUrl });
        expect(lastOwner.code).not.toBe(0);
        expect(lastOwner.output).toMatch(/without an owner/);
      } finally {
        await sql.end();
      }
    }));

  it("leak containment: the revoke cuts app_user off, apply-policies restores it", async () =>
    withClone(async (s) => {
      const revoke = command("incident-cross-tenant-leak.md", "revoke usage on schema app");
      expect((await run("bash", ["-c", revoke], { DATABASE_OWNER_URL: s.ownerUrl })).code).toBe(0);
      const app = postgres(s.appUrl, { max: 1, onnotice: () => {} });
      try {
        await expect(app`select count(*) from app.customers`).rejects.toMatchObject({ code: "42501" });
        const restored = await run("deploy/apply-policies.sh", [], { DATABASE_OWNER_URL: s.ownerUrl });
        expect(restored.output).toMatch(/changed {2}schema app/);
        await expect(app.begin((tx) => tx`select count(*)::int as n from app.customers`)).resolves.toEqual([{ n: 0 }]);
      } finally {
        await app.end();
      }
    }));
});

describe("go-live: flags (runbooks/go-live.md, runbooks/features.md)", () => {
  it("off until verified, on after, and rolled back by flag to exactly where the go-live started, with the commands as written", async () =>
    withClone(async (s) => {
      // The go-live environment (runbooks/go-live.md exports both URLs).
      const env = { DATABASE_OWNER_URL: s.ownerUrl, DATABASE_URL: s.appUrl };
      const sql = postgres(s.ownerUrl, { max: 1, onnotice: () => {} });
      const state = async () => (await sql`
        select (select coalesce(jsonb_agg(k.feature order by k.feature), '[]') from app.feature_kill_switches k) as killed,
               (select coalesce(jsonb_agg(to_jsonb(p) order by p.plan, p.feature), '[]') from app.plan_features p) as grid,
               (select coalesce(jsonb_agg(to_jsonb(o) order by o.tenant_id, o.feature), '[]') from app.feature_overrides o) as overrides`)[0];
      try {
        const before = await state();
        const record = command("go-live.md", "GOLIVE_VERSION=$(");
        const kill = command("go-live.md", "features kill --feature integrations");
        const off = await run("bash", ["-c", `${record} && ${kill} && echo "recorded $GOLIVE_VERSION"`], env);
        expect(off.code, off.output).toBe(0);
        const version = /recorded (\d+)/.exec(off.output)?.[1];
        expect(version).toBeDefined();
        expect(off.output).toMatch(/version \d+: integrations killed for every shop/);
        expect((await state()).killed).toEqual(["integrations"]);
        const on = await run("bash", ["-c", command("go-live.md", "features revive --feature integrations")], env);
        expect(on.code, on.output).toBe(0);
        expect((await state()).killed).toEqual([]);
        // Later changes of the go-live, then the rollback by flag.
        const later = await run("bash", ["-c", command("features.md", "features kill --feature reports")], env);
        expect(later.code, later.output).toBe(0);
        const back = await run("bash", ["-c", `GOLIVE_VERSION=${version}; ${command("go-live.md", "features rollback --to")}`], env);
        expect(back.code, back.output).toBe(0);
        expect(back.output).toMatch(new RegExp(`version \\d+: entitlements as at version ${version}`));
        expect(await state()).toEqual(before);
        const [v] = await sql`select actor, action, reason, rolled_back_to::int from app.entitlement_versions order by version desc limit 1`;
        expect(v).toEqual({ actor: expect.stringMatching(/^cli:/), action: "rollback", reason: "go-live rolled back by flag", rolled_back_to: Number(version) });
      } finally {
        await sql.end();
      }
    }));
});

describe("features: the commands of runbooks/features.md", () => {
  it("run as written against a shop acme, each change a version the next `show` reflects", async () =>
    withClone(async (s) => {
      const env = { DATABASE_OWNER_URL: s.ownerUrl, DATABASE_URL: s.appUrl };
      const sql = postgres(s.ownerUrl, { max: 1, onnotice: () => {} });
      try {
        await sql`insert into app.tenants (slug, name) values ('acme', 'Acme Motors') on conflict (slug) do nothing`;
        const blocks = [...text("features.md").matchAll(/```sh\n([\s\S]*?)```/g)].map((m) => m[1]).join("\n");
        const lines = blocks.split("\n").map((l) => l.replace(/\s+#.*$/, "").trim()).filter((l) => l.startsWith("npm run -s cli -- features ") && !l.includes(" rollback "));
        expect(lines.length).toBeGreaterThanOrEqual(8);
        const r = await run("bash", ["-c", lines.join(" && ")], env);
        expect(r.code, r.output).toBe(0);
        expect(r.output).toMatch(/version \d+: acme on plan pro/);
        expect(r.output).toMatch(/version \d+: plan basic does not grant reports/);
        expect(r.output).toMatch(/version \d+: bi_access for acme: on until 2031-01-31T00:00:00Z/);
        expect(r.output).toMatch(/version \d+: reports revived/);
        expect(r.output).toMatch(/acme: plan basic\n/);
        const [v] = await sql`select count(*)::int as n from app.entitlement_versions where actor like 'cli:%'`;
        expect(v.n).toBe(6);
      } finally {
        await sql.end();
      }
    }));
});

describe("with the API running", () => {
  let api: Api;
  beforeAll(async () => {
    api = await startApi();
  });
  afterAll(async () => {
    await api.close();
  });

  it("verify/golive-status.sh passes every check, API included", async () => {
    const r = await run("verify/golive-status.sh", [], { DATABASE_URL: db.appUrl, DATABASE_OWNER_URL: db.ownerUrl, JWT_SECRET: db.jwtSecret, API_URL: api.url });
    expect(r.output).toContain("PASS API /readyz 200");
    expect(r.output).toContain("PASS API error shape");
    expect(r.output).toContain("golive-status: all checks passed");
    expect(r.code).toBe(0);
  });

  it("verify/test-catalog-api.sh runs against the API (and says so clearly when the catalog routes are absent)", async () => {
    const owner = ownerSql();
    try {
      const [a, b] = [await makeTenant(owner), await makeTenant(owner)];
      const [ua, ub] = [await makeUser(owner, a), await makeUser(owner, b)];
      // Operations whose name order differs from the documented order (display_order, NULLs last, name).
      const [service] = await owner`insert into app.services (tenant_id, name) values (${a.id}, 'Brakes') returning id`;
      await owner`insert into app.service_operations ${owner(
        [["A last, no order", null], ["B second", 2], ["C first", 1]].map(([name, order], i) => ({
          tenant_id: a.id, service_id: service.id, internal_code: `OP-${i}`, name, display_order: order, price_cents: 1000, duration_minutes: 30,
        })),
      )}`;
      const env = { API_URL: api.url, TOKEN_A: tokenFor(ua), TENANT_A: a.slug, TOKEN_B: tokenFor(ub), TENANT_B: b.slug };
      const r = await run("verify/test-catalog-api.sh", [], env);
      const hasCatalog = routeInventory(createApp({ keys, bodyLimit: "1kb", deployment: { commit_sha: "t", deployed_at: "t" } })).some((x) => x.path === "/api/v1/service-operations");
      if (hasCatalog) {
        expect(r.output).toContain("PASS root is a JSON array (3 operations)");
        expect(r.output).toContain("PASS operations ordered by display_order ascending, NULLs last");
        expect(r.output).toContain("test-catalog-api: all checks passed");
        expect(r.code).toBe(0);
      } else {
        expect(r.output).toContain("FAIL GET /api/v1/service-operations: ROUTE_NOT_FOUND, this API has no service catalog. FIX:");
        expect(r.code).toBe(3);
      }
    } finally {
      await owner.end();
    }
  });
});
