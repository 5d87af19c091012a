-- Intent: versioned catalog changes (issue 35). Every change to a shop's catalog (app.services,
-- app.service_operations) belongs to a numbered catalog version, whoever made it and however:
--   * app.catalog_heads: each shop's current catalog version (0 before its first change); its
--     row lock serialises versions, so two transactions never both build version N+1;
--   * app.catalog_versions: one row per version: who, when, how (a plain write through the
--     catalog routes, an applied change set, a restore of an earlier version);
--   * app.catalog_version_changes: each row a version changed, as its old and new image, written
--     by the statement triggers of policies/catalog_versions.sql. The catalog as of version k is
--     today's catalog with the changes of every later version undone; restoring k writes that as
--     a new version, so history is never rewritten;
--   * app.catalog_change_sets and app.catalog_change_set_items: a batch of changes drafted
--     against a base version, held as data (price change, new operation, edit, deactivation,
--     display order move), dry-run, approved or rejected, applied as one version.
-- The three version tables are append-only to the application (app.append_only_table_names()):
-- app_user reads them under RLS and only the SECURITY DEFINER recorder writes them.
-- Rollback plan: forward fix. Before any shop has versions a new migration may drop the five
-- tables (policies/catalog_versions.sql first); afterwards the versions are the catalog's
-- history and its audit, and are kept.

-- Up Migration

create table app.catalog_heads (
  tenant_id uuid    not null,
  version   integer not null,
  constraint catalog_heads_pkey primary key (tenant_id),
  constraint catalog_heads_tenant_fkey foreign key (tenant_id) references app.tenants (id),
  constraint catalog_heads_version_check check (version >= 0)
);
comment on table app.catalog_heads is 'Tenant-owned, written only by app.catalog_begin_version: the shop''s current catalog version (0: the catalog before its first version; no row: likewise). Its row lock serialises versions.';

create table app.catalog_change_sets (
  tenant_id        uuid        not null default app.current_tenant_id(),
  id               uuid        not null default gen_random_uuid(),
  title            text        not null,
  status           text        not null default 'draft',
  base_version     integer     not null,
  author_user_id   uuid        not null,
  approved_by      uuid,
  approved_at      timestamptz,
  rejected_by      uuid,
  rejected_at      timestamptz,
  rejection_reason text,
  applied_version  integer,
  applied_at       timestamptz,
  created_at       timestamptz not null default now(),
  updated_at       timestamptz not null default now(),
  constraint catalog_change_sets_pkey primary key (tenant_id, id),
  constraint catalog_change_sets_title_check check (length(title) between 1 and 200),
  constraint catalog_change_sets_status_check check (status in ('draft', 'approved', 'applied', 'rejected')),
  constraint catalog_change_sets_base_version_check check (base_version >= 0),
  -- Who approved, when: exactly for approved and applied sets (a set rejected after approval keeps its approval).
  constraint catalog_change_sets_approval_check check (
    (approved_by is null) = (approved_at is null)
    and (status not in ('approved', 'applied') or approved_by is not null)
    and (status <> 'draft' or approved_by is null)),
  -- Who rejected, when and why: exactly for rejected sets.
  constraint catalog_change_sets_rejection_check check (
    (status = 'rejected') = (rejected_by is not null)
    and (rejected_by is null) = (rejected_at is null)
    and (rejected_by is null) = (rejection_reason is null)),
  constraint catalog_change_sets_rejection_reason_check check (length(rejection_reason) between 1 and 1000),
  -- The version an applied set became: exactly for applied sets, after its base.
  constraint catalog_change_sets_applied_check check (
    (status = 'applied') = (applied_version is not null)
    and (applied_version is null) = (applied_at is null)
    and (applied_version is null or applied_version > base_version))
);
create index catalog_change_sets_tenant_created_idx on app.catalog_change_sets (tenant_id, created_at, id);
comment on table app.catalog_change_sets is 'Tenant-owned: batches of catalog changes drafted against base_version; draft → approved → applied, or → rejected (with who and why). Only drafts change (app.catalog_change_set_guard).';

