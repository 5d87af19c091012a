// `npm run cli -- tenant ...`: a shop's life as the operator sees it (issue 34), as the owner role
// in the platform context the owner opens (app.open_platform_operator_context), through the same
// SQL functions as the platform routes (policies/tenant_lifecycle.sql): create a shop with its
// first owner's invitation, suspend and resume it. runbooks/tenant-lifecycle.md says when.
import type { KeyRing } from "../core/keyRing.ts";
import { createWriteStream } from "node:fs";
import { finished } from "node:stream/promises";
import type { Command } from "commander";
import { newInvitationToken } from "../auth/invitationTokens.ts";
import type { Sql } from "../db/connections.ts";
import { writeArchive, type Manifest } from "../db/tenantArchive.ts";
import { defaultActor, inPlatform, say, urlOption, type OwnerConnection } from "./features.ts";
import { importArchive } from "./tenantImport.ts";
import { purgeTenant } from "./tenantPurge.ts";
import { createInterface } from "node:readline/promises";

type Common = { url?: string; actor?: string };

function tableLines(m: Manifest): void {
  for (const t of m.tables) say(`  ${t.table.padEnd(20)} ${String(t.rows).padStart(8)} rows  sha256 ${t.sha256}`);
}

/**
 * Writes the shop's archive to `file`, as the owner in the shop's operator context, in one
 * REPEATABLE READ transaction, and records the export. Returns the manifest.
 */
export async function exportTenant(sql: Sql, slug: string, file: string): Promise<Manifest> {
  const out = createWriteStream(file, { mode: 0o600 });
  try {
    return (await sql.begin("isolation level repeatable read", async (tx) => {
      const [t] = await tx`select id from app.tenants where slug = lower(${slug}) or id::text = lower(${slug})`;
      if (!t) throw new Error(`no shop ${slug}`);
      await tx`select app.open_operator_context(${t.id}::uuid, 'owner')`;
      const manifest = await writeArchive(tx as unknown as Sql, out);
      if (!manifest) throw new Error(`${file}: the file closed before the archive was written`);
      await tx`select app.record_tenant_export(${tx.json(manifest as never)}, true)`;
      return manifest;
    })) as Manifest;
  } finally {
    out.end();
    await finished(out);
  }
}

/** Registers `tenant create|suspend|resume|export|import|purge` on `tenant`. */
export type AnchorSettings = (conn: { secrets?: { auditAnchorKey: string }; dataDir: string }) => { file: string; ring: KeyRing<string> } | undefined;

/** Asks for the slug on the terminal: the typed confirmation a purge needs without --yes. */
async function typedConfirmation(slug: string): Promise<string> {
  const rl = createInterface({ input: process.stdin, output: process.stderr });
  try {
    return (await rl.question(`This deletes every row of shop ${slug}, its audit included. Type its slug to confirm: `)).trim();
  } finally {
    rl.close();
  }
}

