// `npm run cli -- features ...`: the operator's side of the platform's entitlements, as the owner
// role in the platform context the owner opens (app.open_platform_operator_context, with the
// operator's name as the versions' actor), through the same SQL functions as the platform routes
// (policies/platform.sql): every change is a version with actor and reason, and `rollback --to`
// restores an earlier state as a new version. runbooks/features.md says when to use which.
import { userInfo } from "node:os";
import { type Command, InvalidArgumentError } from "commander";
import type { Sql } from "../db/connections.ts";

export type OwnerConnection = (url?: string) => Promise<{ sql: Sql; stop: () => Promise<void> }>;

type Common = { url?: string; actor?: string };
type Changing = Common & { reason: string };

export const urlOption = "owner connection URL (default: DATABASE_OWNER_URL, else the local embedded database)";

/** One line of the command's answer, on stdout. */
export const say = (line: string) => void process.stdout.write(`${line}\n`);

export function defaultActor(): string {
  return `cli:${process.env.USER ?? userInfo().username}`;
}

function version(value: string): number {
  const n = Number(value);
  if (!Number.isSafeInteger(n) || n < 1) throw new InvalidArgumentError("a version number (1 or more)");
  return n;
}

/** Runs one statement in the owner's platform context. */
export async function inPlatform<T extends Record<string, unknown>>(connect: OwnerConnection, opts: Common, statement: (tx: Sql) => Promise<T[]>): Promise<T[]> {
  const { sql, stop } = await connect(opts.url);
  try {
    return (await sql.begin(async (tx) => {
      await tx`select app.open_platform_operator_context(${opts.actor ?? defaultActor()})`;
      return statement(tx as unknown as Sql);
    })) as T[];
  } finally {
    await sql.end({ timeout: 5 });
    await stop();
  }
}

function report(what: string, v: unknown): void {
  say(v === null || v === undefined ? `unchanged: ${what} already` : `version ${v}: ${what}`);
}

type EntitlementRow = { feature: string; enabled: boolean; source: string; override_expires_at: Date | null };

