// The one way a route reaches the database. Each call is one transaction on a leased
// connection (server/db.ts): BEGIN, app.open_tenant_context(...) (which also sets the
// transaction's timeouts), the route's queries and COMMIT are written back to back without
// waiting, so postgres.js pipelines them and a prepared request costs one network round trip.
// The context opens only with the API's proof of the request (contextProof.ts), used once under
// the connection's replay guard (proofGuards.ts), for the route's permission alone, read-only
// for a read; it is sealed to this backend and transaction and ends with it, so the pooled
// connection never carries a tenant into the next request (policies/context.sql). The route's
// permission and feature (authorize.ts) are checked by the same context call. withUser and
// withPlatform open the caller's own context and a platform admin's the same way.
//
// With read replicas (replicas.ts), a read transaction runs on the replica `choose()` names, unless
// the route needs the primary (its x-consistency, documented()) or reads write (CONTEXT_READ_GUARD=
// nonce). A read that sends back a write's X-Consistency-Token runs only where that write has been
// replayed: checked in the same pipeline, so the check costs no round trip. A read that fails for
// the replica's sake (its connection, a recovery conflict, a refused proof, behind the token) runs
// again on the primary: a replica never fails a request. A write reads the WAL position its commit
// reached, pipelined after COMMIT, and answers it as the token.
import type postgres from "postgres";
import type { Budget, Lease, Pool, Sql } from "./connections.ts";
import { forbidden } from "../auth/authorize.ts";
import type { Request, RequestHandler } from "express";
import { platformContextProof, tenantContextProof, userContextProof, type TenantContextArgs } from "./contextProof.ts";
import { AppError, databaseUnavailable, isRetryable, overloaded, replicaBehind, toAppError } from "../core/errors.ts";
import { observePool, observeReadTargets } from "../core/metrics.ts";
import { guardFor, guardSpent, staleGuard, streamGuard, type Guard } from "./proofGuards.ts";
import { requestState, type RequestState } from "../core/requestContext.ts";
import type { FailoverReason, Replica, Replicas } from "./replicas.ts";
import { consistencyToken, formatLsn, parseLsn, positionOfToken } from "./walPosition.ts";

type Pending = postgres.PendingQuery<postgres.Row[]>;
type Work = Pending | readonly Pending[] | Promise<unknown>;
type Result<W> = W extends Pending ? Awaited<W> : W extends readonly Pending[] ? { [K in keyof W]: Awaited<W[K]> } : Awaited<W>;
type Settled = PromiseSettledResult<unknown>;
/** Writes the statement that opens the transaction's context, signed under the guard. */
type Opener = (sql: Sql, guard: Guard) => Pending;
/**
 * Where one transaction runs. For a read on a replica with a client's token, `replayedTo`: the
 * position the replica must have replayed (pg_lsn text). For a write with replicas about, `stamp`:
 * read the position its commit reached into `reached`.
 */
// repeatableRead: one snapshot for every statement of the transaction (an export's tables agree).
type Target = { pool: Pool; replica?: Replica; replayedTo?: string; stamp?: boolean; reached?: string; repeatableRead?: boolean };

let pool: Pool | undefined;
let replicas: Replicas | undefined;
const maxAttempts = 3;

/** The response header that carries a write's consistency token, and that a read sends it back in. */
export const consistencyHeader = "X-Consistency-Token";

/** Sets the pool the helpers use; returns the one it replaces. */
export function useTenantPool(p: Pool | undefined): Pool | undefined {
  const previous = pool;
  pool = p;
  observePool(p && (() => { const s = p.stats(); return { inUse: s.inUse + s.exportsInUse, waiting: s.waiting }; }));
  return previous;
}

/** Sets the hot standbys reads go to (undefined: the primary serves every read); returns those it replaces. */
export function useReplicas(r: Replicas | undefined): Replicas | undefined {
  const previous = replicas;
  replicas = r;
  observeReadTargets(r && (() => r.report()));
  return previous;
}

/** The read replicas in use, for /readyz and the metrics. */
export function currentReplicas(): Replicas | undefined {
  return replicas;
}

