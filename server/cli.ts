// Operator and developer CLI. `token` signs an access token for a user (optionally scoped
// to one tenant the user belongs to) with the same keys the API verifies with.
import { spawn } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { Command, InvalidArgumentError } from "commander";
import { loadConfig } from "./core/config.ts";
import { verifyAudit, writeAnchors } from "./ops/auditAnchor.ts";
import { credentialKeyStatus, rotateCredentials } from "./ops/credentialRotation.ts";
import { credentialKeys, parseCredentialKey } from "./core/credentialCipher.ts";
import { parseKeyRing, singleKeyRing, type KeyRing } from "./core/keyRing.ts";
import { progressBar } from "./ops/progressBar.ts";
import { sealValues, verifyValues, writeTextfile } from "./ops/auditMetrics.ts";
import { addContextKey, contextKeyId, installContextKey } from "./db/contextProof.ts";
import { connectOnce, type Sql } from "./db/connections.ts";
import { localAccess, shellQuote, type Access } from "./ops/localAccess.ts";
import { localKeyRings, openDatabase } from "./setup/localDatabase.ts";
import { deploy, type DeployOptions, type DeployReport } from "./setup/deploy.ts";
import { rbacMatrixFile, readMatrix, renderMatrix } from "./ops/rbacMatrix.ts";
import { featureCommands } from "./ops/features.ts";
import { tenantCommands } from "./ops/tenants.ts";
import { explainAsOperator, renderExplanation } from "./ops/accessExplain.ts";
import { EXPLAIN_ACTIONS, type ExplainAction } from "./db/accessExplainer.ts";
import { hs256Keys, loadTokenKeys, signAccessToken } from "./auth/tokens.ts";
import { createApp } from "./app.ts";
import { routeInventory } from "./http/routeInventory.ts";

const program = new Command().name("cli").description("rls-service-shop operator and developer commands");

function positiveInt(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 60 || n > 86400) throw new InvalidArgumentError("seconds between 60 and 86400");
  return n;
}

program
  .command("token")
  .description("print a signed access token for a user (local use and scripts)")
  .requiredOption("--email <email>", "the user's email")
  .option("--tenant <slug-or-uuid>", "scope the token to this tenant (the user must be a member)")
  .option("--ttl <seconds>", "lifetime in seconds", positiveInt)
  .action(async (opts: { email: string; tenant?: string; ttl?: number }) => {
    const config = loadConfig();
    const db = await openDatabase(config);
    const sql = connectOnce(ownerUrlOf(db));
    try {
      const [user] = await sql`select id from app.users where lower(email) = lower(${opts.email})`;
      if (!user) throw new Error(`no user with email ${opts.email}`);
      let tenantId: string | undefined;
      if (opts.tenant) {
        const [member] = await sql`
          select t.id from app.tenants t join app.memberships m on m.tenant_id = t.id and m.user_id = ${user.id}
           where t.slug = lower(${opts.tenant}) or t.id::text = lower(${opts.tenant})`;
        if (!member) throw new Error(`${opts.email} is not a member of tenant ${opts.tenant}`);
        tenantId = member.id;
      }
      const keys = loadTokenKeys({ ...config, jwtSecrets: localKeyRings(config, db.secrets).jwtSecrets });
      process.stdout.write(`${signAccessToken(keys, { userId: user.id, tenantId }, opts.ttl)}\n`);
    } finally {
      await sql.end({ timeout: 5 });
      await db.stop();
    }
  });

/** Milliseconds, at least `min`. */
function ms(min: number) {
  return (value: string) => {
    const n = Number(value);
    if (!Number.isInteger(n) || n < min) throw new InvalidArgumentError(`whole milliseconds, at least ${min}`);
    return n;
  };
}

/** Where deploy and migrate connect: --url, DATABASE_OWNER_URL, or the local embedded database (started for the command). */
async function deployTarget(url?: string): Promise<{ url: string; stop: () => Promise<void>; contextKey?: string }> {
  const given = url ?? process.env.DATABASE_OWNER_URL;
  if (given) return { url: given, stop: async () => {}, contextKey: process.env.CONTEXT_KEY };
  const db = await openDatabase(loadConfig());
  return { url: ownerUrlOf(db), stop: db.stop, contextKey: process.env.CONTEXT_KEY ?? db.secrets?.contextKey };
}

