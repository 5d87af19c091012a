// The shop's third-party credentials over HTTP (server/routes/integrations.ts) and their table
// (sql/0440, policies/integrations.sql): stored encrypted, answered as metadata only, tested on
// the server, guarded by integrations:manage and by RLS like every tenant table; and no secret in
// any answer, log line or audit row of a real server process.
import { randomBytes, randomUUID } from "node:crypto";
import { beforeAll, describe, expect, it } from "vitest";
import { decryptCredential, encryptCredential } from "../server/core/credentialCipher.ts";
import { asMember, credentialRing, db, makeTenant, makeUser, tokenFor, useApi, type Tenant, type User } from "./fixtures.ts";
import { psqlFile, runSql, superuserUrlFor, useGolden } from "./scratch.ts";
import { startInstance, stopInstance } from "./instances.ts";

const { owner, app, api } = useApi();
let a: Tenant, b: Tenant;
let alice: User, adam: User, bob: User;
const others: Partial<Record<"manager" | "staff" | "accountant", User>> = {};

beforeAll(async () => {
  a = await makeTenant(owner);
  b = await makeTenant(owner);
  alice = await makeUser(owner, a, "owner");
  adam = await makeUser(owner, a, "admin");
  bob = await makeUser(owner, b, "owner");
  for (const role of ["manager", "staff", "accountant"] as const) others[role] = await makeUser(owner, a, role);
});

const secretOf = (label: string) => `sk_${label}_${randomBytes(12).toString("hex")}`;
const put = (user: User, tenant: Tenant, provider: string, secret: string) =>
  api.request("PUT", `/api/v1/integrations/${provider}`, { token: tokenFor(user), tenant: tenant.slug, body: { secret } });

describe("a shop's owner or admin", () => {
  it("stores a credential (201, Location), replaces it (200), lists, tests and removes it: metadata only", async () => {
    const first = secretOf("first");
    const created = await put(alice, a, "stripe", first);
    expect(created.status).toBe(201);
    expect(created.headers.get("location")).toBe("/api/v1/integrations/stripe");
    expect(created.body).toEqual({ provider: "stripe", key_id: "test-1", last4: first.slice(-4), created_at: expect.any(String), changed_at: expect.any(String), rotated_at: null });

    const second = secretOf("second");
    const replaced = await put(adam, a, "stripe", second);
    expect(replaced.status).toBe(200);
    expect(replaced.body).toMatchObject({ provider: "stripe", last4: second.slice(-4), created_at: created.body.created_at });
    expect(new Date(replaced.body.changed_at) >= new Date(created.body.changed_at)).toBe(true);
    const [stored] = await owner`select version, key_id from app.integration_credentials where tenant_id = ${a.id} and provider = 'stripe'`;
    expect(stored).toEqual({ version: "2", key_id: "test-1" });

    const listed = await api.request("GET", "/api/v1/integrations", { token: tokenFor(adam), tenant: a.slug });
    expect(listed.status).toBe(200);
    expect(listed.body).toEqual({ data: [replaced.body], next_cursor: null });

    const tested = await api.request("POST", "/api/v1/integrations/stripe/test", { token: tokenFor(alice), tenant: a.slug });
    expect(tested.status).toBe(200);
    expect(tested.body).toEqual({ provider: "stripe", status: "ok", key_id: "test-1", last4: second.slice(-4) });

    expect((await api.request("DELETE", "/api/v1/integrations/stripe", { token: tokenFor(alice), tenant: a.slug })).status).toBe(204);
    for (const [method, path] of [["DELETE", "/api/v1/integrations/stripe"], ["POST", "/api/v1/integrations/stripe/test"]]) {
      const gone = await api.request(method, path, { token: tokenFor(alice), tenant: a.slug });
      expect(gone.status, `${method} ${path}`).toBe(404);
      expect(gone.body.error.code).toBe("INTEGRATION_NOT_FOUND");
    }
  });

  it("pages through the list by provider, each once", async () => {
    const providers = ["p-a", "p-b", "p-c", "p-d", "p-e"];
    for (const p of providers) expect((await put(alice, a, p, secretOf(p))).status).toBe(201);
    const seen: string[] = [];
    let cursor: string | null = null;
    do {
      const page: { body: { data: { provider: string }[]; next_cursor: string | null } } = await api.request("GET", `/api/v1/integrations?limit=2${cursor ? `&cursor=${cursor}` : ""}`, { token: tokenFor(alice), tenant: a.slug });
      seen.push(...page.body.data.map((r) => r.provider));
      cursor = page.body.next_cursor;
    } while (cursor);
    expect(seen.filter((p) => providers.includes(p))).toEqual(providers);
  });

  it("gets 400 for a malformed provider and 422 for a secret out of bounds or an unknown property", async () => {
    const token = tokenFor(alice);
    for (const provider of ["Stripe", "-x", "a".repeat(64), "st%20ripe"]) {
      const r = await api.request("PUT", `/api/v1/integrations/${provider}`, { token, tenant: a.slug, body: { secret: secretOf("x") } });
      expect(r.status, provider).toBe(400);
      expect(r.body.error.code).toBe("INVALID_PROVIDER");
    }
    for (const body of [{ secret: "short" }, { secret: "x".repeat(4097) }, { secret: "        " }, { secret: secretOf("y"), tenant_id: b.id }, {}]) {
      const r = await api.request("PUT", "/api/v1/integrations/twilio", { token, tenant: a.slug, body });
      expect(r.status).toBe(422);
      expect(r.body.error.code).toBe("VALIDATION_FAILED");
    }
  });
});