function currentPool(): Pool {
  if (!pool) throw new AppError(500, "INTERNAL", "Database pool not configured.", { operational: false });
  return pool;
}

function isQuery(x: unknown): x is Pending {
  return typeof (x as { execute?: unknown })?.execute === "function";
}

/**
 * Runs `work` inside the request's tenant context. `work` returns the queries to run (one, or
 * an array, not awaited: they are pipelined with BEGIN and COMMIT), or, when a later query
 * depends on an earlier answer, a promise (then COMMIT follows it). `writes` overrides the route's
 * own (a read-only route that records its audit entry afterwards, in a transaction of its own).
 */
export function withTenant<W extends Work>(req: Request, work: (sql: Sql) => W, options: { budget?: Budget; writes?: boolean; repeatableRead?: boolean } = {}): Promise<Result<W>> {
  const state = requestState(req);
  if (!state?.userId) throw new AppError(500, "INTERNAL", "withTenant called outside an authenticated request.", { operational: false });
  if (!state.permission) throw new AppError(500, "INTERNAL", "withTenant called on a route that names no permission (requires(...)).", { operational: false });
  const args: TenantContextArgs = {
    userId: state.userId, tenantRefs: state.tenantRefs, scope: state.tokenTenantId ?? null, requestId: state.requestId,
    permission: state.permission.name, forRow: state.permission.forRow, writes: options.writes ?? state.permission.writes, feature: state.permission.feature,
  };
  const open: Opener = (sql, g) => {
    const p = tenantContextProof(args, g.guard, g.expiresAt);
    // The same statement sets the transaction's timeouts for the statements after it: two
    // set_config calls in its WHERE, evaluated once on the opener's one row (after the opener,
    // which raises on any refusal), not sent back as columns nobody reads.
    return sql`
      select tenant_id, member_role, permitted
        from app.open_tenant_context(${args.userId}::uuid, ${args.tenantRefs}::text[], ${args.scope}::uuid, ${args.requestId},
                                     ${args.permission}::text, ${args.forRow}::boolean, ${args.writes}::boolean, ${g.guard},
                                     ${p.expiresAt}::int8, ${p.nonce}, ${p.proof}, ${args.feature ?? null}::text)
       where set_config('statement_timeout', ${currentPool().timeouts.statement}, true) is not null
         and set_config('idle_in_transaction_session_timeout', ${currentPool().timeouts.idleInTransaction}, true) is not null`;
  };
  return route(req, state, args.writes, open, work, options.budget ?? "request", options.repeatableRead);
}

/**
 * Runs `work` in the caller's user context (no tenant; read-only): what a person may read of
 * themself, app.get_user() and app.list_memberships().
 */
export function withUser<W extends Work>(req: Request, work: (sql: Sql) => W): Promise<Result<W>> {
  const state = requestState(req);
  if (!state?.userId) throw new AppError(500, "INTERNAL", "withUser called outside an authenticated request.", { operational: false });
  const userId = state.userId;
  const open: Opener = (sql, g) => {
    const p = userContextProof(userId, state.requestId, g.guard, g.expiresAt);
    return sql`select app.open_user_context(${userId}::uuid, ${state.requestId}, ${g.guard}, ${p.expiresAt}::int8, ${p.nonce}, ${p.proof})`;
  };
  return route(req, state, false, open, work, "request");
}

/**
 * Picks where the transaction runs and runs it there. Without replicas: the primary, as before
 * (the client's token is still validated, so a malformed one is 400 whatever the deployment).
 */
