// The tenant context cannot be forged from SQL (issue 14), proved in SQL as app_user and as a
// BI login, with no API in between: only a proof signed with the context key opens a context,
// once, on the connection and in the transaction that used it; settings written by hand are
// no context; BI logins read the views of their granted tenants only; the audit takes no forged
// events and its guard opens for no setting; anchors catch a truncated or re-sealed chain.
import { createHmac, randomBytes, randomUUID } from "node:crypto";
import postgres from "postgres";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { checkAnchor, readAnchors, writeAnchors } from "../server/ops/auditAnchor.ts";
import { singleKeyRing, type KeyRing } from "../server/core/keyRing.ts";
import { loginProof, type ContextProof } from "../server/db/contextProof.ts";
import type { Sql } from "../server/db/connections.ts";
import { findForgeryLeaks } from "./contextForgery.ts";
import { findBiLeaks, makeBiLogin, type BiLogin } from "./isolationProbe.ts";
import { appUserSql, asMember, callOpener, db, guardOn, makeCustomers, makeTenant, makeUser, openTenantContext, proofFor, useDatabase, type OpenArgs, type Tenant, type User } from "./fixtures.ts";
import { superuserUrlFor, useGolden } from "./scratch.ts";

const { owner, app } = useDatabase();
let a: Tenant;
let b: Tenant;
let aOwner: User;

beforeAll(async () => {
  a = await makeTenant(owner, { prefix: "ctx-a" });
  b = await makeTenant(owner, { prefix: "ctx-b" });
  await makeCustomers(owner, a, 2);
  await makeCustomers(owner, b, 2);
  aOwner = await makeUser(owner, a, "owner");
});

/**
 * A proof signed here, independently of server/db/contextProof.ts, with chosen expiry and key: a
 * read proof over the tenant opener's fields, under the guard given.
 */
function handSigned(fields: string[], guard: string, options: { expiresAt?: number; key?: string; kind?: string; writes?: boolean } = {}): ContextProof {
  const expiresAt = options.expiresAt ?? Date.now() + 30_000;
  const nonce = randomBytes(18).toString("base64url");
  const message = [options.kind ?? "ctx", options.writes ? "w" : "r", guard, ...fields, String(expiresAt), nonce].join("\x1f");
  const key = options.key ?? db.contextKey;
  const keyId = createHmac("sha256", Buffer.from(key, "hex")).update("fingerprint").digest("hex").slice(0, 16);
  return { expiresAt, nonce, guard, proof: `${keyId}.${createHmac("sha256", Buffer.from(key, "hex")).update(message).digest("hex")}` };
}

const readArgs = (user: User, tenant: Tenant): OpenArgs => ({ userId: user.id, tenantRefs: [tenant.slug], requestId: "test", permission: "customers:read" });
const open = (tx: Sql, user: User, tenant: Tenant, proof?: ContextProof) => openTenantContext(tx, readArgs(user, tenant), proof);
const countIn = (tx: Sql) => tx`select count(*)::int as n, count(*) filter (where tenant_id <> ${a.id})::int as foreign from app.customers`;
const read = { permission: "customers:read" };

