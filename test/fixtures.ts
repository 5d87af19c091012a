// Shared fixtures: every test creates the tenants, users and rows it needs through these,
// as the owner role, with unique names so test files never collide.
import { randomBytes, randomUUID } from "node:crypto";
import { Agent, request as httpRequest, type Server } from "node:http";
import type express from "express";
import postgres from "postgres";
import { afterAll, beforeAll, inject } from "vitest";
import { createApp } from "../server/app.ts";
import { answerClientErrors } from "../server/http/clientErrors.ts";
import { createHttpServer } from "../server/http/httpServer.ts";
import { openApiDocument } from "../server/http/openApi.ts";
import { createPool, type PoolOptions, type Sql } from "../server/db/connections.ts";
import { streamProof, tenantContextProof, useContextKey, type ContextProof } from "../server/db/contextProof.ts";
import { responseValidator } from "./contractValidation.ts";
import { useReplicas, useTenantPool } from "../server/db/tenantContext.ts";
import { createReplicas, type Replicas } from "../server/db/replicas.ts";
import { addReachableRoutes } from "./routeProbes.ts";
import { hs256Keys, signAccessToken, type TokenKeys } from "../server/auth/tokens.ts";
import type { Role } from "../server/core/roles.ts";
import { DEFAULT_LOGIN_THROTTLE, type LoginThrottle } from "../server/core/config.ts";
import type { KeyRing } from "../server/core/keyRing.ts";

export type { Role };

export const db = inject("db");

export const keys: TokenKeys = hs256Keys(db.jwtSecret, "rls-service-shop", 900);
useContextKey(db.contextKey);

/** The credentials key ring of this test file's API (CREDENTIALS_KEYS as bytes). */
export const credentialRing: KeyRing<Buffer> = { primary: "test-1", keys: new Map([["test-1", randomBytes(32)]]) };

export const ownerSql = (): Sql => postgres(db.ownerUrl, { max: 4, onnotice: () => {} });
export const appUserSql = (): Sql => postgres(db.appUrl, { max: 4, onnotice: () => {} });

export type Tenant = { id: string; slug: string };
export type User = { id: string; email: string };

const unique = () => randomUUID().slice(0, 8);

/**
 * A shop on `plan` (default pro: every feature, so a test of a feature's route runs where it is
 * enabled; a new shop starts on basic, policies/features.sql), set as the CLI sets it.
 */
export async function makeTenant(owner: Sql, options: { status?: "active" | "suspended"; prefix?: string; plan?: "basic" | "pro" } = {}): Promise<Tenant> {
  const slug = `${options.prefix ?? "t"}-${unique()}`;
  const [t] = await owner`insert into app.tenants (slug, name, status) values (${slug}, ${`Shop ${slug}`}, ${options.status ?? "active"}) returning id, slug`;
  const plan = options.plan ?? "pro";
  if (plan !== "basic") await setPlan(owner, t as Tenant, plan);
  return t as Tenant;
}

/** Runs `fn` in the owner's platform context (the CLI's: app.open_platform_operator_context). */
export function asPlatformOperator<T>(owner: Sql, fn: (tx: Sql) => Promise<T>, actor = "test fixture"): Promise<T> {
  return owner.begin(async (tx) => {
    await tx`select app.open_platform_operator_context(${actor})`;
    return fn(tx as unknown as Sql);
  }) as Promise<T>;
}

/** Puts a shop on a plan, in a version (as `npm run cli -- features plan` does). */
export function setPlan(owner: Sql, tenant: Tenant, plan: string): Promise<unknown> {
  return asPlatformOperator(owner, (tx) => tx`select app.platform_set_tenant_plan(${tenant.id}, ${plan}, 'test fixture')`);
}

