// The API's connection pool, as app_user. Connect and statement timeouts keep a request from
// hanging when the database is down or slow: it fails fast and the next one reconnects.
import postgres from "postgres";

export type Sql = postgres.Sql;

export type PoolOptions = {
  url: string;
  max: number;
  connectTimeoutMs: number;
  statementTimeoutMs: number;
  applicationName?: string;
};

export function createPool(options: PoolOptions): Sql {
  return postgres(options.url, {
    max: options.max,
    connect_timeout: options.connectTimeoutMs / 1000,
    idle_timeout: 60,
    max_lifetime: 60 * 30,
    prepare: true,
    // bigint (int8) as a JS number: counts and cent sums stay far below 2^53.
    types: { int8: { to: 20, from: [20], serialize: (x: number) => String(x), parse: (x: string) => Number(x) } },
    // postgres.js waits before reconnecting after failures, by default up to 20 s
    // ((0.5..1) * min(3^retries / 100, 20)): with the database down a request would wait that
    // long. Capped at 250 ms, a request fails over to 503 within the connect timeout.
    backoff: (retries: number) => Math.min(0.05 * retries, 0.25),
    onnotice: () => {},
    connection: {
      application_name: options.applicationName ?? "rls-service-shop",
      statement_timeout: options.statementTimeoutMs,
      idle_in_transaction_session_timeout: options.statementTimeoutMs * 2,
    },
  });
}

/** A short-lived single connection for administrative work (migrations, policies, seed). */
export function connectOnce(url: string): Sql {
  return postgres(url, { max: 1, onnotice: () => {}, connect_timeout: 10, connection: { application_name: "rls-service-shop-admin" } });
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
