// policies/roles.sql branches on the server's major: PostgreSQL 16 took from CREATEROLE the right to
// grant any role (only a role holding ADMIN OPTION on it may) and split membership from the right
// to SET ROLE. On a server whose app roles a DBA created beforehand (not the owner), the owner's
// memberships are granted on 15 by CREATEROLE alone; on 16+ the deploy stops, naming the one grant
// a superuser runs, and passes after it. The suite runs on 15 and on 18 (EMBEDDED_PG_MAJOR), so
// each run exercises its branch. A server of its own: the roles are the cluster's.
import { chmod, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import postgres from "postgres";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startEmbedded, type EmbeddedServer } from "../server/setup/embedded.ts";
import { deploy } from "../server/setup/deploy.ts";
import { withCredentials } from "../server/setup/provision.ts";
import { db } from "./fixtures.ts";
import { freePort } from "./testDatabase.ts";

let dir: string;
let server: EmbeddedServer;
let ownerUrl: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "rls-shop-roles-"));
  await chmod(dir, 0o755);
  server = await startEmbedded({ dir: join(dir, "pg"), port: await freePort(), superuserPassword: "roles-superuser" });
  const su = postgres(server.superuserUrl, { max: 1, onnotice: () => {} });
  try {
    // As a DBA provisions a managed server: the app roles first, then an owner with CREATEROLE.
    for (const statement of [
      "create role app_user login nosuperuser nobypassrls noinherit password 'app'",
      "create role app_bi login nosuperuser nobypassrls noinherit password 'bi'",
      "create role app_views nologin nosuperuser nobypassrls noinherit",
      "create role shop_owner login createrole bypassrls password 'owner'",
      "create database shop owner shop_owner",
      "revoke all on database shop from public",
      "grant connect on database shop to app_user, app_bi",
    ]) await su.unsafe(statement);
  } finally {
    await su.end();
  }
  ownerUrl = withCredentials(server.superuserUrl, "shop_owner", "owner", "shop");
}, 120_000);

afterAll(async () => {
  await server?.stop();
  await rm(dir, { recursive: true, force: true });
});

describe(`the owner's memberships on PostgreSQL ${db.serverMajor}`, () => {
  it.runIf(db.serverMajor < 16)("15: CREATEROLE grants the owner app_user, app_bi and app_views, and the deploy passes", async () => {
    await deploy(ownerUrl, { contextKey: db.contextKey });
    expect(await canBecome()).toEqual({ app_user: true, app_bi: true, app_views: true });
  });

  it.runIf(db.serverMajor >= 16)("16+: the deploy stops naming the grant a superuser runs; after it, the owner may SET ROLE to each and the deploy passes", async () => {
    const error = await deploy(ownerUrl, { contextKey: db.contextKey }).then(() => undefined, (e: { message: string; code?: string; hint?: string }) => e);
    expect(error).toMatchObject({ code: "42501", hint: "as a superuser, once: grant app_user to shop_owner with admin option" });
    expect(error?.message).toContain("policies/roles.sql: role shop_owner may not grant itself app_user (PostgreSQL 16+: only a role with ADMIN OPTION on a role may grant it)");
    const su = postgres(server.superuserUrl, { max: 1, onnotice: () => {} });
    try {
      await su.unsafe("grant app_user, app_bi, app_views to shop_owner with admin option, set false, inherit false");
    } finally {
      await su.end();
    }
    // ADMIN OPTION without SET: the 16+ branch tests SET, not membership, and grants it.
    expect(await canBecome()).toEqual({ app_user: false, app_bi: false, app_views: false });
    await deploy(ownerUrl, { contextKey: db.contextKey });
    expect(await canBecome()).toEqual({ app_user: true, app_bi: true, app_views: true });
  });
});

/** Whether the owner may SET ROLE to each application role. */
async function canBecome(): Promise<Record<string, boolean>> {
  const sql = postgres(ownerUrl, { max: 1, onnotice: () => {} });
  try {
    const result: Record<string, boolean> = {};
    for (const role of ["app_user", "app_bi", "app_views"]) {
      result[role] = await sql.begin(async (tx) => {
        await tx.unsafe(`set local role ${role}`);
        return true;
      }).catch(() => false) as boolean;
    }
    return result;
  } finally {
    await sql.end();
  }
}
