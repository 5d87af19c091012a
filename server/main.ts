// `npm start` and `node dist/main.js`: configuration, the database, then the API, with graceful
// shutdown.
//   * Development (the embedded database, or DATABASE_URL with DATABASE_OWNER_URL): this process
//     deploys at every start, through the same code as `npm run cli -- deploy` (migrations,
//     policies, the context key: each skipped when already applied), and seeds the demo once.
//   * Production (NODE_ENV=production): this process holds app_user's DATABASE_URL, CONTEXT_KEY
//     and the JWT key, and never connects as the owner; deploying is a separate step. It checks,
//     read-only, that the database is at its release, and refuses API requests (503
//     SCHEMA_BEHIND) until it is (server/http/schemaGate.ts). So instances start in any order
//     and in any number, before or after the deploy, and none changes the schema under another.
// WEB_CONCURRENCY > 1 (production on several cores): this process does the above once, then forks
// that many workers (node:cluster) that share the port, each with its own pool of DB_POOL_MAX
// connections and app_user's URL only; a scrape of /metrics answers all workers' sum; SIGTERM
// drains the workers, then stops the database.
import cluster from "node:cluster";
import { randomBytes } from "node:crypto";
import { answerClientErrors } from "./http/clientErrors.ts";
import { loadConfig, ConfigError, type Config } from "./core/config.ts";
import { contextKeyId, useContextKey } from "./db/contextProof.ts";
import { createPool } from "./db/connections.ts";
import { localKeyRings, openDatabase } from "./setup/localDatabase.ts";
import { credentialKeys } from "./core/credentialCipher.ts";
import { formatKeyRing, type KeyRing } from "./core/keyRing.ts";
import { logger } from "./core/log.ts";
import { aggregateWorkerMetrics, reportMetricsToPrimary, setPoolMax } from "./core/metrics.ts";
import { deploy } from "./setup/deploy.ts";
import { checkRelease } from "./setup/release.ts";
import { DEMO_PASSWORD, seedDemo } from "./setup/seed.ts";
import { installShutdown } from "./http/shutdown.ts";
import { stopWatchingSchema, watchSchema } from "./http/schemaGate.ts";
import { probeDatabase, useReplicas, useTenantPool } from "./db/tenantContext.ts";
import { createReplicas, type Replicas } from "./db/replicas.ts";
import { loadTokenKeys, type TokenKeys } from "./auth/tokens.ts";
import { createApp } from "./app.ts";
import { createHttpServer } from "./http/httpServer.ts";
import { admissionControl } from "./http/admission.ts";

