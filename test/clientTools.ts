// Debian's PostgreSQL client tools are 15 (bookworm): psql talks to any newer server, but pg_dump
// and pg_basebackup refuse a server newer than themselves. Tests that need them run where the
// tool is at least the server's major (15 by default; EMBEDDED_PG_MAJOR=18 runs the suite on 18)
// and are skipped elsewhere, saying so. The embedded package ships initdb, pg_ctl and postgres only.
import { execFileSync } from "node:child_process";
import { inject } from "vitest";

/** The major version of a client tool on PATH (e.g. 15 for pg_dump 15.18), or undefined when it is missing. */
export function toolMajor(tool: string): number | undefined {
  try {
    const version = execFileSync(tool, ["--version"], { encoding: "utf8" });
    const major = /\(PostgreSQL\) (\d+)/.exec(version)?.[1];
    return major ? Number(major) : undefined;
  } catch {
    return undefined;
  }
}

/** Why `tool` cannot serve the suite's server, or undefined when it can. */
export function toolMismatch(tool: string): string | undefined {
  const server = inject("db").serverMajor;
  const major = toolMajor(tool);
  if (major === undefined) return `${tool} is not installed (Debian: apt-get install postgresql-client)`;
  if (major < server) return `${tool} ${major} refuses a PostgreSQL ${server} server (a client tool must be the server's major or newer): install the PostgreSQL ${server} client to run these`;
  return undefined;
}
