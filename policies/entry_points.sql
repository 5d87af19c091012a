-- Entry points to the global tables for the API (login, me, my tenants, readiness): SECURITY
-- DEFINER with a fixed search_path, each returning only what its caller may know.
-- Re-appliable: create or replace.

/* Login lookup: the user id and password hash for an email, case-insensitively. */
create or replace function app.find_login(p_email text)
returns table (user_id uuid, password_hash text)
language sql stable security definer
set search_path = pg_catalog, pg_temp
as $$
  select u.id, u.password_hash from app.users u where lower(u.email) = lower(p_email)
$$;
revoke execute on function app.find_login(text) from public;

/* The caller's own profile (never the password hash). */
create or replace function app.get_user(p_user_id uuid)
returns table (id uuid, email text, is_platform_admin boolean)
language sql stable security definer
set search_path = pg_catalog, pg_temp
as $$
  select u.id, u.email, u.is_platform_admin from app.users u where u.id = p_user_id
$$;
revoke execute on function app.get_user(uuid) from public;

/* The caller's memberships with role and tenant status. */
create or replace function app.list_memberships(p_user_id uuid)
returns table (tenant_id uuid, slug text, name text, status text, role text)
language sql stable security definer
set search_path = pg_catalog, pg_temp
as $$
  select t.id, t.slug, t.name, t.status, m.role
    from app.memberships m join app.tenants t on t.id = m.tenant_id
   where m.user_id = p_user_id
   order by t.slug
$$;
revoke execute on function app.list_memberships(uuid) from public;

/* Names of the applied migrations, so /readyz can compare them with the files. */
create or replace function app.applied_migrations()
returns setof text
language sql stable security definer
set search_path = pg_catalog, pg_temp
as $$
  select name::text from public.pgmigrations order by run_on, id
$$;
revoke execute on function app.applied_migrations() from public;

