// The API's connections to PostgreSQL, as app_user.
//
// Why leases of whole one-connection clients, and not postgres.js's sql.reserve(): in postgres.js
// 3.4.9 (the latest release) a reserved connection whose backend dies stays pinned to the request.
// The next write through it (our ROLLBACK, or release() handing the socketless connection back to
// the pool as "open") schedules nextWrite() with setImmediate on a null socket, and its
// `TypeError: Cannot read properties of null (reading 'write')` is thrown outside any promise:
// uncaught, it kills the process (porsager/postgres#1208, also #1154 and #1066; the guard in #1209
// is not released). A postgres.js client of one connection (max: 1) routes queries only to a live
// socket and reconnects by itself, so a dead backend costs the request a 503, never the process.
// A lease pool (leasePool.ts) hands those clients out: a bounded wait (DATABASE_BUSY), a bounded queue
// (OVERLOADED) and a separate small budget for long exports (EXPORTS_BUSY).
//
// Nothing is sent as a startup parameter (PgBouncer in transaction mode refuses them): the
// timeouts are role defaults (policies/role_defaults.sql), and set again for each request transaction by
// the statement that opens its context (tenantContext.ts): DB_STATEMENT_TIMEOUT_MS holds for the
// route's statements; BEGIN and the opener itself run under the role's 5 s.
import postgres from "postgres";
import { keepPostgresClassesOptimizable } from "./postgresClasses.ts";
import { exportsBusy, databaseBusy, databaseUnavailable, overloaded, shuttingDown } from "../core/errors.ts";
import { leasePool, PoolRefusal, type LeasePool } from "./leasePool.ts";
import { logger } from "../core/log.ts";
import type { ProofState, ReadGuard } from "./proofGuards.ts";

export type Sql = postgres.Sql;

// postgres.js's Query and Result constructors keep their optimized code (a V8 pathology that
// cost every request; server/postgresClasses.ts says what and how much).
keepPostgresClassesOptimizable();

export type PoolOptions = {
  url: string;
  max: number;
  connectTimeoutMs: number;
  statementTimeoutMs: number;
  idleInTransactionTimeoutMs?: number;
  /** How long a request may wait for a free connection before 503 DATABASE_BUSY. */
  acquireTimeoutMs?: number;
  /** Requests allowed to wait for a connection; one more is refused at once with 503 OVERLOADED. */
  maxWaiting?: number;
  /** Connections kept for long exports, apart from `max`. */
  exportMax?: number;
  /** Named prepared statements: false behind PgBouncer in transaction mode (before 1.21). */
  prepare?: boolean;
  applicationName?: string;
  /** How read proofs are guarded against replay (CONTEXT_READ_GUARD): "connection" unless behind PgBouncer. */
  readGuard?: ReadGuard;
  /** A read proof's lifetime under readGuard "expiry" (CONTEXT_READ_PROOF_TTL_SECONDS, at most 30). */
  readProofTtlSeconds?: number;
};

export type Budget = "request" | "export";

/**
 * One connection, held by one request. `lost()` says its connection closed since it was taken;
 * `proofs` is the connection's replay-guard state (proofGuards.ts), `generation` counts its
 * reconnects (a new backend has no bound session).
 */
export type Lease = { sql: Sql; proofs: ProofState; generation: number; lost: () => boolean; release: (broken?: boolean) => void };

export type Pool = {
  acquire: (budget?: Budget) => Promise<Lease>;
  /** A connection of its own for readiness checks, so /readyz never queues behind requests. */
  probe: Sql;
  /** Every request transaction's timeouts in ms, as set_config values (the context statement sets them). */
  timeouts: { statement: string; idleInTransaction: string };
  /** How read proofs are guarded on this pool's connections. */
  readGuard: ReadGuard;
  readProofTtlSeconds: number;
  stats: () => { inUse: number; waiting: number; max: number; exportsInUse: number };
  /** True when a request would be refused with OVERLOADED right now (every connection busy, queue full). */
  saturated: () => boolean;
  /** abandonWaiting: refuse the acquisitions waiting now instead of serving them (a replica that stopped answering: replicas.ts). */
  end: (options?: { timeout?: number; abandonWaiting?: boolean }) => Promise<void>;
};