create table app.catalog_change_set_items (
  tenant_id        uuid        not null default app.current_tenant_id(),
  id               uuid        not null default gen_random_uuid(),
  change_set_id    uuid        not null,
  position         integer     not null,
  kind             text        not null,
  operation_id     uuid,
  service_id       uuid,
  internal_code    text,
  name             text,
  subcategory      text,
  price_cents      integer,
  duration_minutes integer,
  display_order    integer,
  created_at       timestamptz not null default now(),
  constraint catalog_change_set_items_pkey primary key (tenant_id, id),
  constraint catalog_change_set_items_change_set_fkey foreign key (tenant_id, change_set_id)
    references app.catalog_change_sets (tenant_id, id) on delete cascade,
  constraint catalog_change_set_items_operation_fkey foreign key (tenant_id, operation_id) references app.service_operations (tenant_id, id),
  constraint catalog_change_set_items_service_fkey foreign key (tenant_id, service_id) references app.services (tenant_id, id),
  constraint catalog_change_set_items_position_key unique (tenant_id, change_set_id, position),
  constraint catalog_change_set_items_position_check check (position between 1 and 10000),
  constraint catalog_change_set_items_kind_check check (kind in ('price', 'new_operation', 'edit', 'deactivate', 'move')),
  -- The bounds of app.service_operations (and the API's request schema), told before applying.
  constraint catalog_change_set_items_values_check check (
    (internal_code is null or internal_code ~ '^[A-Za-z0-9._-]{1,40}$')
    and (name is null or (length(name) between 1 and 200 and name ~ '\S'))
    and (subcategory is null or length(subcategory) between 1 and 200)
    and (price_cents is null or price_cents between 0 and 100000000)
    and (duration_minutes is null or duration_minutes between 1 and 100000)
    and (display_order is null or display_order between -1000000 and 1000000)),
  -- What each kind carries, and nothing else:
  --   price: an operation and its new price; move: an operation and its new display_order;
  --   deactivate: an operation; edit: an operation and at least one of service, code, name,
  --   subcategory, duration; new_operation: what creating an operation requires.
  constraint catalog_change_set_items_shape_check check (case kind
    when 'price' then operation_id is not null and price_cents is not null
      and num_nonnulls(service_id, internal_code, name, subcategory, duration_minutes, display_order) = 0
    when 'move' then operation_id is not null and display_order is not null
      and num_nonnulls(service_id, internal_code, name, subcategory, price_cents, duration_minutes) = 0
    when 'deactivate' then operation_id is not null
      and num_nonnulls(service_id, internal_code, name, subcategory, price_cents, duration_minutes, display_order) = 0
    when 'edit' then operation_id is not null and num_nonnulls(service_id, internal_code, name, subcategory, duration_minutes) >= 1
      and num_nonnulls(price_cents, display_order) = 0
    when 'new_operation' then operation_id is null
      and num_nonnulls(service_id, internal_code, name, price_cents, duration_minutes) = 5
  end)
);
create index catalog_change_set_items_operation_idx on app.catalog_change_set_items (tenant_id, operation_id);
create index catalog_change_set_items_service_idx on app.catalog_change_set_items (tenant_id, service_id);
comment on table app.catalog_change_set_items is 'Tenant-owned: the items of a change set, applied in position order; the shape of each kind is a CHECK (catalog_change_set_items_shape_check).';

create table app.catalog_versions (
  tenant_id     uuid        not null,
  version       integer     not null,
  created_at    timestamptz not null default now(),
  actor_user_id uuid,
  actor_role    text,
  request_id    text,
  kind          text        not null,
  change_set_id uuid,
  restored_from integer,
  xact          xid8        not null default pg_current_xact_id(),
  constraint catalog_versions_pkey primary key (tenant_id, version),
  constraint catalog_versions_tenant_xact_key unique (tenant_id, xact),
  constraint catalog_versions_tenant_fkey foreign key (tenant_id) references app.tenants (id),
  constraint catalog_versions_change_set_fkey foreign key (tenant_id, change_set_id) references app.catalog_change_sets (tenant_id, id),
  constraint catalog_versions_version_check check (version >= 1),
  constraint catalog_versions_kind_check check (kind in ('write', 'change_set', 'restore')),
  constraint catalog_versions_source_check check (
    (kind = 'change_set') = (change_set_id is not null)
    and (kind = 'restore') = (restored_from is not null)
    and (restored_from is null or restored_from between 0 and version - 1))
);
comment on table app.catalog_versions is 'Tenant-owned, append-only: one row per catalog version: who (actor, role, request), when, and how (a plain catalog write, an applied change set, a restore of an earlier version). Its changes are in app.catalog_version_changes.';

alter table app.catalog_change_sets
  add constraint catalog_change_sets_applied_version_fkey foreign key (tenant_id, applied_version) references app.catalog_versions (tenant_id, version);

create table app.catalog_version_changes (
  tenant_id uuid   not null,
  id        bigint generated always as identity,
  version   integer not null,
  entity    text   not null,
  entity_id uuid   not null,
  old       jsonb,
  new       jsonb,
  constraint catalog_version_changes_pkey primary key (tenant_id, id),
  constraint catalog_version_changes_version_fkey foreign key (tenant_id, version) references app.catalog_versions (tenant_id, version),
  constraint catalog_version_changes_entity_check check (entity in ('service', 'service_operation')),
  constraint catalog_version_changes_image_check check (old is not null or new is not null)
);
create index catalog_version_changes_version_idx on app.catalog_version_changes (tenant_id, version);
create index catalog_version_changes_entity_idx on app.catalog_version_changes (tenant_id, entity, entity_id, version);
comment on table app.catalog_version_changes is 'Tenant-owned, append-only: each catalog row a version changed, as its old and new image (NULL: absent). Written by the statement triggers of policies/catalog_versions.sql only.';
