// A real PgBouncer for tests (not an npm package: Debian's `pgbouncer`; .ci/run installs it and
// sets REQUIRE_PGBOUNCER=1). Transaction mode, SCRAM, the settings runbooks/pgbouncer.md explains
// and nothing else changed from the defaults. It refuses to run as root: then it runs as the
// `postgres` system user (the embedded server's).
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { existsSync } from "node:fs";
import { chmod, chown, mkdtemp, rm, writeFile } from "node:fs/promises";
import { connect } from "node:net";
import { tmpdir, userInfo } from "node:os";
import { delimiter, join } from "node:path";
import { freePort } from "./testDatabase.ts";

export const pgbouncer = [...(process.env.PATH ?? "").split(delimiter), "/usr/sbin", "/usr/local/sbin"]
  .map((dir) => join(dir, "pgbouncer"))
  .find((path) => existsSync(path));
// .ci/run sets REQUIRE_PGBOUNCER=1 where it can install PgBouncer: there a missing one fails
// the files that need it instead of skipping them, so CI never passes without having run them.
export const pgbouncerRequired = process.env.REQUIRE_PGBOUNCER === "1";

/** Whether a file that needs PgBouncer is skipped here (and says so, with how to install it). */
export function skipWithoutPgbouncer(file: string): boolean {
  if (pgbouncer || pgbouncerRequired) return false;
  console.warn(`${file} skipped: pgbouncer is not installed. Install it with \`apt-get install -y pgbouncer\` ` +
    `(Debian/Ubuntu; .ci/run does this) or \`brew install pgbouncer\`, then run \`npx vitest run ${file}\`.`);
  return true;
}

function runAs(): { uid: number; gid: number } | undefined {
  if (userInfo().uid !== 0) return undefined;
  const id = (flag: string) => Number(execFileSync("id", [flag, "postgres"], { encoding: "utf8" }).trim());
  return { uid: id("-u"), gid: id("-g") };
}

async function listening(port: number, ms: number): Promise<void> {
  const until = performance.now() + ms;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const socket = connect(port, "127.0.0.1", () => (socket.end(), resolve(true)));
      socket.on("error", () => resolve(false));
    });
    if (ok) return;
    if (performance.now() > until) throw new Error(`pgbouncer did not listen on ${port} within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

export type Bouncer = {
  /** `serverUrl` with PgBouncer's port in place of the server's. */
  url: string;
  /** Stops it and starts it again on the same port and files: every server login happens anew. */
  restart: () => Promise<void>;
  stop: () => Promise<void>;
  log: () => string;
};

/** PgBouncer in front of `serverUrl`'s database, with `userlist` as its auth_file (`"user" "password or SCRAM secret"` lines). */
export async function startPgbouncer(serverUrl: string, userlist: string): Promise<Bouncer> {
  if (!pgbouncer) throw new Error("REQUIRE_PGBOUNCER=1 but pgbouncer is not installed (apt-get install -y pgbouncer)");
  const server = new URL(serverUrl);
  const database = server.pathname.slice(1);
  const port = await freePort();
  const dir = await mkdtemp(join(tmpdir(), "rls-shop-pgbouncer-"));
  await chmod(dir, 0o755);
  const ids = runAs();
  const ini = join(dir, "pgbouncer.ini");
  const auth = join(dir, "userlist.txt");
  await writeFile(ini, [
    "[databases]",
    `${database} = host=${server.hostname} port=${server.port} dbname=${database}`,
    "[pgbouncer]",
    "listen_addr = 127.0.0.1",
    `listen_port = ${port}`,
    "unix_socket_dir =",
    "auth_type = scram-sha-256",
    `auth_file = ${auth}`,
    "pool_mode = transaction",
    "max_client_conn = 200",
    "default_pool_size = 8",
    "",
  ].join("\n"));
  await writeFile(auth, userlist, { mode: 0o600 });
  if (ids) for (const f of [dir, ini, auth]) await chown(f, ids.uid, ids.gid);
  let child: ChildProcess;
  let log = "";
  const launch = async () => {
    child = spawn(pgbouncer!, [ini], { ...ids, stdio: ["ignore", "ignore", "pipe"] });
    child.stderr!.on("data", (c) => (log += c));
    await listening(port, 10_000).catch((error) => {
      throw new Error(`${(error as Error).message}\n${log}`);
    });
  };
  const halt = async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((resolve) => child.once("exit", resolve));
    child.kill("SIGTERM");
    await exited;
  };
  await launch();
  const url = new URL(serverUrl);
  url.port = String(port);
  return {
    url: url.toString(),
    restart: async () => (await halt(), await launch()),
    stop: async () => (await halt(), await rm(dir, { recursive: true, force: true })),
    log: () => log,
  };
}
