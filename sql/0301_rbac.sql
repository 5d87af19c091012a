-- Intent: role-based access control inside a tenant, enforced in SQL next to RLS:
--   * app.permissions and app.role_permissions: the permission catalogue and the role →
--     permission matrix (tables here; their content is policies/permissions.sql);
--   * app.has_permission / app.require_permission: the one check triggers, functions and
--     the API share;
--   * the write-check triggers' functions (attached by policies/rbac.sql);
--   * app.open_tenant_context learns which permission a request needs;
--   * member management (owner rules, the last owner) and tenant settings;
--   * login events in the audit.
-- Expand only: the 4-argument app.open_tenant_context stays (now a wrapper) for the previous
-- release during a rolling deploy; a later migration drops it.
-- Rollback plan: forward fix. In an emergency, disable enforcement without a schema change:
-- `drop trigger _authorize_write on <table>` per table (verify/catalog.sql then reports each
-- one) and redeploy the previous release, which calls the 4-argument context function.

-- Up Migration

create table app.permissions (
  name        text not null,
  description text not null,
  constraint permissions_pkey primary key (name),
  constraint permissions_name_check check (name ~ '^[a-z]+:[a-z]+$')
);
comment on table app.permissions is 'Global: the permissions a tenant role can hold. Content: policies/permissions.sql.';

create table app.role_permissions (
  role       text not null,
  permission text not null,
  constraint role_permissions_pkey primary key (role, permission),
  constraint role_permissions_permission_fkey foreign key (permission) references app.permissions (name) on delete cascade,
  constraint role_permissions_role_check check (role in ('owner', 'admin', 'manager', 'staff', 'accountant'))
);
comment on table app.role_permissions is 'Global: the RBAC matrix, role → permission. Content: policies/permissions.sql; runbooks/rbac-matrix.md is generated from it.';

/*
 * Whether the acting member's role (app.role, set by app.open_tenant_context) holds a
 * permission. False without a context. SECURITY DEFINER because the matrix is a global table
 * app_user cannot read; policies call it as (select ...), once per statement.
 */
create or replace function app.has_permission(p_permission text) returns boolean
language sql stable security definer
set search_path = pg_catalog, pg_temp
as $$
  select exists (select 1 from app.role_permissions rp
                  where rp.role = app.current_member_role() and rp.permission = p_permission)
$$;
revoke execute on function app.has_permission(text) from public;

/* Raises SS403 naming the permission (the API answers 403 FORBIDDEN) unless the role holds it. */
create or replace function app.require_permission(p_permission text) returns void
language plpgsql stable
set search_path = pg_catalog, pg_temp
as $$
begin
  if not app.has_permission(p_permission) then
    raise exception 'permission % required', p_permission
      using errcode = 'SS403', constraint = 'permission', detail = p_permission,
            hint = format('role %s does not hold it (policies/permissions.sql)', coalesce(app.current_member_role(), 'none'));
  end if;
end
$$;
revoke execute on function app.require_permission(text) from public;

/*
 * Which writes the role checks judge: rows of the caller's own tenant, written under RLS. Rows
 * of other tenants and writes without context are RLS's to refuse (so a foreign row stays "not
 * found" whatever the role), and roles that bypass RLS (the owner role, operators) bypass RBAC.
 */
create or replace function app.role_check_applies(p_table oid, p_row_tenant uuid) returns boolean
language sql stable
set search_path = pg_catalog, pg_temp
as $$
  select row_security_active(p_table) and p_row_tenant = app.current_tenant_id()
$$;
revoke execute on function app.role_check_applies(oid, uuid) from public;

/* Write check, a BEFORE row trigger attached by policies/rbac.sql with the permission as its argument. */
create or replace function app.authorize_write() returns trigger
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
begin
  if app.role_check_applies(tg_relid, coalesce(new.tenant_id, old.tenant_id)) then
    perform app.require_permission(tg_argv[0]);
  end if;
  return coalesce(new, old);
end
$$;
revoke execute on function app.authorize_write() from public;

/*
 * Invoices: a status change needs the permission of its transition (issued → invoices:issue,
 * paid → invoices:pay, void → invoices:void); any other write needs the trigger's argument
 * (invoices:write). An accountant can so record a payment and change nothing else.
 */
create or replace function app.authorize_invoice_write() returns trigger
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
begin
  if app.role_check_applies(tg_relid, coalesce(new.tenant_id, old.tenant_id)) then
    if tg_op = 'UPDATE' and new.status is distinct from old.status then
      perform app.require_permission(case new.status when 'issued' then 'invoices:issue' when 'paid' then 'invoices:pay'
                                                     when 'void' then 'invoices:void' else tg_argv[0] end);
    else
      perform app.require_permission(tg_argv[0]);
    end if;
  end if;
  return coalesce(new, old);
end
$$;
revoke execute on function app.authorize_invoice_write() from public;

/*
 * Appointments: the trigger's argument (appointments:write), and without appointments:all a
 * member writes only appointments assigned to themself, before and after the change.
 */
