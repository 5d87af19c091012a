// The API's HTTP server builds requests and responses with the Express app's prototypes
// (server/http/httpServer.ts), so Express's per-request setPrototypeOf changes nothing and V8's inline
// caches in Node's HTTP code hold, instead of missing on every request.
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";

/** 4,000 GETs served by test/httpServerLoop.ts: their answer, and the inline-cache misses V8 logged at Node's `_header` store. */
function serve(plainServer: boolean): { answer: Record<string, unknown>; misses: number } {
  const dir = mkdtempSync(join(tmpdir(), "rls-shop-ic-"));
  try {
    const log = join(dir, "ic.log");
    const run = spawnSync(process.execPath, ["--log-ic", `--logfile=${log}`, "--no-logfile-per-isolate", "--import", "tsx", "test/httpServerLoop.ts"], {
      env: { ...process.env, PLAIN_SERVER: plainServer ? "1" : "0" },
      encoding: "utf8",
    });
    expect(run.status, run.stderr).toBe(0);
    const misses = readFileSync(log, "utf8").split("\n").filter((line) => /^StoreIC,/.test(line) && line.split(",")[8] === "_header").length;
    return { answer: JSON.parse(run.stdout), misses };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

describe("the HTTP server", () => {
  it("hands Express requests and responses that already have the app's prototypes, and V8's caches hold", () => {
    const { answer, misses } = serve(false);
    expect(answer).toEqual({ id: "1", sameRequestPrototype: true, sameResponsePrototype: true });
    expect(misses).toBeLessThan(50);
  });

  it("a plain http.createServer(app) misses the same cache on about every request (what the server avoids)", () => {
    const { answer, misses } = serve(true);
    expect(answer).toEqual({ id: "1", sameRequestPrototype: true, sameResponsePrototype: true });
    expect(misses).toBeGreaterThan(2000);
  });
});
