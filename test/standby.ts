// A hot standby of the test server, for the tests that prove reads work on a streaming replica:
// pg_basebackup (Debian's postgresql-client, which .ci/run installs) copies the running cluster
// with a replication connection and writes its standby.signal and primary_conninfo (-R); the
// embedded `postgres` binary then serves it read-only on a port of its own. Where pg_basebackup
// is missing the tests say how to install it and skip, except with REQUIRE_PG_BASEBACKUP=1
// (.ci/run), where a missing tool fails them. The standby can be driven as a test needs: replay
// paused and resumed (as the superuser, on the standby), waited for until it replayed a position,
// frozen (SIGSTOP: a server that accepts nothing and answers nothing) and killed (SIGKILL of all
// its processes, as a lost machine).
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { chmod, chown, mkdtemp, rm } from "node:fs/promises";
import { tmpdir, userInfo } from "node:os";
import { join } from "node:path";
import { nativeDir } from "../server/setup/embedded.ts";
import postgres from "postgres";
import { freePort } from "./testDatabase.ts";

export type Standby = {
  port: number;
  /** `primaryUrl` (any role's) pointed at the standby. */
  url: (primaryUrl: string) => string;
  pauseReplay: () => Promise<void>;
  resumeReplay: () => Promise<void>;
  /** Resolves once the standby has replayed the primary's WAL up to `lsn` (pg_lsn text), polling its state. */
  replayed: (lsn: string, timeoutMs?: number) => Promise<void>;
  /** Resolves once it has replayed all the primary (behind `superuserUrl`) has written so far. */
  caughtUp: (timeoutMs?: number) => Promise<void>;
  /** SIGSTOP / SIGCONT to every process of the server. */
  freeze: () => void;
  thaw: () => void;
  /** SIGKILL to every process of the server; resolves once the postmaster is gone. */
  kill: () => Promise<void>;
  stop: () => Promise<void>;
};

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

/** The processes whose parent is `pid` (Linux /proc). */
function childrenOf(pid: number): number[] {
  const out: number[] = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    let stat: string;
    try {
      stat = readFileSync(`/proc/${entry}/stat`, "utf8");
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === "ENOENT") continue; // exited since the directory was listed
      throw error;
    }
    // pid (comm) state ppid ...: comm may hold spaces and parentheses, so read after the last ')'.
    if (Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]) === pid) out.push(Number(entry));
  }
  return out;
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
  const alive = () => child.exitCode === null && child.signalCode === null;
  // The postmaster and every process it forked (backends, startup, walreceiver): each child calls
  // setsid(), so a process-group signal would reach the postmaster alone.
  const group = (signal: NodeJS.Signals) => {
    if (!alive()) return;
    for (const pid of [child.pid!, ...childrenOf(child.pid!)]) {
      try {
        process.kill(pid, signal);
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== "ESRCH") throw error; // a backend that exited meanwhile
      }
    }
  };
  const stopOnExit = () => {
    group("SIGCONT");
    group("SIGKILL");
  };
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
  const url = (primaryUrl: string) => {
    const u = new URL(primaryUrl);
    u.port = String(port);
    return u.toString();
  };
  // The superuser's connection to the standby, opened when first needed: replay control and its state.
  let control: postgres.Sql | undefined;
  const onStandby = () => (control ??= postgres(url(superuserUrl), { max: 1, onnotice: () => {} }));
  const replayed = async (lsn: string, timeoutMs = 30_000) => {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const [r] = await onStandby()`select pg_last_wal_replay_lsn() >= ${lsn}::pg_lsn as done, pg_last_wal_replay_lsn()::text as at`;
      if (r.done) return;
      if (Date.now() > deadline) throw new Error(`the standby replayed up to ${r.at}, not ${lsn}, within ${timeoutMs} ms`);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  };
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  return {
    port,
    url,
    pauseReplay: async () => void (await onStandby()`select pg_wal_replay_pause()`),
    resumeReplay: async () => void (await onStandby()`select pg_wal_replay_resume()`),
    replayed,
    caughtUp: async (timeoutMs) => {
      const primary = postgres(superuserUrl, { max: 1, onnotice: () => {} });
      const [{ lsn }] = await primary`select pg_current_wal_insert_lsn()::text as lsn`.finally(() => primary.end({ timeout: 5 }));
      await replayed(lsn, timeoutMs);
    },
    freeze: () => group("SIGSTOP"),
    thaw: () => group("SIGCONT"),
    kill: async () => {
      await control?.end({ timeout: 0 });
      control = undefined;
      group("SIGKILL");
      await exited;
    },
    stop: async () => {
      process.off("exit", stopOnExit);
      await control?.end({ timeout: 1 });
      if (alive()) {
        group("SIGCONT");
        child.kill("SIGINT");
        await exited;
      }
      await rm(root, { recursive: true, force: true });
    },
  };
}