async function main() {
  let config;
  try {
    config = loadConfig();
  } catch (error) {
    if (error instanceof ConfigError) {
      console.error(error.message);
      process.exit(2);
    }
    throw error;
  }

  const production = config.nodeEnv === "production";
  const db = await openDatabase(config, (line) => logger.debug({ postgres: line }), { supervise: true });
  // Production requires CONTEXT_KEY (core/config.ts); the embedded database keeps its own in
  // .data/secrets.json; a development run against DATABASE_URL without one gets a fresh key.
  const contextKey = config.contextKey ?? db.secrets?.contextKey ?? randomBytes(32).toString("hex");
  useContextKey(contextKey, config.contextProofTtlSeconds);
  const steps = [{ label: "stop embedded database", run: db.stop, timeoutMs: 15_000 }];
  const early = installShutdown(undefined, steps);
  const rings = localKeyRings(config, db.secrets);
  const keys = loadTokenKeys({ ...config, jwtSecrets: rings.jwtSecrets });
  // Production requires CREDENTIALS_KEYS (core/config.ts); the embedded database keeps a ring in
  // .data/secrets.json; a development run against DATABASE_URL without one gets a key for this run.
  let credentials = rings.credentialsKeys;
  if (!credentials) {
    credentials = { primary: "ephemeral", keys: new Map([["ephemeral", randomBytes(32).toString("hex")]]) };
    logger.warn("CREDENTIALS_KEYS is not set: credentials stored during this run cannot be decrypted after it (runbooks/key-rotation.md)");
  }

  if (cluster.isWorker) return serve(config, db, keys, credentials, steps, early);
  // Compare with `npm run cli -- context-key status`: the database must hold this key (runbooks/context-key.md).
  logger.info({ key_id: contextKeyId(contextKey) }, "context key");
  if (production && config.databaseOwnerUrl) {
    logger.warn("DATABASE_OWNER_URL is set, and the production API does not use it: deploy with `npm run cli -- deploy`, and keep the owner's credentials out of the API's environment");
  }
  if (!production && db.ownerUrl) {
    try {
      // Development keeps one key: the embedded database serves this API alone. A production
      // deploy (npm run cli -- deploy) adds its key beside the installed ones instead.
      const report = await deploy(db.ownerUrl, { contextKey, contextKeyOnly: true, log: (line) => logger.info(line) });
      logger.info({ migrations: report.migrations.applied, policies: report.policies.applied.length, context_key: report.contextKey },
        report.unchanged ? "deploy: nothing to do, migrations at head" : "deploy done");
      if (config.seedDemo && (await seedDemo(db.ownerUrl, { biPassword: db.secrets?.biAcme }))) logger.info("demo data seeded");
    } catch (error) {
      logger.fatal({ err: error }, "database set-up failed");
      await early("setup-failed");
      process.exit(1);
    }
  }

  if (config.webConcurrency > 1) {
    // Workers inherit the environment; what came from secrets.json or was made for this run is handed to them.
    const handed = {
      ...(config.jwtSecrets || !db.secrets ? {} : { JWT_SECRET: db.secrets.jwtSecret }),
      ...(config.credentialsKeys ? {} : { CREDENTIALS_KEYS: formatKeyRing(credentials) }),
    };
    return forkWorkers(config.webConcurrency, db, handed, contextKey, steps);
  }
  return serve(config, db, keys, credentials, steps, early);
}

type Db = Awaited<ReturnType<typeof openDatabase>>;
type Steps = Parameters<typeof installShutdown>[1];

/** The primary of WEB_CONCURRENCY workers: they reach the database it set up; it stops them, then it. */
function forkWorkers(count: number, db: Db, keys: Record<string, string>, contextKey: string, steps: Steps): void {
  // Every worker signs with the key the primary installed, and gets app_user's URL only.
  const env = { DATABASE_URL: db.appUrl, DATABASE_OWNER_URL: "", CONTEXT_KEY: contextKey, ...keys };
  aggregateWorkerMetrics();
  let stopping = false;
  // Our own count: cluster.workers drops a worker only after both its exit and its disconnect.
  const live = new Set<number>();
  const fork = () => live.add(cluster.fork(env).id);
  for (let i = 0; i < count; i++) fork();
  let allExited = () => {};
  cluster.on("exit", (worker, code, signal) => {
    live.delete(worker.id);
    if (stopping) return live.size === 0 && allExited();
    logger.error({ worker: worker.process.pid, code, signal }, "API worker exited; starting another");
    setTimeout(() => !stopping && fork(), 1000);
  });
  const workersExited = () => new Promise<void>((resolve) => ((allExited = resolve), live.size === 0 && resolve()));
  process.removeAllListeners("SIGINT");
  process.removeAllListeners("SIGTERM");
  installShutdown(undefined, [
    {
      label: "stop API workers",
      run: () => {
        stopping = true;
        for (const w of Object.values(cluster.workers ?? {})) w?.process.kill("SIGTERM");
        return workersExited();
      },
      timeoutMs: 20_000,
    },
    ...steps,
  ]);
  logger.info({ workers: count }, "API workers starting");
}

