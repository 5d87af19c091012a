// The one deploy (server/setup/deploy.ts), on scratch databases: what is applied is skipped and a
// deploy that changes nothing takes no lock; a changed policy file is applied with those after it;
// concurrent deploys wait their turn; traffic never waits behind a deploy for longer than its
// lock_timeout (a long reader open, reads keep being answered); an edited applied migration stops
// it, naming the file; and a database built from the first release and upgraded equals a fresh one.
import { cp, mkdtemp, readFile, rm, writeFile, appendFile } from "node:fs/promises";
import { randomUUID } from "node:crypto";
import { tmpdir } from "node:os";
import { join } from "node:path";
import postgres from "postgres";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { contextKeyId } from "../server/db/contextProof.ts";
import { deploy, type DeployReport } from "../server/setup/deploy.ts";
import { migrationFiles, migrationNames, migrationsDir, runMigrations } from "../server/setup/migrate.ts";
import { applyPolicyFiles, policiesDir, policyFiles, policyInputs } from "../server/setup/policies.ts";
import { provisionDatabase } from "../server/setup/provision.ts";
import { catalogDifferences, catalogSnapshot } from "./catalogSnapshot.ts";
import { db, makeCustomers, makeTenant } from "./fixtures.ts";
import { createGolden, root, runSql, type Golden } from "./scratch.ts";
import { waitFor } from "./waits.ts";

let golden: Golden;
let work: string;

beforeAll(async () => {
  golden = await createGolden("deploy");
  work = await mkdtemp(join(tmpdir(), "rls-shop-deploy-"));
});

afterAll(async () => {
  await golden?.drop();
  await rm(work, { recursive: true, force: true });
});

const connect = (url: string) => postgres(url, { max: 1, onnotice: () => {} });

async function scalar<T>(url: string, query: string): Promise<T> {
  const sql = connect(url);
  try {
    return Object.values((await sql.unsafe(query))[0])[0] as T;
  } finally {
    await sql.end();
  }
}

/** A copy of policies/ (or sql/) to change, in a folder of its own. */
async function copyOf(dir: string): Promise<string> {
  const copy = join(work, randomUUID());
  await cp(dir, copy, { recursive: true });
  return copy;
}

describe("what is applied is skipped", () => {
  it("a deploy that changes nothing takes no lock: it finishes while a tenant table and the deploy lock are held by others", async () =>
    golden.withClone(async (s) => {
      const holder = connect(s.ownerUrl);
      const held = await holder.reserve();
      try {
        await held`begin`;
        await held`lock table app.customers in access exclusive mode`;
        await held`select pg_advisory_lock(hashtextextended('rls-service-shop:deploy', 0))`;
        const started = performance.now();
        const report = await deploy(s.ownerUrl, { contextKey: db.contextKey, lockTimeoutMs: 200, retryForMs: 1000 });
        expect(report).toMatchObject({ unchanged: true, migrations: { applied: [] }, policies: { applied: [] }, contextKey: "unchanged" });
        expect(performance.now() - started).toBeLessThan(5000);
      } finally {
        await held`rollback`;
        held.release();
        await holder.end();
      }
    }));

  it("a changed policy file is applied with the files after it, and only then; a second deploy applies nothing", async () =>
    golden.withClone(async (s) => {
      const dir = await copyOf(policiesDir);
      const files = policyFiles(dir);
      await appendFile(join(dir, "audit.sql"), "\n-- a comment changes the file's hash\n");
      const last = await deploy(s.ownerUrl, { policiesDir: dir });
      expect(last.policies.applied).toEqual(["audit.sql"]);
      expect(files.at(-1)).toBe("audit.sql");

      await appendFile(join(dir, "invoices.sql"), "\n-- changed\n");
      const middle = await deploy(s.ownerUrl, { policiesDir: dir });
      expect(middle.policies.applied).toEqual(files.slice(files.indexOf("invoices.sql")));
      expect(middle.policies.changes).toEqual([]);
      expect((await deploy(s.ownerUrl, { policiesDir: dir })).unchanged).toBe(true);
    }));
});

describe("one deploy at a time", () => {
  it("three deploys started at once all succeed: the first applies, the others wait for its lock and find nothing left to do", async () =>
    golden.withClone(async (s) => {
      await runSql(s.ownerUrl, "delete from public.policy_files");
      const logs: string[][] = [[], [], []];
      const reports = await Promise.all(logs.map((lines) => deploy(s.ownerUrl, { log: (l) => lines.push(l) })));
      const applied = reports.map((r: DeployReport) => r.policies.applied.length).sort();
      expect(applied).toEqual([0, 0, policyFiles().length]);
      expect(logs.flat().filter((l) => /another deploy holds the deploy lock/.test(l)).length).toBeGreaterThanOrEqual(1);
    }));
});