type Client = { sql: Sql; closes: number; leased: boolean; proofs: ProofState };

const utcTimestamp = /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?:\.\d{1,6})?\+00$/;

/**
 * A timestamptz as the JSON answer writes it: the text a Date's toJSON gives
 * (2026-11-23T21:00:00.123Z, milliseconds, truncated), built from PostgreSQL's UTC text
 * without a Date. Parsing into a Date and printing it again was three quarters of
 * JSON.stringify's time on a list of 50 rows. Any other text (another time zone, infinity,
 * BC) still goes through a Date, as before. Routes never compute with timestamps; SQL does.
 * The shape is tested, then cut at its fixed positions: a regex's captures cost a list of
 * 50 rows 2.5 µs more (100 timestamps).
 */
export function timestamptzToJson(x: string): string | Date {
  if (!utcTimestamp.test(x)) return new Date(x);
  // "YYYY-MM-DD HH:MM:SS" is 19 characters, then ".f" to ".ffffff", then "+00".
  const fraction = x.length === 22 ? "000" : x.length >= 26 ? x.slice(20, 23) : x.slice(20, -3).padEnd(3, "0");
  return `${x.slice(0, 10)}T${x.slice(11, 19)}.${fraction}Z`;
}

function clientOptions(options: PoolOptions, onclose?: () => void): postgres.Options<Record<string, postgres.PostgresType>> {
  return {
    max: 1,
    connect_timeout: options.connectTimeoutMs / 1000,
    idle_timeout: 60,
    // A lifetime end closes the connection between two queries of a transaction; recycling is
    // left to idle_timeout, which only fires on an idle connection.
    max_lifetime: null,
    prepare: options.prepare ?? true,
    // bigint (int8) as a JS number: counts and cent sums stay far below 2^53.
    types: {
      int8: { to: 20, from: [20], serialize: (x: number) => String(x), parse: (x: string) => Number(x) },
      // Parameters serialize as postgres.js's own date type does; only reading changes.
      timestamptz: { to: 1184, from: [1184], serialize: (x: Date | string) => (x instanceof Date ? x : new Date(x)).toISOString(), parse: timestamptzToJson },
      // A calendar date (an invoice's due date) as PostgreSQL prints it, YYYY-MM-DD: a Date would
      // put it at midnight UTC, another day in half the world.
      date: { to: 1082, from: [1082], serialize: (x: string) => x, parse: (x: string) => x },
    },
    // postgres.js waits before reconnecting after failures, by default up to 20 s: with the
    // database down a request would wait that long. Capped at 250 ms, it fails over to 503 fast.
    backoff: (retries: number) => Math.min(0.05 * retries, 0.25),
    onnotice: () => {},
    onclose,
    // application_name is the one startup parameter PgBouncer accepts without configuration.
    connection: { application_name: options.applicationName ?? "rls-service-shop" },
  };
}

function clientPool(options: PoolOptions, size: number, maxWaiting: number, acquireTimeoutMs: number, clients: Set<Client>): LeasePool<Client> {
  return leasePool<Client>(
    {
      create: () => {
        const client = { closes: 0, leased: false, proofs: {} } as Client;
        client.sql = postgres(options.url, clientOptions(options, () => {
          client.closes++;
          // Closed under a request: end the client at once. Its pending queries then fail
          // (CONNECTION_DESTROYED) instead of waiting on a reconnect that can stall: postgres.js
          // 3.4.9 keeps a write that was pending at the close and never flushes the next ones.
          if (client.leased) void client.sql.end({ timeout: 0 });
        }));
        clients.add(client);
        return client;
      },
      destroy: async (client) => {
        clients.delete(client);
        await client.sql.end({ timeout: 1 });
      },
    },
    { max: size, maxWaiting, acquireTimeoutMs },
  );
}

