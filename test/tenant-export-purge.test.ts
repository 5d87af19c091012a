// A shop's export and purge (issue 34): GET /api/v1/export for its owner (also while suspended)
// and `tenant export` write every row of every tenant table as one archive with a manifest of row
// counts and checksums; `tenant purge` seals and anchors the audit chain, deletes every row in one
// transaction that proves none is left, records the counts globally, and never touches another
// shop, even under concurrent traffic; `tenant import` brings the archive back so exactly that a
// second export is byte for byte the first.
import { singleKeyRing } from "../server/core/keyRing.ts";
import { createHash, randomUUID } from "node:crypto";
import { request as httpRequest } from "node:http";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { MANIFEST_PREFIX, type Manifest } from "../server/db/tenantArchive.ts";
import { exportTenant } from "../server/ops/tenants.ts";
import { importArchive } from "../server/ops/tenantImport.ts";
import { purgeTenant } from "../server/ops/tenantPurge.ts";
import postgres from "postgres";
import { asMember, makeTenant, makeUser, startApi, tokenFor, useApi, type Tenant, type User } from "./fixtures.ts";
import { run, useGolden } from "./scratch.ts";

const { owner, app, api } = useApi();
const golden = useGolden("archive");
let dir: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "rls-shop-archive-"));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const uniq = () => randomUUID().slice(0, 8);

/** A shop with rows in every kind of tenant table, written through the API as its owner. */
async function populatedShop(prefix: string): Promise<{ shop: Tenant; boss: User }> {
  const shop = await makeTenant(owner, { prefix });
  const boss = await makeUser(owner, shop, "owner");
  const call = async (method: string, path: string, body?: unknown, headers?: Record<string, string>) => {
    const res = await api.request(method, path, { token: tokenFor(boss), tenant: shop.slug, body, headers });
    expect(res.status, `${method} ${path}: ${JSON.stringify(res.body)}`).toBeLessThan(300);
    return res.body;
  };
  const customer = await call("POST", "/api/v1/customers", { name: "Ann \"tab\there\" \\ newline\nO'Brien" }, { "idempotency-key": randomUUID() });
  await call("POST", "/api/v1/vehicles", { customer_id: customer.id, plate: `P-${uniq()}` });
  const service = await call("POST", "/api/v1/services", { name: `Brakes ${uniq()}` });
  const op = await call("POST", "/api/v1/service-operations", { service_id: service.id, internal_code: `OP-${uniq()}`, name: "Pads", price_cents: 9900, duration_minutes: 60 });
  await call("POST", "/api/v1/appointments", { customer_id: customer.id, starts_at: "2031-02-03T09:00:00Z", ends_at: "2031-02-03T10:00:00Z", assigned_user_id: boss.id });
  const invoice = await call("POST", "/api/v1/invoices", { customer_id: customer.id });
  await call("POST", `/api/v1/invoices/${invoice.id}/lines`, { service_operation_id: op.id, quantity: 2 });
  await call("POST", `/api/v1/invoices/${invoice.id}/issue`);
  await call("POST", "/api/v1/members", { email: `invitee-${uniq()}@test.test`, role: "staff" });
  await call("PATCH", "/api/v1/settings", { timezone: "Europe/Berlin" });
  return { shop, boss };
}

/** Per tenant table: the shop's row count and a digest of its rows by primary key, as the owner sees them. */
async function digests(tenant: Tenant, except: string[] = []): Promise<Record<string, string>> {
  const tables = await owner.begin(async (tx) => {
    await tx`select app.open_operator_context(${tenant.id}::uuid, 'owner')`;
    return tx`select table_name, key_columns from app.tenant_export_tables() order by ord`;
  });
  const out: Record<string, string> = {};
  for (const t of tables) {
    if (except.includes(t.table_name)) continue;
    const [r] = await owner.unsafe(`select count(*)::text || ':' || coalesce(md5(string_agg(x::text, '|' order by ${(t.key_columns as string[]).map((c) => `x.${c}`).join(", ")})), '') as d
                                      from app.${t.table_name} x where x.tenant_id = $1`, [tenant.id]);
    out[t.table_name] = r.d as string;
  }
  return out;
}

