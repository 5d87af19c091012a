// The API's HTTP server builds requests and responses with the Express app's prototypes
// (server/http/httpServer.ts), so Express's per-request setPrototypeOf changes nothing and V8's inline
// caches in Node's HTTP code hold, instead of missing on every request.
// The prototypes are tested on every Node. The cache misses are read from V8's --log-ic output,
// whose format is V8's own: counted on the V8 the reading was written for (11.3, Node 20), and
// skipped, saying so, on another.
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";

/** 4,000 GETs served by test/httpServerLoop.ts: their answer, and (logIc) the inline-cache misses V8 logged at Node's `_header` store. */
function serve(plainServer: boolean, logIc = true): { answer: Record<string, unknown>; misses: number } {
  const dir = mkdtempSync(join(tmpdir(), "rls-shop-ic-"));
  try {
    const log = join(dir, "ic.log");
    const flags = logIc ? ["--log-ic", `--logfile=${log}`, "--no-logfile-per-isolate"] : [];
    const run = spawnSync(process.execPath, [...flags, "--import", "tsx", "test/httpServerLoop.ts"], {
      env: { ...process.env, PLAIN_SERVER: plainServer ? "1" : "0" },
      encoding: "utf8",
    });
    expect(run.status, run.stderr).toBe(0);
    const misses = logIc ? readFileSync(log, "utf8").split("\n").filter((line) => /^StoreIC,/.test(line) && line.split(",")[8] === "_header").length : 0;
    return { answer: JSON.parse(run.stdout), misses };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The V8 the --log-ic reading below was written for (Node 20's). */
const tracedV8 = /^11\.3\./.test(process.versions.v8);

describe("the HTTP server", () => {
  it("hands Express requests and responses that already have the app's prototypes", () => {
    expect(serve(false, false).answer).toEqual({ id: "1", sameRequestPrototype: true, sameResponsePrototype: true });
  });

  it.runIf(tracedV8)("V8's inline cache at Node's _header store holds (V8 11.3's --log-ic)", () => {
    expect(serve(false).misses).toBeLessThan(50);
  });

  it.runIf(tracedV8)("a plain http.createServer(app) misses the same cache on about every request, what the server avoids (V8 11.3's --log-ic)", () => {
    const { answer, misses } = serve(true);
    expect(answer).toEqual({ id: "1", sameRequestPrototype: true, sameResponsePrototype: true });
    expect(misses).toBeGreaterThan(2000);
  });
});
