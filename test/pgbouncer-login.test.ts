// npm start's embedded database behind PgBouncer, set up as runbooks/pgbouncer.md says (app_user's
// SCRAM secret from pg_authid in PgBouncer's auth_file): a CLI call between two PgBouncer logins
// leaves app_user's stored secret as it was, so PgBouncer still logs in after a restart. The CLI
// sets up the embedded database at every call (as npm start does), and used to set the password
// again with a new salt: every new server login of PgBouncer then failed.
import { execFile } from "node:child_process";
import { readFileSync } from "node:fs";
import { chmod, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import postgres from "postgres";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadConfig } from "../server/core/config.ts";
import { openDatabase, type Database } from "../server/setup/localDatabase.ts";
import { deploy } from "../server/setup/deploy.ts";
import { skipWithoutPgbouncer, startPgbouncer, type Bouncer } from "./pgbouncer.ts";
import { root } from "./scratch.ts";
import { freePort } from "./testDatabase.ts";

let dataDir: string;
let env: Record<string, string>;
let database: Database | undefined;
let bouncer: Bouncer | undefined;

/** app_user's stored secret, read as the embedded server's superuser. */
async function storedSecret(): Promise<string> {
  const superuser = JSON.parse(readFileSync(join(dataDir, "secrets.json"), "utf8")).superuser as string;
  const sql = postgres(`postgres://postgres:${encodeURIComponent(superuser)}@127.0.0.1:${env.EMBEDDED_PG_PORT}/postgres`, { max: 1, onnotice: () => {} });
  try {
    const [{ rolpassword }] = await sql`select rolpassword from pg_authid where rolname = 'app_user'`;
    return rolpassword as string;
  } finally {
    await sql.end();
  }
}

/** One login through PgBouncer as app_user, with the password npm start uses. */
async function loginThroughBouncer(): Promise<string> {
  const sql = postgres(bouncer!.url.replace(/\/\/[^@]+@/, `//app_user:${encodeURIComponent(database!.secrets!.app)}@`), { max: 1, prepare: false, onnotice: () => {} });
  try {
    const [{ who }] = await sql`select current_user as who`;
    return who as string;
  } finally {
    await sql.end({ timeout: 1 });
  }
}

describe.skipIf(skipWithoutPgbouncer("test/pgbouncer-login.test.ts"))("the embedded database behind PgBouncer, SCRAM secret in its auth_file", () => {
  beforeAll(async () => {
    dataDir = await mkdtemp(join(tmpdir(), "rls-shop-scram-"));
    await chmod(dataDir, 0o755);
    env = { DATA_DIR: dataDir, EMBEDDED_PG_PORT: String(await freePort()), DATABASE_URL: "", DATABASE_OWNER_URL: "", JWT_SECRET: "" };
    // The server runs in this process, as npm start's would; the CLI below finds it running.
    database = await openDatabase(loadConfig({ ...env, NODE_ENV: "development" }));
    await deploy(database.ownerUrl!, { only: ["migrations"] });
    const owner = postgres(database.ownerUrl!, { max: 1, onnotice: () => {} });
    await owner`insert into app.users (email) values ('scram@example.test')`;
    await owner.end();
    bouncer = await startPgbouncer(database.appUrl, `"app_user" "${await storedSecret()}"\n`);
  }, 120_000);

  afterAll(async () => {
    await bouncer?.stop();
    await database?.stop();
    if (dataDir) await rm(dataDir, { recursive: true, force: true });
  });

  it("logs in again after `npm run cli -- token` and a PgBouncer restart: the CLI left the secret unchanged", async () => {
    expect(await loginThroughBouncer()).toBe("app_user");
    const before = await storedSecret();
    const cli = await promisify(execFile)(process.execPath, ["--import", "tsx", "server/cli.ts", "token", "--email", "scram@example.test"], {
      cwd: root, env: { ...process.env, ...env, NODE_ENV: "development", LOG_LEVEL: "silent" },
    });
    expect(cli.stdout).toMatch(/^ey[\w-]+\.[\w-]+\.[\w-]+\n$/);
    // A new PgBouncer process holds no server connection: the next login is a new server login.
    await bouncer!.restart();
    expect(await loginThroughBouncer().catch((error: Error) => `${error.message}\n${bouncer!.log()}`)).toBe("app_user");
    expect(await storedSecret()).toBe(before);
  }, 120_000);
});
