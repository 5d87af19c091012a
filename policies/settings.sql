-- A shop's settings: its name and the settings of sql/0430 on its row of app.tenants (global).
-- The bounds are named CHECKs there; here the timezone's check against pg_timezone_names, the
-- audit of every change, the readers the domain rules share (invoices.sql: numbering and due
-- dates; appointments.sql: slots), and the SECURITY DEFINER functions behind /settings.
-- Re-appliable: create or replace, triggers too.

/* The settings of a shop, in the order the API lists them: what the audit compares. */
create or replace function app.setting_names() returns text[]
language sql immutable parallel safe
as $$ select array['name', 'timezone', 'currency', 'tax_rate_bps', 'invoice_number_prefix', 'payment_terms_days',
                    'appointment_slot_minutes', 'reminders_enabled']::text[] $$;
revoke execute on function app.setting_names() from public;

/*
 * A shop's timezone is a name PostgreSQL knows (pg_timezone_names), checked whenever it is set,
 * by every writer: a CHECK cannot read a catalog view. Raises 23514 naming tenants_timezone_known,
 * as a CHECK would (the API answers 422 INVALID_SETTING naming timezone).
 */
create or replace function app.tenant_timezone_known() returns trigger
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
begin
  if tg_op = 'UPDATE' and new.timezone is not distinct from old.timezone then
    return new;
  end if;
  if not exists (select 1 from pg_catalog.pg_timezone_names z where z.name = new.timezone) then
    raise exception 'timezone "%" is not a name of pg_timezone_names', new.timezone
      using errcode = '23514', constraint = 'tenants_timezone_known', schema = 'app', table = 'tenants', column = 'timezone';
  end if;
  return new;
end
$$;
revoke execute on function app.tenant_timezone_known() from public;

-- The default (UTC) needs no lookup: the catalog view reads the timezone files (a millisecond).
create or replace trigger tenants_timezone_known
  before insert or update of timezone on app.tenants
  for each row when (new.timezone <> 'UTC') execute function app.tenant_timezone_known();

/*
 * Audit of settings: one settings.changed event per changed shop row, whoever changes it (the API,
 * an operator in psql), naming each setting that changed, old → new, with the actor, role and
 * request of the transaction's context (none for an operator without one). A write that changes
 * no setting writes nothing (the trigger's WHEN). SECURITY DEFINER: app_user cannot write the audit.
 */
create or replace function app.tenant_settings_audit() returns trigger
language plpgsql security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  o jsonb := to_jsonb(old);
  n jsonb := to_jsonb(new);
  v_changed jsonb;
begin
  select jsonb_object_agg(k, jsonb_build_object('old', o->k, 'new', n->k)) into v_changed
    from unnest(app.setting_names()) k where o->k is distinct from n->k;
  if v_changed is not null then
    insert into app.audit_log (tenant_id, actor_user_id, actor_role, request_id, action, entity, entity_id, change)
    values (new.id, app.current_user_id(), app.current_member_role(), app.current_request_id(),
            'settings.changed', 'tenant', new.id::text, jsonb_build_object('event', v_changed));
  end if;
  return null;
end
$$;
revoke execute on function app.tenant_settings_audit() from public;

create or replace trigger tenants_settings_audit
  after update on app.tenants
  for each row
  when ((old.name, old.timezone, old.currency, old.tax_rate_bps, old.invoice_number_prefix, old.payment_terms_days,
         old.appointment_slot_minutes, old.reminders_enabled)
        is distinct from
        (new.name, new.timezone, new.currency, new.tax_rate_bps, new.invoice_number_prefix, new.payment_terms_days,
         new.appointment_slot_minutes, new.reminders_enabled))
  execute function app.tenant_settings_audit();

/* The caller's shop with its settings; none without a context. Every member may know them (the rules they book and bill by). */
create or replace function app.current_settings()
returns table (id uuid, slug text, name text, status text, timezone text, currency text, tax_rate_bps integer,
               invoice_number_prefix text, payment_terms_days integer, appointment_slot_minutes integer, reminders_enabled boolean)
language sql stable security definer
set search_path = pg_catalog, pg_temp
as $$
  select t.id, t.slug, t.name, t.status, t.timezone, t.currency, t.tax_rate_bps, t.invoice_number_prefix,
         t.payment_terms_days, t.appointment_slot_minutes, t.reminders_enabled
    from app.tenants t where t.id = app.current_tenant_id()