describe("other members and other shops", () => {
  it("a manager, staff member or accountant is refused on every route (403 naming integrations:manage)", async () => {
    await put(alice, a, "parts-hub", secretOf("parts"));
    for (const [role, user] of Object.entries(others)) {
      const token = tokenFor(user!);
      for (const [method, path, body] of [
        ["GET", "/api/v1/integrations", undefined], ["PUT", "/api/v1/integrations/parts-hub", { secret: secretOf("m") }],
        ["POST", "/api/v1/integrations/parts-hub/test", undefined], ["DELETE", "/api/v1/integrations/parts-hub", undefined],
      ] as const) {
        const r = await api.request(method, path, { token, tenant: a.slug, body });
        expect(r.status, `${role} ${method} ${path}`).toBe(403);
        expect(r.body.error).toMatchObject({ code: "FORBIDDEN", details: { permission: "integrations:manage" } });
      }
    }
    const [row] = await owner`select version from app.integration_credentials where tenant_id = ${a.id} and provider = 'parts-hub'`;
    expect(row.version).toBe("1");
  });

  it("another shop's owner sees none of them: its list is its own, a provider of the same name is its own row", async () => {
    await put(alice, a, "sms-gateway", secretOf("a-sms"));
    const token = tokenFor(bob);
    expect((await api.request("GET", "/api/v1/integrations", { token, tenant: b.slug })).body.data).toEqual([]);
    expect((await api.request("POST", "/api/v1/integrations/sms-gateway/test", { token, tenant: b.slug })).status).toBe(404);
    expect((await api.request("DELETE", "/api/v1/integrations/sms-gateway", { token, tenant: b.slug })).status).toBe(404);
    expect((await api.request("GET", "/api/v1/integrations", { token, tenant: a.slug })).status).toBe(404);
    const mine = secretOf("b-sms");
    expect((await put(bob, b, "sms-gateway", mine)).status).toBe(201);
    expect((await api.request("POST", "/api/v1/integrations/sms-gateway/test", { token, tenant: b.slug })).body.last4).toBe(mine.slice(-4));
    expect((await api.request("POST", "/api/v1/integrations/sms-gateway/test", { token: tokenFor(alice), tenant: a.slug })).status).toBe(200);
  });
});