export async function makeUser(owner: Sql, tenant?: Tenant, role: Role = "owner"): Promise<User> {
  const email = `user-${unique()}@test.test`;
  const [u] = await owner`insert into app.users (email) values (${email}) returning id, email`;
  if (tenant) await owner`insert into app.memberships (tenant_id, user_id, role) values (${tenant.id}, ${u.id}, ${role})`;
  return u as User;
}

export async function makeCustomers(owner: Sql, tenant: Tenant, count: number): Promise<string[]> {
  const rows = Array.from({ length: count }, (_, i) => ({ tenant_id: tenant.id, name: `${tenant.slug} customer ${String(i).padStart(3, "0")}` }));
  const inserted = await owner`insert into app.customers ${owner(rows, "tenant_id", "name")} returning id`;
  return inserted.map((r) => r.id as string);
}

export function tokenFor(user: User, options: { tenant?: Tenant; ttlSeconds?: number } = {}): string {
  return signAccessToken(keys, { userId: user.id, tenantId: options.tenant?.id }, options.ttlSeconds);
}

export type Api = {
  url: string;
  /** The read replicas it reads from, when started with readUrls. */
  replicas?: Replicas;
  request: (method: string, path: string, options?: { token?: string; tenant?: string; body?: unknown; headers?: Record<string, string> }) => Promise<{ status: number; body: any; headers: Headers }>;
  close: () => Promise<void>;
};

type ApiOptions = {
  baseDomain?: string; databaseUrl?: string; maxSockets?: number; poolMax?: number; tokenKeys?: TokenKeys; credentialKeys?: KeyRing<Buffer>;
  /** Hot standbys to read from (as DATABASE_READ_URLS), their lag limit, and how long a monitor poll may wait for an answer. */
  readUrls?: string[]; replicaMaxLagMs?: number; replicaAnswerWithinMs?: number;
  /** Failed-login limits (default: the per-address limit off, see startApi). */
  loginThrottle?: LoginThrottle;
  /** Routes a test adds where requests reach them (probes: not in the API document, so asked with fetch). */
  probeRoutes?: (app: express.Express) => void;
} & Partial<Omit<PoolOptions, "url" | "max">>;

