// The one SQLSTATE table maps data exceptions a client can provoke to 4xx, never a 500. Each
// case provokes the real error from PostgreSQL rather than a hand-made object.
import { describe, expect, it } from "vitest";
import type { Sql } from "../server/db/connections.ts";
import { toAppError } from "../server/core/errors.ts";
import { useDatabase } from "./fixtures.ts";

const { owner } = useDatabase();

async function failureOf(run: (sql: Sql) => Promise<unknown>): Promise<unknown> {
  try {
    await owner.begin(async (sql) => run(sql as unknown as Sql));
  } catch (error) {
    return error;
  }
  throw new Error("the statement succeeded; expected a database error");
}

describe("SQLSTATE → HTTP", () => {
  const cases: [string, string, (sql: Sql) => Promise<unknown>, number, string][] = [
    ["a NUL byte in text", "22021", (sql) => sql`select ${"a\u0000b"}::text`, 422, "INVALID_CHARACTER"],
    ["an integer out of range", "22003", (sql) => sql`select ${"99999999999"}::int`, 422, "VALUE_OUT_OF_RANGE"],
    ["a value too large for an index row", "54000", async (sql) => {
      await sql`create temp table big (v text) on commit drop`;
      await sql`create index on big (v)`;
      await sql`insert into big select string_agg(md5(g::text), '') from generate_series(1, 400) g`;
    }, 422, "VALUE_TOO_LARGE"],
    ["a division by zero (another data exception)", "22012", (sql) => sql`select 1 / ${0}::int`, 422, "INVALID_VALUE"],
  ];
  for (const [label, sqlstate, run, status, code] of cases) {
    it(`${label} (${sqlstate}) → ${status} ${code}`, async () => {
      const error = await failureOf(run);
      expect((error as { code?: string }).code).toBe(sqlstate);
      expect(toAppError(error)).toMatchObject({ status, code });
    });
  }

  it("a URIError (malformed percent-escape) → 400 MALFORMED_URI", () => {
    let error: unknown;
    try {
      decodeURIComponent("%E0");
    } catch (e) {
      error = e;
    }
    expect(toAppError(error)).toMatchObject({ status: 400, code: "MALFORMED_URI" });
  });
});
