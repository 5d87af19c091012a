-- Intent: the service catalog v2: groups (services) and the operations a shop sells.
-- Rollback plan: forward fix preferred; before the tables hold data a new migration may drop
-- them, otherwise restore the snapshot deploy/migrate.sh took.

-- Up Migration

create table app.services (
  tenant_id     uuid        not null default app.current_tenant_id(),
  id            uuid        not null default gen_random_uuid(),
  name          text        not null,
  display_order integer     not null default 0,
  created_at    timestamptz not null default now(),
  updated_at    timestamptz not null default now(),
  constraint services_pkey primary key (tenant_id, id),
  constraint services_tenant_name_key unique (tenant_id, name),
  constraint services_name_check check (length(name) between 1 and 200)
);
comment on table app.services is 'Tenant-owned: catalog groups (Brakes, Tyres, ...), ordered by display_order.';

create table app.service_operations (
  tenant_id        uuid        not null default app.current_tenant_id(),
  id               uuid        not null default gen_random_uuid(),
  service_id       uuid        not null,
  internal_code    text        not null,
  name             text        not null,
  subcategory      text,
  display_order    integer,
  price_cents      integer     not null,
  duration_minutes integer     not null,
  active           boolean     not null default true,
  created_at       timestamptz not null default now(),
  updated_at       timestamptz not null default now(),
  constraint service_operations_pkey primary key (tenant_id, id),
  constraint service_operations_service_fkey foreign key (tenant_id, service_id) references app.services (tenant_id, id),
  constraint service_operations_tenant_code_key unique (tenant_id, internal_code),
  constraint service_operations_code_check check (internal_code ~ '^[A-Za-z0-9._-]{1,40}$'),
  constraint service_operations_name_check check (length(name) between 1 and 200),
  constraint service_operations_price_check check (price_cents >= 0),
  constraint service_operations_duration_check check (duration_minutes > 0)
);
create index service_operations_tenant_order_idx on app.service_operations (tenant_id, display_order, name);
create index service_operations_tenant_service_idx on app.service_operations (tenant_id, service_id);
comment on table app.service_operations is 'Tenant-owned: sellable operations with price and duration; listed display_order ASC NULLS LAST, name ASC.';

