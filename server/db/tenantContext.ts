// The one way a route reaches the database. Each call is one transaction on a leased
// connection (server/db.ts): BEGIN, app.open_tenant_context(...) (which also sets the
// transaction's timeouts), the route's queries and COMMIT are written
// back to back without waiting, so postgres.js pipelines them and a prepared request costs one
// network round trip. The context opens only with the API's proof of the request
// (contextProof.ts), is sealed to this backend and transaction, and ends with the transaction,
// so the pooled connection never carries a tenant into the next request (policies/context.sql).
// The route's permission (authorize.ts) is checked by the same context call.
import type postgres from "postgres";
import type { Budget, Pool, Sql } from "./connections.ts";
import { forbidden } from "../auth/authorize.ts";
import type { Request, RequestHandler } from "express";
import { tenantContextProof } from "./contextProof.ts";
import { AppError, databaseUnavailable, isRetryable, overloaded, toAppError } from "../core/errors.ts";
import { observePoolInUse } from "../core/metrics.ts";
import { requestState } from "../core/requestContext.ts";

type Pending = postgres.PendingQuery<postgres.Row[]>;
type Work = Pending | readonly Pending[] | Promise<unknown>;
type Result<W> = W extends Pending ? Awaited<W> : W extends readonly Pending[] ? { [K in keyof W]: Awaited<W[K]> } : Awaited<W>;

let pool: Pool | undefined;
const maxAttempts = 3;

/** Sets the pool the helpers use; returns the one it replaces. */
export function useTenantPool(p: Pool | undefined): Pool | undefined {
  const previous = pool;
  pool = p;
  observePoolInUse(p && (() => { const s = p.stats(); return s.inUse + s.exportsInUse; }));
  return previous;
}

function isQuery(x: unknown): x is Pending {
  return typeof (x as { execute?: unknown })?.execute === "function";
}

/**
 * Runs `work` inside the request's tenant context. `work` returns the queries to run (one, or
 * an array, not awaited: they are pipelined with BEGIN and COMMIT), or, when a later query
 * depends on an earlier answer, a promise (then COMMIT follows it).
 */
export function withTenant<W extends Work>(req: Request, work: (sql: Sql) => W, options: { budget?: Budget } = {}): Promise<Result<W>> {
  return attempt(req, work, options.budget, 1);
}

// A retryable failure (a lost connection before anything committed) runs the request's
// transaction again, up to maxAttempts; a promise chain, not an async loop, so the request
// that succeeds at once (nearly all) pays no extra frame and tick.
function attempt<W extends Work>(req: Request, work: (sql: Sql) => W, budget: Budget | undefined, n: number): Promise<Result<W>> {
  return runOnce(req, work, budget).catch((error: unknown) => {
    if (n < maxAttempts && isRetryable(error)) return attempt(req, work, budget, n + 1);
    throw toAppError(error);
  });
}