create or replace function app.authorize_appointment_write() returns trigger
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
begin
  if app.role_check_applies(tg_relid, coalesce(new.tenant_id, old.tenant_id)) then
    perform app.require_permission(tg_argv[0]);
    if (tg_op <> 'DELETE' and new.assigned_user_id is distinct from app.current_user_id())
       or (tg_op <> 'INSERT' and old.assigned_user_id is distinct from app.current_user_id()) then
      perform app.require_permission('appointments:all');
    end if;
  end if;
  return coalesce(new, old);
end
$$;
revoke execute on function app.authorize_appointment_write() from public;

/*
 * Opens the request context (see the 4-argument form in 0002 for refs, scope and TN errors)
 * and checks the permission the route needs. Without it:
 *   * p_for_row false (a collection: list, create, export): raises SS403 at once, so none
 *     of the request's queries run;
 *   * p_for_row true (a route naming one row): returns permitted = false and lets the queries
 *     run, so the API answers 404 for a row the caller cannot see and 403 for one it can;
 *     writes are refused in SQL by the _authorize_write triggers either way.
 */
create or replace function app.open_tenant_context(
  p_user_id uuid, p_tenant_refs text[], p_scope uuid, p_request_id text, p_permission text, p_for_row boolean
) returns table (tenant_id uuid, member_role text, permitted boolean)
language plpgsql volatile security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  v_ids uuid[];
  v_ref text;
  v_id uuid;
  v_status text;
  v_role text;
  v_permitted boolean;
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

  v_permitted := p_permission is null or app.has_permission(p_permission);
  if not v_permitted and not coalesce(p_for_row, false) then
    perform app.require_permission(p_permission);
  end if;
  return query select v_id, v_role, v_permitted;
end
$$;
revoke execute on function app.open_tenant_context(uuid, text[], uuid, text, text, boolean) from public;

/* The 4-argument form of 0002, kept for the previous release: no permission asked. */
create or replace function app.open_tenant_context(
  p_user_id uuid, p_tenant_refs text[], p_scope uuid, p_request_id text
) returns table (tenant_id uuid, member_role text)
language sql volatile security definer
set search_path = pg_catalog, pg_temp
as $$
  select o.tenant_id, o.member_role from app.open_tenant_context(p_user_id, p_tenant_refs, p_scope, p_request_id, null, false) o
$$;

/*
 * Owner rules on app.memberships, for every writer:
 *   * inside a request context, only an owner grants or removes the owner role (SS403);
 *     operators (no context) may, which is how a tenant gets its first owner;
 *   * a tenant never loses its last owner, by demotion or removal (SS409), unless the tenant
 *     itself is being deleted. Owner changes of one tenant are serialised on the tenant row,
 *     so two concurrent demotions cannot both pass.
 */
create or replace function app.membership_owner_rules() returns trigger
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
declare
  v_grants boolean := tg_op <> 'DELETE' and new.role = 'owner' and (tg_op = 'INSERT' or old.role <> 'owner');
  v_removes boolean := tg_op <> 'INSERT' and old.role = 'owner' and (tg_op = 'DELETE' or new.role <> 'owner');
begin
  if (v_grants or v_removes) and app.current_member_role() is not null and app.current_member_role() <> 'owner' then
    raise exception 'only an owner grants or removes the owner role'
      using errcode = 'SS403', constraint = 'owner_only';
  end if;
  if v_removes then
    -- FOR NO KEY UPDATE: serialises owner changes without blocking the key-share locks of
    -- every tenant row insert (foreign keys to app.tenants).
    perform 1 from app.tenants t where t.id = old.tenant_id for no key update;
    if found and not exists (select 1 from app.memberships m
                              where m.tenant_id = old.tenant_id and m.role = 'owner' and m.user_id <> old.user_id) then
      raise exception 'tenant % would be left without an owner', old.tenant_id
        using errcode = 'SS409', constraint = 'last_owner';
    end if;
  end if;
  return coalesce(new, old);
end
$$;
revoke execute on function app.membership_owner_rules() from public;

create trigger memberships_owner_rules
  before insert or update of role or delete on app.memberships
  for each row execute function app.membership_owner_rules();

/* The members of the caller's tenant (members:manage). */
create or replace function app.list_members()
returns table (user_id uuid, email text, role text, created_at timestamptz)
language plpgsql stable security definer
set search_path = pg_catalog, pg_temp
as $$
begin
  perform app.require_permission('members:manage');
  return query
    select m.user_id, u.email, m.role, m.created_at
      from app.memberships m join app.users u on u.id = m.user_id
     where m.tenant_id = app.current_tenant_id()
     order by lower(u.email);
end
$$;
revoke execute on function app.list_members() from public;

/*
 * Adds an existing account to the caller's tenant (members:manage). Accounts are created
 * outside the tenant API; an unknown email raises SS422 (member_account). Audited.
 */
