// What the unforgeable tenant context costs the database (policies/openers.sql, proofs.sql):
//   * per call of app.open_tenant_context (proof check, guard, membership, status and permission,
//     sealed settings), against a bare set_config, on a fresh connection and again after that
//     connection prepared 100 statements (the first wave's opener slowed as a connection held more);
//   * per call as the API makes it, one call per transaction, one client: the backend's CPU for
//     BEGIN, the opener, SELECT 1, COMMIT against BEGIN, a SELECT of the same parameters, SELECT 1,
//     COMMIT; for a read (read-only, its proof bound to the connection: no transaction id, no
//     write) against an empty read-only transaction, and for a write (its proof recorded on the
//     connection's stream) against an empty transaction;
//   * the API's transaction shape (BEGIN, the opener, a by-id SELECT under RLS, COMMIT, pipelined,
//     as app_user) against the bare shape (BEGIN, set_config, the same SELECT with an explicit
//     tenant filter, COMMIT, as the owner), side by side in interleaved rounds.
import { readFileSync } from "node:fs";
import postgres from "postgres";
import { tenantContextProof } from "../server/db/contextProof.ts";
import { expiryGuard, sessionGuard, streamGuard, type ProofState } from "../server/db/proofGuards.ts";
import { sqlLoad, type LoadResult } from "./sqlLoad.ts";

type Member = { tenantId: string; userId: string };
type Customer = { tenantId: string; id: string };

/**
 * µs per call: one statement making `calls` calls, timed from the client. The one round trip
 * and the array parameters add a few µs in total, under 0.1 µs per call at 5,000 calls.
 */
async function perCall(sql: postgres.ReservedSql, statement: string, params: unknown[], calls: number): Promise<number> {
  await sql`begin`;
  try {
    const t0 = performance.now();
    await sql.unsafe(statement, params as never[]);
    return ((performance.now() - t0) * 1000) / calls;
  } finally {
    await sql`commit`;
  }
}

/** `n` read proofs for one connection's chain, from its proof `from` on. */
function proofs(m: Member, n: number, session: string, from: number) {
  const rows = Array.from({ length: n }, (_, i) => {
    const a = { userId: m.userId, tenantRefs: [m.tenantId], scope: null, requestId: `bench-${i}`, permission: "customers:read", forRow: false, writes: false };
    return tenantContextProof(a, `c:${session}:${from + i}`, Date.now() + 60_000);
  });
  return [rows.map((p) => p.nonce), rows.map((p) => p.expiresAt), rows.map((p) => p.proof), rows.map((_, i) => `bench-${i}`), rows.map((p) => p.guard)];
}

/** µs per call of the context opener (read proofs bound to the connection) and of a bare set_config, fresh and after 100 prepared statements. */
export async function contextCallCost(appUrl: string, member: Member, calls = 5000) {
  const sql = postgres(appUrl, { max: 1, onnotice: () => {} });
  const opener = `select count(o.tenant_id) from unnest($1::text[], $2::int8[], $3::text[], $4::text[], $5::text[]) with ordinality as x(nonce, expires_at, proof, request_id, guard, i),
                  lateral app.open_tenant_context('${member.userId}'::uuid, array['${member.tenantId}'], null, x.request_id, 'customers:read', false, false, x.guard, x.expires_at, x.nonce, x.proof) o`;
  const bare = `select count(set_config('app.tenant_id', $1 || g, true)) from generate_series(1, $2::int) g`;
  const r = await sql.reserve();
  let next = 1;
  const [{ id }] = await r`select app.bind_session() as id`;
  const chain = (n: number) => {
    const p = proofs(member, n, id, next);
    next += n;
    return p;
  };
  const measure = async (conn: postgres.ReservedSql) => ({
    open_tenant_context_us: await perCall(conn, opener, chain(calls), calls),
    set_config_us: await perCall(conn, bare, [member.tenantId, calls], calls),
  });
  try {
    // Warm the session (plpgsql caches its plans per session), then measure.
    await perCall(r, opener, chain(50), 50);
    const fresh = await measure(r);
    for (let i = 0; i < 100; i++) await r.unsafe(`select $1::int + ${i} as x`, [i], { prepare: true });
    const after100 = await measure(r);
    return { calls, fresh, after_100_prepared_statements: after100 };
  } finally {
    r.release();
    await sql.end({ timeout: 5 });
  }
}

/** A backend's CPU time in µs (/proc/PID/schedstat, nanoseconds): undefined when PostgreSQL is not on this machine. */
function backendCpuUs(pid: number): number | undefined {
  try {
    return Number(readFileSync(`/proc/${pid}/schedstat`, "utf8").split(" ")[0]) / 1000;
  } catch {
    return undefined;
  }
}

/**
 * µs of backend CPU per opener call, one call per transaction as the API makes it (pipelined
 * BEGIN, call, SELECT 1, COMMIT; one client), less the same transaction with the call replaced by
 * a SELECT of its parameters: for a read (BEGIN READ ONLY on the empty side; the proof bound to
 * the connection) and a write (the proof on the connection's stream). Interleaved rounds, each
 * side's median. Undefined when the backend's CPU cannot be read (PostgreSQL on another machine).
 */
