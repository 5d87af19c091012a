// GET /api/v1/audit is newest first by the numeric id, and its cursor follows that order: paging
// through rows whose ids cross several digit counts (where text order and numeric order differ)
// returns every row exactly once, in order.
import { beforeAll, describe, expect, it } from "vitest";
import { makeCustomers, makeTenant, makeUser, tokenFor, useApi, type Tenant, type User } from "./fixtures.ts";

const { owner, api } = useApi();
let shop: Tenant;
let alice: User;

beforeAll(async () => {
  shop = await makeTenant(owner);
  alice = await makeUser(owner, shop, "owner");
  const [{ seq }] = await owner`select pg_get_serial_sequence('app.audit_log', 'id') as seq`;
  // Three times: move the identity just below the next power of ten, then write 400 audited rows across it.
  for (let round = 0; round < 3; round++) {
    const [{ last }] = await owner`select last_value::text as last from ${owner(seq.split(".")[0])}.${owner(seq.split(".")[1])}`;
    const boundary = 10n ** BigInt(Math.max(String(last).length, 3));
    await owner`select setval(${seq}, greatest(${String(boundary - 200n)}::bigint, ${last}::bigint))`;
    await makeCustomers(owner, shop, 400);
  }
});

describe("the audit list", () => {
  it("pages through >= 1,000 rows spanning several digit counts, each exactly once, newest first", async () => {
    const expected = (await owner`select id::text as id from app.audit_log where tenant_id = ${shop.id} order by audit_log.id desc`).map((r) => r.id as string);
    expect(expected.length).toBeGreaterThanOrEqual(1000);
    expect(new Set(expected.map((id) => id.length)).size).toBeGreaterThanOrEqual(3);

    const seen: string[] = [];
    let cursor: string | null = null;
    for (let pages = 0; pages < 100; pages++) {
      const q: string = cursor ? `&cursor=${encodeURIComponent(cursor)}` : "";
      const res = await api.request("GET", `/api/v1/audit?limit=37${q}`, { token: tokenFor(alice), tenant: shop.slug });
      expect(res.status).toBe(200);
      seen.push(...res.body.data.map((r: { id: string }) => r.id));
      cursor = res.body.next_cursor;
      if (!cursor) break;
    }
    expect(cursor).toBeNull();
    expect(seen).toEqual(expected);
    for (let i = 1; i < seen.length; i++) expect(BigInt(seen[i]) < BigInt(seen[i - 1])).toBe(true);
  });

  it("refuses a cursor it did not issue (400 INVALID_CURSOR)", async () => {
    for (const cursor of ["12345", "bm9wZQ", Buffer.from('["x"]').toString("base64url")]) {
      const res = await api.request("GET", `/api/v1/audit?cursor=${cursor}`, { token: tokenFor(alice), tenant: shop.slug });
      expect(res.status).toBe(400);
      expect(res.body.error.code).toBe("INVALID_CURSOR");
    }
  });
});
