// CPU time from /proc (Linux): a process tree's (the API, its cluster workers) and the
// PostgreSQL backends of one pool, found by application_name. Read before and after a phase;
// the difference over the phase's requests is CPU µs per request. Elsewhere: undefined.
import { execFileSync } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import type postgres from "postgres";

const ticksPerSecond = (() => {
  try {
    return Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim()) || 100;
  } catch {
    return 100;
  }
})();

/** utime + stime of one process in µs, and its parent pid; undefined when it is gone or there is no /proc. */
function stat(pid: number): { cpu: number; ppid: number } | undefined {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, "utf8");
    // The command name (field 2) may hold spaces: the fields after it start past the last ')'.
    const f = text.slice(text.lastIndexOf(")") + 2).split(" ");
    return { ppid: Number(f[1]), cpu: ((Number(f[11]) + Number(f[12])) * 1e6) / ticksPerSecond };
  } catch {
    return undefined;
  }
}

/** CPU µs of `pid` and all its descendants. */
export function treeCpu(pid: number): number | undefined {
  const own = stat(pid);
  if (!own) return undefined;
  let total = own.cpu;
  const all = readdirSync("/proc").filter((d) => /^\d+$/.test(d)).map(Number);
  const children = new Map<number, number[]>();
  for (const p of all) {
    const s = stat(p);
    if (s) children.set(s.ppid, [...(children.get(s.ppid) ?? []), p]);
  }
  const stack = [...(children.get(pid) ?? [])];
  while (stack.length) {
    const p = stack.pop()!;
    total += stat(p)?.cpu ?? 0;
    stack.push(...(children.get(p) ?? []));
  }
  return total;
}

/** CPU µs per backend pid of the connections named `applicationName` (the server must be on this machine). */
export async function backendCpu(owner: postgres.Sql, applicationName: string): Promise<Map<number, number> | undefined> {
  const rows = await owner`select pid from pg_catalog.pg_stat_activity where application_name = ${applicationName}`;
  const cpu = new Map<number, number>();
  for (const { pid } of rows) {
    const s = stat(pid as number);
    if (s) cpu.set(pid as number, s.cpu);
  }
  return rows.length > 0 && cpu.size === 0 ? undefined : cpu;
}

/** A CPU meter over one phase: Node (process tree) and PostgreSQL (the pool's backends). */
export async function cpuMeter(owner: postgres.Sql, pid: number, applicationName: string) {
  const node0 = treeCpu(pid);
  const pg0 = await backendCpu(owner, applicationName);
  return async (requests: number) => {
    const node1 = treeCpu(pid);
    const pg1 = await backendCpu(owner, applicationName);
    let pg: number | undefined;
    if (pg0 && pg1) {
      pg = 0;
      // A backend that connected during the phase started from 0.
      for (const [p, c] of pg1) pg += c - (pg0.get(p) ?? 0);
    }
    const per = (v: number | undefined) => (v === undefined || requests === 0 ? NaN : v / requests);
    return { node_cpu_us: per(node0 === undefined || node1 === undefined ? undefined : node1 - node0), pg_cpu_us: per(pg) };
  };
}
