// Operator and developer CLI. `token` signs an access token for a user (optionally scoped
// to one tenant the user belongs to) with the same keys the API verifies with.
import { Command, InvalidArgumentError } from "commander";
import { loadConfig } from "./config.ts";
import { connectOnce } from "./db.ts";
import { openDatabase } from "./localDatabase.ts";
import { migrate } from "./migrate.ts";
import { loadTokenKeys, signAccessToken } from "./tokens.ts";

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
    const sql = connectOnce(db.ownerUrl);
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
      const keys = loadTokenKeys({ ...config, jwtSecret: config.jwtSecret ?? db.secrets?.jwtSecret });
      process.stdout.write(`${signAccessToken(keys, { userId: user.id, tenantId }, opts.ttl)}\n`);
    } finally {
      await sql.end({ timeout: 5 });
      await db.stop();
    }
  });

program
  .command("migrate")
  .description("apply pending migrations from sql/ as the owner role (deploy/migrate.sh snapshots first)")
  .option("--url <url>", "owner connection URL (default: DATABASE_OWNER_URL)")
  .option("--down", "undo the last migration instead (only one that carries a Down Migration section)")
  .action(async (opts: { url?: string; down?: boolean }) => {
    const url = opts.url ?? process.env.DATABASE_OWNER_URL;
    if (!url) throw new Error("set DATABASE_OWNER_URL (or --url) to the owner role connection URL");
    const ran = await migrate(url, { direction: opts.down ? "down" : "up", count: opts.down ? 1 : undefined, log: (m) => console.error(String(m)) });
    console.log(ran.length ? `${opts.down ? "undone" : "applied"}: ${ran.join(", ")}` : "migrations at head: nothing to apply");
  });

program.parseAsync().catch((error) => {
  console.error(`error: ${error instanceof Error ? error.message : String(error)}`);
  process.exit(1);
});
