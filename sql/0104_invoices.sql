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