const manifestOf = (archive: string): Manifest =>
  JSON.parse(archive.trimEnd().split("\n").at(-1)!.slice(MANIFEST_PREFIX.length)) as Manifest;

/** Each table's section of an archive: its rows' text, as the manifest's checksum covers it. */
function sections(archive: string): Map<string, string> {
  const found = new Map<string, string>();
  for (const m of archive.matchAll(/^COPY app\."([a-z_]+)" \([^)]*\) FROM stdin;\n([\s\S]*?)^\\\.$/gm)) found.set(m[1], m[2]);
  return found;
}

describe("GET /api/v1/export", () => {
  it("the owner gets every tenant table of the shop, in dependency order, with a manifest its contents match; nothing of another shop", async () => {
    const { shop, boss } = await populatedShop("exp");
    const { shop: other } = await populatedShop("exp-other");
    const before = await digests(shop);
    const res = await api.request("GET", "/api/v1/export", { token: tokenFor(boss), tenant: shop.slug });
    expect(res.status).toBe(200);
    const archive = res.body as string;
    const manifest = manifestOf(archive);
    const tables = Object.keys(before);
    expect(manifest.tenant_id).toBe(shop.id);
    expect(manifest.tables.map((t) => t.table)).toEqual(tables);
    expect(tables.indexOf("customers")).toBeLessThan(tables.indexOf("vehicles"));
    expect(tables.indexOf("invoices")).toBeLessThan(tables.indexOf("invoice_lines"));
    const bodies = sections(archive);
    for (const t of manifest.tables) {
      expect(Number(before[t.table].split(":")[0]), t.table).toBe(t.rows);
      expect(createHash("sha256").update(bodies.get(t.table) ?? "").digest("hex"), t.table).toBe(t.sha256);
    }
    expect(manifest.tables.filter((t) => t.rows > 0).map((t) => t.table)).toEqual(expect.arrayContaining(["customers", "vehicles", "services", "service_operations", "appointments", "invoices", "invoice_lines", "invitations", "audit_log", "idempotency_keys"]));
    expect(archive).not.toContain(other.id);
    expect(archive).not.toMatch(/scrypt\$/);
    const [event] = await owner`select change->'event'->'manifest' as m from app.audit_log where tenant_id = ${shop.id} and action = 'tenant.exported'`;
    expect(event.m).toEqual(manifest);
  });

  it("only the owner may export (403 naming tenant:export), another shop's member gets 404, and a suspended shop's owner still may", async () => {
    const { shop, boss } = await populatedShop("exp-who");
    const admin = await makeUser(owner, shop, "admin");
    const refused = await api.request("GET", "/api/v1/export", { token: tokenFor(admin), tenant: shop.slug });
    expect([refused.status, refused.body.error.code, refused.body.error.details]).toEqual([403, "FORBIDDEN", { permission: "tenant:export" }]);
    const { boss: stranger } = await populatedShop("exp-stranger");
    expect((await api.request("GET", "/api/v1/export", { token: tokenFor(stranger), tenant: shop.slug })).status).toBe(404);
    await owner`update app.tenants set status = 'suspended' where id = ${shop.id}`;
    expect((await api.request("GET", "/api/v1/customers", { token: tokenFor(boss), tenant: shop.slug })).body.error.code).toBe("TENANT_SUSPENDED");
    const exported = await api.request("GET", "/api/v1/export", { token: tokenFor(boss), tenant: shop.slug });
    expect(exported.status).toBe(200);
    expect(manifestOf(exported.body).tenant_id).toBe(shop.id);
  });
});