/** A lease of one client: its methods live on the class, not in closures built per request. */
class ClientLease implements Lease {
  readonly sql: Sql;
  readonly proofs: ProofState;
  readonly generation: number;
  private readonly closes: number;
  private released = false;

  constructor(private readonly pool: LeasePool<Client>, private readonly client: Client) {
    this.sql = client.sql;
    this.proofs = client.proofs;
    this.closes = client.closes;
    this.generation = client.closes;
  }

  lost(): boolean {
    return this.client.closes !== this.closes;
  }

  release(broken = false): void {
    if (this.released) return;
    this.released = true;
    this.client.leased = false;
    // A connection lost, or left in an unknown state (a failed ROLLBACK), is not reused.
    if (!broken) return this.pool.release(this.client);
    this.pool.destroy(this.client).catch((error) => logger.error({ err: error }, "pool release failed"));
  }
}

export function createPool(options: PoolOptions): Pool {
  const acquireTimeoutMs = options.acquireTimeoutMs ?? 1000;
  const idleInTransactionMs = options.idleInTransactionTimeoutMs ?? options.statementTimeoutMs * 2;
  const clients = new Set<Client>();
  const maxWaiting = options.maxWaiting ?? options.max * 8;
  const requests = clientPool(options, options.max, maxWaiting, acquireTimeoutMs, clients);
  const exportMax = options.exportMax ?? 2;
  const exports = clientPool(options, exportMax, 0, acquireTimeoutMs, clients);
  const probe = postgres(options.url, { ...clientOptions(options), connect_timeout: Math.min(options.connectTimeoutMs, 1000) / 1000 });
  let ending = false;

  async function acquire(budget: Budget = "request"): Promise<Lease> {
    const pool = budget === "export" ? exports : requests;
    let client: Client;
    try {
      client = await pool.acquire();
    } catch (error) {
      if (ending) throw shuttingDown(error);
      // Not a refusal: the client could not be made at all (the factory threw).
      if (!(error instanceof PoolRefusal)) throw databaseUnavailable(error);
      const reason = error.reason;
      if (reason === "draining") throw shuttingDown(error);
      if (budget === "export") throw exportsBusy(exportMax, error);
      throw reason === "timeout" ? databaseBusy(acquireTimeoutMs, error) : overloaded(error);
    }
    client.leased = true;
    return new ClientLease(pool, client);
  }

  return {
    acquire,
    probe,
    timeouts: { statement: String(Math.trunc(options.statementTimeoutMs)), idleInTransaction: String(Math.trunc(idleInTransactionMs)) },
    readGuard: options.readGuard ?? "connection",
    readProofTtlSeconds: options.readProofTtlSeconds ?? 10,
    saturated: () => requests.saturated,
    stats: () => ({ inUse: requests.borrowed, waiting: requests.pending, max: options.max, exportsInUse: exports.borrowed }),
    // Waits up to `timeout` seconds for leases to come back, then closes every connection.
    end: async ({ timeout = 5, abandonWaiting = false } = {}) => {
      ending = true;
      if (abandonWaiting) {
        requests.abandonWaiting();
        exports.abandonWaiting();
      }
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        Promise.all([requests.drain(), exports.drain()]),
        new Promise((resolve) => (timer = setTimeout(resolve, timeout * 1000))),
      ]);
      clearTimeout(timer);
      await Promise.all([...clients].map((client) => client.sql.end({ timeout: 0 })).concat(probe.end({ timeout: 0 })));
    },
  };
}

/** A short-lived single connection for administrative work (deploys, seed, operator commands). */
export function connectOnce(url: string, applicationName = "rls-service-shop-admin"): Sql {
  return postgres(url, { max: 1, onnotice: () => {}, connect_timeout: 10, connection: { application_name: applicationName } });
}

/** Runs `work` on a short-lived owner connection and closes it. */
export async function withOwner<T>(url: string, work: (sql: Sql) => Promise<T>): Promise<T> {
  const sql = connectOnce(url);
  try {
    return await work(sql);
  } finally {
    await sql.end({ timeout: 5 });
  }
}