async function serve(config: Config, db: Db, keys: TokenKeys, credentials: KeyRing<string>, steps: Steps, early: (signal: string) => Promise<void>): Promise<void> {
  const poolOptions = {
    max: config.dbPoolMax,
    connectTimeoutMs: config.dbConnectTimeoutMs,
    statementTimeoutMs: config.dbStatementTimeoutMs,
    idleInTransactionTimeoutMs: config.dbIdleInTransactionTimeoutMs,
    acquireTimeoutMs: config.dbAcquireTimeoutMs,
    maxWaiting: config.dbPoolQueueMax,
    exportMax: config.dbExportPoolMax,
    prepare: config.dbPrepare,
    readGuard: config.contextReadGuard,
    readProofTtlSeconds: config.contextReadProofTtlSeconds,
  };
  const pool = createPool({ ...poolOptions, url: db.appUrl });
  useTenantPool(pool);
  const replicas = readReplicas(config, (url) => createPool({ ...poolOptions, url, exportMax: 1, applicationName: "rls-service-shop-replica" }), pool.probe);
  useReplicas(replicas);
  setPoolMax(config.dbPoolMax);
  if (cluster.isWorker) reportMetricsToPrimary();
  // Read-only, as app_user: is the database at this release? If not, say which command brings it,
  // refuse API requests, and ask again until it is.
  await watchSchema(() => probeDatabase(checkRelease));
  const app = createApp({ keys, baseDomain: config.baseDomain, bodyLimit: config.bodyLimit, credentialKeys: credentialKeys(credentials), loginThrottle: config.loginThrottle });
  // The shutdown installed for set-up gives way to the one that also drains the server.
  const admitted = admissionControl(app, {
    limit: config.apiConcurrency, queueMax: config.apiQueueMax, deadlineMs: config.apiQueueDeadlineMs, refuseAfterMs: config.apiRefuseAfterMs,
  });
  const server = createHttpServer(app, admitted).listen(config.port, config.host);
  answerClientErrors(server);
  // The replicas' pools drain alongside the primary's (their monitor stops first, in end()).
  installShutdown(server, [{ label: "close database pool", run: async () => { stopWatchingSchema(); await Promise.all([pool.end({ timeout: 5 }), replicas?.end()]); } }, ...steps]);
  server.on("listening", () => {
    const address = server.address();
    const port = typeof address === "object" && address ? address.port : config.port;
    const base = `http://${config.host === "0.0.0.0" ? "localhost" : config.host}:${port}`;
    logger.info({ port, embedded: db.embedded }, "API listening");
    if (config.nodeEnv !== "production" && (cluster.worker?.id ?? 1) === 1) {
      process.stdout.write(
        [
          "",
          `  API ready on ${base}  (database: ${db.location})`,
          "",
          "  Get a token (demo users owner@acme.test, staff@acme.test, ... ; password: " + DEMO_PASSWORD + "):",
          `    TOKEN=$(curl -s ${base}/api/v1/auth/login -H 'Content-Type: application/json' \\`,
          `      -d '{"email":"owner@acme.test","password":"${DEMO_PASSWORD}"}' | sed 's/.*"access_token":"\\([^"]*\\)".*/\\1/')`,
          "    # or: TOKEN=$(npm run -s cli -- token --email owner@acme.test)",
          "  First request:",
          `    curl -s ${base}/api/v1/customers -H "Authorization: Bearer $TOKEN" -H 'X-Tenant-Id: acme'`,
          "",
        ].join("\n") + "\n",
      );
    }
  });
  server.on("error", async (error) => {
    logger.fatal({ err: error }, "HTTP server failed");
    await early("listen-failed");
    process.exit(1);
  });
}

/**
 * The hot standbys reads go to (DATABASE_READ_URLS), watched from now on; none when unset, or when
 * reads write (CONTEXT_READ_GUARD=nonce records each read's proof on the primary: it must run there).
 */
function readReplicas(config: Config, pool: (url: string) => ReturnType<typeof createPool>, primary: ReturnType<typeof createPool>["probe"]): Replicas | undefined {
  if (config.databaseReadUrls.length === 0) return undefined;
  if (config.contextReadGuard === "nonce") {
    logger.warn({ replicas: config.databaseReadUrls.length }, "DATABASE_READ_URLS is set but CONTEXT_READ_GUARD=nonce makes every read write its proof's use: reads stay on the primary (use expiry behind PgBouncer to read from replicas; runbooks/scale-out.md)");
    return undefined;
  }
  const replicas = createReplicas({ urls: config.databaseReadUrls, maxLagMs: config.readReplicaMaxLagMs, primary, pool, answerWithinMs: config.dbAcquireTimeoutMs });
  logger.info({ replicas: replicas.report().replicas.map((r) => r.name), max_lag_ms: config.readReplicaMaxLagMs }, "reads go to hot standbys within the lag limit");
  return replicas;
}

main().catch((error) => {
  logger.fatal({ err: error }, "start-up failed");
  console.error(error instanceof Error ? error.message : error);
  process.exit(1);
});
