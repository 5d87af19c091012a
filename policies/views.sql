-- Reporting views. Every view is security_invoker, so it runs with the caller's rights and
-- RLS of the tables below it applies: app_user and app_bi see their tenant's rows only. Each
-- exposes tenant_id. Re-appliable: create or replace (columns are only ever appended).

-- Invoice totals, derived from the lines (never stored).
create or replace view app.invoice_totals with (security_invoker = true) as
select i.tenant_id, i.id as invoice_id,
       coalesce(sum(l.line_total_cents), 0)::bigint as total_cents,
       count(l.id)::int as line_count
  from app.invoices i
  left join app.invoice_lines l on l.tenant_id = i.tenant_id and l.invoice_id = i.id
 group by i.tenant_id, i.id;

-- Revenue per day of issue (UTC), issued and paid invoices; void ones do not count.
create or replace view app.revenue_daily with (security_invoker = true) as
select i.tenant_id, (i.issued_at at time zone 'UTC')::date as day,
       count(distinct i.id)::int as invoices,
       coalesce(sum(l.line_total_cents), 0)::bigint as revenue_cents,
       coalesce(sum(l.line_total_cents) filter (where i.status = 'paid'), 0)::bigint as paid_cents
  from app.invoices i
  join app.invoice_lines l on l.tenant_id = i.tenant_id and l.invoice_id = i.id
 where i.status in ('issued', 'paid')
 group by i.tenant_id, (i.issued_at at time zone 'UTC')::date;

-- Appointments per day (UTC, by start) and status.
create or replace view app.appointments_daily with (security_invoker = true) as
select a.tenant_id, (a.starts_at at time zone 'UTC')::date as day, a.status, count(*)::int as appointments
  from app.appointments a
 group by a.tenant_id, (a.starts_at at time zone 'UTC')::date, a.status;

-- How often each catalog operation was sold on issued or paid invoices.
create or replace view app.catalog_usage with (security_invoker = true) as
select o.tenant_id, o.id as service_operation_id, o.internal_code, o.name,
       count(l.id)::int as lines,
       coalesce(sum(l.quantity), 0)::numeric(12,2) as quantity,
       coalesce(sum(l.line_total_cents), 0)::bigint as revenue_cents
  from app.service_operations o
  left join (app.invoice_lines l
             join app.invoices i on i.tenant_id = l.tenant_id and i.id = l.invoice_id and i.status in ('issued', 'paid'))
         on l.tenant_id = o.tenant_id and l.service_operation_id = o.id
 group by o.tenant_id, o.id, o.internal_code, o.name;

-- Invoices as the API reads them: the row and its derived total.
create or replace view app.invoice_summaries with (security_invoker = true) as
select i.tenant_id, i.id, i.customer_id, i.appointment_id, i.status, i.number, i.notes,
       i.issued_at, i.paid_at, i.voided_at, i.created_at, i.updated_at,
       t.total_cents, t.line_count
  from app.invoices i
  join app.invoice_totals t on t.tenant_id = i.tenant_id and t.invoice_id = i.id;
