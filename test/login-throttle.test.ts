// Login throttling (issue 34), kept in the database so it holds across API processes: an
// account's failures are slowed from the third, then refused for the window (429 LOGIN_THROTTLED
// with Retry-After) by whichever process is asked, the right password included; an address is
// refused after its own limit; an unknown email is throttled exactly like a known one; and the
// throttle's functions do nothing without the API's proof.
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createHash, randomBytes, randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { hashPassword } from "../server/auth/passwords.ts";
import { loginGateProof, loginOutcomeProof } from "../server/db/contextProof.ts";
import type { Sql } from "../server/db/connections.ts";
import { db, guardOn, makeUser, useApi } from "./fixtures.ts";
import { startInstance, stopInstance } from "./instances.ts";

const limits = { accountFailures: 5, addressFailures: 0, windowSeconds: 900 };
const { owner, app, api } = useApi({ loginThrottle: limits });

/** A second API process on the same database, configured alike: the one `npm start` runs. */
let second: { url: string; stop: () => Promise<void> };

beforeAll(async () => {
  const dataDir = await mkdtemp(join(tmpdir(), "rls-shop-throttle-"));
  // Production, as deployed (issue 31): app_user's URL, the keys, no owner credentials.
  const server = await startInstance({
    NODE_ENV: "production", DATA_DIR: dataDir, LOG_LEVEL: "info", WEB_CONCURRENCY: "1",
    DATABASE_URL: db.appUrl, JWT_SECRET: db.jwtSecret, CONTEXT_KEY: db.contextKey, CREDENTIALS_KEYS: `*throttle-test=${randomBytes(32).toString("hex")}`,
    LOGIN_THROTTLE_ACCOUNT_FAILURES: String(limits.accountFailures), LOGIN_THROTTLE_ADDRESS_FAILURES: "0", LOGIN_THROTTLE_WINDOW_SECONDS: String(limits.windowSeconds),
  });
  second = {
    url: server.url,
    stop: async () => {
      await stopInstance(server);
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}, 120_000);

afterAll(async () => {
  await second?.stop();
});

type Answer = { status: number; code?: string; retryAfter: number };

async function loginAt(url: string, email: string, password: string): Promise<Answer> {
  const res = await fetch(`${url}/api/v1/auth/login`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ email, password }) });
  const body = (await res.json()) as { error?: { code: string } };
  return { status: res.status, code: body.error?.code, retryAfter: Number(res.headers.get("retry-after") ?? 0) };
}

/** A failed login that counts: while the account is slowed (429), waits the Retry-After it was told, then tries again. */
async function failOnce(url: string, email: string): Promise<void> {
  for (;;) {
    const a = await loginAt(url, email, "wrong password");
    if (a.status === 401) return;
    expect([a.status, a.code]).toEqual([429, "LOGIN_THROTTLED"]);
    expect(a.retryAfter).toBeLessThanOrEqual(60);
    await new Promise((resolve) => setTimeout(resolve, a.retryAfter * 1000));
  }
}

describe("across two API processes", () => {
  it("an account's failures, made alternately on both, lock it on both for the window, the right password included; another account is served", async () => {
    const user = await makeUser(owner);
    await owner`update app.users set password_hash = ${await hashPassword("the right password")} where id = ${user.id}`;
    const bystander = await makeUser(owner);
    await owner`update app.users set password_hash = ${await hashPassword("bystander's password")} where id = ${bystander.id}`;
    const processes = [api.url, second.url];
    for (let i = 0; i < limits.accountFailures; i++) await failOnce(processes[i % 2], user.email);
    for (const url of processes) {
      const locked = await loginAt(url, user.email, "the right password");
      expect([locked.status, locked.code], url).toEqual([429, "LOGIN_THROTTLED"]);
      expect(locked.retryAfter, url).toBeGreaterThan(60);
      expect((await loginAt(url, bystander.email, "bystander's password")).status, url).toBe(200);
    }
    const [row] = await owner`select failures, locked_until > now() as locked from app.login_throttle where key = ${`account:${sha(user.email.toLowerCase())}`}`;
    expect(row).toEqual({ failures: limits.accountFailures, locked: true });
    expect(await owner`select 1 from app.login_throttle where key like ${`%${user.email}%`}`).toHaveLength(0);
  }, 120_000);

  it("the third failure slows the next attempt on the other process; an unknown email is throttled exactly as a known one", async () => {
    const known = await makeUser(owner);
    await owner`update app.users set password_hash = ${await hashPassword("known's password")} where id = ${known.id}`;
    const unknown = `ghost-${randomUUID()}@test.test`;
    const state = async (email: string) =>
      (await owner`select failures, last_failed_at from app.login_throttle where key = ${`account:${sha(email.toLowerCase())}`}`)[0];
    // Judged by the stored state, not by timing: the second process refuses while the wait the third
    // failure set has not passed (and counts nothing), or, if it has, counts a fourth failure after it.
    const slowedElsewhere = async (email: string) => {
      for (let i = 0; i < 3; i++) await failOnce(api.url, email);
      const before = await state(email);
      expect(before.failures).toBe(3);
      const a = await loginAt(second.url, email, "wrong password");
      const after = await state(email);
      if (a.status === 429) {
        expect([a.code, a.retryAfter, after.failures]).toEqual(["LOGIN_THROTTLED", 1, 3]);
      } else {
        expect([a.status, after.failures]).toEqual([401, 4]);
        expect(after.last_failed_at.getTime() - before.last_failed_at.getTime()).toBeGreaterThanOrEqual(1000);
      }
      return a.status === 429 ? "slowed" : "waited";
    };
    const outcomes = [await slowedElsewhere(known.email), await slowedElsewhere(unknown)];
    expect(outcomes.every((o) => o === "slowed" || o === "waited")).toBe(true);
    expect(await owner`select 1 from app.users where email = ${unknown}`).toHaveLength(0);
  }, 60_000);
});

