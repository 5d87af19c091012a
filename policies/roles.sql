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
-- connection. Granted only when missing.
do $$
declare
  r text;
begin
  foreach r in array array['app_user', 'app_bi'] loop
    if not pg_catalog.pg_has_role(current_user, r, 'MEMBER') then
      execute format('grant %I to %I', r, current_user);
    end if;
  end loop;
end
$$;

-- The owner creates the views and hands them to app_views, which needs membership.
do $$
begin
  if not pg_catalog.pg_has_role(current_user, 'app_views', 'MEMBER') then
    execute format('grant app_views to %I', current_user);
  end if;
end
$$;

-- Timeouts on the API's role. They hold behind PgBouncer in transaction mode, which refuses
-- them as startup parameters and hands one server connection to many clients, and they bound
-- whatever skips the API's per-transaction timeouts (server/tenantContext.ts): a statement past 5 s is
-- cancelled, a transaction left idle for 10 s is ended and its connection closed. Set only
-- when missing or different, so a second run issues no ALTER.
do $$
declare
  wanted constant text[] := array['statement_timeout=5s', 'idle_in_transaction_session_timeout=10s'];
  current text[];
  setting text;
begin
  select s.setconfig into current
    from pg_catalog.pg_db_role_setting s
    join pg_catalog.pg_roles r on r.oid = s.setrole
   where r.rolname = 'app_user' and s.setdatabase = 0;
  foreach setting in array wanted loop
    if not (setting = any (coalesce(current, '{}'))) then
      execute format('alter role app_user set %I = %L', split_part(setting, '=', 1), split_part(setting, '=', 2));
    end if;
  end loop;
exception when insufficient_privilege then
  -- PostgreSQL 16+: CREATEROLE alone no longer alters a role the deployer did not create.
  raise warning 'app_user has no role-level timeouts: %. FIX: as a superuser, alter role app_user set statement_timeout = ''5s''; alter role app_user set idle_in_transaction_session_timeout = ''10s''', sqlerrm;
end
$$;