$$;
revoke execute on function app.current_settings() from public;

/*
 * The settings a domain rule applies to a row of p_tenant_id written to p_table (the trigger's
 * own table), in the writer's transaction: in a context of that shop, app.current_settings();
 * for a role RLS does not bind on p_table (the owner writing without a context), the shop's row
 * itself. No row otherwise (another shop's row, or no context: RLS refuses the write anyway).
 * SECURITY INVOKER: the direct read needs the owner's privileges, so app_user learns nothing of
 * another shop through it.
 */
create or replace function app.shop_settings(p_tenant_id uuid, p_table regclass)
returns table (timezone text, currency text, tax_rate_bps integer, invoice_number_prefix text,
               payment_terms_days integer, appointment_slot_minutes integer, reminders_enabled boolean)
language plpgsql stable
set search_path = pg_catalog, pg_temp
as $$
begin
  if p_tenant_id = app.current_tenant_id() then
    return query select s.timezone, s.currency, s.tax_rate_bps, s.invoice_number_prefix, s.payment_terms_days,
                        s.appointment_slot_minutes, s.reminders_enabled
                   from app.current_settings() s;
  elsif not row_security_active(p_table) then
    return query execute 'select t.timezone, t.currency, t.tax_rate_bps, t.invoice_number_prefix, t.payment_terms_days,
                                 t.appointment_slot_minutes, t.reminders_enabled
                            from app.tenants t where t.id = $1' using p_tenant_id;
  end if;
end
$$;
revoke execute on function app.shop_settings(uuid, regclass) from public;

-- The first form took the name only.
drop function if exists app.update_tenant_settings(text);

/*
 * Changes the caller's shop's settings (settings:write): each argument that is not NULL. The
 * CHECKs of sql/0430 and the timezone trigger judge the values (23514, the API answers 422
 * INVALID_SETTING naming the setting); the audit trigger records what changed. A call that
 * changes nothing writes nothing. Answers the shop with its settings.
 */
create or replace function app.update_tenant_settings(
  p_name text default null, p_timezone text default null, p_currency text default null, p_tax_rate_bps integer default null,
  p_invoice_number_prefix text default null, p_payment_terms_days integer default null,
  p_appointment_slot_minutes integer default null, p_reminders_enabled boolean default null
)
returns table (id uuid, slug text, name text, status text, timezone text, currency text, tax_rate_bps integer,
               invoice_number_prefix text, payment_terms_days integer, appointment_slot_minutes integer, reminders_enabled boolean)
language plpgsql volatile security definer
set search_path = pg_catalog, pg_temp
as $$
begin
  perform app.require_permission('settings:write');
  update app.tenants t
     set name = coalesce(p_name, t.name), timezone = coalesce(p_timezone, t.timezone), currency = coalesce(p_currency, t.currency),
         tax_rate_bps = coalesce(p_tax_rate_bps, t.tax_rate_bps),
         invoice_number_prefix = coalesce(p_invoice_number_prefix, t.invoice_number_prefix),
         payment_terms_days = coalesce(p_payment_terms_days, t.payment_terms_days),
         appointment_slot_minutes = coalesce(p_appointment_slot_minutes, t.appointment_slot_minutes),
         reminders_enabled = coalesce(p_reminders_enabled, t.reminders_enabled)
   where t.id = app.current_tenant_id()
     and (t.name, t.timezone, t.currency, t.tax_rate_bps, t.invoice_number_prefix, t.payment_terms_days, t.appointment_slot_minutes, t.reminders_enabled)
         is distinct from
         (coalesce(p_name, t.name), coalesce(p_timezone, t.timezone), coalesce(p_currency, t.currency), coalesce(p_tax_rate_bps, t.tax_rate_bps),
          coalesce(p_invoice_number_prefix, t.invoice_number_prefix), coalesce(p_payment_terms_days, t.payment_terms_days),
          coalesce(p_appointment_slot_minutes, t.appointment_slot_minutes), coalesce(p_reminders_enabled, t.reminders_enabled));
  return query select * from app.current_settings();
end
$$;
revoke execute on function app.update_tenant_settings(text, text, text, integer, text, integer, integer, boolean) from public;
