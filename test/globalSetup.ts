// One PostgreSQL server for the whole run: provisioned, migrated and with policies applied
// once. Test files create their own tenants; nothing is shared between them but the schema.
import { randomBytes } from "node:crypto";
import type { TestProject } from "vitest/node";
import { deploy } from "../server/setup/deploy.ts";
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
    // Through the deploy's own code, as `npm run cli -- deploy` and `npm start` run it.
    const contextKey = randomBytes(32).toString("hex");
    await deploy(urls.ownerUrl, { contextKey });
    project.provide("db", { ...urls, superuserUrl: server.superuserUrl, passwords, jwtSecret: "test-jwt-secret-that-is-long-enough-0123456789", contextKey });
  } catch (error) {
    await server.stop();
    throw error;
  }
  return async () => {
    await server.stop();
  };
}
