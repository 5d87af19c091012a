// Run by test/postgres-classes.test.ts under `node --trace-opt`: builds postgres.js Queries and
// Results as a busy API does, with server/db/postgresClasses.ts loaded first or (WORKAROUND=0) not.
// No query is executed, so the client never connects.
const { default: postgres } = await import("postgres");
const { keepPostgresClassesOptimizable, postgresClasses } = await import("../server/db/postgresClasses.ts");
if (process.env.WORKAROUND !== "0") keepPostgresClassesOptimizable();
const Result = postgresClasses.Result as new () => unknown[];

const sql = postgres("postgres://nobody@127.0.0.1:9/none", { max: 1, onnotice: () => {} });
let kept: unknown[][] = [];
for (let i = 0; i < 300_000; i++) {
  const result = new Result();
  result.push(sql`select ${i}`);
  kept.push(result);
  if (kept.length >= 1000) kept = [];
}
console.log(`built ${kept.length} kept`);
