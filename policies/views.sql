-- Reporting views, for the API (app_user) and BI logins (members of app_bi). Each exposes
-- tenant_id. Every view of schema app is owned by app_views (NOLOGIN, NOBYPASSRLS) and runs with
-- its owner's rights (security_invoker off), so a BI login reads the views and nothing else:
-- it holds no privilege on any table. RLS of the tables below applies to app_views
-- (policies/tenant_isolation.sql): the rows of the verified context's tenant (app_user), or of
-- the tenants granted to the connected BI login. A view never bypasses RLS: its owner cannot.
-- Re-appliable: create or replace (columns are only ever appended), then owner and options.

-- Invoice totals, derived from the lines (never stored).
create or replace view app.invoice_totals with (security_invoker = false) as
select i.tenant_id, i.id as invoice_id,
       coalesce(sum(l.line_total_cents), 0)::bigint as total_cents,
       count(l.id)::int as line_count
  from app.invoices i
  left join app.invoice_lines l on l.tenant_id = i.tenant_id and l.invoice_id = i.id
 group by i.tenant_id, i.id;

-- Revenue per day of issue (UTC), issued and paid invoices; void ones do not count.
create or replace view app.revenue_daily with (security_invoker = false) as
select i.tenant_id, (i.issued_at at time zone 'UTC')::date as day,
       count(distinct i.id)::int as invoices,
       coalesce(sum(l.line_total_cents), 0)::bigint as revenue_cents,
       coalesce(sum(l.line_total_cents) filter (where i.status = 'paid'), 0)::bigint as paid_cents
  from app.invoices i
  join app.invoice_lines l on l.tenant_id = i.tenant_id and l.invoice_id = i.id
 where i.status in ('issued', 'paid')
 group by i.tenant_id, (i.issued_at at time zone 'UTC')::date;

-- Appointments per day (UTC, by start) and status.
create or replace view app.appointments_daily with (security_invoker = false) as
select a.tenant_id, (a.starts_at at time zone 'UTC')::date as day, a.status, count(*)::int as appointments
  from app.appointments a
 group by a.tenant_id, (a.starts_at at time zone 'UTC')::date, a.status;

-- How often each catalog operation was sold on issued or paid invoices.
create or replace view app.catalog_usage with (security_invoker = false) as
select o.tenant_id, o.id as service_operation_id, o.internal_code, o.name,
       count(l.id)::int as lines,
       coalesce(sum(l.quantity), 0)::numeric(12,2) as quantity,
       coalesce(sum(l.line_total_cents), 0)::bigint as revenue_cents
  from app.service_operations o
  left join (app.invoice_lines l
             join app.invoices i on i.tenant_id = l.tenant_id and i.id = l.invoice_id and i.status in ('issued', 'paid'))
         on l.tenant_id = o.tenant_id and l.service_operation_id = o.id
 group by o.tenant_id, o.id, o.internal_code, o.name;

-- Invoices as the API reads them: the row and its derived total (and, appended, the printed
-- number and due date written on issue).
create or replace view app.invoice_summaries with (security_invoker = false) as
select i.tenant_id, i.id, i.customer_id, i.appointment_id, i.status, i.number, i.notes,
       i.issued_at, i.paid_at, i.voided_at, i.created_at, i.updated_at,
       t.total_cents, t.line_count, i.invoice_number, i.due_date
  from app.invoices i
  join app.invoice_totals t on t.tenant_id = i.tenant_id and t.invoice_id = i.id;

-- Every view of schema app: owned by app_views, running as its owner. Changing the owner (here,
-- and in a pg_restore of a snapshot) needs the new owner to hold CREATE on the schema; app_views
-- is NOLOGIN and only the owner role is a member of it, so that adds nothing anyone can use.
grant create on schema app to app_views;
do $$
declare
  v regclass;
begin
  for v in select c.oid::regclass from pg_catalog.pg_class c join pg_catalog.pg_namespace n on n.oid = c.relnamespace
            where n.nspname = 'app' and c.relkind = 'v' loop
    if (select c.relowner from pg_catalog.pg_class c where c.oid = v) <> 'app_views'::regrole then
      execute format('alter view %s owner to app_views', v);
    end if;
    execute format('alter view %s set (security_invoker = false)', v);
  end loop;
end
$$;