describe("a shop whose plan lacks the integrations feature", () => {
  it("gets 403 FEATURE_NOT_ENABLED on every route, over HTTP and in SQL as app_user, and nothing is stored", async () => {
    const basic = await makeTenant(owner, { plan: "basic" });
    const basicOwner = await makeUser(owner, basic, "owner");
    const token = tokenFor(basicOwner);
    for (const [method, path, body] of [
      ["GET", "/api/v1/integrations", undefined], ["PUT", "/api/v1/integrations/parts-hub", { secret: secretOf("basic") }],
      ["POST", "/api/v1/integrations/parts-hub/test", undefined], ["DELETE", "/api/v1/integrations/parts-hub", undefined],
    ] as const) {
      const r = await api.request(method, path, { token, tenant: basic.slug, body });
      expect(r.status, `${method} ${path}`).toBe(403);
      expect(r.body.error).toMatchObject({ code: "FEATURE_NOT_ENABLED", details: { feature: "integrations" } });
    }
    // A context opened for integrations:manage naming no feature is refused by the opener itself.
    await expect(asMember(app, basicOwner, basic, { permission: "integrations:manage", writes: true, feature: null }, (tx) => tx`select count(*) from app.integration_credentials`))
      .rejects.toMatchObject({ code: "FE403", detail: "integrations" });
    expect(await owner`select provider from app.integration_credentials where tenant_id = ${basic.id}`).toEqual([]);
  });
});

describe("what the database holds", () => {
  it("an envelope under the primary key, never the secret; the key id is the envelope's own", async () => {
    const secret = secretOf("dump");
    await put(alice, a, "dump-check", secret);
    const [row] = await owner`select t::text as everything, credential_envelope, key_id from app.integration_credentials t where tenant_id = ${a.id} and provider = 'dump-check'`;
    expect(row.everything).not.toContain(secret);
    expect(row.credential_envelope).toMatch(/^v1\.test-1\./);
    expect(decryptCredential(credentialRing, { tenantId: a.id, provider: "dump-check" }, row.credential_envelope)).toBe(secret);
  });

  it("an envelope copied to another shop's row, or to another provider, does not decrypt: 500 CREDENTIAL_UNREADABLE", async () => {
    await put(alice, a, "copy-src", secretOf("src"));
    await put(bob, b, "copy-dst", secretOf("dst"));
    await put(alice, a, "copy-other", secretOf("other"));
    const [src] = await owner`select credential_envelope from app.integration_credentials where tenant_id = ${a.id} and provider = 'copy-src'`;
    await owner`update app.integration_credentials set credential_envelope = ${src.credential_envelope} where (tenant_id, provider) in ((${b.id}::uuid, 'copy-dst'), (${a.id}::uuid, 'copy-other'))`;
    for (const [user, tenant, provider] of [[bob, b, "copy-dst"], [alice, a, "copy-other"]] as const) {
      const r = await api.request("POST", `/api/v1/integrations/${provider}/test`, { token: tokenFor(user), tenant: tenant.slug });
      expect(r.status, provider).toBe(500);
      expect(r.body.error).toMatchObject({ code: "CREDENTIAL_UNREADABLE", help: "runbooks/key-rotation.md" });
    }
  });

  it("under a key this instance does not hold: 503 CREDENTIALS_KEY_UNAVAILABLE with Retry-After (another instance may hold it)", async () => {
    const foreign = { primary: "elsewhere", keys: new Map([["elsewhere", randomBytes(32)]]) };
    const envelope = encryptCredential(foreign, { tenantId: a.id, provider: "later-key" }, secretOf("later"));
    await owner`insert into app.integration_credentials (tenant_id, provider, credential_envelope, last4) values (${a.id}, 'later-key', ${envelope}, 'xxxx')`;
    const r = await api.request("POST", "/api/v1/integrations/later-key/test", { token: tokenFor(alice), tenant: a.slug });
    expect(r.status).toBe(503);
    expect(r.headers.get("retry-after")).toBe("1");
    expect(r.body.error.code).toBe("CREDENTIALS_KEY_UNAVAILABLE");
  });

  it("every change counts: version + 1 whatever the writer sets", async () => {
    await put(alice, a, "versioned", secretOf("v"));
    await owner`update app.integration_credentials set version = 1, last4 = 'abcd' where tenant_id = ${a.id} and provider = 'versioned'`;
    await owner`update app.integration_credentials set version = 99 where tenant_id = ${a.id} and provider = 'versioned'`;
    const [row] = await owner`select version from app.integration_credentials where tenant_id = ${a.id} and provider = 'versioned'`;
    expect(row.version).toBe("3");
  });
});

