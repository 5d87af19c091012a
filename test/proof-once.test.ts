// A proof opens one transaction, once, for what it names; reads write nothing (issue 29).
// Each finding of the attack on the first proof design, replayed as app_user with psql's
// powers (simple-protocol messages, DO blocks, any function app_user may call): every one of
// these opened a context before, and each is refused now.
import postgres from "postgres";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { streamProof, userContextProof } from "../server/db/contextProof.ts";
import type { Sql } from "../server/db/connections.ts";
import { appUserSql, callOpener, db, guardOn, makeCustomers, makeTenant, makeUser, openTenantContext, ownerSql, proofFor, type OpenArgs, type Tenant, type User } from "./fixtures.ts";

let owner: Sql;
let app: Sql;
let shop: Tenant;
let boss: User;
let customer: string;

beforeAll(async () => {
  owner = ownerSql();
  app = appUserSql();
  shop = await makeTenant(owner, { prefix: "once" });
  boss = await makeUser(owner, shop, "owner");
  [customer] = await makeCustomers(owner, shop, 1);
});

afterAll(async () => {
  await app?.end({ timeout: 5 });
  await owner?.end({ timeout: 5 });
});

const asTx = (tx: unknown) => tx as Sql;
const writeArgs = (): OpenArgs => ({ userId: boss.id, tenantRefs: [shop.id], requestId: "once", permission: "customers:write", writes: true });
const readArgs = (): OpenArgs => ({ userId: boss.id, tenantRefs: [shop.id], requestId: "once", permission: "customers:read" });

/** A connection of its own (one backend), ended after `fn`. */
async function onConnection<T>(fn: (sql: Sql) => Promise<T>): Promise<T> {
  const sql = postgres(db.appUrl, { max: 1, onnotice: () => {} }) as unknown as Sql;
  try {
    return await fn(sql);
  } finally {
    await sql.end({ timeout: 5 });
  }
}

/** An owner connection of its own, ended after `fn`. */
async function onOwnerConnection<T>(fn: (sql: Sql) => Promise<T>): Promise<T> {
  const sql = postgres(db.ownerUrl, { max: 1, onnotice: () => {} }) as unknown as Sql;
  try {
    return await fn(sql);
  } finally {
    await sql.end({ timeout: 5 });
  }
}

/** A stream registered for the test, as an API connection registers its own. */
async function newStream(sql: Sql): Promise<string> {
  const p = streamProof();
  const [s] = await sql`select app.open_context_stream(${p.expiresAt}::int8, ${p.nonce}, ${p.proof}) as id`;
  return `s:${s.id}`;
}

/** The opener's call as SQL text with literals, as psql would send it in a simple-protocol message. */
function openerText(a: OpenArgs, p: { guard: string; expiresAt: number; nonce: string; proof: string }): string {
  const lit = (v: string) => `'${v.replace(/'/g, "''")}'`;
  return `select * from app.open_tenant_context(${lit(a.userId)}::uuid, array[${a.tenantRefs.map(lit).join(",")}]::text[], null, ${lit(a.requestId ?? "once")}, ` +
    `${lit(a.permission)}, false, ${a.writes ? "true" : "false"}, ${lit(p.guard)}, ${p.expiresAt}, ${lit(p.nonce)}, ${lit(p.proof)})`;
}

