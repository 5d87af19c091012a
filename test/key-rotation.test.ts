// Every key rotates with an overlap while 16 clients keep using the API (runbooks/key-rotation.md):
// two API instances behind a balancer are replaced one at a time (a rolling deploy, test/rotationLoad.ts)
// through the same steps for each key: add the new key everywhere, make it the primary everywhere,
// move what the old key holds (re-encrypt; let tokens expire; anchors stay with their kid), remove
// the old key. Asserted for each: 0 refused requests, 0 failed decryptions or verifications.
//   * the credentials key ring, with 10,000 rows across tenants re-encrypted while the clients read
//     (decrypt) and replace credentials: 0 lost updates, every row on the new key at the end;
//   * the JWT signing key (HS256 ring, kid): tokens of the old key keep working until they expire;
//   * the audit anchor key: anchors name their key id, old ones verify with the old key.
// Runs in a database of its own (a golden copy): a rotation reaches every tenant's rows.
import { createHmac, randomBytes } from "node:crypto";
import { readFileSync, writeFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import postgres from "postgres";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { hashPassword } from "../server/auth/passwords.ts";
import jwt from "jsonwebtoken";
import { hs256Keys, signAccessToken, verifyAccessToken, type TokenKeys } from "../server/auth/tokens.ts";
import { decryptCredential, encryptCredential } from "../server/core/credentialCipher.ts";
import type { KeyRing } from "../server/core/keyRing.ts";
import { createPool, type Pool, type Sql } from "../server/db/connections.ts";
import { useTenantPool } from "../server/db/tenantContext.ts";
import { verifyAudit, writeAnchors } from "../server/ops/auditAnchor.ts";
import { credentialKeyStatus, rotateCredentials } from "../server/ops/credentialRotation.ts";
import { keys as testKeys, makeTenant, makeUser, tokenFor, type Tenant, type User } from "./fixtures.ts";
import { Fleet, runLoad } from "./rotationLoad.ts";
import { useGolden } from "./scratch.ts";

const CLIENTS = 16;
const golden = useGolden("keyrotation");
let owner: Sql;
let pool: Pool;
let tenants: Tenant[];
let owners: User[];

beforeAll(async () => {
  owner = postgres(golden.ownerUrl, { max: 4, onnotice: () => {} });
  pool = createPool({ url: golden.appUrl, max: 8, connectTimeoutMs: 2000, statementTimeoutMs: 30_000, acquireTimeoutMs: 30_000, maxWaiting: 100_000 });
  useTenantPool(pool);
  tenants = [];
  owners = [];
  for (let t = 0; t < 4; t++) {
    tenants.push(await makeTenant(owner, { prefix: "rot" }));
    owners.push(await makeUser(owner, tenants[t], "owner"));
  }
});

afterAll(async () => {
  useTenantPool(undefined);
  await pool?.end({ timeout: 5 });
  await owner?.end({ timeout: 5 });
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const ring = <T>(primary: string, keys: Record<string, T>): KeyRing<T> => ({ primary, keys: new Map(Object.entries(keys)) });
const last4 = (s: string) => s.slice(-4);

/** What the load saw go wrong: every answer that was not the expected one, by kind. */
type Failures = { refused: string[]; failedChecks: string[] };
const noFailures = (): Failures => ({ refused: [], failedChecks: [] });

describe("the credentials key ring, rotated under load", () => {
  const ROWS_PER_TENANT = 2_500;

  it("10,000 rows across 4 tenants re-encrypted while 16 clients test and replace credentials: 0 refused, 0 failed decryptions, 0 lost updates", { timeout: 300_000 }, async () => {
    const k = { k1: randomBytes(32), k2: randomBytes(32) };
    const expected = new Map<string, string>(); // tenant id + provider → the secret last acknowledged
    const keyOf = (t: Tenant, p: string) => `${t.id} ${p}`;
    const v1 = ring("k1", { k1: k.k1 });
    for (const t of tenants) {
      const providers = Array.from({ length: ROWS_PER_TENANT }, (_, i) => `p-${String(i).padStart(5, "0")}`);
      const secrets = providers.map((p) => `seed-${p}-${randomBytes(10).toString("hex")}`);
      providers.forEach((p, i) => expected.set(keyOf(t, p), secrets[i]));
      const envelopes = providers.map((p, i) => encryptCredential(v1, { tenantId: t.id, provider: p }, secrets[i]));
      await owner`insert into app.integration_credentials (tenant_id, provider, credential_envelope, last4)
                  select ${t.id}::uuid, p, e, l from unnest(${providers}::text[], ${envelopes}::text[], ${secrets.map(last4)}::text[]) as x(p, e, l)`;
    }
    expect(await credentialKeyStatus(owner)).toEqual([{ key_id: "k1", rows: 10_000, tenants: 4 }]);

    const options = (credentialKeys: KeyRing<Buffer>) => ({ keys: testKeys, bodyLimit: "100kb", credentialKeys });
    const fleet = await Fleet.start(2, options(v1));
    const failures = noFailures();
    let updates = 0;
    let tests = 0;
    let stop = false;
    // Client c works in tenant c % 4 on its own 100 providers (so it knows each one's current secret).
    const step = async (c: number) => {
      const t = tenants[c % 4];
      const p = `p-${String(Math.floor(c / 4) + 4 * Math.floor(Math.random() * 100)).padStart(5, "0")}`;
      const auth = { token: tokenFor(owners[c % 4]), tenant: t.slug };
      if (Math.random() < 0.5) {
        const r = await fleet.request("POST", `/api/v1/integrations/${p}/test`, auth);
        tests++;
        if (r.status !== 200) failures.refused.push(`${r.instance} test ${p}: ${r.status} ${r.body?.error?.code}`);
        else if (r.body.last4 !== last4(expected.get(keyOf(t, p))!)) failures.failedChecks.push(`${r.instance} test ${p}: last4 ${r.body.last4}`);
      } else {
        const secret = `c${c}-${randomBytes(10).toString("hex")}`;
        const r = await fleet.request("PUT", `/api/v1/integrations/${p}`, { ...auth, body: { secret } });
        updates++;
        if (r.status !== 200) failures.refused.push(`${r.instance} put ${p}: ${r.status} ${r.body?.error?.code}`);
        else expected.set(keyOf(t, p), secret);
      }
    };
    const load = runLoad(CLIENTS, step, () => stop);
    let result: Awaited<ReturnType<typeof rotateCredentials>>;
    const promoted = ring("k2", { k2: k.k2, k1: k.k1 });
    try {
      await sleep(500);
      await fleet.roll(options(ring("k1", { k1: k.k1, k2: k.k2 }))); // 1. add k2 to every instance
      await fleet.roll(options(promoted)); // 2. make it the primary everywhere
      result = await rotateCredentials(owner, promoted, { batchSize: 500 }); // 3. re-encrypt, the load going on
      expect(await credentialKeyStatus(owner)).toEqual([{ key_id: "k2", rows: 10_000, tenants: 4 }]); // 4. verify
      await fleet.roll(options(ring("k2", { k2: k.k2 }))); // 5. remove k1
      await sleep(500);
    } finally {
      stop = true;
      await load;
      await fleet.stop();
    }
    console.log(`credentials rotation: ${result.done} rows in ${result.seconds.toFixed(2)} s (${Math.round(result.done / result.seconds)} rows/s) under ${CLIENTS} clients; ` +
      `${tests} tests and ${updates} replacements during the roll, ${result.conflicts} rows read again after a concurrent change`);
    expect(tests).toBeGreaterThan(100);
    expect(updates).toBeGreaterThan(100);
    expect(failures).toEqual(noFailures());
    expect(result).toMatchObject({ failed: 0, interrupted: false, leftByConflicts: 0 });

    // Every row on k2, and each holds the secret last acknowledged: no update lost to the rotation.
    const rows = await owner`select tenant_id, provider, key_id, credential_envelope from app.integration_credentials`;
    expect(rows).toHaveLength(10_000);
    const onlyK2 = ring("k2", { k2: k.k2 });
    const lost = rows.filter((r) => r.key_id !== "k2" || decryptCredential(onlyK2, { tenantId: r.tenant_id, provider: r.provider }, r.credential_envelope) !== expected.get(`${r.tenant_id} ${r.provider}`));
    expect(lost.map((r) => `${r.provider} ${r.key_id}`)).toEqual([]);

    // One credentials.key_rotation event per tenant, with its counts.
    const events = await owner`select tenant_id, actor_role, entity_id, change->'event' as e from app.audit_log where action = 'credentials.key_rotation'`;
    expect(events).toHaveLength(4);
    for (const ev of events) expect(ev).toMatchObject({ actor_role: "operator", entity_id: "k2", e: { to_key: "k2", unreadable: 0 } });
    expect(events.reduce((n, ev) => n + ev.e.rotated, 0)).toBe(result.done);
    expect(events.reduce((n, ev) => n + (ev.e.from_keys.k1 ?? 0), 0)).toBe(result.done);

    // Again: nothing left, nothing written, no event.
    const again = await rotateCredentials(owner, promoted, {});
    expect(again).toMatchObject({ total: 0, done: 0 });
    expect(await owner`select count(*)::int as n from app.audit_log where action = 'credentials.key_rotation'`).toEqual([{ n: 4 }]);
  });
});

describe("the JWT signing key, rotated under load", () => {
  it("tokens of the old key keep working until they expire, while 16 clients log in and read: 0 refused", { timeout: 180_000 }, async () => {
    const a = "a".repeat(40), b = "b".repeat(40);
    // Long enough that a token checked fresh by the client is still valid when a loaded machine serves it.
    const ttl = 10;
    const tokenKeys = (r: KeyRing<string>): TokenKeys => hs256Keys(r, "rls-service-shop", ttl);
    const users: User[] = [];
    const password = "rotation-test-password";
    const hash = await hashPassword(password);
    for (let c = 0; c < CLIENTS; c++) {
      const u = await makeUser(owner, tenants[c % 4], "staff");
      await owner`update app.users set password_hash = ${hash} where id = ${u.id}`;
      users.push(u);
    }
    const options = (r: KeyRing<string>) => ({ keys: tokenKeys(r), bodyLimit: "100kb" });
    const fleet = await Fleet.start(2, options(ring("a", { a })));
    const failures = noFailures();
    const kids = new Set<string>();
    const held: { token: string; exp: number }[] = [];
    let stop = false;
    const step = async (c: number) => {
      // A client logs in again shortly before its token expires, as clients do.
      if (!held[c] || held[c].exp - Date.now() < 5000) {
        const r = await fleet.request("POST", "/api/v1/auth/login", { body: { email: users[c].email, password } });
        if (r.status !== 200) return void failures.refused.push(`${r.instance} login: ${r.status} ${r.body?.error?.code}`);
        const [header, payload] = (r.body.access_token as string).split(".").slice(0, 2).map((p) => JSON.parse(Buffer.from(p, "base64url").toString()));
        held[c] = { token: r.body.access_token, exp: payload.exp * 1000 };
        kids.add(header.kid);
      }
      const r = await fleet.request("GET", "/api/v1/customers?limit=1", { token: held[c].token, tenant: tenants[c % 4].slug });
      if (r.status !== 200) failures.refused.push(`${r.instance} read: ${r.status} ${r.body?.error?.code}`);
    };
    const load = runLoad(CLIENTS, step, () => stop);
    const stillValidA = signAccessToken(tokenKeys(ring("a", { a })), { userId: users[0].id }, 600);
    try {
      await sleep(800);
      await fleet.roll(options(ring("a", { a, b }))); // 1. every instance verifies b
      await fleet.roll(options(ring("b", { b, a }))); // 2. every instance signs with b
      await sleep((ttl + 1) * 1000); // 3. the longest-lived token signed with a has expired
      await fleet.roll(options(ring("b", { b }))); // 4. a leaves
      await sleep(800);
    } finally {
      stop = true;
      await load;
    }
    try {
      expect(failures).toEqual(noFailures());
      expect([...kids].sort()).toEqual(["a", "b"]);
      // Retired means refused: a token signed with a (unexpired) is now an invalid token.
      const retired = await fleet.request("GET", "/api/v1/customers?limit=1", { token: stillValidA, tenant: tenants[0].slug });
      expect(retired.status).toBe(401);
      expect(retired.body.error.code).toBe("INVALID_TOKEN");
    } finally {
      await fleet.stop();
    }
  });

  it("canary: without the dual-key step an instance refuses the new key's tokens (why step 1 comes first)", () => {
    const userId = "8d1e5a8c-1111-4000-8000-000000000000";
    const token = signAccessToken(hs256Keys(ring("b", { b: "b".repeat(40) })), { userId });
    expect(JSON.parse(Buffer.from(token.split(".")[0], "base64url").toString())).toMatchObject({ kid: "b", alg: "HS256" });
    expect(() => verifyAccessToken(hs256Keys(ring("a", { a: "a".repeat(40) })), token)).toThrow(expect.objectContaining({ status: 401, code: "INVALID_TOKEN" }));
    expect(verifyAccessToken(hs256Keys(ring("a", { a: "a".repeat(40), b: "b".repeat(40) })), token).userId).toBe(userId);
    // A token signed before key ids (no kid) verifies with the key `default`, the one JWT_SECRET names.
    const legacy = jwt.sign({}, "s".repeat(40), { algorithm: "HS256", subject: userId, issuer: "rls-service-shop", expiresIn: 60 });
    expect(verifyAccessToken(hs256Keys(ring("new", { new: "n".repeat(40), default: "s".repeat(40) })), legacy).userId).toBe(userId);
    expect(() => verifyAccessToken(hs256Keys(ring("new", { new: "n".repeat(40) })), legacy)).toThrow(expect.objectContaining({ code: "INVALID_TOKEN" }));
  });
});

describe("the audit anchor key, rotated under load", () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "rls-shop-anchors-"));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("anchors name their key; old ones verify with the old key while 16 clients write: 0 refused, 0 failed verifications", { timeout: 120_000 }, async () => {
    const file = join(dir, "anchors.jsonl");
    const a = "anchor-a-".repeat(5), b = "anchor-b-".repeat(5);
    // Shops of their own: short chains, so the operator's loop runs several times during the roll.
    const shops: Tenant[] = [];
    const shopOwners: User[] = [];
    for (let t = 0; t < 4; t++) {
      shops.push(await makeTenant(owner, { prefix: "anchor" }));
      shopOwners.push(await makeUser(owner, shops[t], "owner"));
    }
    const fleet = await Fleet.start(2, { keys: testKeys, bodyLimit: "100kb" });
    const failures = noFailures();
    let stop = false;
    let writes = 0;
    const step = async (c: number) => {
      const r = await fleet.request("POST", "/api/v1/customers", { token: tokenFor(shopOwners[c % 4]), tenant: shops[c % 4].slug, body: { name: `load ${c} ${writes}` } });
      writes++;
      if (r.status !== 201) failures.refused.push(`${r.instance} write: ${r.status} ${r.body?.error?.code}`);
    };
    // The operator's schedule: seal and anchor, then verify, with the ring of the moment.
    let current = ring("a", { a });
    const verifications: Record<string, number> = {};
    const operator = async () => {
      while (!stop) {
        for (const t of shops) await owner`select app.audit_seal(${t.id}::uuid)`;
        await writeAnchors(owner, file, current);
        const v = await verifyAudit(owner, shops, { anchors: { file, ring: current }, seal: true });
        verifications[current.primary] = (verifications[current.primary] ?? 0) + 1;
        if (v.broken) failures.failedChecks.push(...v.lines.filter((l) => l.startsWith("BROKEN")));
        await sleep(150);
      }
    };
    const load = runLoad(CLIENTS, step, () => stop);
    const schedule = operator();
    try {
      while (!verifications.a || verifications.a < 3) await sleep(50);
      current = ring("b", { b, a }); // b signs from now on; a stays in the ring for the anchors it signed
      while (!verifications.b || verifications.b < 3) await sleep(50);
    } finally {
      stop = true;
      await Promise.all([load, schedule]);
      await fleet.stop();
    }
    expect(writes).toBeGreaterThan(100);
    expect(verifications.a).toBeGreaterThanOrEqual(3);
    expect(failures).toEqual(noFailures());
    const lines = readFileSync(file, "utf8").trim().split("\n").map((l) => JSON.parse(l) as { kid: string });
    expect(new Set(lines.map((l) => l.kid))).toEqual(new Set(["a", "b"]));
    // With the ring, every anchor verifies with its own key; with a wrong key for a, its lines are forged.
    const both = await verifyAudit(owner, shops, { anchors: { file, ring: current }, seal: true });
    expect(both.broken).toBe(0);
    expect(both.lines.filter((l) => l.startsWith("ok"))).toHaveLength(4);
    expect(both.lines.every((l) => !l.startsWith("ok") || / \(key b\)$/.test(l))).toBe(true);
    const wrong = await verifyAudit(owner, shops, { anchors: { file, ring: ring("b", { b, a: "x".repeat(45) }) }, seal: false });
    expect(wrong.broken).toBeGreaterThan(0);
    expect(wrong.lines[0]).toMatch(/^BROKEN anchor file .*line\(s\) whose signature does not verify/);
    // a removed from the ring: its lines are named as not checked (not forged), the newest anchors (b) still checked.
    const bOnly = await verifyAudit(owner, shops, { anchors: { file, ring: ring("b", { b }) }, seal: false });
    expect(bOnly.broken).toBe(0);
    expect(bOnly.lines[0]).toMatch(/^note: \d+ anchor line\(s\) signed with key a, which AUDIT_ANCHOR_KEYS does not hold: not checked/);
  });

  it("an anchor line written before key ids (no kid) verifies with the key `default`, the one AUDIT_ANCHOR_KEY names", async () => {
    const file = join(dir, "legacy.jsonl");
    const old = "legacy-anchor-key-".repeat(3);
    const t = tenants[0];
    await owner`select app.audit_seal(${t.id}::uuid)`;
    const [head] = await owner`select seq, hash from app.audit_heads() where tenant_id = ${t.id}`;
    const line = { tenant_id: t.id, slug: t.slug, seq: Number(head.seq), hash: head.hash, anchored_at: new Date().toISOString() };
    const mac = createHmac("sha256", old).update([line.tenant_id, String(line.seq), line.hash, line.anchored_at].join("|"), "utf8").digest("hex");
    writeFileSync(file, `${JSON.stringify({ ...line, mac })}\n`);
    const ok = await verifyAudit(owner, [t], { anchors: { file, ring: ring("new", { new: "n".repeat(40), default: old }) }, seal: false });
    expect(ok).toEqual({ broken: 0, unsealed: 0, lines: [expect.stringMatching(new RegExp(`^ok ${t.slug}: \\d+ rows chained, anchored position ${line.seq} intact$`))] });
    const forged = await verifyAudit(owner, [t], { anchors: { file, ring: ring("new", { new: "n".repeat(40), default: "another-key-".repeat(4) }) }, seal: false });
    expect(forged.broken).toBe(1);
  });
});
