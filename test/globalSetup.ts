// One PostgreSQL server for the whole run: provisioned, migrated and with policies applied
// once. Test files create their own tenants; nothing is shared between them but the schema.
import { randomBytes } from "node:crypto";
import type { TestProject } from "vitest/node";
import { installContextKey } from "../server/db/contextProof.ts";
import { withOwner } from "../server/db/connections.ts";
import { migrate } from "../server/setup/migrate.ts";
import { applyPolicies } from "../server/setup/policies.ts";
import { provisionDatabase, type RolePasswords } from "../server/setup/provision.ts";
import { startTestServer } from "./testDatabase.ts";

export type TestDatabase = { superuserUrl: string; ownerUrl: string; appUrl: string; biUrl: string; passwords: RolePasswords; jwtSecret: string; contextKey: string };

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
    await migrate(urls.ownerUrl);
    await applyPolicies(urls.ownerUrl);
    const contextKey = randomBytes(32).toString("hex");
    await withOwner(urls.ownerUrl, (owner) => installContextKey(owner, contextKey));
    project.provide("db", { ...urls, superuserUrl: server.superuserUrl, passwords, jwtSecret: "test-jwt-secret-that-is-long-enough-0123456789", contextKey });
  } catch (error) {
    await server.stop();
    throw error;
  }
  return async () => {
    await server.stop();
  };
}
