// Waiting on state, not on time: poll what a test waits for until it holds, with a deadline that
// only bounds a failure (a busy 2-core machine makes everything slower; a sleep long enough for it
// is a sleep too long everywhere else).
import type { Sql } from "../server/db/connections.ts";

/** Resolves once `holds()` is true, polling every `intervalMs`; rejects after `timeoutMs` naming `what`. */
export async function waitFor(holds: () => boolean | Promise<boolean>, o: { timeoutMs?: number; intervalMs?: number; what: string }): Promise<void> {
  const deadline = performance.now() + (o.timeoutMs ?? 10_000);
  for (;;) {
    if (await holds()) return;
    if (performance.now() > deadline) throw new Error(`timed out after ${o.timeoutMs ?? 10_000} ms waiting for ${o.what}`);
    await new Promise((resolve) => setTimeout(resolve, o.intervalMs ?? 20));
  }
}

/** The backend pid of a connection (reserved, or a client of one connection). */
export async function backendPid(sql: Sql): Promise<number> {
  const [{ pid }] = await sql`select pg_backend_pid() as pid`;
  return pid as number;
}

/** Resolves once backend `pid` waits for a lock (pg_stat_activity, read through `observer`). */
export function waitForLockWait(observer: Sql, pid: number, what = `backend ${pid} to wait for a lock`): Promise<void> {
  return waitFor(async () => (await observer`select 1 from pg_stat_activity where pid = ${pid} and wait_event_type = 'Lock'`).length > 0, { what });
}