async function runOnce<W extends Work>(req: Request, work: (sql: Sql) => W, budget: Budget = "request"): Promise<Result<W>> {
  const state = requestState(req);
  if (!pool) throw new AppError(500, "INTERNAL", "Database pool not configured.", { operational: false });
  if (!state?.userId) throw new AppError(500, "INTERNAL", "withTenant called outside an authenticated request.", { operational: false });

  const lease = await pool.acquire(budget);
  const sql = lease.sql;
  let broken = false;
  try {
    const begin = sql`begin`.execute();
    const args = {
      userId: state.userId, tenantRefs: state.tenantRefs, scope: state.tokenTenantId ?? null, requestId: state.requestId,
      permission: state.permission?.name ?? null, forRow: state.permission?.forRow ?? false,
    };
    const p = tenantContextProof(args);
    // The same statement sets the transaction's timeouts for the statements after it. Two SET
    // LOCALs in a simple-protocol BEGIN cost PostgreSQL 13 µs a request (parsed and planned
    // each time); here they are two set_config calls in a prepared statement, in its WHERE:
    // evaluated once on the opener's one row (after the opener, which raises on any refusal),
    // and not sent back as two more columns nobody reads.
    const open = sql`
      select tenant_id, member_role, permitted
        from app.open_tenant_context(${args.userId}::uuid, ${args.tenantRefs}::text[], ${args.scope}::uuid, ${args.requestId},
                                     ${args.permission}::text, ${args.forRow}::boolean, ${p.expiresAt}::int8, ${p.nonce}, ${p.proof})
       where set_config('statement_timeout', ${pool.timeouts.statement}, true) is not null
         and set_config('idle_in_transaction_session_timeout', ${pool.timeouts.idleInTransaction}, true) is not null
    `.execute();

    let produced: unknown;
    let threw: unknown;
    try {
      produced = work(sql as unknown as Sql);
    } catch (error) {
      threw = error;
    }
    const queries = Array.isArray(produced) ? produced.filter(isQuery) : isQuery(produced) ? [produced] : [];
    queries.forEach((q) => q.execute());
    const isAsync = !threw && queries.length === 0 && produced !== undefined;

    // Synchronous work: COMMIT rides in the same pipeline. Async work: it follows the work.
    const settled: PromiseSettledResult<unknown>[] = [];
    if (!isAsync) {
      const end = threw ? sql`rollback`.execute() : sql`commit`.execute();
      settled.push(...(await Promise.allSettled([begin, open, ...queries, end])));
    } else {
      // Settle the work whatever happens, so a refused context never leaves it unhandled.
      const work = Promise.allSettled([produced as Promise<unknown>]);
      const head = await Promise.allSettled([begin, open]);
      const body = head.every((s) => s.status === "fulfilled")
        ? await work
        : [{ status: "rejected", reason: (head.find((s) => s.status === "rejected") as PromiseRejectedResult).reason } as const];
      // A row route without the permission: a row found is refused before anything commits.
      if (body[0].status === "fulfilled" && deniedRow(head[1], body[0].value)) body[0] = { status: "rejected", reason: forbidden(state.permission!.name) };
      const ok = body[0].status === "fulfilled";
      // A lost connection ended the transaction already; a COMMIT now would open a new one.
      const end = lease.lost()
        ? [{ status: "rejected", reason: databaseUnavailable() } as const]
        : await Promise.allSettled([ok ? sql`commit`.execute() : sql`rollback`.execute()]);
      settled.push(...head, ...body, ...end);
    }
    broken = settled[settled.length - 1].status === "rejected";
    // The connection closed during the transaction: whatever the answers said, nothing of it
    // is known to have committed, so the request is not acknowledged (the client retries it).
    if (lease.lost()) throw databaseUnavailable((settled.find((s) => s.status === "rejected") as PromiseRejectedResult | undefined)?.reason);
    if (threw) throw threw;

    const failed = settled.find((s): s is PromiseRejectedResult => s.status === "rejected");
    if (failed) throw failed.reason;

    const [, opened] = settled as PromiseFulfilledResult<postgres.Row[]>[];
    state.tenantId = opened.value[0]?.tenant_id;
    state.role = opened.value[0]?.member_role;

    const results = settled.slice(2, 2 + (isAsync ? 1 : queries.length)).map((s) => (s as PromiseFulfilledResult<unknown>).value);
    if (!isAsync && results.some((r) => deniedRow(opened, r))) throw forbidden(state.permission!.name);
    return (Array.isArray(produced) ? results : results[0]) as Result<W>;
  } finally {
    lease.release(broken || lease.lost());
  }
}

/** Whether a row route's answer holds a row the caller's role may not act on (not permitted). */
function deniedRow(opened: PromiseSettledResult<unknown>, answer: unknown): boolean {
  const permitted = opened.status === "fulfilled" ? (opened.value as postgres.Row[])[0]?.permitted : true;
  if (permitted !== false) return false;
  return Array.isArray(answer) ? answer.length > 0 : answer !== undefined && answer !== null;
}

/** Runs one query outside any tenant (global SECURITY DEFINER entry points: login, me). */
export async function withoutTenant<T extends postgres.Row[]>(work: (sql: Sql) => postgres.PendingQuery<T>): Promise<T> {
  if (!pool) throw new AppError(500, "INTERNAL", "Database pool not configured.", { operational: false });
  const lease = await pool.acquire();
  try {
    const rows = await work(lease.sql);
    if (lease.lost()) throw databaseUnavailable();
    return rows;
  } catch (error) {
    throw toAppError(error);
  } finally {
    lease.release(lease.lost());
  }
}

/**
 * Sheds a request before it costs anything (body parsing, token check) when the pool would refuse
 * it anyway: every connection busy and DB_POOL_QUEUE_MAX requests already waiting.
 */
export const shedWhenSaturated: RequestHandler = (_req, _res, next) => next(pool?.saturated() ? overloaded() : undefined);

/** Runs one query on the pool's own probe connection: readiness never waits behind requests. */
export async function probeDatabase<T extends postgres.Row[]>(work: (sql: Sql) => postgres.PendingQuery<T>): Promise<T> {
  if (!pool) throw new AppError(500, "INTERNAL", "Database pool not configured.", { operational: false });
  return work(pool.probe);
}
