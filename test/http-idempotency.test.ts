// Idempotency-Key on POST: replay, reuse with another body, concurrent duplicates, expiry.
import { createHash, randomUUID } from "node:crypto";
import { beforeAll, describe, expect, it } from "vitest";
import { makeTenant, makeUser, tokenFor, useApi, type Tenant, type User } from "./fixtures.ts";

const { owner, api } = useApi();
let a: Tenant;
let alice: User;

beforeAll(async () => {
  a = await makeTenant(owner);
  alice = await makeUser(owner, a, "owner");
});

const post = (key: string, body: unknown) =>
  api.request("POST", "/api/v1/customers", { token: tokenFor(alice), tenant: a.slug, body, headers: { "idempotency-key": key } });
const countNamed = async (name: string) =>
  (await owner`select count(*)::int as n from app.customers where tenant_id = ${a.id} and name = ${name}`)[0].n;

describe("Idempotency-Key on POST", () => {
  it("replays the first answer without running the effect again", async () => {
    const key = randomUUID();
    const first = await post(key, { name: "Once" });
    expect(first.status).toBe(201);
    expect(first.headers.get("idempotent-replayed")).toBeNull();
    const again = await post(key, { name: "Once" });
    expect(again.status).toBe(201);
    expect(again.headers.get("idempotent-replayed")).toBe("true");
    expect(again.body).toEqual(first.body);
    expect(await countNamed("Once")).toBe(1);
  });

  it("refuses the same key with another body (422 IDEMPOTENCY_KEY_REUSED)", async () => {
    const key = randomUUID();
    expect((await post(key, { name: "First body" })).status).toBe(201);
    const reused = await post(key, { name: "Other body" });
    expect(reused.status).toBe(422);
    expect(reused.body.error.code).toBe("IDEMPOTENCY_KEY_REUSED");
    expect(await countNamed("Other body")).toBe(0);
  });

  it("runs concurrent duplicates exactly once: the others get 409 IDEMPOTENCY_IN_PROGRESS or the replay", async () => {
    const key = randomUUID();
    const answers = await Promise.all(Array.from({ length: 8 }, () => post(key, { name: "Concurrent" })));
    const fresh = answers.filter((r) => r.status === 201 && r.headers.get("idempotent-replayed") === null);
    expect(fresh).toHaveLength(1);
    for (const r of answers) {
      if (r.status === 409) expect(r.body.error.code).toBe("IDEMPOTENCY_IN_PROGRESS");
      else expect(r).toMatchObject({ status: 201, body: fresh[0].body });
    }
    expect(await countNamed("Concurrent")).toBe(1);
  });

  it("stores the key in the effect's transaction: a failed effect leaves no key", async () => {
    const key = randomUUID();
    expect((await post(key, { name: "" })).status).toBe(422);
    expect((await owner`select count(*)::int as n from app.idempotency_keys where key = ${key}`)[0].n).toBe(0);
    expect((await post(key, { name: "After failure" })).status).toBe(201);
  });

  it("expires keys after 24 h and the cleanup removes them", async () => {
    const key = randomUUID();
    await post(key, { name: "Expiring" });
    const [row] = await owner`select expires_at - created_at as ttl from app.idempotency_keys where key = ${key}`;
    expect(row.ttl).toMatch(/^24:00:00|1 day/);
    await owner`update app.idempotency_keys set expires_at = now() - interval '1 second' where key = ${key}`;
    await owner`select app.idempotency_cleanup()`;
    expect((await owner`select count(*)::int as n from app.idempotency_keys where key = ${key}`)[0].n).toBe(0);
  });
});

describe("Idempotency-Key on domain actions", () => {
  it("a retried invoice issue replays the same number and issues nothing twice; a retried line is added once", async () => {
    const call = (path: string, body?: unknown, key?: string) =>
      api.request("POST", path, { token: tokenFor(alice), tenant: a.slug, body, headers: key ? { "idempotency-key": key } : {} });
    const [customer] = await owner`insert into app.customers (tenant_id, name) values (${a.id}, 'Invoiced') returning id`;
    const invoice = await call("/api/v1/invoices", { customer_id: customer.id });
    const lineKey = randomUUID();
    const line = { description: "Labour", quantity: 1, unit_price_cents: 5000 };
    expect((await call(`/api/v1/invoices/${invoice.body.id}/lines`, line, lineKey)).status).toBe(201);
    const replayedLine = await call(`/api/v1/invoices/${invoice.body.id}/lines`, line, lineKey);
    expect(replayedLine.headers.get("idempotent-replayed")).toBe("true");
    const [{ n }] = await owner`select count(*)::int as n from app.invoice_lines where invoice_id = ${invoice.body.id}`;
    expect(n).toBe(1);

    const key = randomUUID();
    const first = await call(`/api/v1/invoices/${invoice.body.id}/issue`, undefined, key);
    const retry = await call(`/api/v1/invoices/${invoice.body.id}/issue`, undefined, key);
    expect(first.status).toBe(200);
    expect(retry.status).toBe(200);
    expect(retry.headers.get("idempotent-replayed")).toBe("true");
    expect(retry.body.number).toBe(first.body.number);
    const withoutKey = await call(`/api/v1/invoices/${invoice.body.id}/issue`);
    expect([withoutKey.status, withoutKey.body.error.code]).toEqual([409, "INVALID_TRANSITION"]);
  });
});

