-- Role checks on writes, next to the tenant isolation they narrow. The matrix itself is
-- policies/permissions.sql.
-- Re-appliable: each trigger is created or replaced, each policy dropped if it exists and created again.

/*
 * Whether the current transaction may use a permission: in a member's context, it is among the
 * permissions fixed when the context opened (the route's and what it opens, as far as the role
 * holds them: app.open_tenant_context); in an operator context ('*'), the role holds it. False
 * without a context. SECURITY DEFINER because the matrix is a global table app_user cannot
 * read; plpgsql so its plan is cached per session (a SQL function with a SET clause is planned
 * again on every call). Policies call it as (select ...), once per statement.
 */
create or replace function app.has_permission(p_permission text) returns boolean
language plpgsql stable security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  v_ctx text := app.verified_context();
  v_role text := nullif(split_part(v_ctx, '|', 3), '');
  v_permissions text := split_part(v_ctx, '|', 5);
begin
  if v_role is null then
    return false;
  end if;
  if v_permissions = '*' then
    return exists (select 1 from app.role_permissions rp where rp.role = v_role and rp.permission = p_permission);
  end if;
  return p_permission = any (string_to_array(v_permissions, ','));
end
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
 * Change sets: a status change needs catalog:approve (approve, reject, apply); any other write
 * catalog:write. A manager can so draft and edit, and neither approve nor apply.
 */
create or replace function app.authorize_change_set_write() returns trigger
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
begin
  if app.role_check_applies(tg_relid, coalesce(new.tenant_id, old.tenant_id)) then
    if tg_op = 'UPDATE' and new.status is distinct from old.status then
      perform app.require_permission('catalog:approve');
    else
      perform app.require_permission(tg_argv[0]);
    end if;
  end if;
  return coalesce(new, old);
end
$$;
revoke execute on function app.authorize_change_set_write() from public;

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
 * The permission a write to each tenant table needs, and the function that checks it.
 * Every tenant table that app_user may write must be listed: applying this file fails on one
 * that is not, and verify/catalog.sql reports a table without its _authorize_write trigger.
 * A NULL permission means "no check of its own" and must say why.
 */
create or replace function app.table_write_permissions()
returns table (table_name text, permission text, check_function text)
language sql immutable parallel safe
set search_path = pg_catalog, pg_temp
as $$
  values
    ('customers',          'customers:write',    'app.authorize_write'),
    ('vehicles',           'customers:write',    'app.authorize_write'),
    ('services',           'catalog:write',      'app.authorize_write'),
    ('service_operations', 'catalog:write',      'app.authorize_write'),
    -- status changes (approve, reject, apply) need catalog:approve instead
    ('catalog_change_sets',      'catalog:write', 'app.authorize_change_set_write'),
    ('catalog_change_set_items', 'catalog:write', 'app.authorize_write'),
    -- and appointments:all, unless the appointment is (and stays) assigned to oneself
    ('appointments',       'appointments:write', 'app.authorize_appointment_write'),
    -- status changes need invoices:issue, invoices:pay or invoices:void instead
    ('invoices',           'invoices:write',     'app.authorize_invoice_write'),
    ('invoice_lines',      'invoices:write',     'app.authorize_write'),
    ('invoice_counters',   'invoices:issue',     'app.authorize_write'),
    ('integration_credentials', 'integrations:manage', 'app.authorize_write'),
    -- and only an owner invites an owner (app.invitation_rules, policies/invitations.sql)
    ('invitations',        'members:manage',     'app.authorize_write'),
    -- replay data, written in the same transaction as an effect that is itself checked
    ('idempotency_keys',   null,                 null)
$$;
revoke execute on function app.table_write_permissions() from public;

/*
 * The permission a read of each tenant table needs: the one its routes name when they open the
 * context (a route's own permission is what guards a read, app.open_tenant_context). Read by the
 * access explainer (npm run cli -- explain, GET /api/v1/access/explain), which opens a member's
 * context for it, and by nothing that enforces: RLS and the opener do. A NULL permission means
 * the table is read only beside a route's own effect, in that route's context, and says why.
 * test/access-explain.test.ts fails for a tenant table missing here.
 */
create or replace function app.table_read_permissions()
returns table (table_name text, permission text)
language sql immutable parallel safe
set search_path = pg_catalog, pg_temp
as $$
  values
    ('customers',          'customers:read'),
    ('vehicles',           'customers:read'),
    ('services',           'catalog:read'),
    ('service_operations', 'catalog:read'),
    -- drafts are read by the routes that write them (every change-set route needs catalog:write)
    ('catalog_change_sets',      'catalog:write'),
    ('catalog_change_set_items', 'catalog:write'),
    -- the version history (GET /catalog/versions), read-only to app_user
    ('catalog_heads',            'catalog:read'),
    ('catalog_versions',         'catalog:read'),
    ('catalog_version_changes',  'catalog:read'),
    ('appointments',       'appointments:read'),
    ('invoices',           'invoices:read'),
    ('invoice_lines',      'invoices:read'),
    -- no route reads it: issuing an invoice (invoices:issue, which opens invoices:read) does
    ('invoice_counters',   'invoices:read'),
    ('audit_log',          'audit:read'),
    -- pending invitations: listed and revoked by the members' managers (GET /members/invitations)
    ('invitations',        'members:manage'),
    -- read only by the integrations routes, which manage what they read (metadata, never the secret)
    ('integration_credentials', 'integrations:manage'),
    -- replay data, read only by the route whose response it replays, in that route's context
    ('idempotency_keys',   null)
$$;
revoke execute on function app.table_read_permissions() from public;

-- One BEFORE row trigger per table. Its name sorts first ('_' before letters): PostgreSQL fires
-- row triggers in name order, and a refusal for lack of permission must come before any
-- business rule (an invalid transition, an immutable invoice) reveals something about the row.
do $$
declare
  t regclass;
  v_name text;
  w record;
begin
  for t, v_name in select x, c.relname from app.tenant_tables() x join pg_catalog.pg_class c on c.oid = x loop
    continue when v_name = any (app.append_only_table_names());
    select * into w from app.table_write_permissions() p where p.table_name = v_name;
    if not found then
      raise exception 'tenant table app.% has no entry in app.table_write_permissions()', v_name
        using hint = 'Name the permission its writes need in policies/rbac.sql (or NULL with the reason).';
    end if;
    -- Replaced, not dropped and created (ACCESS EXCLUSIVE, readers wait too); dropped only where present.
    if w.permission is null then
      if exists (select 1 from pg_catalog.pg_trigger g where g.tgrelid = t and g.tgname = '_authorize_write') then
        execute format('drop trigger _authorize_write on %s', t);
      end if;
      continue;
    end if;
    execute format('create or replace trigger _authorize_write before insert or update or delete on %s
                    for each row execute function %s(%L)', t, w.check_function, w.permission);
  end loop;
end
$$;

-- A member whose role lacks appointments:all sees, changes and deletes only the appointments
-- assigned to them, and none at all without appointments:read; to them the others do not exist
-- (404). Restrictive: it narrows tenant_members_* and can never widen them. Contexts without a
-- member role (a BI login reading a view) are not narrowed: they see what their grants allow.
drop policy if exists members_see_only_assigned_appointments on app.appointments;
create policy members_see_only_assigned_appointments on app.appointments
  as restrictive for all to app_user, app_views
  using (
    (select app.current_member_role()) is null
    or (select app.has_permission('appointments:all'))
    or ((select app.has_permission('appointments:read')) and assigned_user_id = (select app.current_user_id()))
  )
  with check (true);
