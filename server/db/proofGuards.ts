// Replay guards for the proofs a leased connection sends (policies/proofs.sql says what each
// guard proves). The state lives with the connection's client, because a guard is the
// connection's: its stream (registered once, kept across reconnects: a stream is a sequence in
// the database, not a backend) and, for connection-bound reads, the session the backend bound
// and how many proofs it has used since.
import type { Sql } from "postgres";
import { defaultExpiry, streamProof } from "./contextProof.ts";
import { logger } from "../core/log.ts";

/** How reads are guarded against replay: bound to the connection, a recorded nonce (stream), or a short expiry. */
export type ReadGuard = "connection" | "nonce" | "expiry";

export type ProofState = {
  stream?: { id: number; last: number };
  session?: { id: string; n: number; generation: number };
};

/** A proof's guard and the expiry it must be signed with; `settled` is told how the opener ended. */
export type Guard = { guard: string; expiresAt: number; settled: (spent: boolean) => void };

const noop = () => {};

/** A stream guard: registers the connection's stream on first use (one round trip), then each expiry above the last. */
export async function streamGuard(sql: Sql, state: ProofState): Promise<Guard> {
  if (!state.stream) {
    const p = streamProof();
    const [row] = await sql`select app.open_context_stream(${p.expiresAt}::int8, ${p.nonce}, ${p.proof}) as id`;
    state.stream = { id: Number(row.id), last: 0 };
  }
  const stream = state.stream;
  stream.last = Math.max(defaultExpiry(), stream.last + 1);
  return { guard: `s:${stream.id}`, expiresAt: stream.last, settled: noop };
}

/**
 * A connection-bound read guard: binds the backend on first use and after any reconnect or
 * doubt (one round trip), then names the next proof of its chain. `generation` changes whenever
 * the client's connection closed (a new backend has no session).
 */
export async function sessionGuard(sql: Sql, state: ProofState, generation: number): Promise<Guard> {
  if (!state.session || state.session.generation !== generation) {
    const [row] = await sql`select app.bind_session() as id`;
    state.session = { id: row.id as string, n: 0, generation };
  }
  const session = state.session;
  const n = session.n + 1;
  return {
    guard: `c:${session.id}:${n}`,
    expiresAt: defaultExpiry(),
    // The chain moved on once the opener passed the guard; after anything else (a refused
    // guard, a timeout, a lost connection) the next read binds again rather than guess.
    settled: (spent) => {
      if (spent && state.session === session) session.n = n;
      else if (state.session === session) state.session = undefined;
    },
  };
}

/** An expiry-only read guard: the proof lives `ttlSeconds` (at most 30, which the database enforces). */
export function expiryGuard(ttlSeconds: number): Guard {
  return { guard: "e", expiresAt: Date.now() + ttlSeconds * 1000, settled: noop };
}

/** The guard a proof for a read or a write takes on this connection. */
export function guardFor(writes: boolean, readGuard: ReadGuard, readTtlSeconds: number, sql: Sql, state: ProofState, generation: number): Promise<Guard> | Guard {
  if (writes || readGuard === "nonce") return streamGuard(sql, state);
  if (readGuard === "expiry") return expiryGuard(readTtlSeconds);
  return sessionGuard(sql, state, generation);
}

/** SQLSTATEs the tenant opener raises after it used the guard: the proof is spent. */
const SPENT = new Set(["TN404", "TN403", "TN400", "SS403"]);

/** Whether an opener's outcome means its guard was used (success, or a refusal after the guard). */
export function guardSpent(outcome: PromiseSettledResult<unknown>): boolean {
  return outcome.status === "fulfilled" || SPENT.has((outcome.reason as { code?: string })?.code ?? "");
}

let warnedPooler = false;

/** A refusal that registering a stream or binding the session again may cure (one retry). */
export function staleGuard(error: unknown, state: ProofState): boolean {
  const e = error as { code?: string; constraint_name?: string };
  if (e?.code !== "TN401") return false;
  if (e.constraint_name === "context_stream") {
    state.stream = undefined;
    return true;
  }
  if (e.constraint_name === "context_session") {
    // A session refused right after it was bound ran on another backend than the one that bound
    // it: a pooler in transaction mode sits between. Said once; the reads still fail closed.
    if (state.session?.n === 0 && !warnedPooler) {
      warnedPooler = true;
      logger.warn("read proofs bound to their connection were refused by another backend: behind PgBouncer in transaction mode set CONTEXT_READ_GUARD=nonce or expiry (runbooks/pgbouncer.md)");
    }
    state.session = undefined;
    return true;
  }
  return false;
}