async function runDeploy(opts: { url?: string; lockTimeoutMs: number; retryForMs: number }, options: DeployOptions, requireKey: boolean): Promise<DeployReport> {
  const target = await deployTarget(opts.url);
  try {
    const contextKey = options.only?.includes("context-key") === false ? undefined : target.contextKey;
    if (requireKey && !contextKey) {
      throw new Error("set CONTEXT_KEY (64 to 128 hex characters) to the key the API instances run with, or pass --no-context-key to leave the installed key as it is");
    }
    return await deploy(target.url, { ...options, contextKey, lockTimeoutMs: opts.lockTimeoutMs, retryForMs: opts.retryForMs, log: (line) => console.log(line) });
  } finally {
    await target.stop();
  }
}

const lockOptions = (command: Command) =>
  command
    .option("--url <url>", "owner connection URL (default: DATABASE_OWNER_URL, else the local embedded database)")
    .option("--lock-timeout-ms <ms>", "longest wait for any one lock; traffic queued behind the deploy waits no longer", ms(10), 2000)
    .option("--retry-for-ms <ms>", "how long lock timeouts are retried, and another deploy awaited, before giving up", ms(0), 600_000);

lockOptions(program
  .command("deploy")
  .description("bring the database to this release, as the owner role: pending migrations, changed policy files, CONTEXT_KEY added beside the installed context keys (never replacing them). " +
    "One deploy at a time (advisory lock); every lock waits at most --lock-timeout-ms and is retried; a deploy that changes nothing takes no lock; " +
    "an edited applied migration stops it. deploy/deploy.sh snapshots first"))
  .option("--no-context-key", "leave the installed context key as it is (CONTEXT_KEY not needed)")
  .option("--reapply-policies", "apply every policy file, changed or not (repairs drift; deploy/apply-policies.sh)")
  .option("--only <steps>", "a comma-separated subset of migrations, policies, context-key")
  .action(async (opts: { url?: string; lockTimeoutMs: number; retryForMs: number; contextKey: boolean; reapplyPolicies?: boolean; only?: string }) => {
    const only = opts.only?.split(",").map((x) => x.trim()) as DeployOptions["only"];
    for (const step of only ?? []) if (!["migrations", "policies", "context-key"].includes(step)) throw new Error(`--only: ${step} is not one of migrations, policies, context-key`);
    const steps = (only ?? ["migrations", "policies", "context-key"]).filter((x) => opts.contextKey || x !== "context-key");
    const report = await runDeploy(opts, { only: steps, reapplyPolicies: opts.reapplyPolicies }, steps.includes("context-key"));
    if (report.policies.applied.length > 0) console.log(report.policies.changes.length ? report.policies.changes.join("\n") : "no changes");
    console.log(report.unchanged ? "deploy: nothing to do" : `deploy: done${report.retries ? ` (${report.retries} lock timeouts retried)` : ""}`);
  });

lockOptions(program
  .command("migrate")
  .description("the migrations step of the deploy alone (deploy/migrate.sh snapshots first): pending migrations from sql/, as the owner role, under the deploy's lock"))
  .option("--down", "undo the last migration instead (only one that carries a Down Migration section)")
  .action(async (opts: { url?: string; lockTimeoutMs: number; retryForMs: number; down?: boolean }) => {
    const report = await runDeploy(opts, { only: ["migrations"], down: opts.down }, false);
    const ran = opts.down ? report.migrations.undone : report.migrations.applied;
    console.log(ran.length ? `${opts.down ? "undone" : "applied"}: ${ran.join(", ")}` : "migrations at head: nothing to apply");
  });

const audit = program.command("audit").description("the tamper-evident audit trail (runs as the owner role)");

/** Owner connection: --url, DATABASE_OWNER_URL, or the local embedded database. */
async function ownerConnection(url?: string) {
  const given = url ?? process.env.DATABASE_OWNER_URL;
  if (given) return { sql: connectOnce(given), stop: async () => {}, secrets: undefined, dataDir: loadConfig().dataDir };
  const config = loadConfig();
  const db = await openDatabase(config);
  return { sql: connectOnce(ownerUrlOf(db)), stop: db.stop, secrets: db.secrets, dataDir: config.dataDir };
}

