-- Intent: the first tenant-owned table, customers, keyed (tenant_id, id).
-- Rollback plan: forward fix preferred. If the table must go before it holds data,
-- a new migration drops it; otherwise restore the pre-migration snapshot.

-- Up Migration

create table app.customers (
  tenant_id  uuid        not null default app.current_tenant_id(),
  id         uuid        not null default gen_random_uuid(),
  name       text        not null,
  email      text,
  phone      text,
  notes      text,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  constraint customers_pkey primary key (tenant_id, id),
  constraint customers_tenant_id_fkey foreign key (tenant_id) references app.tenants (id),
  constraint customers_name_check check (length(name) between 1 and 200),
  constraint customers_email_check check (email is null or (email ~ '^[^@\s]+@[^@\s]+$' and length(email) <= 320)),
  constraint customers_phone_check check (phone is null or length(phone) between 1 and 40),
  constraint customers_notes_check check (notes is null or length(notes) <= 4000)
);
create index customers_tenant_id_name_idx on app.customers (tenant_id, name, id);
comment on table app.customers is 'Tenant-owned: the shop''s customers. RLS forced; policies from policies/tenant_isolation.sql.';