export async function contextCallCostPerTransaction(appUrl: string, member: Member, transactions = 4000, rounds = 3) {
  const sql = postgres(appUrl, { max: 1, onnotice: () => {} });
  const r = await sql.reserve();
  try {
    const [{ pid }] = await r`select pg_backend_pid() as pid`;
    if (backendCpuUs(pid) === undefined) return undefined;
    const state: ProofState = {};
    // Three paths: a read bound to its connection (the default), a read recorded on a stream
    // (CONTEXT_READ_GUARD=nonce, behind PgBouncer) and a write (always on a stream).
    type Path = "read" | "read_nonce" | "write";
    const one = async (i: number, open: boolean, path: Path) => {
      const writes = path === "write";
      const a = { userId: member.userId, tenantRefs: [member.tenantId], scope: null, requestId: `bench-tx-${i}`, permission: writes ? "customers:write" : "customers:read", forRow: true, writes };
      const g = path !== "read" ? await streamGuard(r as never, state) : open ? await sessionGuard(r as never, state, 0) : expiryGuard(10);
      const p = tenantContextProof(a, g.guard, g.expiresAt);
      const call = open
        ? r`select tenant_id, member_role, permitted from app.open_tenant_context(${a.userId}::uuid, ${a.tenantRefs}::text[], null, ${a.requestId}, ${a.permission}::text, true, ${writes}, ${g.guard}, ${p.expiresAt}::int8, ${p.nonce}, ${p.proof})`
        : r`select ${a.userId}::uuid, ${a.tenantRefs}::text[], null, ${a.requestId}, ${a.permission}::text, true, ${writes}, ${g.guard}, ${p.expiresAt}::int8, ${p.nonce}, ${p.proof}`;
      const settled = await Promise.allSettled([(writes || open ? r`begin` : r`begin read only`).execute(), call.execute(), r`select 1`.execute(), r`commit`.execute()]);
      g.settled(settled[1].status === "fulfilled");
      const failed = settled.find((x): x is PromiseRejectedResult => x.status === "rejected");
      if (failed) throw failed.reason;
    };
    const perTransaction = async (open: boolean, path: Path) => {
      const before = backendCpuUs(pid)!;
      for (let i = 0; i < transactions; i++) await one(i, open, path);
      return (backendCpuUs(pid)! - before) / transactions;
    };
    const paths: Path[] = ["read", "read_nonce", "write"];
    // Warm the session: plpgsql compiles the functions and caches their plans once per connection.
    for (let i = 0; i < 200; i++) {
      for (const path of paths) {
        await one(i, true, path);
        await one(i, false, path);
      }
    }
    const median = (xs: number[]) => [...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)];
    const sides = Object.fromEntries(paths.map((path) => [path, { with: [] as number[], without: [] as number[] }])) as Record<Path, { with: number[]; without: number[] }>;
    for (let round = 0; round < rounds; round++) {
      for (const path of paths) {
        sides[path].with.push(await perTransaction(true, path));
        sides[path].without.push(await perTransaction(false, path));
      }
    }
    const report = (side: { with: number[]; without: number[] }) => ({
      open_tenant_context_us: median(side.with) - median(side.without),
      transaction_with_opener_us: median(side.with),
      transaction_without_us: median(side.without),
    });
    return { transactions_per_round: transactions, rounds, read: report(sides.read), read_nonce: report(sides.read_nonce), write: report(sides.write) };
  } finally {
    r.release();
    await sql.end({ timeout: 5 });
  }
}

/** One request's database work in the API's shape (app_user, proof) or the bare set_config shape (owner, explicit filter). */
export function requestShapes(appUrl: string, ownerUrl: string, pool: number, customers: Customer[], members: Map<string, Member>) {
  const app = postgres(appUrl, { max: pool, onnotice: () => {} });
  const owner = postgres(ownerUrl, { max: pool, onnotice: () => {} });
  const pick = (i: number) => customers[(i * 7919) % customers.length];
  const cols = "id, name, email, phone, notes, created_at, updated_at";
  const apiShape = async (i: number) => {
    const c = pick(i);
    const m = members.get(c.tenantId)!;
    // Reserved connections of a pool have no identity to bind to: the expiry guard, whose
    // cost (none beyond the proof) the per-transaction figures above separate out.
    const a = { userId: m.userId, tenantRefs: [c.tenantId], scope: null, requestId: `bench-${i}`, permission: "customers:read", forRow: true, writes: false };
    const p = tenantContextProof(a, "e", Date.now() + 10_000);
    const r = await app.reserve();
    try {
      await Promise.all([
        r`begin`.execute(),
        r`select tenant_id, member_role, permitted from app.open_tenant_context(${a.userId}::uuid, ${a.tenantRefs}::text[], null, ${a.requestId}, ${a.permission}::text, true, false, 'e', ${p.expiresAt}::int8, ${p.nonce}, ${p.proof})`.execute(),
        r.unsafe(`select ${cols} from app.customers where id = $1`, [c.id], { prepare: true }).execute(),
        r`commit`.execute(),
      ]);
    } finally {
      r.release();
    }
  };
  const bareShape = async (i: number) => {
    const c = pick(i);
    const r = await owner.reserve();
    try {
      await Promise.all([
        r`begin`.execute(),
        r`select set_config('app.tenant_id', ${c.tenantId}, true)`.execute(),
        r.unsafe(`select ${cols} from app.customers where id = $1 and tenant_id = $2`, [c.id, c.tenantId], { prepare: true }).execute(),
        r`commit`.execute(),
      ]);
    } finally {
      r.release();
    }
  };
  return {
    load: (shape: "api" | "bare", concurrency: number, seconds: number): Promise<LoadResult> => sqlLoad(shape === "api" ? apiShape : bareShape, concurrency, seconds),
    end: async () => (await app.end({ timeout: 5 }), await owner.end({ timeout: 5 })),
  };
}