function route<W extends Work>(req: Request, state: RequestState, writes: boolean, open: Opener, work: (sql: Sql) => W, budget: Budget, repeatableRead = false): Promise<Result<W>> {
  const after = positionOfToken(req.headers["x-consistency-token"]);
  const primary = currentPool();
  const rs = replicas;
  if (!rs) return attempt(state, writes, open, work, budget, 1, { pool: primary, repeatableRead });
  if (writes) {
    const target: Target = { pool: primary, stamp: true, repeatableRead };
    return attempt(state, writes, open, work, budget, 1, target).then((result) => {
      // A streamed answer (the audit export) left before its transaction committed: no header then.
      if (target.reached && req.res && !req.res.headersSent) req.res.setHeader(consistencyHeader, consistencyToken(parseLsn(target.reached)));
      return result;
    });
  }
  // Only GETs (and HEADs) read from replicas: a POST that only reads acts on what its client just
  // wrote. A read recorded on a stream (CONTEXT_READ_GUARD=nonce) writes: the primary's too.
  const fromReplica = !state.primary && primary.readGuard !== "nonce" && (req.method === "GET" || req.method === "HEAD");
  const replica = fromReplica ? rs.choose() : undefined;
  const onPrimary = () => attempt(state, writes, open, work, budget, 1, { pool: primary, repeatableRead }).then((result) => (rs.served(undefined), result));
  if (!replica) return onPrimary();
  const target: Target = { pool: replica.pool, replica, repeatableRead, replayedTo: after === undefined ? undefined : formatLsn(rs.replayable(after)) };
  return attempt(state, writes, open, work, budget, 1, target).then(
    (result) => (rs.served(replica), result),
    (error: unknown) => {
      const reason = failoverReason(error);
      if (!reason) throw error;
      rs.failedOver(replica, reason);
      return onPrimary();
    },
  );
}

/** Why a read that failed on a replica is the replica's failure, not the request's: then the primary answers it. */
function failoverReason(error: unknown): FailoverReason | undefined {
  switch ((error as AppError).code) {
    case "REPLICA_BEHIND":
      return "behind_token";
    // Its connection failed or was ended (a replica that stopped answering: replicas.ts).
    case "DATABASE_UNAVAILABLE":
    case "SHUTTING_DOWN":
      return "lost";
    // None of its connections came back within the acquire timeout (each held by a read that
    // hangs there, as on a frozen server, or a replica too slow for its load).
    case "DATABASE_BUSY":
      return "busy";
    // A recovery conflict cancelled the read (40001), the replica has not replayed the context
    // key yet (TN401), or its queue is full (OVERLOADED): the primary has none of these.
    case "TRANSACTION_CONFLICT":
    case "CONTEXT_PROOF_REFUSED":
    case "OVERLOADED":
      return "refused";
  }
  return undefined;
}

/**
 * Runs `work` in the caller's platform context (no tenant; read-only unless `writes`), which the
 * database opens only for a platform admin (policies/platform.sql; 403 PLATFORM_ADMIN_REQUIRED
 * otherwise, from SQL): the platform's entitlement functions act in nothing else.
 */
export function withPlatform<W extends Work>(req: Request, writes: boolean, work: (sql: Sql) => W): Promise<Result<W>> {
  const state = requestState(req);
  if (!state?.userId) throw new AppError(500, "INTERNAL", "withPlatform called outside an authenticated request.", { operational: false });
  const userId = state.userId;
  const open: Opener = (sql, g) => {
    const p = platformContextProof(userId, state.requestId, writes, g.guard, g.expiresAt);
    return sql`select app.open_platform_context(${userId}::uuid, ${state.requestId}, ${writes}::boolean, ${g.guard}, ${p.expiresAt}::int8, ${p.nonce}, ${p.proof})`;
  };
  // Always the primary, reads too: its GET routes say why in their x-consistency (routes/platform.ts).
  return attempt(state, writes, open, work, "request", 1, { pool: currentPool() });
}

// A retryable failure (a serialization failure or deadlock, or a guard the connection must
// renew: its stream dropped, its session lost) runs the request's transaction again, up to
// maxAttempts; a promise chain, not an async loop, so the request that succeeds at once (nearly
// all) pays no extra frame and tick.
// On a replica a conflict is not retried there: the primary answers it (route()).
function attempt<W extends Work>(state: RequestState, writes: boolean, open: Opener, work: (sql: Sql) => W, budget: Budget, n: number, target: Target): Promise<Result<W>> {
  return runInContext(state, writes, open, work, budget, target).catch((error: unknown) => {
    if (n < maxAttempts && ((isRetryable(error) && !target.replica) || (error as { staleGuard?: boolean }).staleGuard)) return attempt(state, writes, open, work, budget, n + 1, target);
    throw toAppError(error);
  });
}