describe("a context opens only from the API's proof", () => {
  it("a valid proof opens the member's context, and the database computes the same MAC as the API", async () => {
    const [row] = await asMember(app, aOwner, a, read, countIn);
    expect(row.n).toBeGreaterThanOrEqual(2);
    expect(row.foreign).toBe(0);
    const fields = [aOwner.id, a.slug, "", "test", "customers:read", "0"];
    const [opened] = await app.begin(async (tx) => {
      const g = await guardOn(tx as unknown as Sql, false);
      return open(tx as unknown as Sql, aOwner, a, handSigned(fields, g.guard));
    });
    expect(opened).toMatchObject({ tenant_id: a.id, member_role: "owner" });
  });

  it("refuses a write proof used again in another transaction or on another connection (TN401)", async () => {
    const args: OpenArgs = { ...readArgs(aOwner, a), permission: "customers:write", writes: true };
    const proof = await app.begin(async (tx) => {
      const p = proofFor(args, await guardOn(tx as unknown as Sql, true));
      await callOpener(tx as unknown as Sql, args, p);
      return p;
    });
    await expect(app.begin((tx) => callOpener(tx as unknown as Sql, args, proof))).rejects.toMatchObject({ code: "TN401" });
    const other = appUserSql();
    try {
      await expect(other.begin((tx) => callOpener(tx as unknown as Sql, args, proof))).rejects.toMatchObject({ code: "TN401" });
    } finally {
      await other.end();
    }
  });

  it("refuses a tampered proof: another tenant, another user, another permission, another MAC, another mode", async () => {
    const bOwner = await makeUser(owner, b, "owner");
    for (const tamper of [
      (args: OpenArgs, p: ContextProof) => [{ ...args, userId: bOwner.id, tenantRefs: [b.slug] }, p] as const,
      (args: OpenArgs, p: ContextProof) => [{ ...args, tenantRefs: [b.slug] }, p] as const,
      (args: OpenArgs, p: ContextProof) => [{ ...args, permission: "audit:read" }, p] as const,
      (args: OpenArgs, p: ContextProof) => [{ ...args, writes: true }, p] as const,
      (args: OpenArgs, p: ContextProof) => [args, { ...p, proof: p.proof.replace(/.$/, (c) => (c === "0" ? "1" : "0")) }] as const,
      (args: OpenArgs, p: ContextProof) => [args, { ...p, expiresAt: p.expiresAt + 1 }] as const,
      (args: OpenArgs, p: ContextProof) => [args, { ...p, nonce: randomBytes(18).toString("base64url") }] as const,
    ]) {
      await expect(app.begin(async (tx) => {
        const args = readArgs(aOwner, a);
        const [changed, proof] = tamper(args, proofFor(args, await guardOn(tx as unknown as Sql, false)));
        return callOpener(tx as unknown as Sql, changed as OpenArgs, proof);
      })).rejects.toMatchObject({ code: "TN401" });
    }
  });

  it("refuses an expired proof, one valid for longer than five minutes, one signed with another key, and none at all", async () => {
    const fields = [aOwner.id, a.slug, "", "test", "customers:read", "0"];
    for (const options of [
      { expiresAt: Date.now() - 1000 },
      { expiresAt: Date.now() + 10 * 60_000 },
      { key: randomBytes(32).toString("hex") },
      { kind: "login" },
    ]) {
      await expect(app.begin(async (tx) => {
        const g = await guardOn(tx as unknown as Sql, false);
        return open(tx as unknown as Sql, aOwner, a, handSigned(fields, g.guard, options));
      })).rejects.toMatchObject({ code: "TN401" });
    }
    await expect(app.begin((tx) => tx`select * from app.open_tenant_context(${aOwner.id}::uuid, ${[a.slug]}::text[], null, 'x', 'customers:read', false, false, 'e', null, null, null)`))
      .rejects.toMatchObject({ code: "TN401" });
  });

  it("app_user cannot call the operator's opener, set a sealed context, read the keys or touch a stream", async () => {
    const [stream] = await owner`select id from app.context_streams order by id desc limit 1`;
    for (const attempt of [
      app`select app.open_operator_context(${a.id}::uuid)`,
      app`select app.set_sealed_context(${a.id}::uuid, null, 'owner', 'x')`,
      app`select app.grant_capability('audit_sealing')`,
      app`select app.install_context_key(${randomBytes(32)})`,
      app`select app.consume_proof_guard(true, 's:1', 1, null, null)`,
      app`select * from app.context_keys`,
      app`select * from app.context_seal_key`,
      app`select * from app.context_streams`,
      app.unsafe(`select setval('app.context_stream_${stream.id}', 1)`),
      app.unsafe(`select nextval('app.context_stream_${stream.id}')`),
      app.unsafe(`drop sequence app.context_stream_${stream.id}`),
      app`select * from app.bi_grants`,
    ]) {
      await expect(attempt).rejects.toMatchObject({ code: expect.stringMatching(/^(42501)$/) });
    }
  });
});

