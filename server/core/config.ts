// Configuration is read once, at boot, from the environment and validated with ajv.
// Every key has a default or is required; a wrong value stops the process with a message.
import { Ajv } from "ajv";
import { parseCredentialKey } from "./credentialCipher.ts";
import { KeyRingError, LEGACY_KEY_ID, parseKeyRing, singleKeyRing, type KeyRing } from "./keyRing.ts";

export type Config = {
  nodeEnv: "development" | "production" | "test";
  host: string;
  port: number;
  databaseUrl?: string;
  databaseOwnerUrl?: string;
  /** app_user URLs of hot standbys that serve reads (DATABASE_READ_URLS); empty: the primary serves everything. */
  databaseReadUrls: string[];
  readReplicaMaxLagMs: number;
  jwtAlgorithm: "HS256" | "RS256";
  /** HS256 keys by id (JWT_SECRETS, or JWT_SECRET as the ring of one key `default`): the primary signs, every key verifies. */
  jwtSecrets?: KeyRing<string>;
  /** RS256 public key files by id (JWT_PUBLIC_KEY_FILES, or JWT_PUBLIC_KEY_FILE as `default`): the primary's private key signs. */
  jwtPublicKeyFiles?: KeyRing<string>;
  /** The credentials key ring (CREDENTIALS_KEYS), 64 hex characters per key. */
  credentialsKeys?: KeyRing<string>;
  contextKey?: string;
  contextProofTtlSeconds: number;
  contextReadGuard: "connection" | "nonce" | "expiry";
  contextReadProofTtlSeconds: number;
  jwtPrivateKeyFile?: string;
  jwtIssuer: string;
  jwtTtlSeconds: number;
  baseDomain?: string;
  logLevel: string;
  dbPoolMax: number;
  dbConnectTimeoutMs: number;
  dbStatementTimeoutMs: number;
  dbIdleInTransactionTimeoutMs: number;
  dbAcquireTimeoutMs: number;
  dbPoolQueueMax: number;
  dbExportPoolMax: number;
  dbPrepare: boolean;
  apiConcurrency: number;
  apiQueueMax: number;
  apiQueueDeadlineMs: number;
  apiRefuseAfterMs: number;
  bodyLimit: string;
  dataDir: string;
  embeddedPgPort: number;
  embeddedPgMajor: 15 | 18;
  seedDemo: boolean;
  tokenCacheMax: number;
  webConcurrency: number;
  loginThrottle: LoginThrottle;
};

/** Login throttling (policies/login_throttle.sql): failures before refusal per account and per address (0: never), and the window. */
export type LoginThrottle = { accountFailures: number; addressFailures: number; windowSeconds: number };
export const DEFAULT_LOGIN_THROTTLE: LoginThrottle = { accountFailures: 10, addressFailures: 100, windowSeconds: 900 };