async function runInContext<W extends Work>(state: RequestState, writes: boolean, open: Opener, work: (sql: Sql) => W, budget: Budget, target: Target): Promise<Result<W>> {
  const p = target.pool;
  const lease = await p.acquire(budget);
  let broken = false;
  try {
    const guard = await guardFor(writes, p.readGuard, p.readProofTtlSeconds, lease.sql, lease.proofs, lease.generation);
    const begin = (target.repeatableRead ? lease.sql`begin isolation level repeatable read` : lease.sql`begin`).execute();
    const opened = open(lease.sql, guard).execute();
    // Before the route's statements, so their snapshots are taken after it: a standby's replay
    // only moves forward, so what it has replayed now, they see.
    const replayed = target.replayedTo === undefined ? undefined : lease.sql`select pg_last_wal_replay_lsn() >= ${target.replayedTo}::pg_lsn as replayed`.execute()
      .then(([r]) => r.replayed === true, () => false);
    let produced: unknown;
    let threw: unknown;
    try {
      produced = work(lease.sql);
    } catch (error) {
      threw = error;
    }
    const queries = Array.isArray(produced) ? produced.filter(isQuery) : isQuery(produced) ? [produced] : [];
    const isAsync = !threw && queries.length === 0 && produced !== undefined;
    const outcome = isAsync
      ? await runAsync(lease, state, begin, opened, produced as Promise<unknown>, target.stamp === true)
      : await runPipelined(lease, begin, opened, queries, threw, target.stamp === true);
    const failed = firstFailure([outcome.begin, outcome.opened, ...outcome.answers, outcome.end]);
    const stale = failed !== undefined && staleGuard(failed.reason, lease.proofs);
    guard.settled(guardSpent(outcome.opened));
    broken = outcome.end.status === "rejected";
    // The connection closed during the transaction: whatever the answers said, nothing of it
    // is known to have committed, so the request is not acknowledged (the client retries it).
    if (lease.lost()) throw databaseUnavailable(firstFailure([outcome.opened, ...outcome.answers, outcome.end])?.reason);
    if (threw) throw threw;
    if (failed) {
      if (stale) Object.assign(failed.reason as object, { staleGuard: true });
      throw failed.reason;
    }
    if (replayed && !(await replayed)) throw replicaBehind();
    if (outcome.reached) target.reached = await outcome.reached;
    const row = (outcome.opened as PromiseFulfilledResult<postgres.Row[]>).value[0];
    if (row && "tenant_id" in row) {
      state.tenantId = row.tenant_id;
      state.role = row.member_role;
    }
    const results = outcome.answers.map((s) => (s as PromiseFulfilledResult<unknown>).value);
    if (!isAsync && results.some((r) => deniedRow(outcome.opened, r))) throw forbidden(state.permission!.name);
    return (Array.isArray(produced) ? results : results[0]) as Result<W>;
  } finally {
    lease.release(broken || lease.lost());
  }
}

/** `reached`: the WAL position after COMMIT, when asked for (undefined if it could not be read). */
type Outcome = { begin: Settled; opened: Settled; answers: Settled[]; end: Settled; reached?: Promise<string | undefined> };

/**
 * The WAL position once COMMIT returned, in the same pipeline: the insert position, which is past
 * the commit record as soon as COMMIT has returned, also with synchronous_commit off (the write
 * position, pg_current_wal_lsn(), may then not have reached it yet). A standby that replayed it
 * has replayed the commit.
 */
function positionAfter(lease: Lease): Promise<string | undefined> {
  return lease.sql`select pg_current_wal_insert_lsn()::text as lsn`.execute().then(([r]) => r.lsn as string, () => undefined);
}

/** Synchronous work: its queries and COMMIT (or ROLLBACK, when building them threw) ride in the one pipeline. */
async function runPipelined(lease: Lease, begin: Promise<unknown>, opened: Promise<unknown>, queries: Pending[], threw: unknown, stamp: boolean): Promise<Outcome> {
  for (const q of queries) q.execute();
  const end = threw ? lease.sql`rollback`.execute() : lease.sql`commit`.execute();
  const reached = stamp ? positionAfter(lease) : undefined;
  const [b, o, ...rest] = await Promise.allSettled([begin, opened, ...queries, end]);
  return { begin: b, opened: o, answers: rest.slice(0, -1), end: rest[rest.length - 1], reached };
}

