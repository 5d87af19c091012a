// The PostgreSQL server the suite runs against: embedded (default), TEST_DATABASE_URL (a
// superuser URL on a disposable server), or PG_PROVIDER=testcontainers (needs Docker).
import { mkdtemp, chmod, rm } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { embeddedMajor, startEmbedded } from "../server/setup/embedded.ts";

export type TestServer = { superuserUrl: string; stop: () => Promise<void>; provider: string };

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
  });
}

async function embedded(): Promise<TestServer> {
  const root = await mkdtemp(join(tmpdir(), "rls-shop-test-"));
  await chmod(root, 0o755); // the postgres system user must reach the data folder
  const server = await startEmbedded({ dir: join(root, "pg"), port: await freePort(), superuserPassword: "test-superuser" });
  return {
    provider: "embedded",
    superuserUrl: server.superuserUrl,
    stop: async () => {
      await server.stop();
      await rm(root, { recursive: true, force: true });
    },
  };
}

async function testcontainers(): Promise<TestServer> {
  const { GenericContainer, Wait } = await import("testcontainers");
  let container;
  try {
    container = await new GenericContainer(`postgres:${embeddedMajor()}`)
      .withEnvironment({ POSTGRES_PASSWORD: "test-superuser" })
      .withExposedPorts(5432)
      .withWaitStrategy(Wait.forLogMessage(/database system is ready to accept connections/, 2))
      .start();
  } catch (error) {
    throw new Error(
      `PG_PROVIDER=testcontainers needs a reachable Docker engine, and none answered (${(error as Error).message}). ` +
        `Unset PG_PROVIDER to use the embedded PostgreSQL, or set TEST_DATABASE_URL.`,
    );
  }
  return {
    provider: "testcontainers",
    superuserUrl: `postgres://postgres:test-superuser@${container.getHost()}:${container.getMappedPort(5432)}/postgres`,
    stop: async () => void (await container.stop()),
  };
}

export async function startTestServer(): Promise<TestServer> {
  if (process.env.TEST_DATABASE_URL) {
    return { provider: "external", superuserUrl: process.env.TEST_DATABASE_URL, stop: async () => {} };
  }
  if (process.env.PG_PROVIDER === "testcontainers") return testcontainers();
  if (process.env.PG_PROVIDER && process.env.PG_PROVIDER !== "embedded") {
    throw new Error(`PG_PROVIDER must be "embedded" or "testcontainers", not "${process.env.PG_PROVIDER}"`);
  }
  return embedded();
}