describe("traffic never waits behind a deploy longer than its lock_timeout", () => {
  it("with a reader holding app.audit_log open, the deploy times out, rolls back and retries, and reads and writes keep being answered within the timeout", async () =>
    golden.withClone(async (s) => {
      const lockTimeoutMs = 2000;
      const holder = connect(s.ownerUrl);
      const reader = await holder.reserve();
      const probe = postgres(s.ownerUrl, { max: 4, onnotice: () => {} });
      const lines: string[] = [];
      const waits: { table: string; ms: number }[] = [];
      let deploying: Promise<DeployReport> | undefined;
      let stop = false;
      try {
        await reader`begin`;
        await reader`select count(*) from app.audit_log`;
        deploying = deploy(s.ownerUrl, { only: ["policies"], reapplyPolicies: true, lockTimeoutMs, log: (l) => lines.push(l) });
        // Readers of the held table, of a table the deploy locks before it, and of one after.
        const readers = ["app.audit_log", "app.appointments", "app.customers"].map(async (table) => {
          while (!stop) {
            const started = performance.now();
            await probe.unsafe(`select count(*) from ${table}`);
            waits.push({ table, ms: performance.now() - started });
            await new Promise((r) => setTimeout(r, 20));
          }
        });
        // A writer too: the deploy's triggers (rbac.sql, audit.sql) block writes from their creation to its commit or rollback.
        const tenant = golden.tenants[0].id;
        readers.push((async () => {
          while (!stop) {
            const started = performance.now();
            await probe`insert into app.customers (tenant_id, name) values (${tenant}, 'written during a deploy')`;
            waits.push({ table: "insert app.customers", ms: performance.now() - started });
            await new Promise((r) => setTimeout(r, 20));
          }
        })());
        // The long reader stays until the deploy has given up twice (or, without a lock_timeout, 8 s).
        await waitFor(() => lines.filter((l) => /rolled back, retrying/.test(l)).length >= 2, { timeoutMs: 8000, what: "two lock timeouts of the deploy" }).catch(() => undefined);
        await reader`commit`;
        const report = await deploying;
        stop = true;
        await Promise.all(readers);
        expect(report.retries).toBeGreaterThanOrEqual(2);
        expect(report.policies.applied.length).toBe(policyFiles().length);
        const slowest = Math.max(...waits.map((w) => w.ms));
        const slowestWrite = Math.max(...waits.filter((w) => w.table.startsWith("insert")).map((w) => w.ms));
        console.log(`deploy behind a long reader: ${report.retries} lock timeouts retried; ${waits.length} statements, slowest ${Math.round(slowest)} ms, ` +
          `slowest write ${Math.round(slowestWrite)} ms (lock_timeout ${lockTimeoutMs} ms)`);
        expect(new Set(waits.map((w) => w.table)).size).toBe(4);
        // lock_timeout plus a margin for a busy 2-core machine; without the timeout, reads wait for the long reader (8 s).
        expect(slowest).toBeLessThan(lockTimeoutMs + 2000);
      } finally {
        stop = true;
        await reader`rollback`.catch(() => undefined);
        reader.release();
        await deploying?.catch(() => undefined);
        await Promise.all([holder.end(), probe.end()]);
      }
    }));
});

describe("what a deploy locks", () => {
  // Every request's opener reads app.tenants first: an ACCESS EXCLUSIVE lock on it held by a
  // deploy stops every tenant's requests, and writers of a tenant table (whose foreign key reads
  // it) deadlocked with the deploy. Triggers are replaced (CREATE OR REPLACE TRIGGER: SHARE ROW
  // EXCLUSIVE), not dropped and created (ACCESS EXCLUSIVE).
  it("re-applying every policy file locks app.tenants against writes only, never against its readers", async () =>
    golden.withClone(async (s) => {
      const sql = connect(s.ownerUrl);
      try {
        const modes = await sql.begin(async (tx) => {
          await applyPolicyFiles(tx as unknown as postgres.Sql, policyInputs(migrationFiles()));
          return (await tx`select mode from pg_locks where pid = pg_backend_pid() and relation = 'app.tenants'::regclass order by mode`).map((r) => r.mode as string);
        });
        expect(modes).toContain("ShareRowExclusiveLock");
        expect(modes).not.toContain("AccessExclusiveLock");
      } finally {
        await sql.end();
      }
    }));
});