/** Starts the real app on a free port, against the test database as app_user. */
export async function startApi(options: ApiOptions = {}): Promise<Api> {
  const {
    baseDomain: _baseDomain, databaseUrl, maxSockets: _maxSockets, poolMax, tokenKeys: _tokenKeys, credentialKeys: _credentialKeys,
    readUrls, replicaMaxLagMs, replicaAnswerWithinMs, probeRoutes, loginThrottle, ...poolOptions
  } = options;
  // Shedding and acquire timeouts are off unless a test asks for them (test/bounded-waits.test.ts):
  // elsewhere a 503 under a loaded CI machine would only make a test flaky.
  const settings = { max: poolMax ?? 10, connectTimeoutMs: 2000, statementTimeoutMs: 10_000, acquireTimeoutMs: 30_000, maxWaiting: 100_000, ...poolOptions };
  const pool = createPool({ ...settings, url: databaseUrl ?? db.appUrl });
  // A second API in the same test file must not leave the first one on its closed pool.
  const previous = useTenantPool(pool);
  const replicas = readUrls?.length
    ? createReplicas({
      urls: readUrls, maxLagMs: replicaMaxLagMs ?? 1000, primary: pool.probe, answerWithinMs: replicaAnswerWithinMs ?? 2000,
      pool: (url) => createPool({ ...settings, url, exportMax: 1, applicationName: "rls-service-shop-replica" }),
    })
    : undefined;
  const previousReplicas = useReplicas(replicas);
  const app = createApp({ keys: options.tokenKeys ?? keys, baseDomain: options.baseDomain, bodyLimit: "100kb", credentialKeys: options.credentialKeys ?? credentialRing,
    // Every test file logs in from 127.0.0.1 (the fuzzer hundreds of times): the per-address limit
    // is off unless a test sets it (test/login-throttle.test.ts), the per-account one as configured.
    loginThrottle: loginThrottle ?? { ...DEFAULT_LOGIN_THROTTLE, addressFailures: 0 },
  });
  if (probeRoutes) addReachableRoutes(app, probeRoutes);
  const checkResponse = responseValidator(openApiDocument(app) as never);
  const server: Server = await new Promise((resolve) => {
    const s = createHttpServer(app).listen(0, "127.0.0.1", () => resolve(s));
  });
  answerClientErrors(server);
  const { port } = server.address() as { port: number };
  const url = `http://127.0.0.1:${port}`;
  const agent = new Agent({ keepAlive: true, maxSockets: options.maxSockets ?? 256 });
  return {
    url,
    replicas,
    async request(method, path, o = {}) {
      const headers: Record<string, string> = { ...o.headers };
      if (o.token) headers.authorization = `Bearer ${o.token}`;
      if (o.tenant) headers["x-tenant-id"] = o.tenant;
      let body: string | undefined;
      if (o.body !== undefined) {
        body = typeof o.body === "string" ? o.body : JSON.stringify(o.body);
        headers["content-type"] ??= "application/json";
      }
      // node:http rather than fetch: fetch drops a Host header, and the subdomain tests need one.
      // A kept-alive socket the server closed (keepAliveTimeout) just as the request reused it
      // fails with ECONNRESET before the server saw anything: sent again once on a new socket,
      // as Node's documentation advises (http.ClientRequest reusedSocket). Nothing else is retried.
      const send = (retry: boolean) => new Promise<{ status: number; text: string; headers: Headers }>((resolve, reject) => {
        const req = httpRequest(url + path, { method, headers, agent }, (r) => {
          const chunks: Buffer[] = [];
          r.on("data", (c: Buffer) => chunks.push(c));
          r.on("end", () => {
            const h = new Headers();
            for (const [k, v] of Object.entries(r.headers)) if (v !== undefined) h.set(k, String(v));
            resolve({ status: r.statusCode ?? 0, text: Buffer.concat(chunks).toString("utf8"), headers: h });
          });
          r.on("error", reject);
        });
        req.on("error", (error: NodeJS.ErrnoException) => {
          if (retry && req.reusedSocket && error.code === "ECONNRESET") resolve(send(false));
          else reject(error);
        });
        req.end(body);
      });
      const res = await send(true);
      const text = res.text;
      let parsed: unknown = text;
      try {
        parsed = text ? JSON.parse(text) : undefined;
      } catch {
        // not JSON; keep the text
      }
      checkResponse(method, path, res.status, res.headers.get("content-type"), parsed);
      return { status: res.status, body: parsed, headers: res.headers };
    },
    async close() {
      agent.destroy();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      const current = useTenantPool(previous);
      if (current !== pool) useTenantPool(current);
      const currentReplicas = useReplicas(previousReplicas);
      if (currentReplicas !== replicas) useReplicas(currentReplicas);
      await Promise.all([pool.end({ timeout: 5 }), replicas?.end()]);
    },
  };
}

/** A test file's connections as the owner (set-up, checks) and as app_user (isolation), ended after its tests. */
export function useDatabase(): { owner: Sql; app: Sql } {
  // postgres.js connects on the first query: a connection a file never uses costs nothing.
  const connections = { owner: ownerSql(), app: appUserSql() };
  afterAll(async () => {
    await Promise.all([connections.owner.end({ timeout: 5 }), connections.app.end({ timeout: 5 })]);
  });
  return connections;
}

/**
 * useDatabase() and the real app (startApi), started before the file's tests and stopped after
 * them. The returned `api` may be used from the file's own beforeAll on.
 */