const sha = (text: string) => createHash("sha256").update(text, "utf8").digest("hex");

describe("in SQL, as app_user", () => {
  const asTx = (t: unknown) => t as Sql;
  const gate = (t: Sql, email: string, address: string, l = limits) =>
    guardOn(t, true).then((g) => {
      const p = loginGateProof(email, address, l, g.guard, g.expiresAt);
      return t`select app.login_gate(${email}, ${address}, ${l.accountFailures}::int, ${l.addressFailures}::int, ${l.windowSeconds}::int, ${g.guard}, ${p.expiresAt}::int8, ${p.nonce}, ${p.proof}) as s`;
    });
  const outcome = (t: Sql, email: string, address: string, ok: boolean, l = limits) =>
    guardOn(t, true).then((g) => {
      const p = loginOutcomeProof(email, address, ok, l, g.guard, g.expiresAt);
      return t`select app.login_outcome(${email}, ${address}, ${ok}, ${l.accountFailures}::int, ${l.addressFailures}::int, ${l.windowSeconds}::int, ${g.guard}, ${p.expiresAt}::int8, ${p.nonce}, ${p.proof})`;
    });

  it("an address is refused after its limit, whichever emails it tried; a success clears the account, not the address", async () => {
    const address = `192.0.2.${Math.floor(Math.random() * 250)}-${randomUUID().slice(0, 6)}`;
    const byAddress = { ...limits, addressFailures: 3 };
    await app.begin(async (t) => {
      for (let i = 0; i < 3; i++) await outcome(asTx(t), `spray-${i}-${randomUUID()}@test.test`, address, false, byAddress);
      const [{ s }] = await gate(asTx(t), `fresh-${randomUUID()}@test.test`, address, byAddress);
      expect(s).toBeGreaterThan(800);
      const [{ s: elsewhere }] = await gate(asTx(t), `fresh-${randomUUID()}@test.test`, `198.51.100.${randomUUID().slice(0, 6)}`, byAddress);
      expect(elsewhere).toBe(0);
      const email = `someone-${randomUUID()}@test.test`;
      await outcome(asTx(t), email, address, true, byAddress);
      expect((await gate(asTx(t), email, address, byAddress))[0].s).toBeGreaterThan(800);
    });
  });

  it("without the API's proof the throttle neither answers nor counts", async () => {
    const email = `noproof-${randomUUID()}@test.test`;
    await expect(app`select app.login_gate(${email}, '127.0.0.1', 5, 0, 900, 'e', ${Date.now() + 10_000}::int8, ${randomUUID()}, 'forged.proof')`).rejects.toMatchObject({ code: "TN401" });
    await expect(app`select app.login_outcome(${email}, '127.0.0.1', false, 5, 0, 900, 'e', ${Date.now() + 10_000}::int8, ${randomUUID()}, 'forged.proof')`).rejects.toMatchObject({ code: "TN401" });
    // Limits other than the signed ones: refused too, so app_user cannot loosen them.
    await expect(app.begin(async (t) => {
      const g = await guardOn(asTx(t), true);
      const p = loginGateProof(email, "127.0.0.1", limits, g.guard, g.expiresAt);
      return t`select app.login_gate(${email}, '127.0.0.1', 1000, 0, 900, ${g.guard}, ${p.expiresAt}::int8, ${p.nonce}, ${p.proof})`;
    })).rejects.toMatchObject({ code: "TN401" });
    expect(await app`select 1 from app.login_throttle`.catch((e: { code: string }) => e.code)).toBe("42501");
  });
});