describe("applied migrations are immutable", () => {
  it("a deploy whose sql/ differs from what the database ran stops before anything runs, naming the file and the fix", async () =>
    golden.withClone(async (s) => {
      const dir = await copyOf(migrationsDir);
      const edited = join(dir, "0003_customers.sql");
      await writeFile(edited, (await readFile(edited, "utf8")).replace("-- Up Migration", "-- Up Migration\n-- an edit after the fact"));
      await writeFile(join(dir, "9999_pending.sql"), "-- Up Migration\ncreate table app.never_created (id int);\n");
      const deploys = await scalar<number>(s.ownerUrl, "select count(*)::int from public.policy_deploys");
      const error = await deploy(s.ownerUrl, { migrationsDir: dir }).then(() => undefined, (e: Error) => e);
      expect(error?.message).toMatch(/applied migrations were edited; nothing was deployed:\n {2}\S*0003_customers\.sql: ran with sha256 [0-9a-f]{12}…, the file now has [0-9a-f]{12}…/);
      expect(error?.message).toContain("FIX: applied migrations are immutable");
      expect(await scalar<string | null>(s.ownerUrl, "select to_regclass('app.never_created')::text")).toBeNull();
      expect(await scalar<number>(s.ownerUrl, "select count(*)::int from public.policy_deploys")).toBe(deploys);
    }));

  // The first release whose migrations upgrade in order to head (its sql/ and policies/ kept in
  // test/data): 92c60b3, the merge of issue 17. The commit before it that first had this layout,
  // 2317ad0, lacks sql/0310, which sorts before its 0401: node-pg-migrate's order check refuses to
  // run 0310 after 0401, so no database of that commit upgrades. 92c60b3's 0401 was edited after
  // it (2a7968f): the upgrade records the checksums of migrations applied before checksums were
  // kept as the files are now (baseline).
  it("a database built from the first release and deployed to head equals a fresh database, catalog for catalog", async () => {
    const release = join(root, "test", "data", "release-92c60b3");
    const names = [`upgraded_${randomUUID().slice(0, 8)}`, `fresh_${randomUUID().slice(0, 8)}`];
    const [upgraded, fresh] = await Promise.all(names.map((name) => provisionDatabase(db.superuserUrl, name, db.passwords)));
    try {
      await runMigrations(upgraded.ownerUrl, { dir: join(release, "sql"), lockTimeoutMs: 10_000 });
      const old = connect(upgraded.ownerUrl);
      try {
        await old.begin((tx) => applyPolicyFiles(tx as unknown as postgres.Sql, policyInputs([], join(release, "policies"))));
        await old`select app.install_context_key(decode(${db.contextKey}, 'hex'))`;
        const shop = await makeTenant(old, { prefix: "upgrade", plan: "basic" }); // the first release has no plans to put it on
        await makeCustomers(old, shop, 3);
      } finally {
        await old.end();
      }
      const report = await deploy(upgraded.ownerUrl, { contextKey: db.contextKey });
      // Every migration newer than the release, and only those, in order.
      expect(report.migrations.applied).toEqual(migrationNames().filter((name) => !migrationNames(join(release, "sql")).includes(name)));
      expect(report.migrations.applied).toContain("0402_context-nonces-lean");
      expect(report.migrations.baseline).toHaveLength(12);
      await deploy(fresh.ownerUrl, { contextKey: db.contextKey });

      const differences = catalogDifferences(await catalogSnapshot(upgraded.ownerUrl), await catalogSnapshot(fresh.ownerUrl));
      expect(differences, "- only in the upgraded database, + only in the fresh one").toEqual([]);
      expect(await scalar<number>(upgraded.ownerUrl, "select count(*)::int from app.customers")).toBe(3);
      // Both hold the one key as their primary: the old release's single key carried over by
      // sql/0411, the fresh database's first key promoted by the deploy that added it.
      for (const url of [upgraded.ownerUrl, fresh.ownerUrl]) {
        expect(await scalar<string>(url, "select string_agg(key_id || ' ' || is_primary, ',') from app.context_keys")).toBe(`${contextKeyId(db.contextKey)} true`);
      }
    } finally {
      for (const name of names) await runSql(db.superuserUrl, `drop database if exists ${name} with (force)`);
    }
  });
});
