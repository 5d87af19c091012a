// Every way app_user can try to give itself a tenant context without the API's proof, each
// tried against every tenant table and view. Used by the context suite and by its canary, which
// shows the same probe finds leaks once the seal check is switched off.
import postgres from "postgres";
import { streamProof, tenantContextProof } from "../server/db/contextProof.ts";

type Forgery = { name: string; forge: (tx: postgres.TransactionSql, tenantId: string) => Promise<unknown> };

/** Opens a real context by proof and returns its settings, to be replayed elsewhere. */
async function sealedSettings(appUrl: string, userId: string, tenantId: string): Promise<{ context: string; seal: string }> {
  const sql = postgres(appUrl, { max: 1, onnotice: () => {} });
  try {
    return (await sql.begin(async (tx) => {
      // A write context (the most a proof opens), on a stream registered for it.
      const sp = streamProof();
      const [stream] = await tx`select app.open_context_stream(${sp.expiresAt}::int8, ${sp.nonce}, ${sp.proof}) as id`;
      const args = { userId, tenantRefs: [tenantId], scope: null, requestId: "forgery-source", permission: "customers:write", forRow: false, writes: true };
      const p = tenantContextProof(args, `s:${stream.id}`, Date.now() + 60_000);
      await tx`select * from app.open_tenant_context(${userId}::uuid, ${[tenantId]}::text[], null, 'forgery-source', 'customers:write', false, true,
                                                    ${p.guard}, ${p.expiresAt}::int8, ${p.nonce}, ${p.proof})`;
      const [s] = await tx`select current_setting('app.context') as context, current_setting('app.context_seal') as seal`;
      return s;
    })) as unknown as { context: string; seal: string };
  } finally {
    await sql.end({ timeout: 5 });
  }
}

export function forgeries(replay: { context: string; seal: string }): Forgery[] {
  return [
    { name: "set_config of the first wave's settings", forge: (tx, t) => tx`select set_config('app.tenant_id', ${t}, true), set_config('app.role', 'owner', true)` },
    { name: "set_config of app.context without a seal", forge: (tx, t) => tx`select set_config('app.context', ${`${t}||owner|x|*|o`}, true)` },
    { name: "set_config of app.context with a made-up seal", forge: (tx, t) => tx`select set_config('app.context', ${`${t}||owner|x|*|o`}, true), set_config('app.context_seal', ${"ab".repeat(32)}, true)` },
    { name: "a session-level SET", forge: (tx, t) => tx.unsafe(`set app.context = '${t}||owner|x|*|o'; set app.tenant_id = '${t}'`) },
    { name: "a sealed context replayed from another transaction and connection", forge: (tx) => tx`select set_config('app.context', ${replay.context}, true), set_config('app.context_seal', ${replay.seal}, true)` },
  ];
}

/**
 * Leaks found: rows read or rows written under a forged context, per relation and forgery. The
 * forgeries run on `probeUrl` (app_user on a hot standby of the same server: test/read-replicas),
 * by default the primary itself; the sealed settings they replay are always the primary's.
 */
export async function findForgeryLeaks(appUrl: string, ownerUrl: string, member: { userId: string; tenantId: string }, probeUrl = appUrl): Promise<string[]> {
  const owner = postgres(ownerUrl, { max: 1, onnotice: () => {} });
  const app = postgres(probeUrl, { max: 1, onnotice: () => {} });
  // A standby refuses every write as read-only (25006) before RLS is asked; the primary must refuse it by RLS (42501).
  const refused = probeUrl === appUrl ? ["42501"] : ["42501", "25006"];
  const leaks: string[] = [];
  try {
    const relations = (await owner`
      select c.oid::regclass::text as name, c.relkind = 'v' as is_view
        from pg_class c join pg_namespace n on n.oid = c.relnamespace
       where n.nspname = 'app' and c.relkind in ('r', 'p', 'v') and not c.relispartition
         and exists (select 1 from pg_attribute a where a.attrelid = c.oid and a.attname = 'tenant_id' and not a.attisdropped)
         and has_table_privilege('app_user', c.oid, 'select')
       order by 1`) as unknown as { name: string; is_view: boolean }[];
    const replay = await sealedSettings(appUrl, member.userId, member.tenantId);
    for (const f of forgeries(replay)) {
      for (const rel of relations) {
        const [{ n }] = await app.begin(async (tx) => {
          await f.forge(tx, member.tenantId);
          return tx.unsafe(`select count(*)::int as n from ${rel.name}`);
        });
        if (n > 0) leaks.push(`${rel.name}: ${n} row(s) read after ${f.name}`);
      }
      const written = await app
        .begin(async (tx) => {
          await f.forge(tx, member.tenantId);
          return tx`insert into app.customers (tenant_id, name) values (${member.tenantId}, 'forged') returning id`;
        })
        .then((rows) => rows.length, (error: { code?: string }) => (refused.includes(error.code ?? "") ? 0 : Promise.reject(error)));
      if (written > 0) leaks.push(`app.customers: a row written after ${f.name}`);
      await app`reset all`;
    }
  } finally {
    await app.end({ timeout: 5 });
    await owner.end({ timeout: 5 });
  }
  return leaks;
}