describe("the table, as app_user", () => {
  const manage = { permission: "integrations:manage", writes: true };

  it("is a tenant table with RLS forced, the registry's policies, the write check and the audit triggers", async () => {
    const [t] = await owner`
      select c.relrowsecurity as rls, c.relforcerowsecurity as forced,
             (select array_agg(p.polname::text order by p.polname) from pg_policy p where p.polrelid = c.oid) as policies,
             (select array_agg(g.tgname::text order by g.tgname) from pg_trigger g where g.tgrelid = c.oid and not g.tgisinternal) as triggers,
             c.oid in (select app.tenant_tables()) as tenant_table,
             (select pg_get_constraintdef(k.oid) from pg_constraint k where k.conname = 'integration_credentials_pkey') as pkey
        from pg_class c where c.oid = 'app.integration_credentials'::regclass`;
    expect(t).toEqual({
      rls: true, forced: true, tenant_table: true, pkey: "PRIMARY KEY (tenant_id, id)",
      policies: ["tenant_members_delete_their_tenant_rows", "tenant_members_insert_into_their_tenant", "tenant_members_read_their_tenant_rows", "tenant_members_update_their_tenant_rows", "views_show_context_or_granted_tenant_rows"],
      triggers: ["_authorize_write", "audit_delete", "audit_insert", "audit_update", "integration_credentials_count_change"],
    });
  });

  it("a member of another shop reads none of its rows and cannot write into it; without a context nothing at all", async () => {
    await put(alice, a, "isolated", secretOf("iso"));
    const seen = await asMember(app, bob, b, { permission: "integrations:manage" }, (tx) => tx`select count(*)::int as n from app.integration_credentials where tenant_id = ${a.id}`);
    expect(seen).toEqual([{ n: 0 }]);
    await expect(asMember(app, bob, b, manage, (tx) => tx`insert into app.integration_credentials (tenant_id, provider, credential_envelope, last4) values (${a.id}, 'planted', ${"v1.k.a.b.c.d"}, 'abcd')`))
      .rejects.toMatchObject({ code: "42501" });
    await expect(asMember(app, alice, a, manage, (tx) => tx`update app.integration_credentials set tenant_id = ${b.id} where provider = 'isolated'`))
      .rejects.toMatchObject({ code: "42501" });
    expect(await app.begin((tx) => tx`select count(*)::int as n from app.integration_credentials`)).toEqual([{ n: 0 }]);
  });

  const golden = useGolden("integrations");

  it("canary: RLS not forced or a policy dropped on it is caught by verify/catalog.sql by name", async () =>
    golden.withClone(async (s) => {
      const ok = await psqlFile(s.ownerUrl, "verify/catalog.sql");
      expect(ok.code, ok.output).toBe(0);
      await runSql(superuserUrlFor(s.name), "alter table app.integration_credentials no force row level security; drop policy tenant_members_update_their_tenant_rows on app.integration_credentials");
      const broken = await psqlFile(s.ownerUrl, "verify/catalog.sql");
      expect(broken.code).not.toBe(0);
      expect(broken.output).toContain("FAIL app.integration_credentials: row level security is not forced");
      expect(broken.output).toMatch(/FAIL app\.integration_credentials: app_user may UPDATE but no policy covers it/);
    }));
});

