-- Intent: appointments: a customer's (optional) vehicle, booked for a member of the tenant,
-- with the status machine and the no-double-booking rule enforced by the database.
-- Rollback plan: forward fix preferred; before the table holds data a new migration may drop
-- it (and the extension stays, harmlessly), otherwise restore the pre-migration snapshot.

-- Up Migration

-- btree_gist lets one exclusion constraint combine equality (tenant, assignee) with range overlap.
create extension if not exists btree_gist;

-- The target of appointments' composite (tenant, customer, vehicle) reference.
alter table app.vehicles add constraint vehicles_tenant_customer_id_key unique (tenant_id, customer_id, id);

create table app.appointments (
  tenant_id        uuid        not null default app.current_tenant_id(),
  id               uuid        not null default gen_random_uuid(),
  customer_id      uuid        not null,
  vehicle_id       uuid,
  assigned_user_id uuid,
  starts_at        timestamptz not null,
  ends_at          timestamptz not null,
  status           text        not null default 'scheduled',
  notes            text,
  created_at       timestamptz not null default now(),
  updated_at       timestamptz not null default now(),
  constraint appointments_pkey primary key (tenant_id, id),
  constraint appointments_customer_fkey foreign key (tenant_id, customer_id) references app.customers (tenant_id, id),
  -- The vehicle must belong to this very customer (and tenant).
  constraint appointments_vehicle_fkey foreign key (tenant_id, customer_id, vehicle_id) references app.vehicles (tenant_id, customer_id, id),
  -- The assignee must be a member of the tenant.
  constraint appointments_assignee_fkey foreign key (tenant_id, assigned_user_id) references app.memberships (tenant_id, user_id),
  constraint appointments_time_check check (starts_at < ends_at),
  constraint appointments_status_check check (status in ('scheduled', 'in_progress', 'done', 'cancelled')),
  constraint appointments_notes_check check (notes is null or length(notes) <= 4000),
  -- One assignee never holds two overlapping live appointments.
  constraint appointments_assignee_overlap exclude using gist (
    tenant_id with =, assigned_user_id with =, tstzrange(starts_at, ends_at) with &&
  ) where (status <> 'cancelled' and assigned_user_id is not null),
  constraint appointments_tenant_customer_id_key unique (tenant_id, customer_id, id)
);
create index appointments_tenant_starts_idx on app.appointments (tenant_id, starts_at);
comment on table app.appointments is 'Tenant-owned: bookings. Status machine in app.appointment_status_guard(); no overlapping live bookings per assignee.';

