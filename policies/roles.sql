-- Database roles the application uses. The owner role (whoever applies this file) owns
-- the schema and runs migrations; it is never used by the API.
--   app_user: the API's login role. No superuser, no BYPASSRLS, owns nothing.
--   app_bi:   the group of BI logins: each BI consumer logs in with its own role, a member
--             of app_bi, and reads the views only, for the tenants an operator granted it
--             (app.bi_grants, `npm run cli -- bi grant`).
--   app_views: owns the views (NOLOGIN, NOBYPASSRLS). Views run with their owner's rights, so
--             BI logins need no privilege on any table; RLS applies to app_views like to
--             app_user, keyed on the verified context or the caller's BI grants.
-- Creating them needs CREATEROLE; on a managed server a DBA may create them beforehand,
-- and this file then only checks and tightens their attributes. Passwords are set outside
-- this file (never in version control).

do $$
begin
  if not exists (select 1 from pg_catalog.pg_roles where rolname = 'app_user') then
    create role app_user login nosuperuser nobypassrls nocreatedb nocreaterole noinherit;
  end if;
  if not exists (select 1 from pg_catalog.pg_roles where rolname = 'app_bi') then
    create role app_bi login nosuperuser nobypassrls nocreatedb nocreaterole noinherit;
  end if;
  if not exists (select 1 from pg_catalog.pg_roles where rolname = 'app_views') then
    create role app_views nologin nosuperuser nobypassrls nocreatedb nocreaterole noinherit;
  end if;
end
$$;

-- Tighten attributes only when they drifted, so a second run issues no ALTER at all.
do $$
declare
  r record;
begin
  for r in
    select rolname from pg_catalog.pg_roles
     where rolname in ('app_user', 'app_bi', 'app_views')
       and (rolsuper or rolbypassrls or rolcreatedb or rolcreaterole or rolreplication)
  loop
    execute format('alter role %I nosuperuser nobypassrls nocreatedb nocreaterole noreplication', r.rolname);
  end loop;
end
$$;

-- The role applying this file (the owner) may `set role app_user` and `set role app_bi`, so
-- verify/verify_rls.sql can probe isolation as each application role from the owner's
-- connection, and `set role app_views`, to hand the views to app_views (policies/views.sql).
-- Granted only when missing. PostgreSQL 16 changed both halves:
--   * membership and the right to SET ROLE are separate ('SET' in pg_has_role), and the ADMIN
--     OPTION a CREATEROLE role receives on a role it creates comes without SET, so on 16+ the
--     test is 'SET', not 'MEMBER' (15 knows no 'SET' privilege);
--   * CREATEROLE no longer lets a role grant any role, only those it holds ADMIN OPTION on: on a
--     role a superuser or DBA created (app_user, app_bi beforehand), the owner needs it granted.
do $$
declare
  r text;
  v16 constant boolean := pg_catalog.current_setting('server_version_num')::int >= 160000;
begin
  foreach r in array array['app_user', 'app_bi', 'app_views'] loop
    if v16 then
      continue when pg_catalog.pg_has_role(current_user, r, 'SET');
      if not pg_catalog.pg_has_role(current_user, r, 'MEMBER WITH ADMIN OPTION') then
        raise exception 'role % may not grant itself % (PostgreSQL 16+: only a role with ADMIN OPTION on a role may grant it)', current_user, r
          using errcode = '42501', hint = format('as a superuser, once: grant %I to %I with admin option', r, current_user);
      end if;
    else
      continue when pg_catalog.pg_has_role(current_user, r, 'MEMBER');
    end if;
    execute format('grant %I to %I', r, current_user);
  end loop;
end
$$;

-- The API role's timeouts (its backstops) are set by policies/role_defaults.sql, from the
-- allow-list of role defaults that verification and /readyz judge them by.
