// Anchored history cannot vanish (issue 29, finding 7). With the append-only guard switched off
// by someone holding the owner's powers, deleting a tenant's rows up to and including its
// anchored position left `audit verify` printing "anchored position intact": a missing anchored
// position older than the first remaining row was read as retention. Now only a purge that the
// audit's own retention function recorded (app.audit_purge: app.audit_purges plus an
// audit.purged event in the tenant's chain, with its actor) accounts for missing positions, at
// the anchor (server/auditAnchor.ts) and in the chain (app.audit_verify): tail, head and middle
// cuts are BROKEN, a real purge is accepted. Each test tampers with its own scratch clone.
import { randomUUID } from "node:crypto";
import { rmSync } from "node:fs";
import postgres from "postgres";
import { describe, expect, it } from "vitest";
import { checkAnchor, readAnchors, writeAnchors, type Anchor } from "../server/ops/auditAnchor.ts";
import { singleKeyRing } from "../server/core/keyRing.ts";
import type { Sql } from "../server/db/connections.ts";
import { run, superuserUrlFor, useGolden, type Scratch } from "./scratch.ts";

const golden = useGolden("retention");
const key = "r".repeat(40);

type Chain = {
  s: Scratch;
  owner: Sql;
  tenant: { id: string; slug: string };
  file: string;
  /** Seals, then anchors every tenant's head; returns this tenant's anchor. */
  anchor: () => Promise<Anchor>;
  /** Six more audit rows (three inserts, three updates), sealed. */
  grow: () => Promise<void>;
  /** SQL as a superuser with the append-only guard off: what someone with the owner's powers can do. */
  tamper: (statement: string) => Promise<void>;
  /** `npm run cli -- audit verify` for this tenant, against the anchor file. */
  verify: () => Promise<{ code: number; output: string }>;
  chainCheck: () => Promise<{ broken_seq: number | null; problem: string | null; sealed: number }>;
  positions: () => Promise<number[]>;
};

/** A clone whose first golden tenant has a sealed chain of positions 1 to 6 (the golden's three customers inserted, then renamed). */
async function withChain(fn: (c: Chain) => Promise<void>): Promise<void> {
  await golden.withClone(async (s) => {
    const owner = postgres(s.ownerUrl, { max: 1, onnotice: () => {} });
    const su = postgres(superuserUrlFor(s.name), { max: 1, onnotice: () => {} });
    const tenant = golden.tenants[0];
    const file = `/tmp/anchors-retention-${randomUUID()}.jsonl`;
    const c: Chain = {
      s, owner, tenant, file,
      async anchor() {
        await owner`select app.audit_seal(${tenant.id}::uuid)`;
        return (await writeAnchors(owner, file, singleKeyRing(key))).find((a) => a.tenant_id === tenant.id)!;
      },
      async grow() {
        await owner`insert into app.customers ${owner([1, 2, 3].map((i) => ({ tenant_id: tenant.id, name: `later ${i}` })), "tenant_id", "name")}`;
        await owner`update app.customers set name = name || '!' where tenant_id = ${tenant.id} and name like 'later %'`;
        await owner`select app.audit_seal(${tenant.id}::uuid)`;
      },
      async tamper(statement) {
        await su.begin(async (tx) => {
          await tx`alter table app.audit_log disable trigger user`;
          await tx.unsafe(statement);
          await tx`alter table app.audit_log enable trigger user`;
        });
      },
      verify: () => run(process.execPath, ["--import", "tsx", "server/cli.ts", "audit", "verify", "--tenant", tenant.slug, "--url", s.ownerUrl, "--file", file], { AUDIT_ANCHOR_KEY: key }),
      async chainCheck() {
        const [r] = await owner`select broken_seq::int, problem, sealed::int from app.audit_verify(${tenant.id}::uuid)`;
        return r as never;
      },
      async positions() {
        return (await owner`select seq::int from app.audit_log where tenant_id = ${tenant.id} and seq is not null order by seq`).map((r) => r.seq as number);
      },
    };
    try {
      await owner`update app.customers set name = name || '.' where tenant_id = ${tenant.id}`;
      await owner`select app.audit_seal(${tenant.id}::uuid)`;
      expect(await c.positions()).toEqual([1, 2, 3, 4, 5, 6]);
      await fn(c);
    } finally {
      await su.end({ timeout: 5 });
      await owner.end({ timeout: 5 });
      rmSync(file, { force: true });
    }
  });
}

