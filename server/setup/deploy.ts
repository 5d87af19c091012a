// The deploy: migrations, policies and the context key, as the owner role, in one command
// (`npm run cli -- deploy`, deploy/deploy.sh; `npm start` runs it at every start in development).
// The serving API never runs it: it holds only app_user (server/main.ts).
//   * One at a time: a session advisory lock; a deploy started meanwhile waits its turn, then
//     finds the work done (three simultaneous starts used to fail with `tuple concurrently updated`).
//   * Traffic never waits long behind it: every lock it takes waits at most lock_timeout (2 s by
//     default), and a step that times out rolls back, lets traffic through, and is retried with
//     backoff. Before, re-applying policies queued behind one open reader of app.audit_log for
//     11 s, and every query on that table queued behind the deploy.
//   * What is already applied is skipped: migrations by node-pg-migrate's table, policy files by
//     their recorded hash (server/setup/policies.ts). A deploy that changes nothing takes no lock.
//   * Applied migrations are immutable: an edited one stops the deploy before anything runs.
//   * The context key is added to the database's key ring, never put in place of it: instances
//     still running with another installed key keep opening contexts, so a deploy in the middle of
//     a key rotation (runbooks/context-key.md) refuses no request. Only development's start, whose
//     embedded database serves one API, keeps a single key (contextKeyOnly).
import { contextKeyId, parseContextKey } from "../db/contextProof.ts";
import { connectOnce, type Sql } from "../db/connections.ts";
import { appliedMigrations, checkChecksums, migrationFiles, migrationsDir, recordChecksums, runMigrations, type MigrationFile } from "./migrate.ts";
import {
  applyPolicyFiles, changedPolicyFiles, describeChanges, policyInputs, policyState, policyVersion, recordPolicies, type PolicyFile,
} from "./policies.ts";

export type DeployStep = "migrations" | "policies" | "context-key";

export type DeployOptions = {
  /** Added to the database's key ring when it is not in it (the first key installed is made the primary). */
  contextKey?: string;
  /** Make contextKey the only key instead, retiring the others: development's start only (one API, one key). */
  contextKeyOnly?: boolean;
  /** The steps to run (default: all three). */
  only?: DeployStep[];
  /** Apply every policy file, changed or not: repairs drift (a policy dropped or RLS switched off by hand). */
  reapplyPolicies?: boolean;
  /** Undo the last migration instead of applying pending ones (only one with a Down section). */
  down?: boolean;
  /** Longest wait for any one lock (ms); traffic queued behind the deploy waits no longer. Default 2000. */
  lockTimeoutMs?: number;
  /** How long lock timeouts are retried (and another deploy's lock awaited) before giving up (ms). Default 10 minutes. */
  retryForMs?: number;
  migrationsDir?: string;
  policiesDir?: string;
  log?: (line: string) => void;
};

export type DeployReport = {
  /** True when the deploy found nothing to do and took no lock. */
  unchanged: boolean;
  migrations: { applied: string[]; undone: string[]; baseline: string[] };
  policies: { applied: string[]; skipped: number; changes: string[] };
  contextKey: "added" | "installed" | "unchanged" | "not given";
  /** Lock timeouts retried, by step. */
  retries: number;
};

/** pg_advisory_lock key of the deploy (hashtextextended('rls-service-shop:deploy', 0)). */
const DEPLOY_LOCK = "rls-service-shop:deploy";
const RETRYABLE = new Set(["55P03", "40P01"]); // lock_not_available (lock_timeout), deadlock_detected

type Plan = { files: MigrationFile[]; pending: string[]; policies: PolicyFile[]; changed: PolicyFile[]; installKey: boolean };