/** The owner's URL of the configured database, or why there is none. */
function ownerUrlOf(db: Awaited<ReturnType<typeof openDatabase>>): string {
  if (!db.ownerUrl) throw new Error("set DATABASE_OWNER_URL (or --url) to the owner role connection URL: with DATABASE_URL set, the embedded database is not used");
  return db.ownerUrl;
}

/**
 * The anchor key ring and file: AUDIT_ANCHOR_KEYS (a ring: "*new=key,old=key") or AUDIT_ANCHOR_KEY
 * (the ring of one key, `default`), and AUDIT_ANCHOR_FILE, else the local development ones.
 */
function anchorSettings(conn: { secrets?: { auditAnchorKey: string }; dataDir: string }, file?: string): { ring: KeyRing<string>; file: string } {
  const { AUDIT_ANCHOR_KEYS: text, AUDIT_ANCHOR_KEY: single } = process.env;
  if (text && single) throw new Error("set AUDIT_ANCHOR_KEYS or AUDIT_ANCHOR_KEY, not both (AUDIT_ANCHOR_KEY=k is the ring \"*default=k\")");
  const atLeast32 = (v: string) => {
    if (v.length < 32) throw new Error("must be 32 characters or more (keep it away from the database's writers, runbooks/audit-anchors.md)");
    return v;
  };
  const key = single ?? conn.secrets?.auditAnchorKey;
  if (!text && !key) throw new Error("set AUDIT_ANCHOR_KEY or the ring AUDIT_ANCHOR_KEYS (32+ characters each; keep them away from the database's writers, runbooks/audit-anchors.md)");
  const ring = text ? parseKeyRing("AUDIT_ANCHOR_KEYS", text, atLeast32) : singleKeyRing(atLeast32(key!));
  return { ring, file: file ?? process.env.AUDIT_ANCHOR_FILE ?? join(resolve(conn.dataDir), "audit-anchors.jsonl") };
}

const metricsDirFlag = "--metrics-dir <dir>";

/** A metrics file speaks for every tenant: one run over a single tenant must not overwrite it. */
function everyTenantForMetrics(opts: { tenant?: string; metricsDir?: string }): void {
  if (opts.tenant && opts.metricsDir) throw new Error("--metrics-dir reports on every tenant: leave out --tenant");
}

async function tenantsFor(sql: ReturnType<typeof connectOnce>, tenant?: string) {
  const rows = tenant
    ? await sql`select id, slug from app.tenants where slug = lower(${tenant}) or id::text = lower(${tenant})`
    : await sql`select id, slug from app.tenants order by slug`;
  if (tenant && rows.length === 0) throw new Error(`no tenant ${tenant}`);
  return rows as unknown as { id: string; slug: string }[];
}

audit
  .command("seal")
  .description("seal unsealed audit rows into each tenant's hash chain (schedule this, e.g. every minute)")
  .option("--tenant <slug-or-uuid>", "only this tenant")
  .option("--url <url>", "owner connection URL (default: DATABASE_OWNER_URL, else the local embedded database)")
  .option(metricsDirFlag, "also write audit_seal.prom there for node_exporter's textfile collector (every tenant only)")
  .action(async (opts: { tenant?: string; url?: string; metricsDir?: string }) => {
    everyTenantForMetrics(opts);
    const { sql, stop } = await ownerConnection(opts.url);
    try {
      const tenants = await tenantsFor(sql, opts.tenant);
      let sealed = 0;
      for (const t of tenants) {
        const [{ n }] = await sql`select app.audit_seal(${t.id}::uuid) as n`;
        sealed += Number(n);
        console.log(`${t.slug}: sealed ${n}`);
      }
      if (opts.metricsDir) console.log(`wrote ${await writeTextfile(opts.metricsDir, "audit_seal", sealValues({ tenants: tenants.length, sealed }))}`);
    } finally {
      await sql.end({ timeout: 5 });
      await stop();
    }
  });

