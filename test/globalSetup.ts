// One PostgreSQL server for the whole run: provisioned, migrated and with policies applied
// once. Test files create their own tenants; nothing is shared between them but the schema.
import { randomBytes } from "node:crypto";
import type { TestProject } from "vitest/node";
import { withOwner } from "../server/db/connections.ts";
import { deploy } from "../server/setup/deploy.ts";
import { provisionDatabase, type RolePasswords } from "../server/setup/provision.ts";
import { startTestServer } from "./testDatabase.ts";

export type TestDatabase = {
  superuserUrl: string; ownerUrl: string; appUrl: string; biUrl: string; passwords: RolePasswords; jwtSecret: string; contextKey: string;
  /** The server's major version (15 by default; EMBEDDED_PG_MAJOR=18). */
  serverMajor: number;
};

declare module "vitest" {
  export interface ProvidedContext {
    db: TestDatabase;
  }
}

export default async function setup(project: TestProject) {
  const server = await startTestServer();
  try {
    const passwords = { owner: "test-owner", app: "test-app", bi: "test-bi" };
    const urls = await provisionDatabase(server.superuserUrl, "shop_test", passwords);
    // Through the deploy's own code, as `npm run cli -- deploy` and `npm start` run it.
    const contextKey = randomBytes(32).toString("hex");
    await deploy(urls.ownerUrl, { contextKey });
    const serverMajor = await withOwner(urls.ownerUrl, async (sql) => Math.floor(Number((await sql`select current_setting('server_version_num') as v`)[0].v) / 10000));
    console.log(`test database: PostgreSQL ${serverMajor} (${server.provider})`);
    project.provide("db", { ...urls, superuserUrl: server.superuserUrl, passwords, jwtSecret: "test-jwt-secret-that-is-long-enough-0123456789", contextKey, serverMajor });
  } catch (error) {
    await server.stop();
    throw error;
  }
  return async () => {
    await server.stop();
  };
}