/** Async work (a later query needs an earlier answer): COMMIT follows the work once it settled. */
async function runAsync(lease: Lease, state: RequestState, begin: Promise<unknown>, opened: Promise<unknown>, work: Promise<unknown>, stamp: boolean): Promise<Outcome> {
  // Settle the work whatever happens, so a refused context never leaves it unhandled.
  const settledWork = Promise.allSettled([work]);
  const [b, o] = await Promise.allSettled([begin, opened]);
  const headFailure = firstFailure([b, o]);
  let [answer] = headFailure ? [{ status: "rejected", reason: headFailure.reason } as Settled] : await settledWork;
  // A row route without the permission: a row found is refused before anything commits.
  if (answer.status === "fulfilled" && deniedRow(o, answer.value)) answer = { status: "rejected", reason: forbidden(state.permission!.name) };
  // A lost connection ended the transaction already; a COMMIT now would open a new one.
  if (lease.lost()) return { begin: b, opened: o, answers: [answer], end: { status: "rejected", reason: databaseUnavailable() } };
  const ending = answer.status === "fulfilled" ? lease.sql`commit`.execute() : lease.sql`rollback`.execute();
  const reached = stamp ? positionAfter(lease) : undefined;
  const [end] = await Promise.allSettled([ending]);
  return { begin: b, opened: o, answers: [answer], end, reached };
}

function firstFailure(settled: Settled[]): PromiseRejectedResult | undefined {
  return settled.find((s): s is PromiseRejectedResult => s.status === "rejected");
}

/** Whether a row route's answer holds a row the caller's role may not act on (not permitted). */
function deniedRow(opened: Settled, answer: unknown): boolean {
  const permitted = opened.status === "fulfilled" ? (opened.value as postgres.Row[])[0]?.permitted : true;
  if (permitted !== false) return false;
  return Array.isArray(answer) ? answer.length > 0 : answer !== undefined && answer !== null;
}

/**
 * Runs one statement outside any context (readiness and operator information). `work` may sign
 * a proof with the connection's stream guard (login), which it is handed.
 */
export function withoutTenant<T extends postgres.Row[] = postgres.Row[]>(work: (sql: Sql, stream: () => Promise<Guard>) => postgres.PendingQuery<T> | Promise<T>): Promise<T> {
  return withLeasedConnection(work);
}

/**
 * Runs `work` on a leased connection, outside any context, handing it the connection's stream
 * guard: what opens contexts itself (the access explainer, db/accessExplainer.ts, in a transaction
 * it always rolls back) and one-statement work (withoutTenant).
 */
export async function withLeasedConnection<T>(work: (sql: Sql, stream: () => Promise<Guard>) => PromiseLike<T>): Promise<T> {
  const lease = await currentPool().acquire();
  try {
    const result = await runWithStream(lease, work);
    if (lease.lost()) throw databaseUnavailable();
    return result;
  } catch (error) {
    throw toAppError(error);
  } finally {
    lease.release(lease.lost());
  }
}

async function runWithStream<T>(lease: Lease, work: (sql: Sql, stream: () => Promise<Guard>) => PromiseLike<T>): Promise<T> {
  for (let n = 1; ; n++) {
    try {
      return await work(lease.sql, () => streamGuard(lease.sql, lease.proofs));
    } catch (error) {
      if (n >= 2 || !staleGuard(error, lease.proofs)) throw error;
    }
  }
}

/**
 * Sheds a request before it costs anything (body parsing, token check) when the pool would refuse
 * it anyway: every connection busy and DB_POOL_QUEUE_MAX requests already waiting.
 */
export const shedWhenSaturated: RequestHandler = (_req, _res, next) => next(pool?.saturated() ? overloaded() : undefined);

/** Runs one query on the pool's own probe connection: readiness never waits behind requests. */
export async function probeDatabase<T>(work: (sql: Sql) => Promise<T>): Promise<T> {
  return work(currentPool().probe);
}