audit
  .command("anchor")
  .description("append each tenant's chain head (seq, hash), signed, to the anchor file kept outside the database")
  .option("--file <path>", "anchor file (default: AUDIT_ANCHOR_FILE, else DATA_DIR/audit-anchors.jsonl)")
  .option("--no-seal", "anchor only what is already sealed")
  .option("--url <url>", "owner connection URL (default: DATABASE_OWNER_URL, else the local embedded database)")
  .action(async (opts: { file?: string; url?: string; seal: boolean }) => {
    const conn = await ownerConnection(opts.url);
    const { sql, stop } = conn;
    try {
      const { ring, file } = anchorSettings(conn, opts.file);
      if (opts.seal) for (const t of await tenantsFor(sql)) await sql`select app.audit_seal(${t.id}::uuid)`;
      const anchors = await writeAnchors(sql, file, ring);
      for (const x of anchors) console.log(`anchored ${x.slug}: position ${x.seq} ${x.hash.slice(0, 16)}…`);
      console.log(`${anchors.length} tenant(s) anchored in ${file} (key ${ring.primary})`);
    } finally {
      await sql.end({ timeout: 5 });
      await stop();
    }
  });

audit
  .command("verify")
  .description("seal, then walk each tenant's chain and check it against its latest anchor; names the first broken link; exits 1 on any")
  .option("--tenant <slug-or-uuid>", "only this tenant")
  .option("--no-seal", "verify only what is already sealed")
  .option("--file <path>", "anchor file (default: AUDIT_ANCHOR_FILE, else DATA_DIR/audit-anchors.jsonl)")
  .option("--url <url>", "owner connection URL (default: DATABASE_OWNER_URL, else the local embedded database)")
  .option(metricsDirFlag, "also write audit_verify.prom there for node_exporter's textfile collector, once every tenant is checked (every tenant only)")
  .action(async (opts: { tenant?: string; url?: string; seal: boolean; file?: string; metricsDir?: string }) => {
    everyTenantForMetrics(opts);
    const conn = await ownerConnection(opts.url);
    const { sql, stop } = conn;
    let broken = 0;
    try {
      const anchors = process.env.AUDIT_ANCHOR_KEY || process.env.AUDIT_ANCHOR_KEYS || conn.secrets ? anchorSettings(conn, opts.file) : undefined;
      const tenants = await tenantsFor(sql, opts.tenant);
      const result = await verifyAudit(sql, tenants, { anchors, seal: opts.seal });
      for (const line of result.lines) console.log(line);
      broken = result.broken;
      if (opts.metricsDir) console.log(`wrote ${await writeTextfile(opts.metricsDir, "audit_verify", verifyValues({ tenants: tenants.length, broken, unsealed: result.unsealed }))}`);
    } finally {
      await sql.end({ timeout: 5 });
      await stop();
    }
    if (broken) process.exitCode = 1;
  });

program
  .command("rbac")
  .description("role-based access control")
  .command("matrix")
  .description("print runbooks/rbac-matrix.md as generated from policies/permissions.sql, policies/rbac.sql, the tenant tables and the routes")
  .option("--write", "write it to runbooks/rbac-matrix.md instead of printing it")
  .option("--url <url>", "owner connection URL (default: DATABASE_OWNER_URL, else the local embedded database)")
  .action(async (opts: { write?: boolean; url?: string }) => {
    const { sql, stop } = await ownerConnection(opts.url);
    try {
      // The routes as the API mounts them; the key only lets the app be built, nothing is signed.
      const routes = routeInventory(createApp({ keys: hs256Keys("rbac-matrix-rendering-only-0123456789abcdef"), bodyLimit: "1kb" }));
      const page = renderMatrix(await readMatrix(sql), routes);
      if (opts.write) {
        writeFileSync(rbacMatrixFile, page);
        console.log(`wrote ${rbacMatrixFile}`);
      } else {
        process.stdout.write(page);
      }
    } finally {
      await sql.end({ timeout: 5 });
      await stop();
    }
  });

