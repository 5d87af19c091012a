// Where the database is: DATABASE_URL (and DATABASE_OWNER_URL when given: the production API
// never has it) when set, otherwise the embedded server under DATA_DIR, provisioned on first use
// with passwords kept in DATA_DIR/secrets.json (git-ignored, mode 0600), next to the development
// JWT secret and credentials key ring.
import { existsSync, readFileSync, writeFileSync, mkdirSync } from "node:fs";
import { randomBytes } from "node:crypto";
import { join, resolve } from "node:path";
import type { Config } from "../core/config.ts";
import { parseCredentialKey } from "../core/credentialCipher.ts";
import { parseKeyRing, singleKeyRing, type KeyRing } from "../core/keyRing.ts";
import { clusterDir, startEmbedded, type EmbeddedServer } from "./embedded.ts";
import { logger } from "../core/log.ts";
import { provisionDatabase, type DatabaseUrls } from "./provision.ts";

export type LocalSecrets = {
  superuser: string; owner: string; app: string; bi: string; jwtSecret: string; contextKey: string; auditAnchorKey: string; biAcme: string;
  /** The development CREDENTIALS_KEYS ring, in its own syntax. */
  credentialsKeys: string;
};
export type Database = Omit<DatabaseUrls, "ownerUrl"> & {
  /** The owner role's URL: the embedded database's, or DATABASE_OWNER_URL; none for an API given DATABASE_URL only (production). */
  ownerUrl?: string;
  embedded: boolean; stop: () => Promise<void>; secrets?: LocalSecrets; location: string;
};

export const DATABASE_NAME = "shop";

export function loadOrCreateSecrets(dataDir: string): LocalSecrets {
  const file = join(resolve(dataDir), "secrets.json");
  const secret = () => randomBytes(24).toString("base64url");
  const fresh = (): LocalSecrets => ({
    superuser: secret(), owner: secret(), app: secret(), bi: secret(), jwtSecret: randomBytes(48).toString("base64url"),
    contextKey: randomBytes(32).toString("hex"), auditAnchorKey: randomBytes(32).toString("hex"), biAcme: secret(),
    credentialsKeys: `*dev-1=${randomBytes(32).toString("hex")}`,
  });
  if (existsSync(file)) {
    const kept = JSON.parse(readFileSync(file, "utf8")) as Partial<LocalSecrets>;
    // A secrets.json from an earlier release: add the secrets it lacks, keep the rest.
    const secrets = { ...fresh(), ...kept } as LocalSecrets;
    if (Object.keys(secrets).length !== Object.keys(kept).length) writeFileSync(file, `${JSON.stringify(secrets, null, 2)}\n`, { mode: 0o600 });
    return secrets;
  }
  mkdirSync(resolve(dataDir), { recursive: true, mode: 0o755 });
  const secrets = fresh();
  writeFileSync(file, `${JSON.stringify(secrets, null, 2)}\n`, { mode: 0o600 });
  return secrets;
}

/**
 * The JWT and credentials key rings a process runs with: the configured ones (JWT_SECRET(S),
 * CREDENTIALS_KEYS), else those of the embedded database's secrets.json (development).
 */
export function localKeyRings(config: Config, secrets: LocalSecrets | undefined): { jwtSecrets?: KeyRing<string>; credentialsKeys?: KeyRing<string> } {
  return {
    jwtSecrets: config.jwtSecrets ?? (secrets ? singleKeyRing(secrets.jwtSecret) : undefined),
    credentialsKeys: config.credentialsKeys ?? (secrets ? parseKeyRing("secrets.json credentialsKeys", secrets.credentialsKeys, (v) => (parseCredentialKey(v), v)) : undefined),
  };
}

/**
 * `supervise` (npm start): nothing else restarts the embedded server, so when it dies the API
 * starts it again on the same folder and port (crash recovery replays its WAL), retrying while
 * the dead server's children still hold its shared memory, and logs the outage and the recovery.
 */
export async function openDatabase(config: Config, log: (line: string) => void = () => {}, options: { supervise?: boolean } = {}): Promise<Database> {
  if (config.databaseUrl) {
    return { appUrl: config.databaseUrl, ownerUrl: config.databaseOwnerUrl, biUrl: "", embedded: false, stop: async () => {}, location: "DATABASE_URL" };
  }
  const secrets = loadOrCreateSecrets(config.dataDir);
  let stopped = false;
  const start = (): Promise<EmbeddedServer> =>
    startEmbedded({
      dir: clusterDir(config.dataDir), port: config.embeddedPgPort, major: config.embeddedPgMajor, superuserPassword: secrets.superuser, onLog: log,
      onExit: options.supervise ? restart : undefined,
    });
  const restart = async (how: { code: number | null; signal: NodeJS.Signals | null }) => {
    const since = performance.now();
    logger.error({ exit_code: how.code, signal: how.signal, help: "runbooks/incident-database-unavailable.md" }, "embedded PostgreSQL exited unexpectedly; restarting it");
    for (let attempt = 1; !stopped; attempt++) {
      try {
        server = await start();
        if (stopped) return void (await server.stop());
        logger.info({ attempt, down_ms: Math.round(performance.now() - since) }, "embedded PostgreSQL recovered");
        return;
      } catch (error) {
        if (attempt % 50 === 1) logger.warn({ err: error, attempt }, "embedded PostgreSQL did not start yet; retrying");
        await new Promise((r) => setTimeout(r, Math.min(100 * attempt, 1000)));
      }
    }
  };
  let server = await start();
  const stop = async () => {
    stopped = true;
    await server.stop();
  };
  try {
    const urls = await provisionDatabase(server.superuserUrl, DATABASE_NAME, { owner: secrets.owner, app: secrets.app, bi: secrets.bi });
    return { ...urls, embedded: true, stop, secrets, location: `embedded PostgreSQL on port ${server.port}, data in ${server.dataDir}` };
  } catch (error) {
    await stop();
    throw error;
  }
}