describe("no secret anywhere: a real server's answers, every log line and the audit", () => {
  it("holds none of the plaintexts, nor the envelopes in the audit", { timeout: 120_000 }, async () => {
    const tenant = await makeTenant(owner);
    const user = await makeUser(owner, tenant, "owner");
    const ringHex = randomBytes(32).toString("hex");
    const server = await startInstance({
      NODE_ENV: "development", LOG_LEVEL: "trace", LOG_FORMAT: "json", SEED_DEMO: "false",
      DATABASE_URL: db.appUrl, DATABASE_OWNER_URL: db.ownerUrl, JWT_SECRET: db.jwtSecret, CONTEXT_KEY: db.contextKey, CREDENTIALS_KEYS: `*log-test=${ringHex}`,
    }, { timeoutMs: 110_000 });
    try {
      const headers = { authorization: `Bearer ${tokenFor(user)}`, "x-tenant-id": tenant.slug, "content-type": "application/json" };
      const call = async (method: string, path: string, body?: unknown) => {
        const r = await fetch(`${server.url}${path}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
        return { status: r.status, text: await r.text() };
      };
      const marker = randomUUID();
      const secrets = [`${marker}-first-secret`, `${marker}-second-secret`, `${marker}-gateway`, `${marker}-refused-${"z".repeat(4100)}`, `${marker}-with-extra`];
      const answers = [
        await call("PUT", "/api/v1/integrations/stripe", { secret: secrets[0] }),
        await call("PUT", "/api/v1/integrations/stripe", { secret: secrets[1] }),
        await call("PUT", "/api/v1/integrations/sms-gateway", { secret: secrets[2] }),
        await call("PUT", "/api/v1/integrations/stripe", { secret: secrets[3] }),
        await call("PUT", "/api/v1/integrations/stripe", { secret: secrets[4], note: secrets[4] }),
        await call("PUT", "/api/v1/integrations/Bad_Provider", { secret: secrets[0] }),
        await call("GET", "/api/v1/integrations"),
        await call("POST", "/api/v1/integrations/stripe/test"),
        await call("POST", "/api/v1/integrations/sms-gateway/test"),
        await call("DELETE", "/api/v1/integrations/sms-gateway"),
      ];
      expect(answers.map((a) => a.status)).toEqual([201, 200, 201, 422, 422, 400, 200, 200, 200, 204]);
      expect(JSON.parse(answers[7].text)).toMatchObject({ status: "ok", last4: secrets[1].slice(-4), key_id: "log-test" });
      await new Promise((r) => setTimeout(r, 200)); // the logger's batch (LOG_FLUSH_MS)
      const out = server.output();
      const audit = (await owner`select change::text as change from app.audit_log where tenant_id = ${tenant.id}`).map((r) => r.change as string).join("\n");
      expect(audit).toContain('"key_id"'); // the credential's changes are audited, envelope redacted
      expect(out).toContain('"msg":"request completed"');
      for (const s of secrets) {
        const needle = s.slice(0, 60);
        expect(answers.some((a) => a.text.includes(needle)), "an answer holds a secret").toBe(false);
        expect(out.includes(needle), "a log line holds a secret").toBe(false);
        expect(audit.includes(needle), "an audit row holds a secret").toBe(false);
      }
      const envelopes = (await owner`select credential_envelope from app.integration_credentials where tenant_id = ${tenant.id}`).map((r) => r.credential_envelope as string);
      expect(envelopes).toHaveLength(1);
      for (const e of envelopes) for (const part of e.split(".").slice(2)) expect(audit.includes(part), "an audit row holds an envelope").toBe(false);
      expect(audit).not.toContain("credential_envelope");
      expect(out).not.toContain(ringHex);
    } finally {
      await stopInstance(server);
    }
  });
});