program
  .command("explain")
  .description("why a member may or may not act on a tenant table, step by step, from what the database enforces: the member's real context, the real statement, in a transaction rolled back (runbooks/access-questions.md)")
  .requiredOption("--tenant <slug>", "the shop (slug or id)")
  .requiredOption("--user <email>", "the account asked about")
  .requiredOption("--table <table>", "a tenant table (runbooks/rbac-matrix.md lists them)")
  .requiredOption("--action <action>", EXPLAIN_ACTIONS.join(", "), (v: string) => {
    if (!(EXPLAIN_ACTIONS as readonly string[]).includes(v)) throw new InvalidArgumentError(EXPLAIN_ACTIONS.join(", "));
    return v as ExplainAction;
  })
  .option("--id <id>", "the row (its key); an update or delete needs one, an insert copies it")
  .option("--json", "print the explanation as the API answers it")
  .option("--url <url>", "owner connection URL (default: DATABASE_OWNER_URL, else the local embedded database)")
  .action(async (opts: { tenant: string; user: string; table: string; action: ExplainAction; id?: string; json?: boolean; url?: string }) => {
    const conn = await ownerConnection(opts.url);
    try {
      const key = process.env.CONTEXT_KEY ?? conn.secrets?.contextKey;
      if (!key) throw new Error("set CONTEXT_KEY to the key the API runs with: the explainer opens the member's context with the API's proof");
      const explanation = await explainAsOperator(conn.sql, key, opts);
      process.stdout.write(opts.json ? `${JSON.stringify(explanation, null, 2)}\n` : renderExplanation(explanation));
    } finally {
      await conn.sql.end({ timeout: 5 });
      await conn.stop();
    }
  });

const bi = program.command("bi").description("BI logins: which tenants each may read through the views (runs as the owner role)");

/** `bi grant` and `bi revoke`: one owner call, audited in SQL (app.bi_grant / app.bi_revoke). */
function biChange(verb: "grant" | "revoke", description: string, done: (role: string, slug: string, changed: boolean) => string) {
  bi.command(verb)
    .description(description)
    .requiredOption("--role <role>", "the BI login role")
    .requiredOption("--tenant <slug-or-uuid>", "the tenant")
    .option("--url <url>", "owner connection URL (default: DATABASE_OWNER_URL, else the local embedded database)")
    .action(async (opts: { role: string; tenant: string; url?: string }) => {
      const { sql, stop } = await ownerConnection(opts.url);
      try {
        const [t] = await tenantsFor(sql, opts.tenant);
        const [r] = await sql.begin((tx) => (verb === "grant" ? tx`select app.bi_grant(${opts.role}, ${t.id}::uuid) as changed` : tx`select app.bi_revoke(${opts.role}, ${t.id}::uuid) as changed`));
        console.log(done(opts.role, t.slug, r.changed));
      } finally {
        await sql.end({ timeout: 5 });
        await stop();
      }
    });
}

biChange("grant", "let a BI login (a role that is a member of app_bi) read a tenant's rows through the views; audited",
  (role, slug, changed) => (changed ? `granted: ${role} reads ${slug}` : `unchanged: ${role} already reads ${slug}`));
biChange("revoke", "take a tenant back from a BI login; audited",
  (role, slug, changed) => (changed ? `revoked: ${role} no longer reads ${slug}` : `unchanged: ${role} did not read ${slug}`));

bi
  .command("list")
  .description("every BI grant: role, tenant, since when")
  .option("--url <url>", "owner connection URL (default: DATABASE_OWNER_URL, else the local embedded database)")
  .action(async (opts: { url?: string }) => {
    const { sql, stop } = await ownerConnection(opts.url);
    try {
      const rows = await sql`select g.role_name, t.slug, g.granted_at from app.bi_grants g join app.tenants t on t.id = g.tenant_id order by 1, 2`;
      for (const r of rows) console.log(`${r.role_name}\t${r.slug}\t${(r.granted_at as Date).toISOString()}`);
      if (rows.length === 0) console.log("no BI grants");
    } finally {
      await sql.end({ timeout: 5 });
      await stop();
    }
  });

tenantCommands(program.command("tenant").description("a shop's life: create with its owner's invitation, suspend, resume, export, import, purge (runs as the owner role)"), ownerConnection,
  (conn) => (process.env.AUDIT_ANCHOR_KEY || process.env.AUDIT_ANCHOR_KEYS || conn.secrets ? anchorSettings(conn) : undefined));
featureCommands(program.command("features").description("plans, shops' plans, overrides and kill switches, each change a version with actor and reason (runs as the owner role)"), ownerConnection);