describe("once: a used proof never opens again", () => {
  it("expiry is judged by the clock: a statement that outwaits its proof's expiry is refused", async () => {
    const args = writeArgs();
    const guard = await newStream(app);
    const p = proofFor(args, { guard, expiresAt: Date.now() + 1500 });
    // One statement: its statement_timestamp() stays at the arrival, before the expiry.
    await expect(app.unsafe(`select o.* from (select pg_sleep(2.5)) s, lateral (${openerText(args, p)}) o`))
      .rejects.toMatchObject({ code: "TN401" });
  });

  it("no app role can remove the record of a used proof (the nonce purge is gone)", async () => {
    await expect(app`select app.purge_context_nonces()`).rejects.toMatchObject({ code: "42883" });
    const [stream] = await owner`select id from app.context_streams order by id desc limit 1`;
    await expect(app.unsafe(`select setval('app.context_stream_${stream.id}', 0)`)).rejects.toMatchObject({ code: "42501" });
  });

  it("a write proof whose transaction rolled back opens no second transaction, on another connection or the same", async () => {
    const args = writeArgs();
    const guard = await newStream(app);
    const p = proofFor(args, { guard, expiresAt: Date.now() + 30_000 });
    // The request fails in the database (a NOT NULL violation): its transaction rolls back.
    await expect(app.begin(async (tx) => {
      await callOpener(asTx(tx), args, p);
      return tx`insert into app.customers (tenant_id, name) values (${shop.id}, null)`;
    })).rejects.toMatchObject({ code: "23502" });
    await onConnection(async (other) => {
      await expect(other.begin(async (tx) => {
        await callOpener(asTx(tx), args, p);
        return tx`insert into app.customers (tenant_id, name) values (${shop.id}, 'replayed after rollback')`;
      })).rejects.toMatchObject({ code: "TN401" });
    });
    await expect(app.begin((tx) => callOpener(asTx(tx), args, p))).rejects.toMatchObject({ code: "TN401" });
    const [n] = await owner`select count(*)::int as n from app.customers where name = 'replayed after rollback'`;
    expect(n.n).toBe(0);
  });

  it("a read proof opens once on its connection, after commit or rollback, and never on another connection", async () => {
    await onConnection(async (conn) => {
      const [{ id }] = await conn`select app.bind_session() as id`;
      const args = readArgs();
      const first = proofFor(args, { guard: `c:${id}:1`, expiresAt: Date.now() + 30_000 });
      await conn.begin((tx) => callOpener(asTx(tx), args, first));
      await expect(conn.begin((tx) => callOpener(asTx(tx), args, first))).rejects.toMatchObject({ code: "TN401" });
      // The next proof of the chain opens, and its transaction rolls back: still spent.
      const second = proofFor(args, { guard: `c:${id}:2`, expiresAt: Date.now() + 30_000 });
      await expect(conn.begin(async (tx) => {
        await callOpener(asTx(tx), args, second);
        await tx`select 1 / 0`;
      })).rejects.toMatchObject({ code: "22012" });
      await expect(conn.begin((tx) => callOpener(asTx(tx), args, second))).rejects.toMatchObject({ code: "TN401" });
      const third = proofFor(args, { guard: `c:${id}:3`, expiresAt: Date.now() + 30_000 });
      await onConnection(async (other) => {
        // Even with the session's id in its own settings: the seal is this backend's alone.
        await expect(other.begin(async (tx) => {
          await tx`select set_config('app.session', ${id}, false)`;
          return callOpener(asTx(tx), args, third);
        })).rejects.toMatchObject({ code: "TN401" });
      });
      await conn.begin((tx) => callOpener(asTx(tx), args, third));
    });
  });

  it("a proof in a simple-protocol message with other statements is refused: a seal copied into session settings crosses no transaction", async () => {
    const args = writeArgs();
    const guard = await newStream(app);
    const p = proofFor(args, { guard, expiresAt: Date.now() + 30_000 });
    const copy = "select set_config('app.context', current_setting('app.context'), false), set_config('app.context_seal', current_setting('app.context_seal'), false)";
    await onConnection(async (conn) => {
      await expect(conn.unsafe(`begin; ${openerText(args, p)}; ${copy}; commit; begin; insert into app.customers (tenant_id, name) values ('${shop.id}', 'crossed'); commit;`).simple())
        .rejects.toMatchObject({ code: "TN401" });
    });
    // A DO block is one statement that may commit in between: its text holds its statements,
    // so the opener refuses there too.
    const q = proofFor(args, { guard, expiresAt: Date.now() + 30_001 });
    await onConnection(async (conn) => {
      await expect(conn.unsafe(`do $$ begin perform 1 from (${openerText(args, q)}) o;
        perform set_config('app.context', current_setting('app.context'), false), set_config('app.context_seal', current_setting('app.context_seal'), false);
        commit; insert into app.customers (tenant_id, name) values ('${shop.id}', 'crossed'); end $$`)).rejects.toMatchObject({ code: "TN401" });
    });
    // And the seal itself dies with its transaction even when copied: the owner may open a
    // context in a DO block (app_user may not create the procedures that would), copy it, commit.
    const seen = await onOwnerConnection(async (o) => {
      await o.unsafe(`do $$ begin perform app.open_operator_context('${shop.id}');
        perform set_config('app.context', current_setting('app.context'), false), set_config('app.context_seal', current_setting('app.context_seal'), false);
        commit;
        perform set_config('app.crossed', coalesce(app.current_tenant_id()::text, 'none'), false); end $$`).simple();
      return o`select current_setting('app.crossed') as crossed, current_setting('app.context') <> '' as copied`;
    });
    expect(seen).toEqual([{ crossed: "none", copied: true }]);
    const [n] = await owner`select count(*)::int as n from app.customers where name = 'crossed'`;
    expect(n.n).toBe(0);
  });

  it("a refs array that does not start at index 1 is refused", async () => {
    const other = await makeTenant(owner, { prefix: "once-b" });
    await owner`insert into app.memberships (tenant_id, user_id, role) values (${other.id}, ${boss.id}, 'owner')`;
    const guard = await newStream(app);
    const args: OpenArgs = { ...writeArgs(), tenantRefs: [other.slug, shop.slug] };
    const p = proofFor(args, { guard, expiresAt: Date.now() + 30_000 });
    await expect(app.begin((tx) => tx`select * from app.open_tenant_context(${boss.id}::uuid, ${`[0:1]={${other.slug},${shop.slug}}`}::text[], null, 'once',
      'customers:write', false, true, ${p.guard}, ${p.expiresAt}::int8, ${p.nonce}, ${p.proof})`)).rejects.toMatchObject({ code: "TN401" });
  });
});

