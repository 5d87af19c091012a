// Scratch databases for tests that break things on purpose: a "golden" copy migrated, with
// policies and demo rows, and throwaway clones of it (CREATE DATABASE ... TEMPLATE), so the
// shared test database is never touched. Also runs the operator scripts the way a person does.
import { execFile } from "node:child_process";
import { randomUUID } from "node:crypto";
import { fileURLToPath } from "node:url";
import postgres from "postgres";
import { afterAll, beforeAll } from "vitest";
import { deploy } from "../server/setup/deploy.ts";
import { provisionDatabase, type DatabaseUrls } from "../server/setup/provision.ts";
import { db, makeCustomers, makeTenant, type Tenant } from "./fixtures.ts";

export const root = fileURLToPath(new URL("..", import.meta.url));

export type Scratch = DatabaseUrls & { name: string; drop: () => Promise<void> };
export type Golden = Scratch & { tenants: Tenant[]; clone: () => Promise<Scratch>; withClone: <T>(fn: (s: Scratch) => Promise<T>) => Promise<T> };

const superuser = () => postgres(db.superuserUrl, { max: 1, onnotice: () => {} });

function urlsFor(name: string, base: DatabaseUrls): DatabaseUrls {
  const swap = (url: string) => {
    const u = new URL(url);
    u.pathname = `/${name}`;
    return u.toString();
  };
  return { ownerUrl: swap(base.ownerUrl), appUrl: swap(base.appUrl), biUrl: swap(base.biUrl) };
}

async function dropDatabase(name: string): Promise<void> {
  const su = superuser();
  try {
    await su.unsafe(`drop database if exists ${name} with (force)`);
  } finally {
    await su.end();
  }
}

/** A migrated database with policies applied and two tenants with three customers each. */
export async function createGolden(prefix = "golden"): Promise<Golden> {
  const name = `${prefix}_${randomUUID().slice(0, 8)}`;
  const urls = await provisionDatabase(db.superuserUrl, name, db.passwords);
  await deploy(urls.ownerUrl, { contextKey: db.contextKey });
  const owner = postgres(urls.ownerUrl, { max: 1, onnotice: () => {} });
  const tenants: Tenant[] = [];
  try {
    for (let i = 0; i < 2; i++) {
      const t = await makeTenant(owner, { prefix: "golden" });
      await makeCustomers(owner, t, 3);
      tenants.push(t);
    }
  } finally {
    await owner.end();
  }
  const golden: Golden = {
    ...urls,
    name,
    tenants,
    drop: () => dropDatabase(name),
    async clone() {
      const copy = `${name}_${randomUUID().slice(0, 6)}`;
      const su = superuser();
      try {
        await su.unsafe(`create database ${copy} template ${name} owner app_owner`);
        await su.unsafe(`revoke all on database ${copy} from public`);
        await su.unsafe(`grant connect on database ${copy} to app_user, app_bi`);
      } finally {
        await su.end();
      }
      return { ...urlsFor(copy, urls), name: copy, drop: () => dropDatabase(copy) };
    },
    /** Runs fn on a fresh clone, dropped afterwards whatever happens. */
    async withClone(fn) {
      const s = await this.clone();
      try {
        return await fn(s);
      } finally {
        await s.drop();
      }
    },
  };
  return golden;
}

/** Runs SQL in a scratch database as the given URL's role. */
export async function runSql(url: string, text: string): Promise<void> {
  const sql = postgres(url, { max: 1, onnotice: () => {} });
  try {
    await sql.unsafe(text);
  } finally {
    await sql.end();
  }
}

/** The superuser URL for a scratch database (for breakages the owner may not make). */
export function superuserUrlFor(name: string): string {
  const u = new URL(db.superuserUrl);
  u.pathname = `/${name}`;
  return u.toString();
}

export type ScriptResult = { code: number; output: string };

/** Runs a script or command from the repository root; output is stdout and stderr together. */
export function run(command: string, args: string[], env: Record<string, string> = {}, input?: string): Promise<ScriptResult> {
  return new Promise((resolve) => {
    const child = execFile(command, args, { cwd: root, env: { ...process.env, ...env }, timeout: 120_000, maxBuffer: 16 << 20 }, (error, stdout, stderr) => {
      const code = error ? (typeof error.code === "number" ? error.code : 1) : 0;
      resolve({ code, output: `${stdout}${stderr}` });
    });
    if (input !== undefined) child.stdin?.end(input);
  });
}

/** psql -v ON_ERROR_STOP=1 -f <file> against url, with extra psql variables. */
export function psqlFile(url: string, file: string, vars: Record<string, string> = {}): Promise<ScriptResult> {
  const args = [url, "-X", "-q", "-v", "ON_ERROR_STOP=1"];
  for (const [k, v] of Object.entries(vars)) args.push("-v", `${k}=${v}`);
  return run("psql", [...args, "-f", file]);
}

/** A golden database for the calling test file: created before its tests, dropped after. */
export function useGolden(prefix: string): Golden {
  const golden = {} as Golden;
  beforeAll(async () => {
    const psql = await run("psql", ["--version"]);
    if (psql.code !== 0) throw new Error("psql not found: the operator scripts need the PostgreSQL 15 client (Debian: apt-get install postgresql-client)");
    Object.assign(golden, await createGolden(prefix));
  });
  afterAll(async () => {
    await golden.drop?.();
  });
  return golden;
}
