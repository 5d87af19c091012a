// A hot standby of the test server, for the tests that prove reads work on a streaming replica:
// pg_basebackup (Debian's postgresql-client, which .ci/run installs) copies the running cluster
// with a replication connection and writes its standby.signal and primary_conninfo (-R); the
// embedded `postgres` binary then serves it read-only on a port of its own. Where pg_basebackup
// is missing the tests say how to install it and skip, except with REQUIRE_PG_BASEBACKUP=1
// (.ci/run), where a missing tool fails them.
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { existsSync } from "node:fs";
import { chmod, chown, mkdtemp, rm } from "node:fs/promises";
import { tmpdir, userInfo } from "node:os";
import { join } from "node:path";
import { nativeDir } from "../server/setup/embedded.ts";
import postgres from "postgres";
import { freePort } from "./testDatabase.ts";

export type Standby = { port: number; url: (primaryUrl: string) => string; stop: () => Promise<void> };

const candidates = ["/usr/bin/pg_basebackup", "/usr/lib/postgresql/15/bin/pg_basebackup"];

/** The pg_basebackup binary, or undefined when it is not installed. */
export function pgBasebackup(): string | undefined {
  const onPath = (() => {
    try {
      return execFileSync("sh", ["-c", "command -v pg_basebackup"], { encoding: "utf8" }).trim() || undefined;
    } catch {
      return undefined;
    }
  })();
  return onPath ?? candidates.find((c) => existsSync(c));
}

export const standbyRequired = process.env.REQUIRE_PG_BASEBACKUP === "1";
export const standbyMissingMessage = "pg_basebackup is not installed: the hot-standby tests are skipped (apt-get install postgresql-client; .ci/run installs it and requires them)";

function postgresIds(): { uid: number; gid: number } | undefined {
  if (userInfo().uid !== 0) return undefined;
  const id = (flag: string) => Number(execFileSync("id", [flag, "postgres"], { encoding: "utf8" }).trim());
  return { uid: id("-u"), gid: id("-g") };
}

/**
 * Starts a hot standby of the server behind `superuserUrl` (a superuser may open replication
 * connections; initdb's pg_hba.conf allows them from 127.0.0.1). Resolves once it accepts
 * read-only connections.
 */
export async function startStandby(superuserUrl: string): Promise<Standby> {
  const tool = pgBasebackup();
  if (!tool) throw new Error(standbyMissingMessage);
  const primary = new URL(superuserUrl);
  const ids = postgresIds();
  const root = await mkdtemp(join(tmpdir(), "rls-shop-standby-"));
  await chmod(root, 0o755);
  if (ids) await chown(root, ids.uid, ids.gid);
  const dir = join(root, "pg");
  execFileSync(tool, ["-h", primary.hostname, "-p", primary.port, "-U", decodeURIComponent(primary.username), "-D", dir, "-R", "-X", "stream", "-c", "fast"], {
    env: { ...process.env, PGPASSWORD: decodeURIComponent(primary.password) },
    stdio: ["ignore", "ignore", "pipe"],
    ...ids,
  });
  const port = await freePort();
  // A standby refuses to start with fewer connections than its primary allows.
  const su = postgres(superuserUrl, { max: 1, onnotice: () => {} });
  const [{ maxConnections }] = await su`select current_setting('max_connections') as "maxConnections"`.finally(() => su.end({ timeout: 5 }));
  const child: ChildProcess = spawn(join(await nativeDir(), "bin", "postgres"), ["-D", dir, "-p", String(port), "-c", "listen_addresses=127.0.0.1", "-c", "unix_socket_directories=", "-c", "hot_standby=on", "-c", `max_connections=${maxConnections}`], {
    ...ids,
    env: { ...process.env, LC_ALL: "C", LC_MESSAGES: "C" },
    stdio: ["ignore", "ignore", "pipe"],
  });
  const stopOnExit = () => child.kill("SIGINT");
  process.on("exit", stopOnExit);
  await new Promise<void>((resolve, reject) => {
    let output = "";
    const onExit = (code: number | null) => reject(new Error(`the standby did not start (exit ${code}):\n${output.slice(-1500)}`));
    child.once("exit", onExit);
    child.stderr?.on("data", (chunk: Buffer) => {
      output += chunk.toString();
      if (output.includes("ready to accept read-only connections")) {
        child.off("exit", onExit);
        resolve();
      }
    });
  });
  return {
    port,
    url: (primaryUrl: string) => {
      const u = new URL(primaryUrl);
      u.port = String(port);
      return u.toString();
    },
    stop: async () => {
      process.off("exit", stopOnExit);
      if (child.exitCode === null && child.signalCode === null) {
        const exited = new Promise((resolve) => child.once("exit", resolve));
        child.kill("SIGINT");
        await exited;
      }
      await rm(root, { recursive: true, force: true });
    },
  };
}
