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
