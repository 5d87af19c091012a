// `npm run cli -- credentials rotate|status` (server/ops/credentialRotation.ts): the
// compare-and-swap that keeps a concurrent write, a run interrupted (Ctrl-C, then killed) and
// finished by the next, rows a key is missing for reported and left alone, and the status that
// tells when the old key may leave. In a database of its own: a rotation reaches every tenant.
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import postgres from "postgres";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { decryptCredential, encryptCredential } from "../server/core/credentialCipher.ts";
import { formatKeyRing, type KeyRing } from "../server/core/keyRing.ts";
import type { Sql } from "../server/db/connections.ts";
import { readBatch, reencrypt, rotateCredentials, writeBatch } from "../server/ops/credentialRotation.ts";
import { makeTenant, type Tenant } from "./fixtures.ts";
import { root, run, useGolden } from "./scratch.ts";

const golden = useGolden("credrotation");
let owner: Sql;
let shop: Tenant;
const hex = { k1: randomBytes(32).toString("hex"), k2: randomBytes(32).toString("hex"), k3: randomBytes(32).toString("hex") };
const bytes = (ids: string[]) => new Map(ids.map((id) => [id, Buffer.from(hex[id as keyof typeof hex], "hex")]));
const ring = (primary: string, ...others: string[]): KeyRing<Buffer> => ({ primary, keys: bytes([primary, ...others]) });
const text = (r: KeyRing<Buffer>) => formatKeyRing({ primary: r.primary, keys: new Map([...r.keys].map(([id, k]) => [id, k.toString("hex")])) });

beforeAll(async () => {
  owner = postgres(golden.ownerUrl, { max: 2, onnotice: () => {} });
  shop = await makeTenant(owner, { prefix: "rot" });
});

afterAll(async () => {
  await owner?.end({ timeout: 5 });
});

async function seed(tenant: Tenant, under: KeyRing<Buffer>, count: number, prefix: string): Promise<Map<string, string>> {
  const providers = Array.from({ length: count }, (_, i) => `${prefix}-${String(i).padStart(5, "0")}`);
  const secrets = providers.map((p) => `${p}-${randomBytes(8).toString("hex")}`);
  const envelopes = providers.map((p, i) => encryptCredential(under, { tenantId: tenant.id, provider: p }, secrets[i]));
  await owner`insert into app.integration_credentials (tenant_id, provider, credential_envelope, last4)
              select ${tenant.id}::uuid, p, e, right(p, 4) from unnest(${providers}::text[], ${envelopes}::text[]) as x(p, e)`;
  return new Map(providers.map((p, i) => [p, secrets[i]]));
}

const keysOf = async (tenant: Tenant) =>
  Object.fromEntries((await owner`select key_id, count(*)::int as n from app.integration_credentials where tenant_id = ${tenant.id} group by key_id`).map((r) => [r.key_id, r.n]));

describe("the compare-and-swap", () => {
  it("a secret stored between the rotation's read and its write is kept, not replaced by the old one re-encrypted", async () => {
    const tenant = await makeTenant(owner, { prefix: "cas" });
    const secrets = await seed(tenant, ring("k1"), 3, "cas");
    const to = ring("k2", "k1");
    const batch = await readBatch(owner, tenant.id, to.primary, null, 10);
    expect(batch).toHaveLength(3);
    const { ok } = reencrypt(to, tenant.id, batch);
    // Meanwhile the API stores a new secret for one of them, under the new primary.
    const fresh = "stored-during-rotation-0123456789";
    await owner`update app.integration_credentials set credential_envelope = ${encryptCredential(to, { tenantId: tenant.id, provider: "cas-00001" }, fresh)}
                 where tenant_id = ${tenant.id} and provider = 'cas-00001'`;
    const written = await writeBatch(owner, tenant.id, ok);
    expect(written.size).toBe(2);
    const rows = await owner`select provider, credential_envelope from app.integration_credentials where tenant_id = ${tenant.id} order by provider`;
    const plain = rows.map((r) => decryptCredential(to, { tenantId: tenant.id, provider: r.provider }, r.credential_envelope));
    expect(plain).toEqual([secrets.get("cas-00000"), fresh, secrets.get("cas-00002")]);
  });

  it("a row left by a concurrent change under the old key (an instance not yet rolled) is taken by the next run", async () => {
    const tenant = await makeTenant(owner, { prefix: "cas" });
    await seed(tenant, ring("k1"), 4, "again");
    const to = ring("k2", "k1");
    const { ok } = reencrypt(to, tenant.id, await readBatch(owner, tenant.id, to.primary, null, 10));
    await owner`update app.integration_credentials set last4 = 'zzzz' where tenant_id = ${tenant.id} and provider = 'again-00002'`;
    expect((await writeBatch(owner, tenant.id, ok)).size).toBe(3);
    expect(await keysOf(tenant)).toEqual({ k1: 1, k2: 3 });
    const result = await rotateCredentials(owner, to, {});
    expect(result).toMatchObject({ done: 1, failed: 0, conflicts: 0, leftByConflicts: 0 });
    expect(await keysOf(tenant)).toEqual({ k2: 4 });
  });
});