const contextKeys = program
  .command("context-key")
  .description("the keys the API signs tenant-context proofs with (CONTEXT_KEY); rotation: add, roll the instances, promote, retire (runbooks/key-rotation.md)");

/** Runs one owner statement of the context-key commands. */
async function onContextKeys(url: string | undefined, work: (sql: Sql) => Promise<void>): Promise<void> {
  const { sql, stop } = await ownerConnection(url);
  try {
    await work(sql);
  } finally {
    await sql.end({ timeout: 5 });
    await stop();
  }
}

function keyFromEnv(): string {
  const key = process.env.CONTEXT_KEY;
  if (!key) throw new Error("set CONTEXT_KEY (64 to 128 hex characters: openssl rand -hex 32) to the key the API runs with");
  return key;
}

contextKeys
  .command("install")
  .description("install CONTEXT_KEY as the database's only key at once, refusing every other (development's npm start does this itself; a deploy adds its key instead)")
  .option("--url <url>", "owner connection URL (default: DATABASE_OWNER_URL)")
  .action(async (opts: { url?: string }) => {
    const key = keyFromEnv();
    await onContextKeys(opts.url, async (sql) => {
      await installContextKey(sql, key);
      console.log(`installed: context key ${contextKeyId(key)} (the API's /readyz checks its key is among the installed ones)`);
    });
  });

contextKeys
  .command("add")
  .description("rotation step 1: accept proofs under CONTEXT_KEY beside the installed keys (the deploy's context-key step does the same)")
  .option("--url <url>", "owner connection URL (default: DATABASE_OWNER_URL)")
  .action(async (opts: { url?: string }) => {
    const key = keyFromEnv();
    await onContextKeys(opts.url, async (sql) => {
      console.log(`added: context key ${await addContextKey(sql, key)}; now start the API instances with it, then promote it and retire the old one`);
    });
  });

contextKeys
  .command("promote")
  .description("rotation step 2: make an installed key the primary, once every instance runs with it")
  .requiredOption("--key-id <id>", "the key's id (context-key status)")
  .option("--url <url>", "owner connection URL (default: DATABASE_OWNER_URL)")
  .action(async (opts: { keyId: string; url?: string }) => {
    await onContextKeys(opts.url, async (sql) => {
      await sql`select app.promote_context_key(${opts.keyId})`;
      console.log(`primary: context key ${opts.keyId}`);
    });
  });

contextKeys
  .command("retire")
  .description("rotation step 3: stop accepting proofs under a key that is not the primary")
  .requiredOption("--key-id <id>", "the key's id (context-key status)")
  .option("--url <url>", "owner connection URL (default: DATABASE_OWNER_URL)")
  .action(async (opts: { keyId: string; url?: string }) => {
    await onContextKeys(opts.url, async (sql) => {
      await sql`select app.retire_context_key(${opts.keyId})`;
      console.log(`retired: context key ${opts.keyId}; proofs under it are refused from now on`);
    });
  });

contextKeys
  .command("status")
  .description("the installed context keys: id, primary, installed at (and which one CONTEXT_KEY is, when set)")
  .option("--url <url>", "owner connection URL (default: DATABASE_OWNER_URL)")
  .action(async (opts: { url?: string }) => {
    const mine = process.env.CONTEXT_KEY ? contextKeyId(process.env.CONTEXT_KEY) : undefined;
    await onContextKeys(opts.url, async (sql) => {
      const keys = await sql`select key_id, is_primary, installed_at from app.context_keys order by is_primary desc, installed_at`;
      for (const k of keys) {
        console.log(`${k.key_id}  ${k.is_primary ? "primary" : "       "}  installed ${new Date(k.installed_at).toISOString()}${k.key_id === mine ? "  (CONTEXT_KEY)" : ""}`);
      }
      if (mine && !keys.some((k) => k.key_id === mine)) console.log(`CONTEXT_KEY (${mine}) is not installed: context-key add`);
    });
  });

const credentials = program.command("credentials").description("the tenants' third-party credentials and their key ring, CREDENTIALS_KEYS (runs as the owner role, across tenants)");