const schema = {
  type: "object",
  properties: {
    NODE_ENV: { enum: ["development", "production", "test"], default: "development" },
    HOST: { type: "string", minLength: 1, default: "127.0.0.1" },
    PORT: { type: "integer", minimum: 0, maximum: 65535, default: 3000 },
    DATABASE_URL: { type: "string", pattern: "^postgres(ql)?://" },
    DATABASE_OWNER_URL: { type: "string", pattern: "^postgres(ql)?://" },
    // Hot standbys for reads (server/db/replicas.ts): comma-separated app_user URLs; a comma inside
    // one (a password) is written %2C, as any URL writes it.
    DATABASE_READ_URLS: { type: "string", pattern: "^\\s*postgres(ql)?://[^,\\s]+(\\s*,\\s*postgres(ql)?://[^,\\s]+)*\\s*$" },
    READ_REPLICA_MAX_LAG_MS: { type: "integer", minimum: 10, maximum: 3600000, default: 1000 },
    JWT_ALGORITHM: { enum: ["HS256", "RS256"], default: "HS256" },
    JWT_SECRET: { type: "string" },
    // Key rings (core/keyRing.ts: "*new=key,old=key", * marks the primary), checked below.
    JWT_SECRETS: { type: "string", minLength: 1 },
    JWT_PUBLIC_KEY_FILES: { type: "string", minLength: 1 },
    CREDENTIALS_KEYS: { type: "string", minLength: 1 },
    CONTEXT_KEY: { type: "string", pattern: "^([0-9a-fA-F]{2}){32,64}$" },
    CONTEXT_PROOF_TTL_SECONDS: { type: "integer", minimum: 5, maximum: 300, default: 60 },
    // How read proofs are guarded against replay (runbooks/pgbouncer.md): bound to their
    // connection (direct connections), or behind PgBouncer's transaction mode a recorded nonce
    // (reads then write, so no hot standby) or their expiry alone (CONTEXT_READ_PROOF_TTL_SECONDS).
    CONTEXT_READ_GUARD: { enum: ["connection", "nonce", "expiry"], default: "connection" },
    CONTEXT_READ_PROOF_TTL_SECONDS: { type: "integer", minimum: 1, maximum: 30, default: 10 },
    JWT_PUBLIC_KEY_FILE: { type: "string", minLength: 1 },
    // Login throttling (policies/login_throttle.sql, runbooks/tenant-lifecycle.md): an account is
    // slowed from its 3rd failure and refused after LOGIN_THROTTLE_ACCOUNT_FAILURES; an address is
    // refused after LOGIN_THROTTLE_ADDRESS_FAILURES (0: never), each for the window.
    LOGIN_THROTTLE_ACCOUNT_FAILURES: { type: "integer", minimum: 3, maximum: 1000, default: DEFAULT_LOGIN_THROTTLE.accountFailures },
    LOGIN_THROTTLE_ADDRESS_FAILURES: { type: "integer", minimum: 0, maximum: 100000, default: DEFAULT_LOGIN_THROTTLE.addressFailures },
    LOGIN_THROTTLE_WINDOW_SECONDS: { type: "integer", minimum: 60, maximum: 86400, default: DEFAULT_LOGIN_THROTTLE.windowSeconds },
    JWT_PRIVATE_KEY_FILE: { type: "string", minLength: 1 },
    JWT_ISSUER: { type: "string", minLength: 1, default: "rls-service-shop" },
    JWT_TTL_SECONDS: { type: "integer", minimum: 60, maximum: 86400, default: 3600 },
    BASE_DOMAIN: { type: "string", pattern: "^[a-z0-9.-]+(:[0-9]+)?$" },
    LOG_LEVEL: { enum: ["fatal", "error", "warn", "info", "debug", "trace", "silent"], default: "info" },
    // LOG_FLUSH_MS and LOG_FORMAT are read by server/core/log.ts when it loads (before this check):
    // listed so a bad value stops the start. LOG_FORMAT unset: pretty in development at a terminal.
    LOG_FLUSH_MS: { type: "integer", minimum: 0, maximum: 1000, default: 5 },
    LOG_FORMAT: { enum: ["json", "pretty"] },
    DB_POOL_MAX: { type: "integer", minimum: 1, maximum: 500, default: 10 },
    DB_CONNECT_TIMEOUT_MS: { type: "integer", minimum: 100, maximum: 60000, default: 1000 },
    DB_STATEMENT_TIMEOUT_MS: { type: "integer", minimum: 100, maximum: 600000, default: 5000 },
    DB_IDLE_IN_TRANSACTION_TIMEOUT_MS: { type: "integer", minimum: 100, maximum: 600000, default: 10000 },
    DB_ACQUIRE_TIMEOUT_MS: { type: "integer", minimum: 10, maximum: 60000, default: 1000 },
    DB_POOL_QUEUE_MAX: { type: "integer", minimum: 0, maximum: 100000, default: 64 },
    DB_EXPORT_POOL_MAX: { type: "integer", minimum: 1, maximum: 50, default: 2 },
    DB_PREPARE: { type: "boolean", default: true },
    // Admission control (admission.ts): 0 means 2 × DB_POOL_MAX + DB_EXPORT_POOL_MAX.
    API_CONCURRENCY: { type: "integer", minimum: 0, maximum: 10000, default: 0 },
    API_QUEUE_MAX: { type: "integer", minimum: 0, maximum: 100000, default: 1024 },
    API_QUEUE_DEADLINE_MS: { type: "integer", minimum: 1, maximum: 60000, default: 150 },
    API_REFUSE_AFTER_MS: { type: "integer", minimum: 0, maximum: 60000, default: 1000 },
    BODY_LIMIT: { type: "string", pattern: "^[0-9]+(b|kb|mb)$", default: "100kb" },
    DATA_DIR: { type: "string", minLength: 1, default: ".data" },
    EMBEDDED_PG_PORT: { type: "integer", minimum: 1024, maximum: 65535, default: 54329 },
    // Read by server/setup/embedded.ts (embeddedMajor()); listed so a bad value stops the start.
    EMBEDDED_PG_MAJOR: { type: "integer", enum: [15, 18], default: 15 },
    SEED_DEMO: { type: "boolean" },
    TOKEN_CACHE_MAX: { type: "integer", minimum: 0, maximum: 1000000, default: 10000 },
    WEB_CONCURRENCY: { type: "integer", minimum: 1, maximum: 64, default: 1 },
  },
  allOf: [
    {
      if: { properties: { NODE_ENV: { const: "production" } }, required: ["NODE_ENV"] },
      // The production API holds app_user only: DATABASE_OWNER_URL is the deploy's (npm run cli -- deploy).
      then: { required: ["DATABASE_URL", "CONTEXT_KEY"] },
    },
  ],
  // DATABASE_URL alone: an external database the API only checks (no deploy at start); with
  // DATABASE_OWNER_URL too, development deploys to it at start as it does to the embedded one.
  dependencies: { DATABASE_OWNER_URL: ["DATABASE_URL"] },
};

