// The API's pool reads a timestamptz straight into its JSON text (server/db/connections.ts): the answer
// must be the text a Date would have given, whatever the value.
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { timestamptzToJson } from "../server/db/connections.ts";

const pad = (n: number, w: number) => String(n).padStart(w, "0");

describe("timestamptz in answers", () => {
  it("writes every UTC timestamp PostgreSQL prints as a Date's JSON would", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1000, max: 9999 }), fc.integer({ min: 1, max: 12 }), fc.integer({ min: 1, max: 28 }),
        fc.integer({ min: 0, max: 23 }), fc.integer({ min: 0, max: 59 }), fc.integer({ min: 0, max: 59 }),
        fc.option(fc.stringMatching(/^\d{1,6}$/), { nil: undefined }),
        (y, mo, d, h, mi, s, fraction) => {
          const text = `${pad(y, 4)}-${pad(mo, 2)}-${pad(d, 2)} ${pad(h, 2)}:${pad(mi, 2)}:${pad(s, 2)}${fraction === undefined ? "" : `.${fraction}`}+00`;
          expect(JSON.stringify(timestamptzToJson(text))).toBe(JSON.stringify(new Date(text)));
        },
      ),
      { numRuns: 2000 },
    );
  });

  it("leaves other zones, infinity and BC to a Date", () => {
    for (const text of ["2026-11-23 21:00:00.123-08", "2026-11-23 21:00:00+05:30", "infinity", "-infinity", "0044-03-15 12:00:00+00 BC"]) {
      expect(JSON.stringify(timestamptzToJson(text))).toBe(JSON.stringify(new Date(text)));
    }
  });
});