describe("streaming", () => {
  let big: Tenant;
  let bigOwner: User;
  const exportsOf = async (complete: boolean) =>
    (await owner`select count(*)::int as n from app.audit_log where tenant_id = ${big.id} and action = 'tenant.exported' and (change->'event'->>'complete')::boolean = ${complete}`)[0].n;

  beforeAll(async () => {
    big = await makeTenant(owner, { prefix: "big" });
    bigOwner = await makeUser(owner, big, "owner");
    // One statement, 50,000 customers: the statement-level trigger writes 50,000 audit rows too.
    await owner`insert into app.customers (tenant_id, name) select ${big.id}, 'bulk ' || g from generate_series(1, 50000) g`;
  }, 120_000);

  it("rows arrive while the export still runs (streamed, not buffered), and every one of them is there", async () => {
    let recordedAtFirstChunk = -1;
    const text = await new Promise<string>((resolve, reject) => {
      const req = httpRequest(`${api.url}/api/v1/export`, { headers: { authorization: `Bearer ${tokenFor(bigOwner)}`, "x-tenant-id": big.slug } }, (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => {
          chunks.push(c);
          if (chunks.length === 1) {
            // The export is recorded at its end, in its transaction: not visible now means the
            // archive is arriving while its COPYs still run.
            res.pause();
            exportsOf(true).then((n) => ((recordedAtFirstChunk = n), res.resume()), reject);
          }
        });
        res.on("end", () => resolve(Buffer.concat(chunks).toString("utf8")));
        res.on("error", reject);
      });
      req.on("error", reject);
      req.end();
    });
    expect(recordedAtFirstChunk).toBe(0);
    const manifest = manifestOf(text);
    expect(manifest.tables.find((t) => t.table === "customers")!.rows).toBe(50_000);
    expect(manifest.tables.find((t) => t.table === "audit_log")!.rows).toBeGreaterThanOrEqual(50_000);
    expect(createHash("sha256").update(sections(text).get("customers")!).digest("hex")).toBe(manifest.tables.find((t) => t.table === "customers")!.sha256);
    expect(await exportsOf(true)).toBe(1);
  }, 120_000);

  it("a client leaving half way: the COPY is cancelled, the export recorded as incomplete, the connection given back", async () => {
    const single = await startApi({ poolMax: 1, exportMax: 1 });
    try {
      await new Promise<void>((resolve, reject) => {
        const req = httpRequest(`${single.url}/api/v1/export`, { headers: { authorization: `Bearer ${tokenFor(bigOwner)}`, "x-tenant-id": big.slug } }, (res) => {
          res.once("data", () => (req.destroy(), resolve()));
          res.on("error", () => {});
        });
        req.on("error", (e: NodeJS.ErrnoException) => (e.code === "ECONNRESET" ? undefined : reject(e)));
        req.end();
      });
      // Waits on state: the abandoned export records itself and frees its one connection.
      for (let i = 0; i < 500 && (await exportsOf(false)) === 0; i++) await new Promise((r) => setTimeout(r, 20));
      expect(await exportsOf(false)).toBe(1);
      let next = await single.request("GET", "/api/v1/export", { token: tokenFor(bigOwner), tenant: big.slug });
      for (let i = 0; i < 500 && next.status === 503; i++) {
        await new Promise((r) => setTimeout(r, 20));
        next = await single.request("GET", "/api/v1/export", { token: tokenFor(bigOwner), tenant: big.slug });
      }
      expect(next.status).toBe(200);
      expect(manifestOf(next.body).tables.find((t) => t.table === "customers")!.rows).toBe(50_000);
    } finally {
      await single.close();
    }
  }, 120_000);
});

