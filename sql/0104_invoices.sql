-- Intent: invoices and their lines, gapless per-tenant numbering on issue, totals derived in
-- SQL, and immutability of issued invoices (only the paid and void transitions remain).
-- Rollback plan: forward fix preferred; before the tables hold data a new migration may drop
-- them, otherwise restore the pre-migration snapshot (invoice numbers must never be reused).

-- Up Migration

create table app.invoice_counters (
  tenant_id   uuid    not null default app.current_tenant_id(),
  last_number integer not null default 0,
  constraint invoice_counters_pkey primary key (tenant_id),
  constraint invoice_counters_tenant_fkey foreign key (tenant_id) references app.tenants (id),
  constraint invoice_counters_last_number_check check (last_number >= 0)
);
comment on table app.invoice_counters is 'Tenant-owned: the last invoice number issued. Its row lock serialises issuing, so numbers have no gaps.';

create table app.invoices (
  tenant_id      uuid        not null default app.current_tenant_id(),
  id             uuid        not null default gen_random_uuid(),
  customer_id    uuid        not null,
  appointment_id uuid,
  status         text        not null default 'draft',
  number         integer,
  notes          text,
  issued_at      timestamptz,
  paid_at        timestamptz,
  voided_at      timestamptz,
  created_at     timestamptz not null default now(),
  updated_at     timestamptz not null default now(),
  constraint invoices_pkey primary key (tenant_id, id),
  constraint invoices_customer_fkey foreign key (tenant_id, customer_id) references app.customers (tenant_id, id),
  -- The appointment, when given, is one of this customer's.
  constraint invoices_appointment_fkey foreign key (tenant_id, customer_id, appointment_id) references app.appointments (tenant_id, customer_id, id),
  constraint invoices_tenant_number_key unique (tenant_id, number),
  constraint invoices_status_check check (status in ('draft', 'issued', 'paid', 'void')),
  constraint invoices_number_check check ((status = 'draft') = (number is null) or status = 'void'),
  constraint invoices_notes_check check (notes is null or length(notes) <= 4000)
);
create index invoices_tenant_customer_idx on app.invoices (tenant_id, customer_id);
comment on table app.invoices is 'Tenant-owned: invoices. Numbered on issue; immutable once issued except paid/void (app.invoice_guard()).';

create table app.invoice_lines (
  tenant_id            uuid          not null default app.current_tenant_id(),
  id                   uuid          not null default gen_random_uuid(),
  invoice_id           uuid          not null,
  service_operation_id uuid,
  description          text          not null,
  quantity             numeric(10,2) not null,
  unit_price_cents     integer       not null,
  line_total_cents     bigint        generated always as (round(quantity * unit_price_cents)::bigint) stored,
  created_at           timestamptz   not null default now(),
  constraint invoice_lines_pkey primary key (tenant_id, id),
  constraint invoice_lines_invoice_fkey foreign key (tenant_id, invoice_id) references app.invoices (tenant_id, id) on delete cascade,
  constraint invoice_lines_operation_fkey foreign key (tenant_id, service_operation_id) references app.service_operations (tenant_id, id),
  constraint invoice_lines_description_check check (length(description) between 1 and 500),
  constraint invoice_lines_quantity_check check (quantity > 0),
  constraint invoice_lines_price_check check (unit_price_cents >= 0)
);
create index invoice_lines_tenant_invoice_idx on app.invoice_lines (tenant_id, invoice_id);
comment on table app.invoice_lines is 'Tenant-owned: invoice lines; a catalog line copies the operation''s price at the moment it is added.';

/*
 * Invoices: draft is free to change; issued → paid | void and paid → void are the only
 * changes after issue (status and its timestamp); anything else raises SS409 (INVOICE_IMMUTABLE
 * or INVALID_TRANSITION). Only drafts can be deleted.
 */
