// Bench only: the floor the API is measured against. A bare Express 5 + postgres.js server on
// the API's database, as the API's role (app_user, NOBYPASSRLS), with the API's pool size:
// each request is BEGIN, the context, the query and COMMIT, pipelined on a reserved connection.
// No authentication, no validation beyond the uuid cast, no logs, no metrics: what the API would
// cost if it were nothing but the transaction. The tenant comes from X-Tenant-Id (a uuid), the
// user from X-User-Id. The context is opened as the API opens it, with a proof signed under
// CONTEXT_KEY (a setting written by hand is no context since issue 14), under the same replay
// guards (server/proofGuards.ts: reads bound to their connection, writes on the connection's
// stream), so each connection is a client of its own, as the API's are: the floor pays the same
// database work, so API / floor measures what the API layer adds; bench/contextCost.ts measures
// the opener against a bare set_config. It carries the API's two mends of the libraries both use
// (server/db/postgresClasses.ts, server/http/httpServer.ts), not any of the API layer's own work: without
// them a bare handler spends about half again as much Node CPU (bench/README.md). With FLOOR_PLAIN=1
// it runs without them, as a bare handler written today would: the bench's "plain floor" row.
import { createServer } from "node:http";
import express, { type Request, type Response } from "express";
import postgres from "postgres";
import { keepPostgresClassesOptimizable } from "../server/db/postgresClasses.ts";
import { createHttpServer } from "../server/http/httpServer.ts";
import { tenantContextProof, useContextKey } from "../server/db/contextProof.ts";
import { guardFor, guardSpent, type ProofState } from "../server/db/proofGuards.ts";

const plain = process.env.FLOOR_PLAIN === "1";
if (!plain) keepPostgresClassesOptimizable();
useContextKey(process.env.CONTEXT_KEY!);

type Client = { sql: postgres.Sql; proofs: ProofState; closes: number };
const clients: Client[] = Array.from({ length: Number(process.env.DB_POOL_MAX ?? 16) }, () => {
  const client = { proofs: {}, closes: 0 } as Client;
  client.sql = postgres(process.env.DATABASE_URL!, {
    max: 1,
    onnotice: () => {},
    onclose: () => void client.closes++,
    connection: { application_name: plain ? "rls-service-shop-floor-plain" : "rls-service-shop-floor" },
  });
  return client;
});
const free = [...clients];
const waiting: ((c: Client) => void)[] = [];
const acquire = (): Promise<Client> => (free.length ? Promise.resolve(free.pop()!) : new Promise((resolve) => waiting.push(resolve)));
const release = (c: Client) => (waiting.length ? waiting.shift()!(c) : void free.push(c));

/** BEGIN, context, the query, COMMIT: written together, answered in one round trip. */
async function inTenant(req: Request, writes: boolean, query: (r: postgres.Sql) => postgres.PendingQuery<postgres.Row[]>): Promise<postgres.Row[]> {
  const c = await acquire();
  try {
    const r = c.sql;
    const g = await guardFor(writes, "connection", 10, r as never, c.proofs, c.closes);
    const a = { userId: req.get("x-user-id") ?? "", tenantRefs: [req.get("x-tenant-id") ?? ""], scope: null, requestId: "floor", permission: writes ? "customers:write" : "customers:read", forRow: false, writes };
    const p = tenantContextProof(a, g.guard, g.expiresAt);
    const settled = await Promise.allSettled([
      r`begin`.execute(),
      r`select from app.open_tenant_context(${a.userId}::uuid, ${a.tenantRefs}::text[], null, 'floor', ${a.permission}, false, ${writes}, ${g.guard}, ${p.expiresAt}::int8, ${p.nonce}, ${p.proof})`.execute(),
      query(r).execute(),
      r`commit`.execute(),
    ]);
    g.settled(guardSpent(settled[1]));
    const failed = settled.find((x): x is PromiseRejectedResult => x.status === "rejected");
    if (failed) throw failed.reason;
    return (settled[2] as PromiseFulfilledResult<postgres.Row[]>).value;
  } finally {
    release(c);
  }
}

const app = express();
app.disable("x-powered-by");
app.set("etag", false);
app.get("/readyz", (_req, res) => void res.json({ ok: true }));

app.get("/api/v1/customers/:id", async (req: Request<{ id: string }>, res: Response) => {
  const [row] = await inTenant(req, false, (r) => r`select id, name, email, phone, notes, created_at, updated_at from app.customers where id = ${req.params.id}::uuid`);
  if (!row) res.status(404).json({ error: { code: "CUSTOMER_NOT_FOUND" } });
  else res.json(row);
});

app.get("/api/v1/customers", async (req, res) => {
  const limit = Math.min(Number(req.query.limit ?? 50) || 50, 200);
  const rows = await inTenant(req, false, (r) => r`select id, name, email, phone, notes, created_at, updated_at from app.customers order by name, id limit ${limit + 1}`);
  res.json({ data: rows.slice(0, limit), next_cursor: null });
});

app.post("/api/v1/customers", express.json(), async (req, res) => {
  const [row] = await inTenant(req, true, (r) => r`insert into app.customers (name) values (${String(req.body?.name)}) returning id, name, email, phone, notes, created_at, updated_at`);
  res.status(201).json(row);
});

const server = (plain ? createServer(app) : createHttpServer(app)).listen(Number(process.env.PORT), "127.0.0.1");
process.on("SIGTERM", () => server.close(() => void Promise.all(clients.map((c) => c.sql.end({ timeout: 5 }))).then(() => process.exit(0))));