describe("export, purge, import", () => {
  it("round trip: after the purge nothing of the shop is left; re-imported, a second export is byte for byte the first, and its chain verifies", async () => {
    const { shop, boss } = await populatedShop("round");
    const first = join(dir, "first.txt");
    const second = join(dir, "second.txt");
    const exported = await exportTenant(owner, shop.slug, first);
    const before = await digests(shop, ["audit_log"]);

    await expect(purgeTenant(owner, shop.slug, { confirmation: "not-the-slug", actor: "test" })).rejects.toThrow(/confirmation/);
    expect((await owner`select status from app.tenants where id = ${shop.id}`)[0].status).toBe("active");
    const anchors = { file: join(dir, "anchors.jsonl"), ring: singleKeyRing("k".repeat(40)) };
    const { rows, anchor } = await purgeTenant(owner, shop.slug, { confirmation: shop.slug, actor: "test purge", anchors });
    expect(rows.every((r) => r.remaining === 0)).toBe(true);
    expect(rows.find((r) => r.table_name === "audit_log")!.deleted).toBeGreaterThan(0);
    expect(anchor?.tenant_id).toBe(shop.id);
    expect(Object.entries(await digests(shop)).filter(([, d]) => d !== "0:")).toEqual([]);
    expect(await owner`select 1 from app.memberships where tenant_id = ${shop.id}`).toHaveLength(0);
    const [event] = await owner`select actor, detail from app.tenant_lifecycle_events where tenant_id = ${shop.id} and action = 'tenant.purged'`;
    expect(event.actor).toBe("test purge");
    expect(event.detail.deleted.customers).toBe(1);
    expect(event.detail.anchor.seq).toBe(anchor!.seq);
    expect((await api.request("GET", "/api/v1/customers", { token: tokenFor(boss), tenant: shop.slug })).status).toBe(404);

    const imported = await importArchive(owner, first, "test import");
    expect(imported.manifest).toEqual(exported);
    await exportTenant(owner, shop.slug, second);
    const headerOf = (text: string) => JSON.parse(text.split("\n")[1].slice("-- header ".length));
    expect(headerOf(await readFile(second, "utf8"))).toEqual(headerOf(await readFile(first, "utf8")));
    expect(await readFile(second, "utf8")).toBe(await readFile(first, "utf8"));
    expect(await digests(shop, ["audit_log"])).toEqual(before);
    const [chain] = await owner`select problem from app.audit_verify(${shop.id}::uuid)`;
    expect(chain.problem).toBeNull();
    expect((await api.request("GET", "/api/v1/customers", { token: tokenFor(boss), tenant: shop.slug })).status).toBe(200);
    // An archive for a shop that still has rows is refused, changing nothing.
    await expect(importArchive(owner, first, "test import")).rejects.toThrow(/purge it first/);
  }, 60_000);

  it("an archive loads into a fresh database, where its export is byte for byte the archive", async () => {
    const { shop } = await populatedShop("fresh");
    const first = join(dir, "fresh-first.txt");
    const again = join(dir, "fresh-again.txt");
    await exportTenant(owner, shop.slug, first);
    await golden.withClone(async (s) => {
      const sql = postgres(s.ownerUrl, { max: 1, onnotice: () => {} });
      try {
        expect(await sql`select 1 from app.tenants where id = ${shop.id}`).toHaveLength(0);
        await importArchive(sql, first, "test import");
        await exportTenant(sql, shop.slug, again);
        const [chain] = await sql`select problem from app.audit_verify(${shop.id}::uuid)`;
        expect(chain.problem).toBeNull();
      } finally {
        await sql.end();
      }
    });
    expect(await readFile(again, "utf8")).toBe(await readFile(first, "utf8"));
  }, 60_000);

  it("a transaction that opened the shop's context before the close is waited for, and what it writes is purged with the rest", async () => {
    const { shop, boss } = await populatedShop("inflight");
    let opened!: () => void;
    let release!: () => void;
    const didOpen = new Promise<void>((resolve) => (opened = resolve));
    const held = new Promise<void>((resolve) => (release = resolve));
    // Opened and checked before the close, writing only after it: no lock tells the purge about it.
    const writer = asMember(app, boss, shop, { permission: "customers:write", writes: true }, async (tx) => {
      opened();
      await held;
      await tx`insert into app.customers (tenant_id, name) values (${shop.id}, 'written after the close')`;
    });
    await didOpen;
    // The writer goes on once the purge waits for it (or, were there no wait, once the purge is done).
    const purge = purgeTenant(owner, shop.slug, {
      confirmation: shop.slug, actor: "test", log: (line) => void (/^waiting for \d+ transaction/.test(line) && release()),
    }).finally(() => release());
    await writer;
    const { rows } = await purge;
    expect(rows.find((r) => r.table_name === "customers")!.deleted).toBe(2);
    expect(Object.entries(await digests(shop)).filter(([, d]) => d !== "0:")).toEqual([]);
  }, 60_000);

  it("a purge under concurrent traffic of other shops leaves their rows exactly as that traffic made them", async () => {
    const { shop } = await populatedShop("purge-me");
    const others = [await populatedShop("busy-a"), await populatedShop("busy-b")];
    const untouched = await Promise.all(others.map((o) => digests(o.shop, ["customers", "audit_log", "idempotency_keys"])));
    const customersBefore = await Promise.all(others.map(async (o) => (await owner`select id from app.customers where tenant_id = ${o.shop.id}`).map((r) => r.id as string)));

    let purging = true;
    const created: string[][] = [[], []];
    const failures: string[] = [];
    const traffic = async (i: number) => {
      for (let n = 0; purging || n < 5; n++) {
        const o = others[i];
        const res = await api.request("POST", "/api/v1/customers", { token: tokenFor(o.boss), tenant: o.shop.slug, body: { name: `during purge ${n}` } });
        if (res.status === 201) created[i].push(res.body.id);
        else failures.push(`${res.status} ${JSON.stringify(res.body)}`);
        const read = await api.request("GET", "/api/v1/customers?limit=5", { token: tokenFor(o.boss), tenant: o.shop.slug });
        if (read.status !== 200) failures.push(`GET ${read.status}`);
      }
    };
    const load = Promise.all([traffic(0), traffic(1), traffic(0), traffic(1)]);
    const purge = purgeTenant(owner, shop.slug, { confirmation: shop.slug, actor: "test" }).finally(() => (purging = false));
    const [{ rows }] = await Promise.all([purge, load]);

    expect(failures).toEqual([]);
    expect(rows.every((r) => r.remaining === 0)).toBe(true);
    expect(Object.entries(await digests(shop)).filter(([, d]) => d !== "0:")).toEqual([]);
    for (let i = 0; i < others.length; i++) {
      expect(await digests(others[i].shop, ["customers", "audit_log", "idempotency_keys"])).toEqual(untouched[i]);
      const now = (await owner`select id from app.customers where tenant_id = ${others[i].shop.id}`).map((r) => r.id as string);
      expect(now.sort()).toEqual([...customersBefore[i], ...created[i]].sort());
      expect(created[i].length).toBeGreaterThanOrEqual(10);
    }
  }, 120_000);
});



