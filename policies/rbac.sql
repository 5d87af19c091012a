-- Role checks on writes, next to the tenant isolation they narrow. The matrix itself is
-- policies/permissions.sql; the check functions are in sql/0301_rbac.sql.
-- Re-appliable: each trigger and policy is dropped if it exists and created again.

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
    -- and appointments:all, unless the appointment is (and stays) assigned to oneself
    ('appointments',       'appointments:write', 'app.authorize_appointment_write'),
    -- status changes need invoices:issue, invoices:pay or invoices:void instead
    ('invoices',           'invoices:write',     'app.authorize_invoice_write'),
    ('invoice_lines',      'invoices:write',     'app.authorize_write'),
    ('invoice_counters',   'invoices:issue',     'app.authorize_write'),
    -- replay data, written in the same transaction as an effect that is itself checked
    ('idempotency_keys',   null,                 null)
$$;
revoke execute on function app.table_write_permissions() from public;

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
    execute format('drop trigger if exists _authorize_write on %s', t);
    continue when w.permission is null;
    execute format('create trigger _authorize_write before insert or update or delete on %s
                    for each row execute function %s(%L)', t, w.check_function, w.permission);
  end loop;
end
$$;

-- Members whose role reads appointments without appointments:all (staff) see, change and
-- delete only the appointments assigned to them; to them the others do not exist (404).
-- Restrictive: it narrows tenant_members_* and can never widen them.
drop policy if exists members_see_only_assigned_appointments on app.appointments;
create policy members_see_only_assigned_appointments on app.appointments
  as restrictive for all to app_user
  using (
    not (select app.has_permission('appointments:read') and not app.has_permission('appointments:all'))
    or assigned_user_id = (select app.current_user_id())
  )
  with check (true);
