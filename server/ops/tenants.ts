// `npm run cli -- tenant ...`: a shop's life as the operator sees it (issue 34), as the owner role
// in the platform context the owner opens (app.open_platform_operator_context), through the same
// SQL functions as the platform routes (policies/tenant_lifecycle.sql): create a shop with its
// first owner's invitation, suspend and resume it. runbooks/tenant-lifecycle.md says when.
import type { Command } from "commander";
import { newInvitationToken } from "../auth/invitationTokens.ts";
import { inPlatform, say, urlOption, type OwnerConnection } from "./features.ts";

type Common = { url?: string; actor?: string };

/** Registers `tenant create|suspend|resume` on `tenant`. */
export function tenantCommands(tenant: Command, connect: OwnerConnection): void {
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
}