describe("the CLI, as an operator runs it", () => {
  it("tenant export, purge (typed confirmation, or --yes) and import, against a database by URL", async () => {
    await golden.withClone(async (s) => {
      const slug = golden.tenants[0].slug;
      const env = { AUDIT_ANCHOR_KEY: "a".repeat(40), AUDIT_ANCHOR_FILE: join(dir, "cli-anchors.jsonl") };
      const cli = (args: string[], input?: string) => run(process.execPath, ["--import", "tsx", "server/cli.ts", "tenant", ...args, "--url", s.ownerUrl], env, input);
      const file = join(dir, "cli.tenant.txt");
      const again = join(dir, "cli-again.tenant.txt");
      const exported = await cli(["export", slug, "--out", file]);
      expect(exported.code, exported.output).toBe(0);
      expect(exported.output).toMatch(/customers\s+3 rows\s+sha256 [0-9a-f]{64}/);

      const refused = await cli(["purge", slug], "not-the-slug\n");
      expect(refused.code).not.toBe(0);
      expect(refused.output).toMatch(/nothing was purged/);
      const purged = await cli(["purge", slug], `${slug}\n`);
      expect(purged.code, purged.output).toBe(0);
      expect(purged.output).toMatch(/customers\s+deleted\s+3\s+remaining 0/);
      expect(purged.output).toMatch(/anchored position \d+/);

      const imported = await cli(["import", file]);
      expect(imported.code, imported.output).toBe(0);
      expect((await cli(["export", slug, "--out", again])).code).toBe(0);
      expect(await readFile(again, "utf8")).toBe(await readFile(file, "utf8"));
      const verify = await run(process.execPath, ["--import", "tsx", "server/cli.ts", "audit", "verify", "--tenant", slug, "--url", s.ownerUrl], env);
      expect(verify.code, verify.output).toBe(0);
      expect(verify.output).toMatch(/re-imported from an archive/);

      const unattended = await cli(["purge", slug, "--yes", "--reason", "contract ended"]);
      expect(unattended.code, unattended.output).toBe(0);
      const purgedVerify = await run(process.execPath, ["--import", "tsx", "server/cli.ts", "audit", "verify", "--tenant", slug, "--url", s.ownerUrl], env);
      expect(purgedVerify.code, purgedVerify.output).toBe(0);
      expect(purgedVerify.output).toMatch(/purged at .* anchored through position/);
    });
  }, 180_000);
});
