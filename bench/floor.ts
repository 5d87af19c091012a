// Bench only: the floor the API is measured against. A bare Express 5 + postgres.js server on
// the API's database, as the API's role (app_user, NOBYPASSRLS), with the API's pool size:
// each request is BEGIN, one set_config statement, the query and COMMIT, pipelined on a
// reserved connection. No authentication, no membership or permission check, no validation
// beyond the uuid cast, no logs, no metrics: what the API would cost if it were nothing but
// the transaction. The tenant comes from X-Tenant-Id (a uuid), the user from X-User-Id.
// It writes the context by hand with set_config, which only the floor may do: once issue 14
// makes the context unforgeable, this floor answers 404 and empty lists, and the bench reports
// those as errors instead of a faster floor.
import express, { type Request, type Response } from "express";
import postgres from "postgres";

const sql = postgres(process.env.DATABASE_URL!, {
  max: Number(process.env.DB_POOL_MAX ?? 16),
  onnotice: () => {},
  connection: { application_name: "rls-service-shop-floor" },
});

/** BEGIN, context, the query, COMMIT: written together, answered in one round trip. */
async function inTenant(req: Request, query: (r: postgres.ReservedSql) => postgres.PendingQuery<postgres.Row[]>): Promise<postgres.Row[]> {
  const r = await sql.reserve();
  try {
    const [, , rows] = await Promise.all([
      r`begin`.execute(),
      r`select set_config('app.tenant_id', ${req.get("x-tenant-id") ?? ""}, true), set_config('app.user_id', ${req.get("x-user-id") ?? ""}, true),
               set_config('app.role', 'owner', true)`.execute(),
      query(r).execute(),
      r`commit`.execute(),
    ]);
    return rows;
  } finally {
    r.release();
  }
}

const app = express();
app.disable("x-powered-by");
app.set("etag", false);
app.get("/readyz", (_req, res) => void res.json({ ok: true }));

app.get("/api/v1/customers/:id", async (req: Request<{ id: string }>, res: Response) => {
  const [row] = await inTenant(req, (r) => r`select id, name, email, phone, notes, created_at, updated_at from app.customers where id = ${req.params.id}::uuid`);
  if (!row) res.status(404).json({ error: { code: "CUSTOMER_NOT_FOUND" } });
  else res.json(row);
});

app.get("/api/v1/customers", async (req, res) => {
  const limit = Math.min(Number(req.query.limit ?? 50) || 50, 200);
  const rows = await inTenant(req, (r) => r`select id, name, email, phone, notes, created_at, updated_at from app.customers order by name, id limit ${limit + 1}`);
  res.json({ data: rows.slice(0, limit), next_cursor: null });
});

app.post("/api/v1/customers", express.json(), async (req, res) => {
  const [row] = await inTenant(req, (r) => r`insert into app.customers (name) values (${String(req.body?.name)}) returning id, name, email, phone, notes, created_at, updated_at`);
  res.status(201).json(row);
});

const server = app.listen(Number(process.env.PORT), "127.0.0.1");
process.on("SIGTERM", () => server.close(() => void sql.end({ timeout: 5 }).then(() => process.exit(0))));