create or replace function app.add_member(p_email text, p_role text)
returns table (user_id uuid, email text, role text, created_at timestamptz)
language plpgsql volatile security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  v_user app.users;
begin
  perform app.require_permission('members:manage');
  select * into v_user from app.users u where lower(u.email) = lower(p_email);
  if not found then
    raise exception 'no account has this email' using errcode = 'SS422', constraint = 'member_account';
  end if;
  insert into app.memberships (tenant_id, user_id, role) values (app.current_tenant_id(), v_user.id, p_role);
  perform app.audit_event('member.added', 'membership', v_user.id::text, jsonb_build_object('email', v_user.email, 'role', p_role));
  return query
    select m.user_id, v_user.email, m.role, m.created_at from app.memberships m
     where m.tenant_id = app.current_tenant_id() and m.user_id = v_user.id;
end
$$;
revoke execute on function app.add_member(text, text) from public;

/*
 * Changes a member's role (members:manage). A user who is not a member of the caller's
 * tenant raises SS404 (member) before the permission is checked, like any foreign row. Audited.
 */
create or replace function app.change_member_role(p_user_id uuid, p_role text)
returns table (user_id uuid, email text, role text, created_at timestamptz)
language plpgsql volatile security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  v_old text;
begin
  select m.role into v_old from app.memberships m
   where m.tenant_id = app.current_tenant_id() and m.user_id = p_user_id for update;
  if not found then
    raise exception 'member not found' using errcode = 'SS404', constraint = 'member';
  end if;
  perform app.require_permission('members:manage');
  update app.memberships m set role = p_role where m.tenant_id = app.current_tenant_id() and m.user_id = p_user_id;
  if v_old <> p_role then
    perform app.audit_event('member.role_changed', 'membership', p_user_id::text, jsonb_build_object('old', v_old, 'new', p_role));
  end if;
  return query
    select m.user_id, u.email, m.role, m.created_at from app.memberships m join app.users u on u.id = m.user_id
     where m.tenant_id = app.current_tenant_id() and m.user_id = p_user_id;
end
$$;
revoke execute on function app.change_member_role(uuid, text) from public;

/* Removes a member (members:manage); SS404 for a user who is not one. Audited. */
create or replace function app.remove_member(p_user_id uuid) returns void
language plpgsql volatile security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  v_old text;
begin
  select m.role into v_old from app.memberships m
   where m.tenant_id = app.current_tenant_id() and m.user_id = p_user_id for update;
  if not found then
    raise exception 'member not found' using errcode = 'SS404', constraint = 'member';
  end if;
  perform app.require_permission('members:manage');
  delete from app.memberships m where m.tenant_id = app.current_tenant_id() and m.user_id = p_user_id;
  perform app.audit_event('member.removed', 'membership', p_user_id::text, jsonb_build_object('role', v_old));
end
$$;
revoke execute on function app.remove_member(uuid) from public;

/* Renames the caller's tenant (settings:write). Audited. */
create or replace function app.update_tenant_settings(p_name text)
returns table (id uuid, slug text, name text, status text)
language plpgsql volatile security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  v_old text;
begin
  perform app.require_permission('settings:write');
  select t.name into v_old from app.tenants t where t.id = app.current_tenant_id() for update;
  update app.tenants t set name = p_name where t.id = app.current_tenant_id();
  if v_old is distinct from p_name then
    perform app.audit_event('settings.changed', 'tenant', app.current_tenant_id()::text,
                            jsonb_build_object('name', jsonb_build_object('old', v_old, 'new', p_name)));
  end if;
  return query select t.id, t.slug, t.name, t.status from app.tenants t where t.id = app.current_tenant_id();
end
$$;
revoke execute on function app.update_tenant_settings(text) from public;

/*
 * Records a login attempt in the audit of every tenant the account belongs to (a login has no
 * tenant of its own; each tenant's admins see their members' logins in their own chain),
 * through app.audit_event like every explicit event. A failed attempt has no known actor:
 * the account is the entity. An unknown account records nothing (the API logs it). The
 * context is cleared afterwards. Returns the number of tenants recorded in.
 */
create or replace function app.record_login(p_user_id uuid, p_succeeded boolean, p_request_id text) returns integer
language plpgsql volatile security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  v record;
  v_count integer := 0;
begin
  for v in select m.tenant_id, m.role from app.memberships m where m.user_id = p_user_id order by m.tenant_id loop
    perform set_config('app.tenant_id', v.tenant_id::text, true);
    perform set_config('app.user_id', case when p_succeeded then p_user_id::text else '' end, true);
    perform set_config('app.role', case when p_succeeded then v.role else '' end, true);
    perform set_config('app.request_id', coalesce(left(p_request_id, 128), ''), true);
    perform app.audit_event(case when p_succeeded then 'auth.login' else 'auth.login_failed' end, 'user', p_user_id::text, '{}'::jsonb);
    v_count := v_count + 1;
  end loop;
  perform set_config('app.tenant_id', '', true);
  perform set_config('app.user_id', '', true);
  perform set_config('app.role', '', true);
  perform set_config('app.request_id', '', true);
  return v_count;
end
$$;
revoke execute on function app.record_login(uuid, boolean, text) from public;