/** Names of the environment variables the configuration reads (for /ops/env-sanity: names only). */
export const configKeys = (): string[] => Object.keys(schema.properties);

const validate = new Ajv({ useDefaults: true, coerceTypes: true, allErrors: true }).compile(schema);

export class ConfigError extends Error {}

type Rings = Pick<Config, "jwtSecrets" | "jwtPublicKeyFiles" | "credentialsKeys">;

const atLeast32 = (v: string) => {
  if (v.length < 32) throw new Error("must be 32 characters or more");
  return v;
};

/**
 * The key rings, each from its ring variable or from the single-key variable of earlier releases
 * (one of the two, not both), and the ones production needs. Adds a line per problem.
 */
function keyRings(raw: Record<string, string | undefined>, problems: string[]): Rings {
  const ring = (ringName: string, singleName: string | undefined, check: (v: string) => unknown): KeyRing<string> | undefined => {
    const text = raw[ringName];
    const single = singleName ? raw[singleName] : undefined;
    try {
      if (text !== undefined && single !== undefined) throw new KeyRingError(`${ringName}: set it or ${singleName}, not both (${singleName}=k is the ring "*${LEGACY_KEY_ID}=k")`);
      if (text !== undefined) return parseKeyRing(ringName, text, (v) => (check(v), v));
      if (single !== undefined) return singleKeyRing((check(single), single));
    } catch (error) {
      problems.push(`  ${error instanceof KeyRingError ? error.message : `${singleName}: ${(error as Error).message}`}`);
    }
    return undefined;
  };
  const rings: Rings = {
    jwtSecrets: ring("JWT_SECRETS", "JWT_SECRET", atLeast32),
    jwtPublicKeyFiles: ring("JWT_PUBLIC_KEY_FILES", "JWT_PUBLIC_KEY_FILE", () => {}),
    credentialsKeys: ring("CREDENTIALS_KEYS", undefined, parseCredentialKey),
  };
  const production = raw.NODE_ENV === "production";
  const given = (...names: string[]) => names.some((n) => raw[n] !== undefined);
  if (production && raw.JWT_ALGORITHM !== "RS256" && !given("JWT_SECRET", "JWT_SECRETS")) problems.push("  JWT_SECRET (or the key ring JWT_SECRETS): required in production with HS256");
  if (raw.JWT_ALGORITHM === "RS256" && !given("JWT_PUBLIC_KEY_FILE", "JWT_PUBLIC_KEY_FILES")) problems.push("  JWT_PUBLIC_KEY_FILE (or the key ring JWT_PUBLIC_KEY_FILES): required with RS256");
  if (production && !given("CREDENTIALS_KEYS")) {
    problems.push('  CREDENTIALS_KEYS: required in production: the key ring tenant credentials are encrypted with, e.g. CREDENTIALS_KEYS="*2025-07=$(openssl rand -hex 32)" (runbooks/key-rotation.md)');
  }
  return rings;
}