describe("only what it names", () => {
  it("a read proof opens a read-only transaction: PostgreSQL refuses its writes", async () => {
    await expect(app.begin(async (tx) => {
      await openTenantContext(asTx(tx), readArgs());
      return tx`insert into app.customers (tenant_id, name) values (${shop.id}, 'written under a read proof')`;
    })).rejects.toMatchObject({ code: "25006" });
    await expect(app.begin(async (tx) => {
      await openTenantContext(asTx(tx), readArgs());
      await tx`set transaction read write`;
    })).rejects.toMatchObject({ code: "25001" });
  });

  it("a write proof for customers:write writes customers and nothing its permission does not cover", async () => {
    const member = await makeUser(owner);
    const attempts: [string, (tx: Sql) => Promise<unknown>][] = [
      ["rename the shop", (tx) => tx`select * from app.update_tenant_settings('renamed')`],
      ["invite an owner", (tx) => tx`insert into app.invitations (tenant_id, email, role, token_hash) values (${shop.id}, ${member.email}, 'owner', ${"0".repeat(64)})`],
      ["write an invoice", (tx) => tx`insert into app.invoices (tenant_id, customer_id) values (${shop.id}, ${customer})`],
      ["write the catalog", (tx) => tx`insert into app.services (tenant_id, name) values (${shop.id}, 'x')`],
    ];
    for (const [what, attempt] of attempts) {
      await expect(app.begin(async (tx) => {
        await openTenantContext(asTx(tx), writeArgs());
        return attempt(asTx(tx));
      }), what).rejects.toMatchObject({ code: "SS403" });
    }
    const [row] = await app.begin(async (tx) => {
      await openTenantContext(asTx(tx), writeArgs());
      return tx`insert into app.customers (tenant_id, name) values (${shop.id}, 'written under customers:write') returning id`;
    });
    expect(row.id).toBeTruthy();
  });

  it("a proof must name a permission", async () => {
    const guard = await newStream(app);
    const p = proofFor({ ...writeArgs(), permission: "" }, { guard, expiresAt: Date.now() + 30_000 });
    await expect(app.begin((tx) => tx`select * from app.open_tenant_context(${boss.id}::uuid, ${[shop.id]}::text[], null, 'once', null, false, true,
      ${p.guard}, ${p.expiresAt}::int8, ${p.nonce}, ${p.proof})`)).rejects.toMatchObject({ code: "TN401" });
  });
});

describe("reads write nothing", () => {
  it("a read context takes no transaction id and inserts nothing, from open to commit", async () => {
    const [r] = await app.begin(async (tx) => {
      await openTenantContext(asTx(tx), readArgs());
      await tx`select count(*) from app.customers`;
      return tx`select pg_current_xact_id_if_assigned()::text as xid, current_setting('transaction_read_only') as ro`;
    });
    expect(r).toEqual({ xid: null, ro: "on" });
    // The write path, for contrast: its proof's stream takes one.
    const [w] = await app.begin(async (tx) => {
      await openTenantContext(asTx(tx), writeArgs());
      return tx`select pg_current_xact_id_if_assigned()::text as xid`;
    });
    expect(w.xid).not.toBeNull();
  });

  it("behind PgBouncer, an expiry-only read proof (guard e) lives at most 30 s and stays read-only", async () => {
    const args = readArgs();
    await expect(app.begin((tx) => callOpener(asTx(tx), args, proofFor(args, { guard: "e", expiresAt: Date.now() + 60_000 })))).rejects.toMatchObject({ code: "TN401" });
    const p = proofFor(args, { guard: "e", expiresAt: Date.now() + 10_000 });
    // The residual runbooks/pgbouncer.md states: until it expires it opens again, read-only.
    await app.begin((tx) => callOpener(asTx(tx), args, p));
    await expect(app.begin(async (tx) => {
      await callOpener(asTx(tx), args, p);
      return tx`delete from app.customers where id = ${customer}`;
    })).rejects.toMatchObject({ code: "25006" });
    const w = { ...args, permission: "customers:write", writes: true };
    await expect(app.begin((tx) => callOpener(asTx(tx), w, proofFor(w, { guard: "e", expiresAt: Date.now() + 10_000 })))).rejects.toMatchObject({ code: "TN401" });
  });

  it("a stream the database no longer knows is refused with its own constraint, so the API registers again", async () => {
    const args = writeArgs();
    const p = proofFor(args, { guard: "s:999999999", expiresAt: Date.now() + 30_000 });
    await expect(app.begin((tx) => callOpener(asTx(tx), args, p))).rejects.toMatchObject({ code: "TN401", constraint_name: "context_stream" });
  });
});

