-- Intent: vehicles, owned by a customer of the same tenant (composite foreign key).
-- Rollback plan: forward fix preferred; before the table holds data a new migration may drop
-- it, otherwise restore the snapshot deploy/migrate.sh took.

-- Up Migration

create table app.vehicles (
  tenant_id   uuid        not null default app.current_tenant_id(),
  id          uuid        not null default gen_random_uuid(),
  customer_id uuid        not null,
  vin         text,
  plate       text,
  make        text,
  model       text,
  year        integer,
  created_at  timestamptz not null default now(),
  updated_at  timestamptz not null default now(),
  constraint vehicles_pkey primary key (tenant_id, id),
  -- Composite: a customer of another tenant is rejected by the database itself.
  constraint vehicles_customer_fkey foreign key (tenant_id, customer_id) references app.customers (tenant_id, id),
  constraint vehicles_vin_check check (vin is null or vin ~ '^[A-HJ-NPR-Z0-9]{17}$'),
  constraint vehicles_plate_check check (plate is null or length(plate) between 1 and 20),
  constraint vehicles_make_check check (make is null or length(make) between 1 and 80),
  constraint vehicles_model_check check (model is null or length(model) between 1 and 80),
  constraint vehicles_year_check check (year is null or year between 1886 and 2100)
);
-- A VIN, when present, is unique inside a tenant (two shops may service the same car).
create unique index vehicles_tenant_vin_key on app.vehicles (tenant_id, vin) where vin is not null;
create index vehicles_tenant_customer_idx on app.vehicles (tenant_id, customer_id);
comment on table app.vehicles is 'Tenant-owned: vehicles of the shop''s customers. RLS forced; policies from policies/tenant_isolation.sql.';