/** Migrates, applies policies and installs the context key, as far as each is not done already. */
export async function deploy(ownerUrl: string, options: DeployOptions = {}): Promise<DeployReport> {
  const log = options.log ?? (() => {});
  const steps = new Set<DeployStep>(options.only ?? ["migrations", "policies", "context-key"]);
  const lockTimeoutMs = options.lockTimeoutMs ?? 2000;
  const retryForMs = options.retryForMs ?? 600_000;
  const report: DeployReport = { unchanged: true, migrations: { applied: [], undone: [], baseline: [] }, policies: { applied: [], skipped: 0, changes: [] }, contextKey: "not given", retries: 0 };
  const sql = connectOnce(ownerUrl, "rls-service-shop-deploy");
  try {
    // A read-only look first: with nothing to do, no lock is taken at all.
    let plan = await planDeploy(sql, options, steps);
    if (!options.down && !options.reapplyPolicies && plan.pending.length === 0 && plan.changed.length === 0 && !plan.installKey) {
      report.policies.skipped = plan.policies.length;
      report.contextKey = options.contextKey ? "unchanged" : "not given";
      log(`nothing to deploy: migrations at head (${plan.files.length}), ${plan.policies.length} policy files applied, context key ${options.contextKey ? "installed" : "not given"}`);
      return report;
    }
    report.unchanged = false;
    await takeDeployLock(sql, retryForMs, log);
    try {
      await sql`select set_config('lock_timeout', ${`${lockTimeoutMs}ms`}, false)`;
      const retrying = <T>(step: string, work: () => Promise<T>) => withLockRetries(step, work, { lockTimeoutMs, retryForMs, log, onRetry: () => report.retries++ });
      // The deploy before ours may have done the work while we waited.
      plan = await planDeploy(sql, options, steps);

      if (steps.has("migrations") && (plan.pending.length > 0 || options.down)) {
        const ran = await retrying("migrations", () => runMigrations(ownerUrl, { dir: options.migrationsDir, down: options.down, lockTimeoutMs, log }));
        if (options.down) report.migrations.undone = ran;
        else report.migrations.applied = ran;
        log(options.down ? `migrations undone: ${ran.join(", ") || "nothing"}` : `migrations applied: ${ran.join(", ")}`);
        plan = await planDeploy(sql, options, steps);
      }
      if (steps.has("migrations")) {
        const { recorded, baseline } = await recordChecksums(sql, plan.files, report.migrations.applied);
        report.migrations.baseline = baseline;
        if (baseline.length) log(`migrations: recorded the checksums of ${baseline.length} migrations that ran before checksums were kept, as the files are now`);
        else if (recorded.length) log(`migrations: recorded ${recorded.length} checksums`);
      }

      if (steps.has("policies")) {
        const apply = options.reapplyPolicies ? plan.policies : plan.changed;
        if (apply.length > 0) {
          const version = policyVersion(options.policiesDir);
          report.policies.changes = await retrying("policies", () => sql.begin(async (tx) => {
            const before = await policyState(tx as unknown as Sql);
            await applyPolicyFiles(tx as unknown as Sql, apply);
            await recordPolicies(tx as unknown as Sql, plan.policies, apply.map((f) => f.file), version);
            return describeChanges(before, await policyState(tx as unknown as Sql));
          }) as Promise<string[]>);
          report.policies.applied = apply.map((f) => f.file);
        }
        report.policies.skipped = plan.policies.length - report.policies.applied.length;
        log(`policies: applied ${report.policies.applied.length} of ${plan.policies.length} files` +
          (report.policies.applied.length ? ` (${report.policies.applied.join(" ")})` : "") + `; ${report.policies.changes.length} objects changed`);
      }

      if (steps.has("context-key") && options.contextKey) {
        const key = options.contextKey;
        if (plan.installKey && options.contextKeyOnly) {
          await retrying("context key", () => sql`select app.install_context_key(decode(${key}, 'hex'))`);
          report.contextKey = "installed";
        } else if (plan.installKey) {
          // Beside the installed keys; the primary only when the ring had none (a new database).
          await retrying("context key", () => sql.begin((tx) => [
            tx`select app.add_context_key(decode(${key}, 'hex'))`,
            tx`select app.promote_context_key(${contextKeyId(key)}) where not exists (select from app.context_keys where is_primary)`,
          ]));
          report.contextKey = "added";
        } else report.contextKey = "unchanged";
        log(`context key: ${report.contextKey} (key id ${contextKeyId(key)})`);
      }
    } finally {
      await sql`select pg_advisory_unlock(hashtextextended(${DEPLOY_LOCK}, 0))`.catch(() => {});
    }
    return report;
  } finally {
    await sql.end({ timeout: 5 });
  }
}