describe("an interrupted rotation", () => {
  const cli = (args: string[], env: Record<string, string>) => {
    const child = spawn(process.execPath, ["--import", "tsx", "server/cli.ts", "credentials", ...args, "--url", golden.ownerUrl], {
      cwd: root, env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"],
    });
    let out = "";
    child.stdout!.on("data", (c) => (out += c));
    child.stderr!.on("data", (c) => (out += c));
    const exited = new Promise<number | null>((resolve) => child.on("exit", (code, signal) => resolve(code ?? (signal ? -1 : null))));
    return { child, exited, output: () => out };
  };
  const onK3 = async () => (await owner`select count(*)::int as n from app.integration_credentials where key_id = 'k3'`)[0].n as number;

  it("stopped by Ctrl-C, then killed outright, is finished by the next run: every row on the new key, each still decrypting", { timeout: 400_000 }, async () => {
    const secrets = await seed(shop, ring("k2"), 2000, "int");
    const [{ n: total }] = await owner`select count(*)::int as n from app.integration_credentials`;
    const env = { CREDENTIALS_KEYS: text(ring("k3", "k2", "k1")) };

    for (const signal of ["SIGINT", "SIGKILL"] as const) {
      const before = await onK3();
      const run1 = cli(["rotate", "--batch-size", "20"], env);
      for (let i = 0; i < 2400 && (await onK3()) <= before; i++) await new Promise((r) => setTimeout(r, 50));
      run1.child.kill(signal);
      const code = await run1.exited;
      const done = await onK3();
      expect(done, `${signal}: stopped part-way`).toBeGreaterThan(before);
      expect(done, `${signal}: stopped part-way`).toBeLessThan(total);
      if (signal === "SIGINT") {
        expect(code).toBe(1);
        expect(run1.output()).toMatch(/interrupted: \d+ of \d+ re-encrypted under k3/);
        expect(run1.output()).toContain("run it again to finish: it goes on where this one stopped");
      } else {
        expect(code).toBe(-1);
      }
    }

    const status = await run(process.execPath, ["--import", "tsx", "server/cli.ts", "credentials", "status", "--url", golden.ownerUrl], env);
    expect(status.output).toMatch(/^k2\t\d+ row\(s\)\t\d+ tenant\(s\) {2}to rotate: npm run cli -- credentials rotate$/m);
    expect(status.output).toMatch(/^k3\t\d+ row\(s\)\t\d+ tenant\(s\) {2}primary$/m);

    const last = cli(["rotate"], env);
    expect(await last.exited, last.output()).toBe(0);
    expect(last.output()).toMatch(/done: \d+ of \d+ re-encrypted under k3 in [\d.]+ s \(\d+ rows\/s\), 0 read again after a concurrent change, 0 unreadable/);
    expect(await onK3()).toBe(total);
    const rows = await owner`select provider, credential_envelope from app.integration_credentials where tenant_id = ${shop.id}`;
    const k3 = ring("k3");
    expect(rows.filter((r) => decryptCredential(k3, { tenantId: shop.id, provider: r.provider }, r.credential_envelope) !== secrets.get(r.provider))).toEqual([]);

    const after = await run(process.execPath, ["--import", "tsx", "server/cli.ts", "credentials", "status", "--url", golden.ownerUrl], env);
    expect(after.output).toMatch(new RegExp(`^k3\\t${total} row\\(s\\)\\t\\d+ tenant\\(s\\)  primary$`, "m"));
    expect(after.output).toMatch(/^k2\t0 row\(s\)\t0 tenant\(s\) {2}unused: may leave CREDENTIALS_KEYS$/m);
    // Nothing left: a run changes nothing.
    const idle = await run(process.execPath, ["--import", "tsx", "server/cli.ts", "credentials", "rotate", "--url", golden.ownerUrl], env);
    expect(idle.code, idle.output).toBe(0);
    expect(idle.output).toMatch(/done: 0 of 0 re-encrypted under k3/);
  });

  it("a row under a key the ring lacks is reported by tenant and provider, left as it is, and the run exits 1", async () => {
    const tenant = await makeTenant(owner, { prefix: "lost" });
    const orphan = { primary: "gone", keys: new Map([["gone", randomBytes(32)]]) };
    await owner`insert into app.integration_credentials (tenant_id, provider, credential_envelope, last4)
                values (${tenant.id}, 'orphan', ${encryptCredential(orphan, { tenantId: tenant.id, provider: "orphan" }, "secret-under-a-lost-key")}, 'xkey')`;
    const r = await run(process.execPath, ["--import", "tsx", "server/cli.ts", "credentials", "rotate", "--url", golden.ownerUrl], { CREDENTIALS_KEYS: text(ring("k3", "k2")) });
    expect(r.code).toBe(1);
    expect(r.output).toContain(`UNREADABLE ${tenant.slug} orphan: under key gone (unknown-key). FIX: add key gone to CREDENTIALS_KEYS and run again`);
    expect(await keysOf(tenant)).toEqual({ gone: 1 });
    await owner`delete from app.integration_credentials where tenant_id = ${tenant.id}`;
  });
});