export function tenantCommands(tenant: Command, connect: OwnerConnection, anchorSettings: AnchorSettings): void {
  tenant.command("create")
    .description("create a shop on a plan and invite its first owner by email; prints the invitation token once")
    .requiredOption("--slug <slug>", "lower-case letters, digits and inner hyphens")
    .requiredOption("--name <name>", "the shop's name")
    .requiredOption("--owner-email <email>", "who is invited as its first owner (an account or not)")
    .option("--plan <plan>", "its plan (default: basic)", "basic")
    .option("--reason <text>", "why (kept with the plan's version and the lifecycle event)")
    .option("--actor <name>", "who, as the records name it (default: cli:$USER)")
    .option("--url <url>", urlOption)
    .action(async (opts: Common & { slug: string; name: string; ownerEmail: string; plan: string; reason?: string }) => {
      const { token, hash } = newInvitationToken();
      const [t] = await inPlatform(connect, opts, (tx) => tx`
        select * from app.platform_create_tenant(${opts.slug}, ${opts.name}, ${opts.plan}, ${opts.ownerEmail}, ${hash}, null, ${opts.reason ?? null})`);
      say(`created ${t.slug} (${t.tenant_id}) on plan ${t.plan}`);
      say(`invited ${t.invitation_email} as owner until ${(t.expires_at as Date).toISOString()}`);
      say(`invitation token (shown once; only its hash is kept): ${token}`);
      say(`the owner accepts with: POST /api/v1/invitations/accept {"token": "...", "password": "..."}`);
    });

  for (const [verb, status] of [["suspend", "suspended"], ["resume", "active"]] as const) {
    tenant.command(verb)
      .description(verb === "suspend" ? "suspend a shop: its members get 403 TENANT_SUSPENDED (export excepted)" : "resume a suspended shop")
      .argument("<slug>", "the shop's slug or id")
      .requiredOption("--reason <text>", "why (kept on the shop, in the lifecycle events and the shop's audit)")
      .option("--actor <name>", "who, as the records name it (default: cli:$USER)")
      .option("--url <url>", urlOption)
      .action(async (slug: string, opts: Common & { reason: string }) => {
        const [t] = await inPlatform(connect, opts, (tx) => tx`select * from app.platform_set_tenant_status(${slug}, ${status}, ${opts.reason})`);
        say(`${t.slug}: ${t.status} (${t.status_reason})`);
      });
  }

  tenant.command("export")
    .description("write every row of a shop to one archive file (COPY text, dependency order) with a manifest of row counts and SHA-256 per table")
    .argument("<slug>", "the shop's slug or id")
    .option("--out <file>", "the archive (default: <slug>-<date>.tenant.txt)")
    .option("--url <url>", urlOption)
    .action(async (slug: string, opts: { out?: string; url?: string }) => {
      const file = opts.out ?? `${slug}-${new Date().toISOString().slice(0, 10)}.tenant.txt`;
      const { sql, stop } = await connect(opts.url);
      try {
        const manifest = await exportTenant(sql, slug, file);
        say(`exported ${slug} to ${file}`);
        tableLines(manifest);
      } finally {
        await sql.end({ timeout: 5 });
        await stop();
      }
    });

  tenant.command("import")
    .description("load a shop's archive into a database where the shop has no rows (a fresh one, or after tenant purge), verifying its manifest")
    .argument("<file>", "the archive (tenant export, or GET /api/v1/export)")
    .option("--actor <name>", "who, as the records name it (default: cli:$USER)")
    .option("--url <url>", urlOption)
    .action(async (file: string, opts: { actor?: string; url?: string }) => {
      const { sql, stop } = await connect(opts.url);
      try {
        const { slug, manifest } = await importArchive(sql, file, opts.actor ?? defaultActor());
        say(`imported ${slug} from ${file}; every table's rows and checksum match the manifest`);
        tableLines(manifest);
      } finally {
        await sql.end({ timeout: 5 });
        await stop();
      }
    });

  tenant.command("purge")
    .description("delete every row of a shop from every tenant table, its audit included, after sealing and anchoring its chain; proves none is left; platform operators only")
    .argument("<slug>", "the shop's slug (exactly)")
    .option("--yes", "skip the typed confirmation (automation: the slug argument is the confirmation)")
    .option("--reason <text>", "why (kept in the lifecycle event)")
    .option("--actor <name>", "who, as the records name it (default: cli:$USER)")
    .option("--url <url>", urlOption)
    .action(async (slug: string, opts: { yes?: boolean; reason?: string; actor?: string; url?: string }) => {
      const confirmation = opts.yes ? slug : await typedConfirmation(slug);
      const conn = await connect(opts.url);
      try {
        const { rows } = await purgeTenant(conn.sql, slug, {
          confirmation, reason: opts.reason, actor: opts.actor ?? defaultActor(), anchors: anchorSettings(conn as never), log: say,
        });
        for (const r of rows) say(`  ${r.table_name.padEnd(20)} deleted ${String(r.deleted).padStart(8)}  remaining ${r.remaining}`);
        say(`purged ${slug}: 0 rows remain in every tenant table; recorded as tenant.purged in app.tenant_lifecycle_events`);
      } finally {
        await conn.sql.end({ timeout: 5 });
        await conn.stop();
      }
    });
}