/** The credentials key ring: CREDENTIALS_KEYS, else the local development one (secrets.json). */
function credentialsRing(conn: { secrets?: { credentialsKeys: string } }): KeyRing<string> {
  const text = process.env.CREDENTIALS_KEYS || conn.secrets?.credentialsKeys;
  if (!text) throw new Error('set CREDENTIALS_KEYS to the ring the API runs with, e.g. "*new=<64 hex>,old=<64 hex>" (runbooks/key-rotation.md)');
  return parseKeyRing("CREDENTIALS_KEYS", text, (v) => (parseCredentialKey(v), v));
}

credentials
  .command("rotate")
  .description("re-encrypt every stored credential under the ring's primary key, in batches; resumable, idempotent, safe while the API writes")
  .option("--batch-size <rows>", "rows per transaction (1-5000)", (v: string) => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < 1 || n > 5000) throw new InvalidArgumentError("rows between 1 and 5000");
    return n;
  }, 500)
  .option("--url <url>", "owner connection URL (default: DATABASE_OWNER_URL, else the local embedded database)")
  .action(async (opts: { batchSize: number; url?: string }) => {
    const conn = await ownerConnection(opts.url);
    const { sql, stop } = conn;
    // Ctrl-C stops between batches: what is done stays done, and the next run goes on from there.
    const interrupt = new AbortController();
    const onSignal = () => interrupt.abort();
    process.once("SIGINT", onSignal).once("SIGTERM", onSignal);
    try {
      const ring = credentialKeys(credentialsRing(conn));
      const bar = progressBar(`re-encrypting under ${ring.primary}`);
      const result = await rotateCredentials(sql, ring, { batchSize: opts.batchSize, signal: interrupt.signal, onProgress: bar.update });
      bar.stop();
      for (const t of result.tenants) {
        const from = Object.entries(t.from).map(([k, n]) => `${n} from ${k}`).join(", ");
        console.log(`${t.slug}: ${t.rotated} re-encrypted${from ? ` (${from})` : ""}${t.conflicts ? `, ${t.conflicts} changed meanwhile and read again` : ""}`);
        for (const f of t.failed) console.log(`UNREADABLE ${t.slug} ${f.provider}: under key ${f.keyId} (${f.reason}). FIX: ${f.reason === "unknown-key" ? `add key ${f.keyId} to CREDENTIALS_KEYS and run again` : "the shop stores this credential again (PUT)"}`);
      }
      const rate = result.seconds > 0 ? Math.round(result.done / result.seconds) : result.done;
      console.log(`${result.interrupted ? "interrupted" : "done"}: ${result.done - result.failed} of ${result.total} re-encrypted under ${ring.primary} in ${result.seconds.toFixed(1)} s (${rate} rows/s), ${result.conflicts} read again after a concurrent change, ${result.failed} unreadable`);
      if (result.interrupted) console.log("run it again to finish: it goes on where this one stopped");
      if (result.leftByConflicts) console.log(`${result.leftByConflicts} row(s) kept changing under another key. FIX: every API instance must run with ${ring.primary} as its primary; then run again`);
      if (result.failed || result.interrupted || result.leftByConflicts) process.exitCode = 1;
    } finally {
      process.off("SIGINT", onSignal).off("SIGTERM", onSignal);
      await sql.end({ timeout: 5 });
      await stop();
    }
  });

credentials
  .command("status")
  .description("stored credentials per key id: a key leaves CREDENTIALS_KEYS only when it holds none")
  .option("--url <url>", "owner connection URL (default: DATABASE_OWNER_URL, else the local embedded database)")
  .action(async (opts: { url?: string }) => {
    const conn = await ownerConnection(opts.url);
    const { sql, stop } = conn;
    try {
      const ring = process.env.CREDENTIALS_KEYS || conn.secrets ? credentialsRing(conn) : undefined;
      const rows = await credentialKeyStatus(sql);
      for (const r of rows) {
        const role = !ring ? "" : r.key_id === ring.primary ? "  primary" : ring.keys.has(r.key_id) ? "  to rotate: npm run cli -- credentials rotate" : "  NOT IN CREDENTIALS_KEYS: these cannot be decrypted";
        console.log(`${r.key_id}\t${r.rows} row(s)\t${r.tenants} tenant(s)${role}`);
      }
      for (const id of ring ? [...ring.keys.keys()].filter((k) => !rows.some((r) => r.key_id === k)) : []) {
        console.log(`${id}\t0 row(s)\t0 tenant(s)${id === ring!.primary ? "  primary" : "  unused: may leave CREDENTIALS_KEYS"}`);
      }
      if (rows.length === 0 && !ring) console.log("no stored credentials");
    } finally {
      await sql.end({ timeout: 5 });
      await stop();
    }
  });

