// The opener works on a streaming replica (issue 29): a read context opens on a hot standby of
// the test server, by proof, bound to its connection, and reads its tenant's rows only; writes
// are refused there (a write proof cannot even record its use: a standby writes nothing).
import postgres from "postgres";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Sql } from "../server/db/connections.ts";
import { callOpener, db, guardOn, makeCustomers, makeTenant, makeUser, ownerSql, proofFor, type OpenArgs, type Tenant, type User } from "./fixtures.ts";
import { toolMismatch } from "./clientTools.ts";
import { pgBasebackup, standbyMissingMessage, standbyRequired, startStandby, type Standby } from "./standby.ts";

const available = pgBasebackup() !== undefined;
if (!available && !standbyRequired) console.warn(`test/standby.test.ts skipped: ${standbyMissingMessage}`);
// Installed but older than the server (Debian's 15 against EMBEDDED_PG_MAJOR=18): skipped, saying so,
// whether required or not; REQUIRE_PG_BASEBACKUP asks for the tool, not for a newer one.
const tooOld = available ? toolMismatch("pg_basebackup") : undefined;
if (tooOld) console.warn(`test/standby.test.ts skipped: ${tooOld}`);

describe.skipIf((!available && !standbyRequired) || tooOld !== undefined)("read contexts on a hot standby", () => {
  let standby: Standby;
  let owner: Sql;
  let replica: Sql;
  let shop: Tenant;
  let other: Tenant;
  let boss: User;

  beforeAll(async () => {
    if (!available) throw new Error(`REQUIRE_PG_BASEBACKUP=1 but ${standbyMissingMessage}`);
    owner = ownerSql();
    shop = await makeTenant(owner, { prefix: "standby" });
    other = await makeTenant(owner, { prefix: "standby-b" });
    boss = await makeUser(owner, shop, "owner");
    await makeCustomers(owner, shop, 3);
    await makeCustomers(owner, other, 2);
    standby = await startStandby(db.superuserUrl);
    replica = postgres(standby.url(db.appUrl), { max: 1, onnotice: () => {} }) as unknown as Sql;
    // Wait on state: the standby has replayed the rows made above.
    const [{ lsn }] = await owner`select pg_current_wal_lsn()::text as lsn`;
    for (;;) {
      const [r] = await replica`select pg_last_wal_replay_lsn() >= ${lsn}::pg_lsn as caught_up`;
      if (r.caught_up) break;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }, 120_000);

  afterAll(async () => {
    await replica?.end({ timeout: 5 });
    await owner?.end({ timeout: 5 });
    await standby?.stop();
  });

  const read = (): OpenArgs => ({ userId: boss.id, tenantRefs: [shop.slug], requestId: "standby", permission: "customers:read" });

  it("opens a read context bound to its connection and reads its own tenant only", async () => {
    const rows = await replica.begin(async (tx) => {
      const g = await guardOn(tx as unknown as Sql, false);
      await callOpener(tx as unknown as Sql, read(), proofFor(read(), g));
      return tx`select pg_is_in_recovery() as standby, count(*)::int as n, count(*) filter (where tenant_id <> ${shop.id})::int as foreign,
                       pg_current_xact_id_if_assigned()::text as xid from app.customers`;
    });
    expect(rows).toEqual([{ standby: true, n: 3, foreign: 0, xid: null }]);
  });

  it("a read proof used once on the standby does not open again", async () => {
    const args = read();
    const p = await replica.begin(async (tx) => {
      const proof = proofFor(args, await guardOn(tx as unknown as Sql, false));
      await callOpener(tx as unknown as Sql, args, proof);
      return proof;
    });
    await expect(replica.begin((tx) => callOpener(tx as unknown as Sql, args, p))).rejects.toMatchObject({ code: "TN401" });
  });

  it("refuses writes: in a read context, and any write proof", async () => {
    await expect(replica.begin(async (tx) => {
      await callOpener(tx as unknown as Sql, read(), proofFor(read(), await guardOn(tx as unknown as Sql, false)));
      return tx`insert into app.customers (tenant_id, name) values (${shop.id}, 'on the standby')`;
    })).rejects.toMatchObject({ code: "25006" });
    // A write's proof must record its use on a stream, which a standby cannot.
    await expect(replica.begin((tx) => guardOn(tx as unknown as Sql, true))).rejects.toMatchObject({ code: "25006" });
  });

  it("without a proof there is no context on the standby either", async () => {
    const [r] = await replica.begin(async (tx) => {
      await tx`select set_config('app.context', ${`${shop.id}|${boss.id}|owner|x|*|o`}, true)`;
      return tx`select count(*)::int as n from app.customers`;
    });
    expect(r.n).toBe(0);
  });
});