describe("deleting anchored history out of band is BROKEN", () => {
  it("a tail cut: the newest rows, anchored head included", async () =>
    withChain(async (c) => {
      const anchor = await c.anchor();
      expect(anchor.seq).toBe(6);
      await c.tamper(`delete from app.audit_log where tenant_id = '${c.tenant.id}' and seq >= 5`);
      const r = await c.verify();
      expect(r.output).toContain(`BROKEN ${c.tenant.slug}: the chain ends at position 4, but position 6 was anchored`);
      expect(r.code).toBe(1);
    }));

  it("a head cut through the anchored position (read as retention before), at the anchor and in the chain", async () =>
    withChain(async (c) => {
      const anchor = await c.anchor();
      await c.grow();
      expect(await c.positions()).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
      await c.tamper(`delete from app.audit_log where tenant_id = '${c.tenant.id}' and seq <= ${anchor.seq}`);
      expect(await checkAnchor(c.owner, readAnchors(c.file, singleKeyRing(key)).latest.get(c.tenant.id)!)).toBe(
        "anchored position 6 is missing, and no purge recorded by app.audit_purge covers it (rows deleted out of band)");
      expect(await c.chainCheck()).toMatchObject({
        broken_seq: 1, problem: "rows at positions 1 to 6 are missing (deleted), and no purge recorded by app.audit_purge covers them",
      });
      const r = await c.verify();
      expect(r.output).toContain(`BROKEN ${c.tenant.slug}: anchored position 6 is missing, and no purge recorded by app.audit_purge covers it`);
      expect(r.output).not.toContain("intact");
      expect(r.code).toBe(1);
    }));

  it("a head cut short of the anchor: the chain's first remaining position is past 1 without a recorded purge", async () =>
    withChain(async (c) => {
      await c.anchor();
      await c.tamper(`delete from app.audit_log where tenant_id = '${c.tenant.id}' and seq <= 2`);
      const r = await c.verify();
      expect(r.output).toContain(`BROKEN ${c.tenant.slug}: chain position 1: rows at positions 1 to 2 are missing (deleted), and no purge recorded by app.audit_purge covers them`);
      expect(r.code).toBe(1);
    }));

  it("a middle cut, with and without the anchored position", async () =>
    withChain(async (c) => {
      const anchor = await c.anchor();
      await c.grow();
      await c.tamper(`delete from app.audit_log where tenant_id = '${c.tenant.id}' and seq = 9`);
      let r = await c.verify();
      expect(r.output).toContain(`BROKEN ${c.tenant.slug}: chain position 9: row at position 9 is missing (deleted)`);
      expect(r.code).toBe(1);
      await c.tamper(`delete from app.audit_log where tenant_id = '${c.tenant.id}' and seq = ${anchor.seq}`);
      r = await c.verify();
      expect(r.output).toContain(`BROKEN ${c.tenant.slug}: anchored position 6 is missing, and no purge recorded by app.audit_purge covers it`);
      expect(r.code).toBe(1);
    }));
});

