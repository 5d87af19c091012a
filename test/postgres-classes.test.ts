// postgres.js's Query and Result constructors keep their optimized code once
// server/db/postgresClasses.ts is loaded (it is, by server/db/connections.ts): without it V8 11.3 (Node 20)
// throws every optimization of them away and tries again, forever.
import { spawnSync } from "node:child_process";
import { describe, expect, it } from "vitest";
import { postgresClasses } from "../server/db/postgresClasses.ts";
import { appUserSql } from "./fixtures.ts";

/** Optimizations of postgres.js's constructors (and of the functions that inline them) V8 aborted, in one run of the loop. */
function abortedOptimizations(workaround: boolean): number {
  const run = spawnSync(process.execPath, ["--trace-opt", "--import", "tsx", "test/postgresClassesLoop.ts"], {
    env: { ...process.env, WORKAROUND: workaround ? "1" : "0" },
    encoding: "utf8",
    maxBuffer: 256 * 1024 * 1024,
  });
  expect(run.status, run.stderr).toBe(0);
  expect(run.stdout).toContain("built");
  return run.stdout.split("\n").filter((line) => /^\[aborted optimizing .*<JSFunction (Query|Result|sql)\b.*dependency change/.test(line)).length;
}

describe("postgres.js classes", () => {
  it("the workaround holds the very Query and Result classes every query uses", async () => {
    const sql = appUserSql();
    try {
      const rows = await sql`select 1 as one`;
      expect(Object.getPrototypeOf(rows).constructor).toBe(postgresClasses.Result);
      expect(Object.getPrototypeOf(sql`select 1`).constructor).toBe(postgresClasses.Query);
      expect(rows.map((r) => r.one)).toEqual([1]);
      expect(Object.getPrototypeOf(rows.map((r) => r)).constructor).toBe(Array);
    } finally {
      await sql.end({ timeout: 5 });
    }
  });

  it("with the workaround, constructing Queries and Results keeps their optimized code", () => {
    expect(abortedOptimizations(true)).toBeLessThanOrEqual(2);
  });

  it("without it, this Node aborts their optimizations again and again (when this fails, server/db/postgresClasses.ts is no longer needed)", () => {
    expect(abortedOptimizations(false)).toBeGreaterThan(10);
  });
});
