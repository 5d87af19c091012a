-- Intent: the app schema and the global (cross-tenant) tables: tenants, users, memberships.
-- Rollback plan: none in place. This is the first migration; restore the snapshot
-- that deploy/migrate.sh takes before migrating (runbooks/rollback.md).

-- Up Migration

create schema if not exists app;
comment on schema app is 'Service-shop application schema. Tenant-owned tables are protected by RLS; global tables are listed in app.global_table_names().';

-- Extensions are not assumed: gen_random_uuid() is built in since PostgreSQL 13.

create table app.tenants (
  id         uuid        not null default gen_random_uuid(),
  slug       text        not null,
  name       text        not null,
  status     text        not null default 'active',
  created_at timestamptz not null default now(),
  constraint tenants_pkey primary key (id),
  constraint tenants_slug_key unique (slug),
  constraint tenants_slug_check check (slug ~ '^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$'),
  constraint tenants_name_check check (length(name) between 1 and 200),
  constraint tenants_status_check check (status in ('active', 'suspended'))
);
comment on table app.tenants is 'Global: one row per workshop (tenant). Reached by app_user only through SECURITY DEFINER functions.';

create table app.users (
  id                uuid        not null default gen_random_uuid(),
  email             text        not null,
  password_hash     text,
  is_platform_admin boolean     not null default false,
  created_at        timestamptz not null default now(),
  constraint users_pkey primary key (id),
  constraint users_email_check check (email ~ '^[^@\s]+@[^@\s]+$' and length(email) <= 320)
);
create unique index users_email_lower_key on app.users (lower(email));
comment on table app.users is 'Global: people who can log in. Email is unique case-insensitively. password_hash is a scrypt hash (never returned by the API).';

create table app.memberships (
  tenant_id  uuid        not null,
  user_id    uuid        not null,
  role       text        not null,
  created_at timestamptz not null default now(),
  constraint memberships_pkey primary key (tenant_id, user_id),
  constraint memberships_tenant_id_fkey foreign key (tenant_id) references app.tenants (id) on delete cascade,
  constraint memberships_user_id_fkey foreign key (user_id) references app.users (id) on delete cascade,
  constraint memberships_role_check check (role in ('owner', 'admin', 'manager', 'staff', 'accountant'))
);
create index memberships_user_id_idx on app.memberships (user_id);
comment on table app.memberships is 'Global: which user belongs to which tenant, with which role. Checked in SQL when a request context is opened.';
