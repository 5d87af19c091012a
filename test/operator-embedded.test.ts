// The README's operator commands run exactly as written against `npm start`'s embedded
// database, as a new user meets them: npm start in one terminal, the README's block in another
// (a shell with only DATA_DIR, EMBEDDED_PG_PORT and PORT chosen, so the test gets free ports).
import { spawn, type ChildProcess } from "node:child_process";
import { readFileSync } from "node:fs";
import { chmod, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { root, run } from "./scratch.ts";
import { freePort } from "./testDatabase.ts";

let dataDir: string;
let env: Record<string, string>;
let child: ChildProcess;
let exited: Promise<number | null>;

/** The README's fenced shell block that contains `needle`. */
function readmeBlock(needle: string): string {
  const readme = readFileSync(join(root, "README.md"), "utf8");
  const block = [...readme.matchAll(/```sh\n([\s\S]*?)```/g)].map((m) => m[1]).find((b) => b.includes(needle));
  if (!block) throw new Error(`README.md has no shell block with ${needle}`);
  return block;
}

beforeAll(async () => {
  dataDir = await mkdtemp(join(tmpdir(), "rls-shop-operator-"));
  await chmod(dataDir, 0o755);
  // The operator's shell: no database URLs or secrets of the test run leak into it.
  env = { DATA_DIR: dataDir, EMBEDDED_PG_PORT: String(await freePort()), PORT: String(await freePort()), DATABASE_URL: "", DATABASE_OWNER_URL: "", JWT_SECRET: "", API_URL: "" };
  child = spawn(process.execPath, ["--import", "tsx", "server/main.ts"], {
    cwd: root, env: { ...process.env, ...env, NODE_ENV: "development", LOG_LEVEL: "info" }, stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  child.stdout!.on("data", (c) => (out += c));
  child.stderr!.on("data", (c) => (out += c));
  exited = new Promise((resolve) => child.on("exit", (code) => resolve(code)));
  await new Promise<void>((resolve, reject) => {
    const timer = setInterval(() => {
      if (/API ready on/.test(out)) {
        clearInterval(timer);
        resolve();
      }
    }, 100);
    void exited.then((code) => {
      clearInterval(timer);
      reject(new Error(`npm start exited early (${code}):\n${out}`));
    });
  });
});

afterAll(async () => {
  child?.kill("SIGTERM");
  expect(await exited).toBe(0);
  await rm(dataDir, { recursive: true, force: true });
});

describe("README operator commands against npm start's embedded database", () => {
  it("the block runs as written: env, golive-status with the API, catalog, db-url, psql, the catalog API check", async () => {
    const block = readmeBlock("npm run -s cli -- env");
    const r = await run("bash", ["-c", `set -euo pipefail\n${block}`], env);
    expect(r.code, r.output).toBe(0);
    expect(r.output).toContain("PASS isolation and fail-closed probe by behaviour");
    expect(r.output).toContain("PASS API /readyz 200");
    expect(r.output).toContain("golive-status: all checks passed");
    expect(r.output).toContain("catalog: ok");
    expect(r.output).toMatch(/^postgres:\/\/app_user:[^@]+@127\.0\.0\.1:\d+\/shop$/m);
    expect(r.output).toContain("PASS operations ordered by display_order ascending, NULLs last");
    expect(r.output).toContain("test-catalog-api: all checks passed");
  }, 180_000);

  it("cli psql --as app connects as app_user and sees no row without a tenant context", async () => {
    const r = await run("bash", ["-c", "npm run -s cli -- psql --as app -- -X -At -c 'select current_user, count(*) from app.customers'"], env);
    expect(r.code, r.output).toBe(0);
    expect(r.output).toMatch(/^app_user\|0$/m);
  });

  it("cli env prints export lines that name the embedded database and the running API", async () => {
    const r = await run("bash", ["-c", "npm run -s cli -- env"], env);
    expect(r.code, r.output).toBe(0);
    expect(r.output).toMatch(new RegExp(`^export DATABASE_OWNER_URL='postgres://app_owner:[^@]+@127\\.0\\.0\\.1:${env.EMBEDDED_PG_PORT}/shop'$`, "m"));
    expect(r.output).toMatch(/^export JWT_SECRET='[^']{32,}'$/m);
    expect(r.output).toMatch(/^export CONTEXT_KEY='[0-9a-f]{64}'$/m);
    expect(r.output).toMatch(/^export AUDIT_ANCHOR_KEY='[0-9a-f]{64}'$/m);
    expect(r.output).toMatch(/^export AUDIT_ANCHOR_FILE='[^']+audit-anchors\.jsonl'$/m);
    expect(r.output).toContain(`export API_URL='http://127.0.0.1:${env.PORT}'`);
  });
});