create or replace function app.invoice_guard() returns trigger
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
begin
  if tg_op = 'DELETE' then
    if old.status <> 'draft' then
      raise exception 'invoice % is %, only drafts can be deleted', old.id, old.status using errcode = 'SS409', constraint = 'invoice_immutable';
    end if;
    return old;
  end if;
  if tg_op = 'INSERT' then
    if new.status <> 'draft' or new.number is not null then
      raise exception 'a new invoice is a draft without number' using errcode = 'SS409', constraint = 'invoice_status';
    end if;
    return new;
  end if;
  if old.status = 'draft' then
    if new.status not in ('draft', 'issued') then
      raise exception 'invoice cannot go from draft to %', new.status using errcode = 'SS409', constraint = 'invoice_status';
    end if;
    return new;
  end if;
  if (old.status, new.status) not in (('issued', 'paid'), ('issued', 'void'), ('paid', 'void')) then
    if new.status is distinct from old.status then
      raise exception 'invoice cannot go from % to %', old.status, new.status using errcode = 'SS409', constraint = 'invoice_status';
    end if;
    raise exception 'invoice % is %, and can no longer change', old.id, old.status using errcode = 'SS409', constraint = 'invoice_immutable';
  end if;
  if (new.customer_id, new.appointment_id, new.number, new.notes, new.issued_at, new.created_at)
     is distinct from (old.customer_id, old.appointment_id, old.number, old.notes, old.issued_at, old.created_at) then
    raise exception 'invoice % is %, and can no longer change', old.id, old.status using errcode = 'SS409', constraint = 'invoice_immutable';
  end if;
  return new;
end
$$;
revoke execute on function app.invoice_guard() from public;

create trigger invoices_guard
  before insert or update or delete on app.invoices
  for each row execute function app.invoice_guard();
create trigger invoices_touch_updated_at
  before update on app.invoices
  for each row execute function app.touch_updated_at();

/* Lines change only while their invoice is a draft (SS409 INVOICE_IMMUTABLE otherwise). */
create or replace function app.invoice_line_guard() returns trigger
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
declare
  v_status text;
begin
  select i.status into v_status from app.invoices i
   where i.tenant_id = coalesce(new.tenant_id, old.tenant_id) and i.id = coalesce(new.invoice_id, old.invoice_id);
  -- A missing invoice is the foreign key's to report (REFERENCE_NOT_FOUND); a cascade from a
  -- draft's deletion finds no row either and is allowed.
  if v_status is not null and v_status <> 'draft' then
    raise exception 'invoice is %, its lines can no longer change', v_status using errcode = 'SS409', constraint = 'invoice_immutable';
  end if;
  return coalesce(new, old);
end
$$;
revoke execute on function app.invoice_line_guard() from public;

create trigger invoice_lines_guard
  before insert or update or delete on app.invoice_lines
  for each row execute function app.invoice_line_guard();

/*
 * Issues a draft: takes the next number of the caller's tenant under the counter's row lock,
 * in the caller's transaction, so a failure returns the number and no gap is left.
 * SECURITY INVOKER: RLS applies. Raises SS404 (not found), SS409 (not a draft), SS422 (no lines).
 */
create or replace function app.issue_invoice(p_invoice_id uuid) returns setof app.invoices
language plpgsql volatile
set search_path = pg_catalog, pg_temp
as $$
declare
  v_status text;
  v_number integer;
begin
  select i.status into v_status from app.invoices i where i.id = p_invoice_id for update;
  if not found then
    raise exception 'invoice not found' using errcode = 'SS404', constraint = 'invoice';
  end if;
  if v_status <> 'draft' then
    raise exception 'invoice cannot go from % to issued', v_status using errcode = 'SS409', constraint = 'invoice_status';
  end if;
  if not exists (select 1 from app.invoice_lines l where l.invoice_id = p_invoice_id) then
    raise exception 'an invoice without lines cannot be issued' using errcode = 'SS422', constraint = 'invoice_empty';
  end if;
  insert into app.invoice_counters as c (tenant_id, last_number) values (app.current_tenant_id(), 1)
  on conflict (tenant_id) do update set last_number = c.last_number + 1
  returning c.last_number into v_number;
  return query
    update app.invoices i set status = 'issued', number = v_number, issued_at = now()
     where i.id = p_invoice_id returning i.*;
end
$$;
revoke execute on function app.issue_invoice(uuid) from public;
