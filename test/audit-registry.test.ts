// The audit records actions, not caches (policies/registry.sql): an idempotent POST's stored answer
// never reaches the append-only trail, the cleanup of expired keys writes nothing there, and a new
// tenant table named in neither list of the registry fails the catalog contract by name.
import { randomUUID } from "node:crypto";
import { beforeAll, describe, expect, it } from "vitest";
import postgres from "postgres";
import { makeTenant, makeUser, tokenFor, useApi, type Tenant, type User } from "./fixtures.ts";
import { psqlFile, runSql, useGolden } from "./scratch.ts";

const { owner, api } = useApi();
const golden = useGolden("auditreg");
let shop: Tenant;
let clerk: User;

beforeAll(async () => {
  shop = await makeTenant(owner, { prefix: "auditreg" });
  clerk = await makeUser(owner, shop, "owner");
});

/** The shop's audit rows, as text, that mention `needle` anywhere (entity, ids, the change). */
const auditMentioning = async (needle: string) =>
  owner`select entity, action, actor_user_id, change::text as change from app.audit_log where tenant_id = ${shop.id} and (change::text like ${`%${needle}%`} or entity_id = ${needle})`;

describe("the audit records actions, not caches", () => {
  it("an idempotent POST is audited as the customer it created; the answer stored for its replay is not", async () => {
    const key = randomUUID();
    const email = `cache-${key.slice(0, 8)}@audit.test`;
    const created = await api.request("POST", "/api/v1/customers", { token: tokenFor(clerk), tenant: shop.slug, body: { name: "Kept out of the trail", email }, headers: { "idempotency-key": key } });
    expect(created.status).toBe(201);
    const [stored] = await owner`select response_body from app.idempotency_keys where tenant_id = ${shop.id} and key = ${key}`;
    expect(stored.response_body).toMatchObject({ id: created.body.id, email });

    const rows = await auditMentioning(email);
    // The action: one insert of the customer. Nothing of the stored answer (its key, its body).
    expect(rows.map((r) => [r.action, r.entity])).toEqual([["insert", "customers"]]);
    expect(await auditMentioning(key)).toEqual([]);
    const [{ n }] = await owner`select count(*)::int as n from app.audit_log where tenant_id = ${shop.id} and entity = 'idempotency_keys'`;
    expect(n).toBe(0);
  });

  it("idempotency_cleanup() removes expired keys and leaves no audit row, actor-less or other", async () => {
    const key = randomUUID();
    expect((await api.request("POST", "/api/v1/customers", { token: tokenFor(clerk), tenant: shop.slug, body: { name: "Expiring answer" }, headers: { "idempotency-key": key } })).status).toBe(201);
    const count = async () => (await owner`select count(*)::int as n from app.audit_log where tenant_id = ${shop.id}`)[0].n as number;
    const before = await count();
    await owner`update app.idempotency_keys set expires_at = now() - interval '1 second' where tenant_id = ${shop.id} and key = ${key}`;
    const [{ removed }] = await owner`select app.idempotency_cleanup()::int as removed`;
    expect(removed).toBeGreaterThanOrEqual(1);
    expect(await count()).toBe(before);
    const [{ n }] = await owner`select count(*)::int as n from app.audit_log where tenant_id = ${shop.id} and actor_user_id is null`;
    expect(n).toBe(0);
  });

  it("canary: a tenant table in neither list fails the catalog contract by name, with the FIX, and is audited meanwhile", async () =>
    golden.withClone(async (s) => {
      // app.vehicles as a table nobody classified yet: taken out of the audited list.
      const audited = (await owner`select app.audited_table_names() as names`)[0].names as string[];
      const others = audited.filter((name) => name !== "vehicles").map((name) => `'${name}'`).join(", ");
      await runSql(s.ownerUrl, `create or replace function app.audited_table_names() returns text[] language sql immutable
        set search_path = pg_catalog, pg_temp as $$ select array[${others}]::text[] $$`);
      const unlisted = await psqlFile(s.ownerUrl, "verify/catalog.sql");
      expect(unlisted.code).not.toBe(0);
      expect(unlisted.output).toContain("FAIL app.vehicles: in neither list of the audit registry. FIX: name it in policies/registry.sql: in app.audited_table_names()");
      // Re-applied, the audit keeps recording it until it is classified.
      expect((await psqlFile(s.ownerUrl, "policies/audit.sql")).code).toBe(0);
      expect(await auditTriggers(s.ownerUrl, "app.vehicles")).toBe(3);
      // Classified again (the registry re-applied), the catalog passes.
      expect((await psqlFile(s.ownerUrl, "policies/registry.sql")).code).toBe(0);
      const listed = await psqlFile(s.ownerUrl, "verify/catalog.sql");
      expect(listed.output).toContain("catalog: ok");
    }));

  it("canary: exempting a table takes its audit triggers away; the catalog holds an exempt table without triggers", async () =>
    golden.withClone(async (s) => {
      expect(await auditTriggers(s.ownerUrl, "app.idempotency_keys")).toBe(0);
      await runSql(s.ownerUrl, "create trigger audit_insert after insert on app.idempotency_keys referencing new table as audit_new for each statement execute function app.audit_statement()");
      const wrong = await psqlFile(s.ownerUrl, "verify/catalog.sql");
      expect(wrong.output).toContain("FAIL app.idempotency_keys: exempted from the audit (app.unaudited_tables()), but audit triggers write its rows to the audit. FIX: ");
      expect((await psqlFile(s.ownerUrl, "policies/audit.sql")).code).toBe(0);
      expect(await auditTriggers(s.ownerUrl, "app.idempotency_keys")).toBe(0);
    }));
});

async function auditTriggers(url: string, table: string): Promise<number> {
  const sql = postgres(url, { max: 1, onnotice: () => {} });
  try {
    const [{ n }] = await sql`select count(*)::int as n from pg_trigger where tgrelid = ${table}::regclass and tgname in ('audit_insert', 'audit_update', 'audit_delete')`;
    return n;
  } finally {
    await sql.end();
  }
}