/** Registers `features show|versions|plan|grid|override|kill|revive|rollback` on `features`. */
export function featureCommands(features: Command, connect: OwnerConnection): void {
  const changing = (name: string, description: string) =>
    features.command(name).description(description)
      .requiredOption("--reason <text>", "why (kept with the version)")
      .option("--actor <name>", "who, as the version records it (default: cli:$USER)")
      .option("--url <url>", urlOption);

  features.command("show")
    .description("the plans with the features each grants, the kill switches and the latest version; with --tenant, that shop's plan and entitlements")
    .option("--tenant <slug-or-uuid>", "one shop")
    .option("--url <url>", urlOption)
    .action(async (opts: Common & { tenant?: string }) => {
      if (opts.tenant) {
        const [r] = await inPlatform(connect, opts, (tx) => tx`select app.platform_tenant_entitlements(${opts.tenant!}) as e`);
        const e = r.e as { tenant: { slug: string }; plan: string | null; features: EntitlementRow[] };
        say(`${e.tenant.slug}: plan ${e.plan ?? "(none)"}`);
        for (const f of e.features) {
          say(`  ${f.enabled ? "on " : "off"}  ${f.feature.padEnd(16)} ${f.source}${f.override_expires_at ? ` until ${new Date(f.override_expires_at).toISOString()}` : ""}`);
        }
        return;
      }
      const [r] = await inPlatform(connect, opts, (tx) => tx`select app.platform_overview() as o`);
      const o = r.o as { version: number | null; plans: { name: string; for_new_shops: boolean; features: string[] }[]; features: { name: string; killed: boolean }[] };
      say(`latest version: ${o.version ?? "(none)"}`);
      for (const p of o.plans) say(`plan ${p.name}${p.for_new_shops ? " (new shops)" : ""}: ${p.features.join(", ") || "(nothing)"}`);
      const killed = o.features.filter((f) => f.killed).map((f) => f.name);
      say(`kill switches on: ${killed.join(", ") || "none"}`);
    });

  features.command("versions")
    .description("the latest versions, newest first: number, time, actor, action, reason")
    .option("--limit <n>", "how many (default 20)", (v: string) => Math.min(Math.max(Number(v) || 20, 1), 1000), 20)
    .option("--url <url>", urlOption)
    .action(async (opts: Common & { limit: number }) => {
      const rows = await inPlatform(connect, opts, (tx) => tx`select version, created_at, actor, action, reason, rolled_back_to from app.platform_versions(null, ${opts.limit})`);
      for (const v of rows) {
        say(`${v.version}\t${(v.created_at as Date).toISOString()}\t${v.actor}\t${v.action}${v.rolled_back_to ? ` (to ${v.rolled_back_to})` : ""}\t${v.reason}`);
      }
    });

  changing("plan", "put a shop on a plan")
    .requiredOption("--tenant <slug-or-uuid>", "the shop")
    .requiredOption("--plan <plan>", "basic, pro, ...")
    .action(async (opts: Changing & { tenant: string; plan: string }) => {
      const [r] = await inPlatform(connect, opts, (tx) => tx`select app.platform_set_tenant_plan(${opts.tenant}, ${opts.plan}, ${opts.reason}) as v`);
      report(`${opts.tenant} on plan ${opts.plan}`, r.v);
    });

  changing("grid", "grant (--on) or withdraw (--off) a feature in a plan")
    .requiredOption("--plan <plan>", "the plan")
    .requiredOption("--feature <feature>", "the feature")
    .option("--on", "the plan grants it")
    .option("--off", "the plan does not grant it")
    .action(async (opts: Changing & { plan: string; feature: string; on?: boolean; off?: boolean }) => {
      if (Boolean(opts.on) === Boolean(opts.off)) throw new Error("say --on or --off");
      const [r] = await inPlatform(connect, opts, (tx) => tx`select app.platform_set_plan_features(${opts.plan}, ${tx.json({ [opts.feature]: Boolean(opts.on) })}, ${opts.reason}) as v`);
      report(`plan ${opts.plan} ${opts.on ? "grants" : "does not grant"} ${opts.feature}`, r.v);
    });

  changing("override", "switch a feature on (--on) or off (--off) for one shop whatever its plan says, or remove its override (--clear)")
    .requiredOption("--tenant <slug-or-uuid>", "the shop")
    .requiredOption("--feature <feature>", "the feature")
    .option("--on", "on for this shop")
    .option("--off", "off for this shop")
    .option("--clear", "remove the override: the plan decides again")
    .option("--expires <iso-time>", "when the override lapses (default: until removed)")
    .action(async (opts: Changing & { tenant: string; feature: string; on?: boolean; off?: boolean; clear?: boolean; expires?: string }) => {
      if ([opts.on, opts.off, opts.clear].filter(Boolean).length !== 1) throw new Error("say one of --on, --off, --clear");
      const enabled = opts.clear ? null : Boolean(opts.on);
      const [r] = await inPlatform(connect, opts, (tx) => tx`
        select app.platform_set_override(${opts.tenant}, ${opts.feature}, ${enabled}::boolean, ${opts.expires ?? null}::timestamptz, ${opts.reason}) as v`);
      report(`${opts.feature} for ${opts.tenant}: ${enabled === null ? "no override" : enabled ? "on" : "off"}${opts.expires ? ` until ${opts.expires}` : ""}`, r.v);
    });

  for (const [name, killed] of [["kill", true], ["revive", false]] as const) {
    changing(name, killed ? "switch a feature off for every shop, over plan and override (the kill switch)" : "switch a killed feature back on: plans and overrides decide again")
      .requiredOption("--feature <feature>", "the feature")
      .action(async (opts: Changing & { feature: string }) => {
        const [r] = await inPlatform(connect, opts, (tx) => tx`select app.platform_set_kill_switch(${opts.feature}, ${killed}, ${opts.reason}) as v`);
        report(`${opts.feature} ${killed ? "killed for every shop" : "revived"}`, r.v);
      });
  }

  changing("rollback", "restore the plan grid, shops' plans, overrides and kill switches as they were at a version, as a new version")
    .requiredOption("--to <version>", "the version whose state to restore", version)
    .action(async (opts: Changing & { to: number }) => {
      const [r] = await inPlatform(connect, opts, (tx) => tx`select app.platform_rollback(${opts.to}, ${opts.reason}) as v`);
      report(`entitlements as at version ${opts.to}`, r.v);
    });
}