describe("no oracle for app_user", () => {
  it("no password hash, email or membership without a context opened by proof", async () => {
    await expect(app`select * from app.find_login(${boss.email})`).rejects.toMatchObject({ code: "42883" });
    await expect(app`select * from app.find_login(${boss.email}, 'e', ${Date.now() + 10_000}::int8, 'x'::text, 'y'::text)`).rejects.toMatchObject({ code: "TN401" });
    await expect(app`select * from app.get_user(${boss.id}::uuid)`).rejects.toMatchObject({ code: "42883" });
    expect(await app`select * from app.get_user()`).toEqual([]);
    expect(await app`select * from app.list_memberships()`).toEqual([]);
  });

  it("a user context answers only its own user", async () => {
    const stranger = await makeUser(owner, shop, "staff");
    const rows = await app.begin(async (tx) => {
      const g = await guardOn(asTx(tx), false);
      const p = userContextProof(boss.id, "once", g.guard, g.expiresAt);
      await tx`select app.open_user_context(${boss.id}::uuid, 'once', ${p.guard}, ${p.expiresAt}::int8, ${p.nonce}, ${p.proof})`;
      return [await tx`select id, email from app.get_user()`, await tx`select tenant_id from app.list_memberships()`, await tx`select count(*)::int as n from app.customers`];
    });
    expect(rows[0]).toEqual([{ id: boss.id, email: boss.email }]);
    const mine = await owner`select tenant_id from app.memberships where user_id = ${boss.id} order by tenant_id`;
    expect(rows[1].map((r) => r.tenant_id).sort()).toEqual(mine.map((r) => r.tenant_id));
    expect(rows[2]).toEqual([{ n: 0 }]);
    expect(JSON.stringify(rows)).not.toContain(stranger.email);
  });
});

describe("over HTTP: a GET's transaction is read-only and takes no transaction id", () => {
  /**
   * Holds an ACCESS EXCLUSIVE lock on app.customers while the request runs, so its transaction
   * waits in plain sight in pg_stat_activity: what it holds then is what it took before its
   * query (the opener's work). Released as soon as the request is seen waiting.
   */
  async function seenWaiting(send: () => Promise<{ status: number }>): Promise<{ xid: string | null; status: number }> {
    const locker = postgres(db.ownerUrl, { max: 1, onnotice: () => {} });
    try {
      const reserved = await locker.reserve();
      try {
        await reserved`begin`;
        await reserved`lock table app.customers in access exclusive mode`;
        const answer = send();
        let waiting: { xid: string | null } | undefined;
        for (const started = Date.now(); !waiting && Date.now() - started < 10_000;) {
          [waiting] = await owner`select backend_xid::text as xid from pg_stat_activity
                                   where usename = 'app_user' and wait_event_type = 'Lock' and query like '%app.customers%'`;
        }
        await reserved`commit`;
        const { status } = await answer;
        if (!waiting) throw new Error("the request was never seen waiting on the lock");
        return { xid: waiting.xid, status };
      } finally {
        reserved.release();
      }
    } finally {
      await locker.end({ timeout: 5 });
    }
  }

  it("GET holds no transaction id while it reads; POST does", async () => {
    const { startApi, tokenFor } = await import("./fixtures.ts");
    const api = await startApi();
    try {
      const token = tokenFor(boss);
      const get = await seenWaiting(() => api.request("GET", `/api/v1/customers/${customer}`, { token, tenant: shop.slug }));
      expect(get).toEqual({ xid: null, status: 200 });
      const post = await seenWaiting(() => api.request("POST", "/api/v1/customers", { token, tenant: shop.slug, body: { name: "seen waiting" } }));
      expect(post.status).toBe(201);
      expect(post.xid).not.toBeNull();
    } finally {
      await api.close();
    }
  });
});
