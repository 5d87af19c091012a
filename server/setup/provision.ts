// Cluster provisioning for servers we control (the embedded one, test servers): the owner,
// app and BI roles with passwords, and the application database owned by the owner role.
// On a managed server a DBA does this once; DATABASE_URL/DATABASE_OWNER_URL then point at it.
import { createHash, createHmac, pbkdf2Sync, timingSafeEqual } from "node:crypto";
import { connectOnce } from "../db/connections.ts";

export type RolePasswords = { owner: string; app: string; bi: string };
export type DatabaseUrls = { ownerUrl: string; appUrl: string; biUrl: string };

export const OWNER_ROLE = "app_owner";

export function withCredentials(base: string, user: string, password: string, database: string): string {
  const u = new URL(base);
  u.username = encodeURIComponent(user);
  u.password = encodeURIComponent(password);
  u.pathname = `/${database}`;
  return u.toString();
}

/** Creates (or re-passwords) the roles and creates the database if missing. Idempotent. */
export async function provisionDatabase(superuserUrl: string, database: string, passwords: RolePasswords): Promise<DatabaseUrls> {
  const sql = connectOnce(superuserUrl);
  try {
    const roles = [
      // The owner runs migrations, policy deploy and cross-tenant operator work: BYPASSRLS.
      { name: OWNER_ROLE, password: passwords.owner, attrs: "login createrole bypassrls nosuperuser" },
      { name: "app_user", password: passwords.app, attrs: "login nosuperuser nobypassrls nocreatedb nocreaterole noinherit" },
      { name: "app_bi", password: passwords.bi, attrs: "login nosuperuser nobypassrls nocreatedb nocreaterole noinherit" },
    ];
    // Roles are the cluster's: two provisionings at once (test files, scratch databases) would
    // update the same pg_authid rows and one would fail with `tuple concurrently updated`.
    await sql.begin(async (tx) => {
      await tx`select pg_advisory_xact_lock(hashtextextended('rls-service-shop:provision', 0))`;
      for (const r of roles) {
        const [role] = await tx`select rolpassword from pg_authid where rolname = ${r.name}`;
        // A password already set is not set again: ALTER ROLE ... PASSWORD stores a new SCRAM
        // secret (a new salt) even for the same password, and a PgBouncer holding the old secret
        // in its auth_file (runbooks/pgbouncer.md) then fails every new server login.
        const password = role && scramSecretOf(role.rolpassword, r.password) ? "" : ` password ${literal(r.password)}`;
        await tx.unsafe(`${role ? "alter" : "create"} role ${r.name} ${r.attrs}${password}`);
      }
      // PostgreSQL 16+: CREATEROLE grants only roles held WITH ADMIN OPTION, and these two were made
      // here by the superuser; the owner grants itself membership in policies/roles.sql (a DBA does
      // the same once on a managed server, as that file's error says).
      const [{ v16 }] = await tx`select current_setting('server_version_num')::int >= 160000 as v16`;
      if (v16) await tx.unsafe(`grant app_user, app_bi to ${OWNER_ROLE} with admin option`);
      // `npm run cli -- tenant import` loads a shop's rows with triggers off (they are history), which
      // takes session_replication_role; PostgreSQL 15 lets a superuser grant just that parameter.
      await tx.unsafe(`grant set on parameter session_replication_role to ${OWNER_ROLE}`);
    });
    const [db] = await sql`select 1 from pg_database where datname = ${database}`;
    if (!db) {
      await sql.unsafe(`create database ${ident(database)} owner ${OWNER_ROLE} encoding 'UTF8' template template0`);
      await sql.unsafe(`revoke all on database ${ident(database)} from public`);
      await sql.unsafe(`grant connect on database ${ident(database)} to app_user, app_bi`);
    }
  } finally {
    await sql.end({ timeout: 5 });
  }
  return {
    ownerUrl: withCredentials(superuserUrl, OWNER_ROLE, passwords.owner, database),
    appUrl: withCredentials(superuserUrl, "app_user", passwords.app, database),
    biUrl: withCredentials(superuserUrl, "app_bi", passwords.bi, database),
  };
}

/**
 * Whether `secret` (pg_authid.rolpassword) is a SCRAM-SHA-256 secret of `password`, as PostgreSQL
 * checks a login (RFC 5802, RFC 7677): StoredKey = SHA-256(HMAC(SaltedPassword, "Client Key")).
 * PostgreSQL prepares a password with SASLprep first, which leaves printable ASCII as it is; any
 * other password answers false here, so it is simply set again.
 */
export function scramSecretOf(secret: string | null, password: string): boolean {
  const parts = /^SCRAM-SHA-256\$(\d+):([A-Za-z0-9+/=]+)\$([A-Za-z0-9+/=]+):[A-Za-z0-9+/=]+$/.exec(secret ?? "");
  if (!parts || !/^[\x20-\x7e]*$/.test(password)) return false;
  const salted = pbkdf2Sync(password, Buffer.from(parts[2], "base64"), Number(parts[1]), 32, "sha256");
  const stored = createHash("sha256").update(createHmac("sha256", salted).update("Client Key").digest()).digest();
  const expected = Buffer.from(parts[3], "base64");
  return expected.length === stored.length && timingSafeEqual(expected, stored);
}

function literal(value: string): string {
  return `'${value.replace(/'/g, "''")}'`;
}

function ident(value: string): string {
  if (!/^[a-z_][a-z0-9_]*$/.test(value)) throw new Error(`unsafe database name: ${value}`);
  return value;
}
