// `npm start`: configuration, database (embedded unless DATABASE_URL is set), migrations,
// policies, demo seed (development, first start), then the API, with graceful shutdown.
import { loadConfig, ConfigError } from "./config.ts";
import { createPool } from "./db.ts";
import { openDatabase } from "./localDatabase.ts";
import { logger } from "./log.ts";
import { setPoolMax } from "./metrics.ts";
import { migrate } from "./migrate.ts";
import { applyPolicies } from "./policies.ts";
import { DEMO_PASSWORD, seedDemo } from "./seed.ts";
import { installShutdown } from "./shutdown.ts";
import { useTenantPool } from "./tenantContext.ts";
import { loadTokenKeys } from "./tokens.ts";
import { createApp } from "./app.ts";

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

  const db = await openDatabase(config, (line) => logger.debug({ postgres: line }), { supervise: true });
  const steps = [{ label: "stop embedded database", run: db.stop, timeoutMs: 15_000 }];
  const early = installShutdown(undefined, steps);

  try {
    const ran = await migrate(db.ownerUrl, { log: (m) => logger.info(m) });
    logger.info({ migrations: ran }, ran.length ? "migrations applied" : "migrations at head");
    await applyPolicies(db.ownerUrl);
    logger.info("policies applied");
    if (config.seedDemo && config.nodeEnv !== "production" && (await seedDemo(db.ownerUrl))) logger.info("demo data seeded");
  } catch (error) {
    logger.fatal({ err: error }, "database set-up failed");
    await early("setup-failed");
    process.exit(1);
  }

  const keys = loadTokenKeys({ ...config, jwtSecret: config.jwtSecret ?? db.secrets?.jwtSecret });
  const pool = createPool({
    url: db.appUrl,
    max: config.dbPoolMax,
    connectTimeoutMs: config.dbConnectTimeoutMs,
    statementTimeoutMs: config.dbStatementTimeoutMs,
    idleInTransactionTimeoutMs: config.dbIdleInTransactionTimeoutMs,
    acquireTimeoutMs: config.dbAcquireTimeoutMs,
    maxWaiting: config.dbPoolQueueMax,
    exportMax: config.dbExportPoolMax,
    prepare: config.dbPrepare,
  });
  useTenantPool(pool);
  setPoolMax(config.dbPoolMax);
  const app = createApp({ keys, baseDomain: config.baseDomain, bodyLimit: config.bodyLimit });
  // The shutdown installed for set-up gives way to the one that also drains the server.
  const server = app.listen(config.port, config.host);
  installShutdown(server, [{ label: "close database pool", run: () => pool.end({ timeout: 5 }) }, ...steps]);
  server.on("listening", () => {
    const address = server.address();
    const port = typeof address === "object" && address ? address.port : config.port;
    const base = `http://${config.host === "0.0.0.0" ? "localhost" : config.host}:${port}`;
    logger.info({ port, embedded: db.embedded }, "API listening");
    if (config.nodeEnv !== "production") {
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

main().catch((error) => {
  logger.fatal({ err: error }, "start-up failed");
  console.error(error instanceof Error ? error.message : error);
  process.exit(1);
});
