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

-- The API role's timeouts (its backstops) are set by policies/role_defaults.sql, from the
-- allow-list of role defaults that verification and /readyz judge them by.