export function useApi(options: Parameters<typeof startApi>[0] = {}): { owner: Sql; app: Sql; api: Api } {
  const connections = useDatabase();
  let started: Api | undefined;
  const running = () => started ?? (() => {
    throw new Error("the API is not started yet: use it in a test or a beforeAll registered after useApi()");
  })();
  const api: Api = {
    get url() {
      return running().url;
    },
    get replicas() {
      return running().replicas;
    },
    request: (...args) => running().request(...args),
    close: async () => {
      await started?.close();
      started = undefined;
    },
  };
  beforeAll(async () => {
    started = await startApi(options);
  });
  afterAll(() => api.close());
  return { ...connections, api };
}

export type OpenArgs = {
  userId: string; tenantRefs: string[]; scope?: string | null; requestId?: string; permission: string; forRow?: boolean; writes?: boolean; feature?: string | null;
};
type Guarded = { guard: string; expiresAt: number };

/**
 * A replay guard for one proof on this connection, as the API makes it (server/proofGuards.ts):
 * a write's on a stream registered for it; a read's bound to this connection (app.bind_session(),
 * the first proof of the chain). Inside a transaction, as the tests open contexts.
 */
export async function guardOn(tx: Sql, writes: boolean): Promise<Guarded> {
  if (writes) {
    const p = streamProof();
    const [s] = await tx`select app.open_context_stream(${p.expiresAt}::int8, ${p.nonce}, ${p.proof}) as id`;
    return { guard: `s:${s.id}`, expiresAt: Date.now() + 60_000 };
  }
  const [b] = await tx`select app.bind_session() as id`;
  return { guard: `c:${b.id}:1`, expiresAt: Date.now() + 60_000 };
}

/** The opener's call with a given proof (to replay or tamper with one). */
export function callOpener(tx: Sql, a: OpenArgs, p: ContextProof) {
  const args = { scope: null, requestId: "test", forRow: false, writes: false, feature: null, ...a };
  return tx`select tenant_id, member_role, permitted from app.open_tenant_context(${args.userId}::uuid, ${args.tenantRefs}::text[], ${args.scope}::uuid,
    ${args.requestId}, ${args.permission}::text, ${args.forRow}::boolean, ${args.writes}::boolean, ${p.guard}, ${p.expiresAt}::int8, ${p.nonce}, ${p.proof},
    ${args.feature}::text)`;
}

/** Signs the proof the API would send for `a` under `g`. */
export function proofFor(a: OpenArgs, g: Guarded): ContextProof {
  const args = { scope: null, requestId: "test", forRow: false, writes: false, ...a };
  return tenantContextProof(args, g.guard, g.expiresAt);
}

/**
 * app.open_tenant_context as the API calls it, with a proof signed by the test's context key
 * under a fresh guard. Pass `proof` to replay or tamper with one.
 */
export async function openTenantContext(tx: Sql, a: OpenArgs, proof?: ContextProof) {
  return callOpener(tx, a, proof ?? proofFor(a, await guardOn(tx, a.writes ?? false)));
}

/** What a member's transaction may do: the route permission it names, whether it writes, and the feature it needs. */
export type Access = { permission: string; writes?: boolean; forRow?: boolean; feature?: string | null };

/** Runs `fn` as app_user (connection `app`) in one transaction inside `user`'s context of `tenant`, opened by proof for `access`. */
export function asMember<T>(app: Sql, user: User, tenant: Tenant, access: Access, fn: (tx: Sql) => Promise<T>): Promise<T> {
  return app.begin(async (tx) => {
    await openTenantContext(tx as unknown as Sql, { userId: user.id, tenantRefs: [tenant.id], ...access });
    return fn(tx as unknown as Sql);
  }) as Promise<T>;
}

/** Runs `fn` as app_user in one transaction inside `tenant`'s context opened by the owner (as verify and the seed do). */
export function asTenant<T>(owner: Sql, tenant: Tenant, fn: (tx: Sql) => Promise<T>, role: Role = "owner"): Promise<T> {
  return owner.begin(async (tx) => {
    await tx`select app.open_operator_context(${tenant.id}::uuid, ${role})`;
    await tx`set local role app_user`;
    return fn(tx as unknown as Sql);
  }) as Promise<T>;
}
