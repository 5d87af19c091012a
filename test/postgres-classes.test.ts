// postgres.js's Query and Result constructors keep their optimized code once
// server/db/postgresClasses.ts is loaded (it is, by server/db/connections.ts): without it V8 11.3 (Node 20)
// throws every optimization of them away and tries again, forever.
// The behaviour (queries are built from the very classes the workaround holds) is tested on every
// Node. The effect is read from V8's --trace-opt lines, whose wording and whose optimizer are V8's
// own: those two tests run on the V8 they were written for (11.3) and are skipped, saying so, on
// another, where a new trace would be read first (bench/README.md measures the effect on any Node).
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

/** The V8 the --trace-opt reading below was written for (Node 20's). */
const tracedV8 = /^11\.3\./.test(process.versions.v8);

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

  it.runIf(tracedV8)("with the workaround, constructing Queries and Results keeps their optimized code (V8 11.3's --trace-opt)", () => {
    expect(abortedOptimizations(true)).toBeLessThanOrEqual(2);
  });

  it.runIf(tracedV8)("without it, this Node aborts their optimizations again and again (V8 11.3's --trace-opt; when this fails, server/db/postgresClasses.ts is no longer needed)", () => {
    expect(abortedOptimizations(false)).toBeGreaterThan(10);
  });
});