describe("settings written by hand are no context", () => {
  it("every forgery path reads zero rows from every tenant table and view and writes none", async () => {
    expect(await findForgeryLeaks(db.appUrl, db.ownerUrl, { userId: aOwner.id, tenantId: a.id })).toEqual([]);
  });

  it("a context edited after it was opened reads as none", async () => {
    const [row] = await app.begin(async (tx) => {
      await open(tx as unknown as Sql, aOwner, a);
      await tx`select set_config('app.context', replace(current_setting('app.context'), ${a.id}, ${b.id}), true)`;
      return countIn(tx as unknown as Sql);
    });
    expect(row.n).toBe(0);
  });
});

describe("BI logins read the views of their granted tenants, whatever they set", () => {
  let login: BiLogin;
  let role: string;
  let bi: Sql;

  beforeAll(async () => {
    for (const t of [a, b]) {
      const [c] = await owner`select id from app.customers where tenant_id = ${t.id} limit 1`;
      await owner`insert into app.invoices (tenant_id, customer_id) values (${t.id}, ${c.id})`;
    }
    login = await makeBiLogin(db.superuserUrl, owner as unknown as postgres.Sql, a.id);
    role = login.role;
    bi = login.connect(db.biUrl) as unknown as Sql;
  });

  afterAll(async () => {
    await login?.drop();
  });

  it("sees exactly its granted tenant in every view, with or without forged settings", async () => {
    const [totals] = await bi`select count(*)::int as n from app.invoice_totals where tenant_id = ${a.id}`;
    expect(totals.n).toBeGreaterThan(0);
    expect(await findBiLeaks(bi as unknown as postgres.Sql, owner as unknown as postgres.Sql, a.id, b.id)).toEqual([]);
  });

  it("reads no table and calls no function of the API directly", async () => {
    await expect(bi`select * from app.customers`).rejects.toMatchObject({ code: "42501" });
    await expect(bi`select * from app.invoices`).rejects.toMatchObject({ code: "42501" });
    await expect(bi`select * from app.bi_grants`).rejects.toMatchObject({ code: "42501" });
    await expect(bi`select app.list_members()`).rejects.toMatchObject({ code: "42501" });
  });

  it("a grant and a revoke are audited, and a revoked login reads nothing", async () => {
    const events = await owner`select action, entity_id from app.audit_log where tenant_id = ${a.id} and entity = 'bi_login' order by id`;
    expect(events).toContainEqual({ action: "bi.granted", entity_id: role });
    await owner.begin((tx) => tx`select app.bi_revoke(${role}, ${a.id}::uuid)`);
    try {
      const [r] = await bi`select count(*)::int as n from app.invoice_totals`;
      expect(r.n).toBe(0);
      const [ev] = await owner`select count(*)::int as n from app.audit_log where tenant_id = ${a.id} and action = 'bi.revoked' and entity_id = ${role}`;
      expect(ev.n).toBe(1);
    } finally {
      await owner.begin((tx) => tx`select app.bi_grant(${role}, ${a.id}::uuid)`);
    }
  });

  it("refuses to grant a role that is not a BI login", async () => {
    await expect(owner.begin((tx) => tx`select app.bi_grant('app_user', ${a.id}::uuid)`)).rejects.toMatchObject({ code: "42501" });
  });
});

