// The layers of server/ and the absence of import cycles, as .dependency-cruiser.cjs states them
// (npm run lint runs the same check): the tree as it stands passes, and a scratch tree with an
// upward import, a cycle and a module only tests would reach fails, naming each.
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { describe, expect, it } from "vitest";
import { root, run } from "./scratch.ts";

const depcruise = (cwd: string) =>
  run("bash", ["-c", `cd "${cwd}" && "${root}/node_modules/.bin/depcruise" server --config "${root}/.dependency-cruiser.cjs"`]);

describe("server/ architecture", () => {
  it("has no import cycle and no import from a lower layer up into a higher one", async () => {
    const r = await run("node_modules/.bin/depcruise", ["server", "test", "bench", "--config", ".dependency-cruiser.cjs"]);
    expect(r.output).toContain("no dependency violations found");
    expect(r.code).toBe(0);
  });

  it("canary: an upward import, a cycle and a module only tests reach are each refused by name", async () => {
    const dir = await mkdtemp(join(tmpdir(), "rls-shop-layers-"));
    try {
      const files: Record<string, string> = {
        "tsconfig.json": JSON.stringify({ compilerOptions: { module: "NodeNext", moduleResolution: "NodeNext", allowImportingTsExtensions: true, noEmit: true } }),
        "server/main.ts": 'import "./core/low.ts";\nimport "./http/high.ts";\n',
        "server/cli.ts": "export {};\n",
        "server/core/low.ts": 'import { high } from "../http/high.ts";\nexport const low = () => high;\n',
        "server/http/high.ts": 'import { low } from "../core/low.ts";\nexport const high = () => low;\n',
        "server/db/onlyForTests.ts": "export const probe = 1;\n",
      };
      for (const [path, text] of Object.entries(files)) {
        await mkdir(dirname(join(dir, path)), { recursive: true });
        await writeFile(join(dir, path), text);
      }
      const r = await depcruise(dir);
      expect(r.code).not.toBe(0);
      expect(r.output).toMatch(/layer-core: server\/core\/low\.ts → server\/http\/high\.ts/);
      expect(r.output).toMatch(/no-cycle: server\/core\/low\.ts →/);
      expect(r.output).toMatch(/no-test-only-modules: server\/db\/onlyForTests\.ts/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
