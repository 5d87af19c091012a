// Keeps postgres.js's Query and Result constructors optimizable on Node 20 (V8 11.3).
//
// postgres.js 3.4.9 declares both with a computed static accessor, `static get [Symbol.species]()`
// (Query extends Promise, Result extends Array). V8 keeps such a class constructor in dictionary
// mode, and optimized code that constructs it depends on the constructor's map being stable, which
// a dictionary map never is: every TurboFan optimization of Query, Result and of the functions
// inlining them (sql, ReadyForQuery) is thrown away ("Bailed out due to dependency change") and
// tried again, forever. Measured on the API under load: about 250 aborted optimizations per
// 20,000 requests, each a few ms of compiler time; in a loop, 3 million Results took 27 s.
// Declaring a subclass of each makes V8 turn the constructor into a fast-mode prototype, and
// the optimizations then stick. Nothing else changes: the classes, their species (Array,
// Promise) and every object postgres.js returns are the same.
//
// Measured (bench/README.md): a GET by id costs 14% fewer instructions in the API (1,903k against
// 1,640k under callgrind) and 11% fewer in the bench's floor, which uses it too; under load the
// Node CPU per GET dropped by 15% on both. test/postgres-classes.test.ts proves the effect on V8
// 11.3 (Node 20), where its --trace-opt reading was written, and fails, asking for this file's
// removal, once that Node no longer needs it; on another V8 it skips those checks, saying so: read a
// new --trace-opt (test/postgresClassesLoop.ts) before keeping or removing this file there.
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { pathToFileURL } from "node:url";

type Constructor = new (...args: never[]) => object;

// The modules the "postgres" import itself loads (src/, its ESM entry's folder), so these are the
// very classes every query uses. The package exports only its entry, so the files are found from
// the package's folder (require.resolve names its CommonJS entry, cjs/src/index.js).
const packageDir = dirname(dirname(dirname(createRequire(import.meta.url).resolve("postgres"))));
const esm = (file: string) => pathToFileURL(join(packageDir, "src", file)).href;
const { Query } = (await import(esm("query.js"))) as { Query: Constructor };
const { default: Result } = (await import(esm("result.js"))) as { default: Constructor };

/** postgres.js's own classes (a test checks they are the ones queries use). */
export const postgresClasses = { Query, Result };

// Held, so the subclasses live as long as the process (V8 needs no more than their declaration).
const subclasses: Constructor[] = [];

/** Declares a subclass of each, once: from then on V8 keeps their optimized code. */
export function keepPostgresClassesOptimizable(): void {
  if (subclasses.length === 0) for (const base of Object.values(postgresClasses)) subclasses.push(class extends base {});
}