describe("the audit takes no forged events", () => {
  it("app.audit_event needs a verified context: forged settings are refused", async () => {
    await expect(app.begin(async (tx) => {
      await tx`select set_config('app.context', ${`${a.id}|${aOwner.id}|owner|x|*|o`}, true), set_config('app.tenant_id', ${a.id}, true)`;
      return tx`select app.audit_event('forged.event', 'x', 'x', '{}'::jsonb)`;
    })).rejects.toMatchObject({ code: "42501" });
    const [n] = await owner`select count(*)::int as n from app.audit_log where action = 'forged.event'`;
    expect(n.n).toBe(0);
  });

  it("app.record_login writes only for the API's proof, once", async () => {
    const requestId = `login-${randomUUID()}`;
    const [s0] = await app.begin(async (tx) => [await guardOn(tx as unknown as Sql, true)]);
    const forged = handSigned([aOwner.id, "1", requestId], s0.guard, { kind: "login", writes: true, key: randomBytes(32).toString("hex") });
    await expect(app`select app.record_login(${aOwner.id}::uuid, true, ${requestId}, ${forged.guard}, ${forged.expiresAt}::int8, ${forged.nonce}, ${forged.proof})`).rejects.toMatchObject({ code: "TN401" });
    const sp = (await import("../server/db/contextProof.ts")).streamProof();
    const [stream] = await app`select app.open_context_stream(${sp.expiresAt}::int8, ${sp.nonce}, ${sp.proof}) as id`;
    const p = loginProof(aOwner.id, true, requestId, `s:${stream.id}`, Date.now() + 30_000);
    const [r] = await app`select app.record_login(${aOwner.id}::uuid, true, ${requestId}, ${p.guard}, ${p.expiresAt}::int8, ${p.nonce}, ${p.proof}) as n`;
    expect(r.n).toBe(1);
    await expect(app`select app.record_login(${aOwner.id}::uuid, true, ${requestId}, ${p.guard}, ${p.expiresAt}::int8, ${p.nonce}, ${p.proof})`).rejects.toMatchObject({ code: "TN401" });
    const events = await owner`select action, actor_user_id from app.audit_log where request_id = ${requestId}`;
    expect(events).toEqual([{ action: "auth.login", actor_user_id: aOwner.id }]);
  });

  it("the append-only guard opens for no setting, only for the sealing and retention functions", async () => {
    await owner.begin(async (tx) => {
      await tx`select app.open_operator_context(${a.id}::uuid)`;
      await tx`select app.audit_event('audit.export', 'x', 'x', '{}'::jsonb)`;
    });
    for (const settings of [["app.audit_sealing", "on"], ["app.audit_purging", "on"], ["app.capabilities", "audit_sealing,audit_purging"]]) {
      await expect(owner.begin(async (tx) => {
        await tx`select set_config(${settings[0]}, ${settings[1]}, true)`;
        return tx`update app.audit_log set seq = 999999, hash = 'x' where tenant_id = ${a.id} and seq is null`;
      }), settings[0]).rejects.toMatchObject({ code: "SS409" });
      await expect(owner.begin(async (tx) => {
        await tx`select set_config(${settings[0]}, ${settings[1]}, true)`;
        return tx`delete from app.audit_log where tenant_id = ${a.id}`;
      }), settings[0]).rejects.toMatchObject({ code: "SS409" });
    }
    const [sealed] = await owner`select app.audit_seal(${a.id}::uuid) as n`;
    expect(sealed.n).toBeGreaterThan(0);
    const [v] = await owner`select * from app.audit_verify(${a.id}::uuid)`;
    expect(v.problem).toBeNull();
  });
});