/** Parses the environment into a Config, or throws ConfigError naming every bad key. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const raw: Record<string, unknown> = {};
  for (const key of Object.keys(schema.properties)) {
    const value = env[key];
    if (value !== undefined && value !== "") raw[key] = value;
  }
  const problems: string[] = [];
  if (!validate(raw)) {
    problems.push(...(validate.errors ?? []).map((e) => {
      const key = e.instancePath.replace(/^\//, "") || String(e.params.missingProperty ?? "");
      return `  ${key || "(config)"}: ${e.message}`;
    }));
  }
  const rings = keyRings(raw as Record<string, string | undefined>, problems);
  if (problems.length > 0) throw new ConfigError(`Invalid configuration:\n${problems.join("\n")}`);
  const r = raw as Record<string, never>;
  return {
    nodeEnv: r.NODE_ENV,
    host: r.HOST,
    port: r.PORT,
    databaseUrl: r.DATABASE_URL,
    databaseOwnerUrl: r.DATABASE_OWNER_URL,
    databaseReadUrls: r.DATABASE_READ_URLS ? (r.DATABASE_READ_URLS as string).split(",").map((u) => u.trim()) : [],
    readReplicaMaxLagMs: r.READ_REPLICA_MAX_LAG_MS,
    jwtAlgorithm: r.JWT_ALGORITHM,
    ...rings,
    contextKey: r.CONTEXT_KEY,
    contextProofTtlSeconds: r.CONTEXT_PROOF_TTL_SECONDS,
    contextReadGuard: r.CONTEXT_READ_GUARD,
    contextReadProofTtlSeconds: r.CONTEXT_READ_PROOF_TTL_SECONDS,
    jwtPrivateKeyFile: r.JWT_PRIVATE_KEY_FILE,
    jwtIssuer: r.JWT_ISSUER,
    jwtTtlSeconds: r.JWT_TTL_SECONDS,
    baseDomain: r.BASE_DOMAIN,
    logLevel: r.LOG_LEVEL,
    dbPoolMax: r.DB_POOL_MAX,
    dbConnectTimeoutMs: r.DB_CONNECT_TIMEOUT_MS,
    dbStatementTimeoutMs: r.DB_STATEMENT_TIMEOUT_MS,
    dbIdleInTransactionTimeoutMs: r.DB_IDLE_IN_TRANSACTION_TIMEOUT_MS,
    dbAcquireTimeoutMs: r.DB_ACQUIRE_TIMEOUT_MS,
    dbPoolQueueMax: r.DB_POOL_QUEUE_MAX,
    dbExportPoolMax: r.DB_EXPORT_POOL_MAX,
    dbPrepare: r.DB_PREPARE,
    // A request ready for each connection as it comes free, besides the one using it.
    apiConcurrency: r.API_CONCURRENCY || 2 * (r.DB_POOL_MAX as number) + (r.DB_EXPORT_POOL_MAX as number),
    apiQueueMax: r.API_QUEUE_MAX,
    apiQueueDeadlineMs: r.API_QUEUE_DEADLINE_MS,
    apiRefuseAfterMs: r.API_REFUSE_AFTER_MS,
    bodyLimit: r.BODY_LIMIT,
    dataDir: r.DATA_DIR,
    embeddedPgPort: r.EMBEDDED_PG_PORT,
    embeddedPgMajor: r.EMBEDDED_PG_MAJOR,
    seedDemo: r.SEED_DEMO ?? r.NODE_ENV === "development",
    tokenCacheMax: r.TOKEN_CACHE_MAX,
    webConcurrency: r.WEB_CONCURRENCY,
    loginThrottle: { accountFailures: r.LOGIN_THROTTLE_ACCOUNT_FAILURES, addressFailures: r.LOGIN_THROTTLE_ADDRESS_FAILURES, windowSeconds: r.LOGIN_THROTTLE_WINDOW_SECONDS },
  };
}
