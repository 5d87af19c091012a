-- Intent: the transaction-local request context (tenant, user, role, request id), the
-- function that opens it after checking membership, and the SECURITY DEFINER entry points
-- through which the API reaches the global tables (login, me, my tenants, readiness).
-- Rollback plan: forward fix (create or replace in a new migration). Dropping these
-- functions breaks every policy that calls them.

-- Up Migration

-- Context readers. Each returns NULL when the setting is missing, empty ('' after COMMIT
-- on a pooled connection) or malformed, never a cast error, so every policy fails closed.
-- They are single-expression SQL functions without a SET clause on purpose: PostgreSQL then
-- inlines them into the policy's once-per-statement initplan instead of running (and
-- re-planning) a function body. They are not SECURITY DEFINER and call only pg_catalog
-- built-ins, which resolve first whatever the caller's search_path.

/* The tenant of the current transaction, or NULL. */
create or replace function app.current_tenant_id() returns uuid
language sql stable parallel safe
as $$
  select case when current_setting('app.tenant_id', true) ~ '^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$'
              then current_setting('app.tenant_id', true)::uuid end
$$;
revoke execute on function app.current_tenant_id() from public;

/* The acting user of the current transaction, or NULL. */
create or replace function app.current_user_id() returns uuid
language sql stable parallel safe
as $$
  select case when current_setting('app.user_id', true) ~ '^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$'
              then current_setting('app.user_id', true)::uuid end
$$;
revoke execute on function app.current_user_id() from public;

/* The acting member's role in the current tenant (owner, admin, manager, staff, accountant), or NULL. */
create or replace function app.current_member_role() returns text
language sql stable parallel safe
as $$
  select case when current_setting('app.role', true) in ('owner', 'admin', 'manager', 'staff', 'accountant')
              then current_setting('app.role', true) end
$$;
revoke execute on function app.current_member_role() from public;

/* The request id of the current transaction (for audit), or NULL. */
create or replace function app.current_request_id() returns text
language sql stable parallel safe
as $$
  select left(nullif(current_setting('app.request_id', true), ''), 128)
$$;
revoke execute on function app.current_request_id() from public;

/*
 * Opens the request context for one transaction. p_tenant_refs are the tenant names the
 * request carried (uuid or slug; header, subdomain, path), p_scope the tenant a scoped
 * token is limited to (or NULL). Every ref must name the same tenant among the user's
 * memberships. Sets app.tenant_id, app.user_id, app.role and app.request_id with
 * set_config(..., true): transaction-local, so a pooled connection never carries them on.
 * Raises (and so sets nothing):
 *   TN404 not a member, unknown tenant, or outside the token's scope (one answer for all)
 *   TN403 the tenant is suspended (only members learn this)
 *   TN400 the refs name different tenants the user belongs to
 */
create or replace function app.open_tenant_context(
  p_user_id uuid, p_tenant_refs text[], p_scope uuid, p_request_id text
) returns table (tenant_id uuid, member_role text)
language plpgsql volatile security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  v_ids uuid[];
  v_ref text;
  v_id uuid;
  v_status text;
  v_role text;
begin
  if p_user_id is null or p_tenant_refs is null or cardinality(p_tenant_refs) = 0 then
    raise exception 'tenant not found' using errcode = 'TN404';
  end if;

  foreach v_ref in array p_tenant_refs loop
    select t.id into v_id
      from app.tenants t
      join app.memberships m on m.tenant_id = t.id and m.user_id = p_user_id
     where case when v_ref ~* '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$'
                then t.id = v_ref::uuid
                else t.slug = lower(v_ref) end;
    if v_id is null then
      raise exception 'tenant not found' using errcode = 'TN404';
    end if;
    v_ids := array_append(v_ids, v_id);
  end loop;

  if (select count(distinct x) from unnest(v_ids) x) > 1 then
    raise exception 'tenant sources disagree' using errcode = 'TN400';
  end if;
  v_id := v_ids[1];

  if p_scope is not null and p_scope <> v_id then
    raise exception 'tenant not found' using errcode = 'TN404';
  end if;

  select t.status, m.role into v_status, v_role
    from app.tenants t
    join app.memberships m on m.tenant_id = t.id and m.user_id = p_user_id
   where t.id = v_id;
  if v_status <> 'active' then
    raise exception 'tenant suspended' using errcode = 'TN403';
  end if;

  perform set_config('app.tenant_id', v_id::text, true);
  perform set_config('app.user_id', p_user_id::text, true);
  perform set_config('app.role', v_role, true);
  perform set_config('app.request_id', coalesce(left(p_request_id, 128), ''), true);
  return query select v_id, v_role;
end
$$;
revoke execute on function app.open_tenant_context(uuid, text[], uuid, text) from public;

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

/* Trigger: keeps updated_at honest whatever the client sends. */
create or replace function app.touch_updated_at() returns trigger
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
begin
  new.updated_at := now();
  return new;
end
$$;
revoke execute on function app.touch_updated_at() from public;
