// deploy/migrate.sh and deploy/rollback.sh on scratch databases: a snapshot before every
// migration (and no migration when it fails, unless overridden), confirmation before a
// rollback, and a rollback that never leaves a tenant table readable without protection.
import { migrationNames } from "../server/setup/migrate.ts";
import { mkdtemp, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { randomUUID } from "node:crypto";
import postgres from "postgres";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { provisionDatabase } from "../server/setup/provision.ts";
import { db } from "./fixtures.ts";
import { psqlFile, run, runSql, useGolden, type Scratch } from "./scratch.ts";
import { toolMismatch } from "./clientTools.ts";

// Snapshots are pg_dump's and restores pg_restore's: those tests need the server's major or newer.
const noSnapshots = toolMismatch("pg_dump") ?? toolMismatch("pg_restore");
if (noSnapshots) console.warn(`test/deploy-scripts.test.ts: the snapshot tests are skipped: ${noSnapshots}`);
const withSnapshots = it.skipIf(noSnapshots !== undefined);

const golden = useGolden("deploy");
let snapshots: string;

beforeAll(async () => {
  snapshots = await mkdtemp(join(tmpdir(), "rls-shop-snapshots-"));
});

afterAll(async () => {
  await rm(snapshots, { recursive: true, force: true });
});

const withClone = <T>(fn: (s: Scratch) => Promise<T>) => golden.withClone(fn);

async function scalar(url: string, query: string): Promise<unknown> {
  const sql = postgres(url, { max: 1, onnotice: () => {} });
  try {
    const [row] = await sql.unsafe(query);
    return Object.values(row)[0];
  } finally {
    await sql.end();
  }
}

describe("deploy/migrate.sh", () => {
  it("refuses to migrate when the snapshot fails, and migrates with --skip-snapshot", async () => {
    const name = `empty_${randomUUID().slice(0, 8)}`;
    const urls = await provisionDatabase(db.superuserUrl, name, db.passwords);
    try {
      const env = { DATABASE_OWNER_URL: urls.ownerUrl, SNAPSHOT_DIR: "/proc/no-such-dir/snapshots" };
      const refused = await run("deploy/migrate.sh", [], env);
      expect(refused.code).not.toBe(0);
      expect(refused.output).toMatch(/FAIL snapshot failed: nothing was migrated\. FIX: |mkdir/);
      expect(await scalar(urls.ownerUrl, "select to_regclass('public.pgmigrations')::text as t")).toBeNull();

      const forced = await run("deploy/migrate.sh", ["--skip-snapshot"], env);
      expect(forced.output).toContain("WARNING: --skip-snapshot");
      expect(forced.output).toContain("applied: 0001_global-tables");
      expect(forced.code).toBe(0);
    } finally {
      await runSql(db.superuserUrl, `drop database if exists ${name} with (force)`);
    }
  });

  withSnapshots("writes a timestamped pg_dump -Fc snapshot first, then reports migrations at head", async () =>
    withClone(async (s) => {
      const r = await run("deploy/migrate.sh", [], { DATABASE_OWNER_URL: s.ownerUrl, SNAPSHOT_DIR: snapshots });
      expect(r.code).toBe(0);
      expect(r.output).toMatch(/snapshot: ok .*deploy\/rollback\.sh --snapshot .*-\d{8}T\d{6}Z-pre-migrate\.dump/);
      expect(r.output).toContain("migrations at head");
      expect((await readdir(snapshots)).some((f) => f.startsWith(s.name))).toBe(true);
    }));
});

describe("deploy/deploy.sh", () => {
  it("brings a new database to the release (migrations, policies, the context key) and a second run has nothing to do", async () => {
    const name = `fresh_${randomUUID().slice(0, 8)}`;
    const urls = await provisionDatabase(db.superuserUrl, name, db.passwords);
    try {
      const env = { DATABASE_OWNER_URL: urls.ownerUrl, CONTEXT_KEY: db.contextKey };
      const first = await run("deploy/deploy.sh", ["--skip-snapshot"], env);
      expect(first.output).toContain("migrations applied: 0001_global-tables");
      expect(first.output).toMatch(/policies: applied (\d+) of \1 files/);
      expect(first.output).toContain("context key: added");
      expect(first.code).toBe(0);
      const second = await run("deploy/deploy.sh", ["--skip-snapshot"], env);
      expect(second.output).toContain("nothing to deploy: migrations at head");
      expect(second.code).toBe(0);
      // Without CONTEXT_KEY the whole deploy refuses, naming it; --no-context-key leaves the key as it is.
      const keyless = await run("deploy/deploy.sh", ["--skip-snapshot"], { DATABASE_OWNER_URL: urls.ownerUrl, CONTEXT_KEY: "" });
      expect(keyless.output).toContain("set CONTEXT_KEY");
      expect(keyless.code).toBe(1);
      expect((await run("deploy/deploy.sh", ["--skip-snapshot", "--no-context-key"], { DATABASE_OWNER_URL: urls.ownerUrl, CONTEXT_KEY: "" })).code).toBe(0);
    } finally {
      await runSql(db.superuserUrl, `drop database if exists ${name} with (force)`);
    }
  });
});

describe("deploy/rollback.sh", () => {
  it("asks before acting: without a terminal and without --yes it refuses and changes nothing", async () =>
    withClone(async (s) => {
      const r = await run("deploy/rollback.sh", ["--previous-migration"], { DATABASE_OWNER_URL: s.ownerUrl }, "yes\n");
      expect(r.code).toBe(2);
      expect(r.output).toContain(`rollback plan: undo the last migration: ${migrationNames().at(-1)}`);
      expect(r.output).toContain("FIX: rerun with --yes");
      expect(await scalar(s.ownerUrl, "select count(*)::int from public.pgmigrations")).toBe(migrationNames().length);
    }));

  withSnapshots("restores a snapshot in one transaction, re-applies policies and verifies isolation", async () =>
    withClone(async (s) => {
      const env = { DATABASE_OWNER_URL: s.ownerUrl, SNAPSHOT_DIR: snapshots };
      const snap = await run("deploy/migrate.sh", [], env);
      const file = /--snapshot (\S+)/.exec(snap.output)?.[1] ?? "";
      const before = await scalar(s.ownerUrl, "select count(*)::int from app.customers");
      // A bad release: data lost and a table left without RLS.
      await runSql(s.ownerUrl, "delete from app.customers; alter table app.customers disable row level security");

      const r = await run("deploy/rollback.sh", ["--snapshot", file, "--yes"], env);
      expect(r.output).toContain("rollback: done, isolation verified");
      expect(r.code).toBe(0);
      expect(await scalar(s.ownerUrl, "select count(*)::int from app.customers")).toBe(before);
      expect((await psqlFile(s.ownerUrl, "verify/catalog.sql")).code).toBe(0);
    }));

  it("a migration without a Down section is not undone: nothing changes and the FIX names the snapshot path", async () =>
    withClone(async (s) => {
      const r = await run("deploy/rollback.sh", ["--previous-migration", "--yes"], { DATABASE_OWNER_URL: s.ownerUrl });
      expect(r.code).toBe(1);
      expect(r.output).toContain("FAIL the last migration could not be undone; nothing changed. FIX: ");
      expect(await scalar(s.ownerUrl, "select count(*)::int from public.pgmigrations")).toBe(migrationNames().length);
    }));

  withSnapshots("fail-closed: when isolation cannot be verified after a restore, app_user loses access instead of reading unprotected rows", async () =>
    withClone(async (s) => {
      const env = { DATABASE_OWNER_URL: s.ownerUrl, SNAPSHOT_DIR: snapshots };
      // The snapshot holds a table apply-policies cannot protect: no tenant_id, granted to app_user.
      await runSql(s.ownerUrl, "create table app.vehicle_notes (id uuid primary key, body text); grant select on app.vehicle_notes to app_user");
      const snap = await run("deploy/migrate.sh", [], env);
      const file = /--snapshot (\S+)/.exec(snap.output)?.[1] ?? "";

      const r = await run("deploy/rollback.sh", ["--snapshot", file, "--yes"], env);
      expect(r.code).toBe(1);
      expect(r.output).toContain("FAIL app.vehicle_notes: has no tenant_id column");
      expect(r.output).toContain("app_user and app_bi have lost USAGE on schema app");

      const app = postgres(s.appUrl, { max: 1, onnotice: () => {} });
      try {
        for (const table of ["app.customers", "app.vehicle_notes"]) {
          await expect(app.unsafe(`select * from ${table}`), table).rejects.toMatchObject({ code: "42501" });
        }
      } finally {
        await app.end();
      }
    }));
});
