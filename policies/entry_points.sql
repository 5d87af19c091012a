-- Entry points to the global tables for the API (login, me, my tenants, readiness): SECURITY
-- DEFINER with a fixed search_path, each returning only what its caller may know.
-- Re-appliable: create or replace.

-- The first forms answered anyone: app_user learnt any account's password hash, email and
-- memberships without a context (a guessed password then logged in as that account).
drop function if exists app.find_login(text);
drop function if exists app.get_user(uuid);
drop function if exists app.list_memberships(uuid);

/*
 * Login lookup: the user id and password hash for an email, case-insensitively, only for an API
 * proof of kind 'login-lookup' over (email), used once (a stream guard: policies/proofs.sql).
 * Without the context key, app_user learns no hash and not whether an account exists.
 */
create or replace function app.find_login(p_email text, p_guard text, p_expires_at bigint, p_nonce text, p_proof text)
returns table (user_id uuid, password_hash text)
language plpgsql volatile security definer
set search_path = pg_catalog, pg_temp
as $$
begin
  perform app.consume_proof('login-lookup', array[p_email], true, p_guard, p_expires_at, p_nonce, p_proof);
  return query select u.id, u.password_hash from app.users u where lower(u.email) = lower(p_email);
end
$$;
revoke execute on function app.find_login(text, text, bigint, text, text) from public;

/* The acting user's own profile (never the password hash), in a user or tenant context; none without one. */
create or replace function app.get_user()
returns table (id uuid, email text, is_platform_admin boolean)
language sql stable security definer
set search_path = pg_catalog, pg_temp
as $$
  select u.id, u.email, u.is_platform_admin from app.users u where u.id = app.current_user_id()
$$;
revoke execute on function app.get_user() from public;

/* The acting user's memberships with role and tenant status; none without a context. */
create or replace function app.list_memberships()
returns table (tenant_id uuid, slug text, name text, status text, role text)
language sql stable security definer
set search_path = pg_catalog, pg_temp
as $$
  select t.id, t.slug, t.name, t.status, m.role
    from app.memberships m join app.tenants t on t.id = m.tenant_id
   where m.user_id = app.current_user_id()
   order by t.slug
$$;
revoke execute on function app.list_memberships() from public;

/* Names of the applied migrations, so /readyz can compare them with the files. */
create or replace function app.applied_migrations()
returns setof text
language sql stable security definer
set search_path = pg_catalog, pg_temp
as $$
  select name::text from public.pgmigrations order by run_on, id
$$;
revoke execute on function app.applied_migrations() from public;


/*
 * The policy versions deploys left in force, newest first (public.policy_deploys), so /readyz
 * can tell a database behind this release (its version never deployed: SCHEMA_BEHIND) from one a
 * newer release already deployed (its version deployed, then another). Reveals release hashes only.
 */
create or replace function app.deployed_policy_versions()
returns setof text
language sql stable security definer
set search_path = pg_catalog, pg_temp
as $$
  select d.policy_version from public.policy_deploys d group by d.policy_version order by max(d.id) desc
$$;
revoke execute on function app.deployed_policy_versions() from public;