describe("retention through app.audit_purge", () => {
  it("a purge through the anchored position is accepted: recorded with its actor and note, audited in the tenant's chain", async () =>
    withChain(async (c) => {
      const anchor = await c.anchor();
      await c.grow();
      const [seventh] = await c.owner`select occurred_at from app.audit_log where tenant_id = ${c.tenant.id} and seq = 7`;
      const [{ n }] = await c.owner`select app.audit_purge(${c.tenant.id}::uuid, ${seventh.occurred_at}::timestamptz, 'retention: 90 days, ticket OPS-1') as n`;
      expect(n).toBe(6);
      const [record] = await c.owner`select purged_through_seq::int, rows_purged, actor, note, audit_id::text from app.audit_purges where tenant_id = ${c.tenant.id}`;
      expect(record).toMatchObject({ purged_through_seq: 6, rows_purged: 6, actor: "app_owner", note: "retention: 90 days, ticket OPS-1" });
      const [event] = await c.owner`select action, actor_role, change->'event' as detail from app.audit_log where tenant_id = ${c.tenant.id} and id = ${record.audit_id}::int8`;
      expect(event).toMatchObject({ action: "audit.purged", actor_role: "operator", detail: { purged_through_seq: 6, rows: 6, actor: "app_owner", note: "retention: 90 days, ticket OPS-1" } });

      const r = await c.verify();
      expect(r.output).toMatch(new RegExp(`ok ${c.tenant.slug}: 7 rows chained, anchored position ${anchor.seq} purged by retention through position 6 at \\S+ by app_owner \\(retention: 90 days, ticket OPS-1\\)`));
      expect(r.code).toBe(0);
      expect(await c.positions()).toEqual([7, 8, 9, 10, 11, 12, 13]);
    }));

  it("cuts a prefix only and keeps the newest sealed row, from which sealing goes on", async () =>
    withChain(async (c) => {
      const [{ n }] = await c.owner`select app.audit_purge(${c.tenant.id}::uuid, now() + interval '1 day') as n`;
      expect(n).toBe(5);
      await c.owner`select app.audit_seal(${c.tenant.id}::uuid)`;
      expect(await c.positions()).toEqual([6, 7]);
      expect(await c.chainCheck()).toMatchObject({ problem: null, sealed: 2 });
      const [{ again }] = await c.owner`select app.audit_purge(${c.tenant.id}::uuid, now() - interval '1 day') as again`;
      expect(again, "nothing older than the cutoff: nothing removed, nothing recorded").toBe(0);
      expect((await c.owner`select count(*)::int as k from app.audit_purges where tenant_id = ${c.tenant.id}`)[0].k).toBe(1);
    }));

  it("a purge record written by hand over an out-of-band deletion is not accepted (it has no audit.purged event)", async () =>
    withChain(async (c) => {
      await c.anchor();
      const [third] = await c.owner`select hash from app.audit_log where tenant_id = ${c.tenant.id} and seq = 3`;
      await c.tamper(`delete from app.audit_log where tenant_id = '${c.tenant.id}' and seq <= 3;
        insert into app.audit_purges (tenant_id, purged_through_seq, through_hash, rows_purged, cutoff, audit_id)
        values ('${c.tenant.id}', 3, '${third.hash}', 3, now(), 1)`);
      expect((await c.chainCheck()).problem).toMatch(/^the purge through position 3 recorded at .* has no audit\.purged event in the chain/);
      const r = await c.verify();
      expect(r.output).toContain(`BROKEN ${c.tenant.slug}: chain position 3`);
      expect(r.code).toBe(1);
    }));

  it("rows deleted past a recorded purge are still BROKEN", async () =>
    withChain(async (c) => {
      await c.grow();
      const [fourth] = await c.owner`select occurred_at from app.audit_log where tenant_id = ${c.tenant.id} and seq = 4`;
      await c.owner`select app.audit_purge(${c.tenant.id}::uuid, ${fourth.occurred_at}::timestamptz)`;
      expect(await c.chainCheck()).toMatchObject({ problem: null });
      await c.tamper(`delete from app.audit_log where tenant_id = '${c.tenant.id}' and seq = 4`);
      expect(await c.chainCheck()).toMatchObject({ broken_seq: 4, problem: "row at position 4 is missing (deleted), and no purge recorded by app.audit_purge covers it" });
    }));

  it("the purge records are append-only, and no application role purges or reads them", async () =>
    withChain(async (c) => {
      await c.owner`select app.audit_purge(${c.tenant.id}::uuid, now() + interval '1 day', 'test')`;
      await expect(c.owner`update app.audit_purges set note = 'rewritten'`).rejects.toMatchObject({ code: "SS409" });
      await expect(c.owner`delete from app.audit_purges`).rejects.toMatchObject({ code: "SS409" });
      await expect(c.owner`truncate app.audit_purges`).rejects.toMatchObject({ code: "SS409" });
      for (const url of [c.s.appUrl, c.s.biUrl]) {
        const role = postgres(url, { max: 1, onnotice: () => {} });
        try {
          await expect(role`select app.audit_purge(${c.tenant.id}::uuid, now())`).rejects.toMatchObject({ code: "42501" });
          await expect(role`select count(*) from app.audit_purges`).rejects.toMatchObject({ code: "42501" });
        } finally {
          await role.end();
        }
      }
    }));
});