describe("anchors catch what the chain alone cannot", () => {
  const golden = useGolden("anchor");

  async function tamperable(fn: (su: Sql, ownerDb: Sql, tenantId: string, file: string, key: KeyRing<string>) => Promise<void>) {
    await golden.withClone(async (s) => {
      const o = postgres(s.ownerUrl, { max: 1, onnotice: () => {} });
      const su = postgres(superuserUrlFor(s.name), { max: 1, onnotice: () => {} });
      const file = `/tmp/anchors-${randomUUID()}.jsonl`;
      try {
        const tenantId = golden.tenants[0].id;
        await o`update app.customers set name = name || '.' where tenant_id = ${tenantId}`;
        await o`select app.audit_seal(${tenantId}::uuid)`;
        await fn(su, o, tenantId, file, singleKeyRing("k".repeat(40)));
      } finally {
        await su.end({ timeout: 5 });
        await o.end({ timeout: 5 });
      }
    });
  }

  it("an intact chain passes against its anchor; a forged anchor line does not verify", async () =>
    tamperable(async (_su, o, tenantId, file, key) => {
      const anchors = await writeAnchors(o, file, key);
      const mine = anchors.find((x) => x.tenant_id === tenantId)!;
      expect(mine.seq).toBeGreaterThan(0);
      expect(await checkAnchor(o, mine)).toBeNull();
      expect(readAnchors(file, singleKeyRing("another-key-".repeat(4))).forged).toBe(anchors.length);
    }));

  it("deleting the newest rows is caught", async () =>
    tamperable(async (su, o, tenantId, file, key) => {
      const [mine] = (await writeAnchors(o, file, key)).filter((x) => x.tenant_id === tenantId);
      // Someone with the owner's powers switches the guard off and drops the chain's tail.
      await su.unsafe(`alter table app.audit_log disable trigger user`);
      await su`delete from app.audit_log where tenant_id = ${tenantId} and seq = ${mine.seq}`;
      await su.unsafe(`alter table app.audit_log enable trigger user`);
      const [v] = await o`select * from app.audit_verify(${tenantId}::uuid)`;
      expect(v.problem, "the chain alone does not see it").toBeNull();
      expect(await checkAnchor(o, readAnchors(file, key).latest.get(tenantId)!)).toMatch(/newest rows deleted/);
    }));

  it("re-sealing a suffix is caught", async () =>
    tamperable(async (su, o, tenantId, file, key) => {
      const [mine] = (await writeAnchors(o, file, key)).filter((x) => x.tenant_id === tenantId);
      await su.unsafe(`alter table app.audit_log disable trigger user`);
      await su`update app.audit_log set change = '{"rewritten":true}'::jsonb, seq = null, prev_hash = null, hash = null where tenant_id = ${tenantId} and seq = ${mine.seq}`;
      await su.unsafe(`alter table app.audit_log enable trigger user`);
      await o`select app.audit_seal(${tenantId}::uuid)`;
      const [v] = await o`select * from app.audit_verify(${tenantId}::uuid)`;
      expect(v.problem, "the chain alone does not see it").toBeNull();
      expect(await checkAnchor(o, readAnchors(file, key).latest.get(tenantId)!)).toMatch(/re-sealed/);
    }));
});

describe("canary: with the seal check switched off, the forgery probe finds leaks", () => {
  const golden = useGolden("ctxcanary");

  it("finds rows read and written through forged settings", async () =>
    golden.withClone(async (s) => {
      const o = postgres(s.ownerUrl, { max: 1, onnotice: () => {} });
      try {
        const t = golden.tenants[0];
        const [u] = await o`insert into app.users (email) values (${`canary-${randomUUID().slice(0, 8)}@test.test`}) returning id`;
        await o`insert into app.memberships (tenant_id, user_id, role) values (${t.id}, ${u.id}, 'owner')`;
        expect(await findForgeryLeaks(s.appUrl, s.ownerUrl, { userId: u.id, tenantId: t.id })).toEqual([]);
        // Verification off: the reader trusts the setting, as the first wave did.
        await o.unsafe(`create or replace function app.verified_context() returns text language sql stable as $$ select nullif(current_setting('app.context', true), '') $$`);
        const leaks = await findForgeryLeaks(s.appUrl, s.ownerUrl, { userId: u.id, tenantId: t.id });
        expect(leaks.length).toBeGreaterThan(0);
        expect(leaks.join("\n")).toMatch(/app\.customers: \d+ row\(s\) read after set_config of app\.context without a seal/);
      } finally {
        await o.end({ timeout: 5 });
      }
    }));
});
