// How an operator reaches the database `npm start` uses, without reading the code: the owner,
// app and BI URLs and the JWT secret (`npm run cli -- db-url | psql | env`). With
// DATABASE_URL/DATABASE_OWNER_URL set those are the answer; otherwise the embedded server's
// URLs are built from DATA_DIR/secrets.json and the port it runs on (or will run on).
import { existsSync, readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import type { Config } from "../core/config.ts";
import { clusterDir, runningPostmaster } from "../setup/embedded.ts";
import { DATABASE_NAME, type LocalSecrets } from "../setup/localDatabase.ts";
import { OWNER_ROLE, withCredentials } from "../setup/provision.ts";

export type Access = {
  owner: string; app: string; bi?: string; jwtSecret?: string; contextKey?: string; auditAnchorKey?: string; auditAnchorFile?: string; credentialsKeys?: string;
  apiUrl: string; embedded: boolean; running: boolean;
};

export class NoLocalDatabase extends Error {}

/** The URLs and secret for the configured or embedded database; throws NoLocalDatabase before the first `npm start`. */
export function localAccess(config: Config): Access {
  const apiUrl = `http://${config.host === "0.0.0.0" ? "127.0.0.1" : config.host}:${config.port}`;
  if (config.databaseUrl && config.databaseOwnerUrl) {
    return { owner: config.databaseOwnerUrl, app: config.databaseUrl, contextKey: config.contextKey, apiUrl, embedded: false, running: true };
  }
  const file = join(resolve(config.dataDir), "secrets.json");
  if (!existsSync(file)) throw new NoLocalDatabase(`no embedded database in ${resolve(config.dataDir)} yet: run npm start once (or set DATA_DIR)`);
  const secrets = JSON.parse(readFileSync(file, "utf8")) as LocalSecrets;
  const livePort = runningPostmaster(clusterDir(config.dataDir));
  const base = `postgres://postgres@127.0.0.1:${livePort ?? config.embeddedPgPort}/postgres`;
  return {
    owner: withCredentials(base, OWNER_ROLE, secrets.owner, DATABASE_NAME),
    app: withCredentials(base, "app_user", secrets.app, DATABASE_NAME),
    bi: withCredentials(base, "app_bi", secrets.bi, DATABASE_NAME),
    jwtSecret: config.jwtSecrets ? undefined : secrets.jwtSecret,
    // The keys npm start runs with and the anchor key and file the audit commands default to, so
    // a shell with these exported runs the CLI against the embedded database as npm start does.
    contextKey: config.contextKey ?? secrets.contextKey,
    auditAnchorKey: process.env.AUDIT_ANCHOR_KEY ?? secrets.auditAnchorKey,
    credentialsKeys: config.credentialsKeys ? undefined : secrets.credentialsKeys,
    auditAnchorFile: process.env.AUDIT_ANCHOR_FILE ?? join(resolve(config.dataDir), "audit-anchors.jsonl"),
    apiUrl,
    embedded: true,
    running: livePort !== undefined,
  };
}

/** A value quoted for a POSIX shell (single quotes). */
export function shellQuote(value: string): string {
  return `'${value.replace(/'/g, `'\\''`)}'`;
}