type As = "owner" | "app" | "bi";

function urlFor(access: Access, as: As): string {
  const url = as === "owner" ? access.owner : as === "app" ? access.app : access.bi;
  if (!url) throw new Error(`no ${as} URL: with DATABASE_URL/DATABASE_OWNER_URL set, only --owner and --app are known`);
  return url;
}

function warnIfStopped(access: Access): void {
  if (access.embedded && !access.running) console.error("note: the embedded database is not running; start it with npm start (in another terminal)");
}

program
  .command("db-url")
  .description("print a connection URL of npm start's database (embedded, or DATABASE_URL/DATABASE_OWNER_URL)")
  .option("--owner", "the owner role: migrations, policies, verify and deploy scripts (default)")
  .option("--app", "app_user, the API's login role")
  .option("--bi", "app_bi, the BI role")
  .action((opts: { owner?: boolean; app?: boolean; bi?: boolean }) => {
    const access = localAccess(loadConfig());
    warnIfStopped(access);
    console.log(urlFor(access, opts.app ? "app" : opts.bi ? "bi" : "owner"));
  });

program
  .command("env")
  .description("print export lines for the operator scripts (eval \"$(npm run -s cli -- env)\" in the operator's shell)")
  .action(() => {
    const access = localAccess(loadConfig());
    warnIfStopped(access);
    const lines = [
      "# npm start's database and API, for verify/ and deploy/ scripts. Not for the shell that runs npm start:",
      "# with both database URLs set, npm start connects to them instead of starting the embedded server.",
      `export DATABASE_OWNER_URL=${shellQuote(access.owner)}`,
      `export DATABASE_URL=${shellQuote(access.app)}`,
      ...(access.jwtSecret ? [`export JWT_SECRET=${shellQuote(access.jwtSecret)}`] : []),
      ...(access.contextKey ? [`export CONTEXT_KEY=${shellQuote(access.contextKey)}`] : []),
      ...(access.auditAnchorKey ? [`export AUDIT_ANCHOR_KEY=${shellQuote(access.auditAnchorKey)}`] : []),
      ...(access.credentialsKeys ? [`export CREDENTIALS_KEYS=${shellQuote(access.credentialsKeys)}`] : []),
      ...(access.auditAnchorFile ? [`export AUDIT_ANCHOR_FILE=${shellQuote(access.auditAnchorFile)}`] : []),
      `export API_URL=${shellQuote(access.apiUrl)}`,
    ];
    console.log(lines.join("\n"));
  });

program
  .command("psql")
  .description("open psql on npm start's database (starts the embedded server for the session if it is not running); arguments after -- go to psql")
  .option("--as <role>", "owner, app or bi", (v: string) => {
    if (!["owner", "app", "bi"].includes(v)) throw new InvalidArgumentError("owner, app or bi");
    return v as As;
  }, "owner" as As)
  .argument("[psqlArgs...]", "passed to psql, e.g. -- -f verify/catalog.sql")
  .allowUnknownOption()
  .action(async (psqlArgs: string[], opts: { as: As }) => {
    const config = loadConfig();
    let access = localAccess(config);
    let stop = async () => {};
    if (access.embedded && !access.running) {
      const db = await openDatabase(config);
      stop = db.stop;
      access = localAccess(config);
    }
    try {
      const code = await new Promise<number>((resolve, reject) => {
        const child = spawn("psql", [urlFor(access, opts.as), ...psqlArgs], { stdio: "inherit" });
        child.on("error", (error) => reject(new Error(`psql could not start (${error.message}): install the PostgreSQL 15 client (Debian: apt-get install postgresql-client)`)));
        child.on("close", (c) => resolve(c ?? 1));
      });
      process.exitCode = code;
    } finally {
      await stop();
    }
  });

program.parseAsync().catch((error) => {
  console.error(`error: ${error instanceof Error ? error.message : String(error)}`);
  process.exit(1);
});