/** What the database lacks of this release; throws when an applied migration was edited. Reads only. */
async function planDeploy(sql: Sql, options: DeployOptions, steps: Set<DeployStep>): Promise<Plan> {
  const dir = options.migrationsDir ?? migrationsDir;
  const files = migrationFiles(dir);
  const { applied, recorded } = await appliedMigrations(sql);
  checkChecksums(files, recorded, dir);
  const pending = steps.has("migrations") ? files.filter((f) => !applied.includes(f.name)).map((f) => f.name) : [];
  const policies = policyInputs(files, options.policiesDir);
  const changed = !steps.has("policies") ? [] : pending.length > 0 ? policies : await changedPolicyFiles(sql, policies);
  let installKey = false;
  if (steps.has("context-key") && options.contextKey) {
    parseContextKey(options.contextKey);
    // app.context_key_ids() comes with the key ring's policies (sql/0411): before them, nothing is installed yet.
    const [{ ring }] = await sql`select to_regprocedure('app.context_key_ids()') is not null as ring`;
    const ids: string[] = ring ? (await sql`select app.context_key_ids() as ids`)[0].ids : [];
    const mine = contextKeyId(options.contextKey);
    // The ids come primary first; "only" wants this key alone (and so the primary).
    installKey = options.contextKeyOnly ? !(ids.length === 1 && ids[0] === mine) : !ids.includes(mine);
  }
  return { files, pending, policies, changed, installKey };
}

/** Takes the deploy's session advisory lock, waiting (at most retryForMs) for a deploy that holds it. */
async function takeDeployLock(sql: Sql, retryForMs: number, log: (line: string) => void): Promise<void> {
  const [{ taken }] = await sql`select pg_try_advisory_lock(hashtextextended(${DEPLOY_LOCK}, 0)) as taken`;
  if (taken) return;
  log("deploy: another deploy holds the deploy lock; waiting for it to finish");
  await sql`select set_config('lock_timeout', ${`${retryForMs}ms`}, false)`;
  try {
    await sql`select pg_advisory_lock(hashtextextended(${DEPLOY_LOCK}, 0))`;
  } catch (error) {
    if ((error as { code?: string }).code === "55P03") throw new Error(`another deploy held the deploy lock for over ${Math.round(retryForMs / 1000)} s; nothing was deployed. FIX: find it (select * from pg_stat_activity where application_name = 'rls-service-shop-deploy') and let it finish`);
    throw error;
  }
}

/** Runs `work`; a lock timeout (or deadlock) rolls it back, and it is tried again after a backoff that lets traffic through. */
async function withLockRetries<T>(step: string, work: () => Promise<T>, o: { lockTimeoutMs: number; retryForMs: number; log: (line: string) => void; onRetry: () => void }): Promise<T> {
  const started = Date.now();
  for (let attempt = 1; ; attempt++) {
    try {
      return await work();
    } catch (error) {
      const code = (error as { code?: string }).code ?? "";
      if (!RETRYABLE.has(code) || Date.now() - started > o.retryForMs) throw error;
      const pause = Math.min(250 * 2 ** (attempt - 1), 5000);
      o.onRetry();
      o.log(`${step}: ${code === "55P03" ? `a lock was not free within ${o.lockTimeoutMs} ms` : "deadlock"} (${(error as Error).message}); rolled back, retrying in ${pause} ms`);
      await new Promise((resolve) => setTimeout(resolve, pause));
    }
  }
}