describe("Idempotency-Key: headers, members, tenant naming", () => {
  it("a replay answers the original headers, Location included", async () => {
    const key = randomUUID();
    const first = await post(key, { name: "Located" });
    const again = await post(key, { name: "Located" });
    expect(first.headers.get("location")).toMatch(/^\/api\/v1\/customers\/[0-9a-f-]{36}$/);
    expect(again.headers.get("idempotent-replayed")).toBe("true");
    expect(again.headers.get("location")).toBe(first.headers.get("location"));
  });

  it("POST /members takes an Idempotency-Key: the retry replays the same invitation and token, made once and stored only as a hash", async () => {
    const bob = await makeUser(owner);
    const key = randomUUID();
    const add = () => api.request("POST", "/api/v1/members", { token: tokenFor(alice), tenant: a.slug, body: { email: bob.email, role: "staff" }, headers: { "idempotency-key": key } });
    const first = await add();
    const again = await add();
    expect(first.status).toBe(202);
    expect(again.status).toBe(202);
    expect(again.headers.get("idempotent-replayed")).toBe("true");
    expect(again.body).toEqual(first.body);
    const invitations = await owner`select token_hash from app.invitations where tenant_id = ${a.id} and email = ${bob.email}`;
    expect(invitations).toEqual([{ token_hash: createHash("sha256").update(first.body.token).digest("hex") }]);
    const [stored] = await owner`select response_body::text as body from app.idempotency_keys where tenant_id = ${a.id} and key = ${key}`;
    expect(stored.body).not.toContain(first.body.token);
  });

  it("the same request via /t/{slug} and via X-Tenant-Id is one request (replayed, not 422)", async () => {
    const key = randomUUID();
    const viaPath = await api.request("POST", `/api/v1/t/${a.slug}/customers`, { token: tokenFor(alice), body: { name: "Named twice" }, headers: { "idempotency-key": key } });
    const viaHeader = await api.request("POST", "/api/v1/customers", { token: tokenFor(alice), tenant: a.id, body: { name: "Named twice" }, headers: { "idempotency-key": key } });
    expect(viaPath.status).toBe(201);
    expect(viaHeader.status).toBe(201);
    expect(viaHeader.headers.get("idempotent-replayed")).toBe("true");
    expect(viaHeader.body).toEqual(viaPath.body);
    expect(await countNamed("Named twice")).toBe(1);
  });
});

describe("every tenant POST takes an Idempotency-Key", () => {
  it("each one replays its first answer (status, body, Location) and runs its effect once", async () => {
    const call = (path: string, body: unknown, key: string) =>
      api.request("POST", path, { token: tokenFor(alice), tenant: a.slug, body, headers: { "idempotency-key": key } });
    const once = async (path: string, body: unknown) => {
      const key = randomUUID();
      const first = await call(path, body, key);
      const again = await call(path, body, key);
      expect(first.status, `${path}: ${JSON.stringify(first.body)}`).toBeLessThan(300);
      expect([again.status, again.headers.get("idempotent-replayed")], path).toEqual([first.status, "true"]);
      expect(again.body, path).toEqual(first.body);
      expect(again.headers.get("location"), path).toBe(first.headers.get("location"));
      return first.body;
    };
    const customer = await once("/api/v1/customers", { name: "Every POST" });
    await once("/api/v1/vehicles", { customer_id: customer.id, plate: "EP-1" });
    const service = await once("/api/v1/services", { name: `Every POST ${randomUUID()}` });
    const op = await once("/api/v1/service-operations", { service_id: service.id, internal_code: `EP-${randomUUID().slice(0, 8)}`, name: "Op", price_cents: 100, duration_minutes: 10 });
    await once("/api/v1/appointments", { customer_id: customer.id, starts_at: "2031-01-01T09:00:00Z", ends_at: "2031-01-01T10:00:00Z" });
    const invoice = await once("/api/v1/invoices", { customer_id: customer.id });
    await once(`/api/v1/invoices/${invoice.id}/lines`, { service_operation_id: op.id, quantity: 2 });
    await once(`/api/v1/invoices/${invoice.id}/issue`, undefined);
    await once(`/api/v1/invoices/${invoice.id}/pay`, undefined);
    const other = await once("/api/v1/invoices", { customer_id: customer.id });
    await once(`/api/v1/invoices/${other.id}/lines`, { description: "Labour", quantity: 1, unit_price_cents: 100 });
    await once(`/api/v1/invoices/${other.id}/issue`, undefined);
    await once(`/api/v1/invoices/${other.id}/void`, undefined);
    await once("/api/v1/members", { email: (await makeUser(owner)).email, role: "accountant" });
    const [{ n }] = await owner`select count(*)::int as n from app.invoice_lines where invoice_id = ${invoice.id}`;
    expect(n).toBe(1);
    const [{ v }] = await owner`select count(*)::int as v from app.vehicles where tenant_id = ${a.id} and plate = 'EP-1'`;
    expect(v).toBe(1);
  });
});
