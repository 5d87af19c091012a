-- Invoices: immutability once issued, lines only on drafts, gapless numbering on issue.
-- Re-appliable: create or replace, triggers too.

/*
 * Invoices: draft is free to change; issued → paid | void and paid → void are the only
 * changes after issue (status and its timestamp); anything else raises SS409 (INVOICE_IMMUTABLE
 * or INVALID_TRANSITION). Only drafts can be deleted.
 * Issuing (draft → issued), by app.issue_invoice or by any plain UPDATE, happens here: the
 * invoice needs a line (SS422), and its number and issued_at are the database's, the next number
 * of the tenant's counter under its row lock, whatever the statement wrote. So no path issues
 * an invoice out of sequence or with a number of its choosing. The shop's settings of this
 * moment, in this transaction (app.shop_settings), give the printed number (invoice number
 * prefix, then the number) and the due date (the issue day in the shop's timezone plus its
 * payment terms); both are frozen with the rest of the invoice.
 */
create or replace function app.invoice_guard() returns trigger
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
declare
  s record;
begin
  if tg_op = 'DELETE' then
    if old.status <> 'draft' then
      raise exception 'invoice % is %, only drafts can be deleted', old.id, old.status using errcode = 'SS409', constraint = 'invoice_immutable';
    end if;
    return old;
  end if;
  if tg_op = 'INSERT' then
    if new.status <> 'draft' or new.number is not null or new.invoice_number is not null or new.due_date is not null then
      raise exception 'a new invoice is a draft without number' using errcode = 'SS409', constraint = 'invoice_status';
    end if;
    return new;
  end if;
  if old.status = 'draft' then
    if new.status not in ('draft', 'issued') then
      raise exception 'invoice cannot go from draft to %', new.status using errcode = 'SS409', constraint = 'invoice_status';
    end if;
    -- A draft has no printed number or due date: they are the database's, written on issue.
    new.invoice_number := null;
    new.due_date := null;
    if new.status = 'issued' then
      if not exists (select 1 from app.invoice_lines l where l.tenant_id = old.tenant_id and l.invoice_id = old.id) then
        raise exception 'an invoice without lines cannot be issued' using errcode = 'SS422', constraint = 'invoice_empty';
      end if;
      insert into app.invoice_counters as c (tenant_id, last_number) values (old.tenant_id, 1)
      on conflict (tenant_id) do update set last_number = c.last_number + 1
      returning c.last_number into new.number;
      new.issued_at := now();
      select * into s from app.shop_settings(old.tenant_id, tg_relid);
      if not found then
        raise exception 'the settings of the invoice''s shop are not visible to this transaction' using errcode = '42501';
      end if;
      new.invoice_number := s.invoice_number_prefix || new.number;
      new.due_date := (new.issued_at at time zone s.timezone)::date + s.payment_terms_days;
    end if;
    return new;
  end if;
  if (old.status, new.status) not in (('issued', 'paid'), ('issued', 'void'), ('paid', 'void')) then
    if new.status is distinct from old.status then
      raise exception 'invoice cannot go from % to %', old.status, new.status using errcode = 'SS409', constraint = 'invoice_status';
    end if;
    raise exception 'invoice % is %, and can no longer change', old.id, old.status using errcode = 'SS409', constraint = 'invoice_immutable';
  end if;
  if (new.customer_id, new.appointment_id, new.number, new.invoice_number, new.due_date, new.notes, new.issued_at, new.created_at)
     is distinct from (old.customer_id, old.appointment_id, old.number, old.invoice_number, old.due_date, old.notes, old.issued_at, old.created_at) then
    raise exception 'invoice % is %, and can no longer change', old.id, old.status using errcode = 'SS409', constraint = 'invoice_immutable';
  end if;
  return new;
end
$$;
revoke execute on function app.invoice_guard() from public;


create or replace trigger invoices_guard
  before insert or update or delete on app.invoices
  for each row execute function app.invoice_guard();

/* Lines change only while their invoice is a draft (SS409 INVOICE_IMMUTABLE otherwise). */
create or replace function app.invoice_line_guard() returns trigger
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
declare
  v_status text;
begin
  -- FOR SHARE: waits for an issue of this invoice in flight (which holds the row FOR UPDATE)
  -- and then sees its new status, so no line lands on an invoice being issued.
  select i.status into v_status from app.invoices i
   where i.tenant_id = coalesce(new.tenant_id, old.tenant_id) and i.id = coalesce(new.invoice_id, old.invoice_id)
     for share;
  -- A missing invoice is the foreign key's to report (REFERENCE_NOT_FOUND); a cascade from a
  -- draft's deletion finds no row either and is allowed.
  if v_status is not null and v_status <> 'draft' then
    raise exception 'invoice is %, its lines can no longer change', v_status using errcode = 'SS409', constraint = 'invoice_immutable';
  end if;
  return coalesce(new, old);
end
$$;
revoke execute on function app.invoice_line_guard() from public;


create or replace trigger invoice_lines_guard
  before insert or update or delete on app.invoice_lines
  for each row execute function app.invoice_line_guard();


/*
 * Issues a draft (app.invoice_guard gives it the next number of the caller's tenant under the
 * counter's row lock, in the caller's transaction, so a failure returns the number and no gap
 * is left). SECURITY INVOKER: RLS applies. Checks in the order the API promises: SS404 (not
 * found, also another tenant's), then SS403 (the role lacks invoices:issue), then SS409 (not a
 * draft) and SS422 (no lines).
 */
create or replace function app.issue_invoice(p_invoice_id uuid) returns setof app.invoices
language plpgsql volatile
set search_path = pg_catalog, pg_temp
as $$
declare
  v_status text;
begin
  select i.status into v_status from app.invoices i where i.id = p_invoice_id for update;
  if not found then
    raise exception 'invoice not found' using errcode = 'SS404', constraint = 'invoice';
  end if;
  perform app.require_permission('invoices:issue');
  if v_status <> 'draft' then
    raise exception 'invoice cannot go from % to issued', v_status using errcode = 'SS409', constraint = 'invoice_status';
  end if;
  return query
    update app.invoices i set status = 'issued' where i.id = p_invoice_id returning i.*;
end
$$;
revoke execute on function app.issue_invoice(uuid) from public;

