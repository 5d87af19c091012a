-- Intent: the platform's own record of each shop's life (issue 34): created, suspended, resumed,
-- exported, purged, with actor, reason and details (a purge's row counts per table). Global
-- (named in app.global_table_names()) and append-only (guard in policies/tenant_lifecycle.sql),
-- with no foreign key to app.tenants: a purged shop's own audit is gone, and this record stays.
-- A suspension's reason and time are also kept on the shop's row, which the opener reads.
-- Rollback plan: forward fix; no Down section. The records are evidence of purges; dropping the
-- columns of app.tenants loses only the latest reason (the events keep every one).

-- Up Migration

create table app.tenant_lifecycle_events (
  id            bigint      generated always as identity,
  tenant_id     uuid        not null,
  slug          text        not null,
  action        text        not null,
  actor         text        not null,
  actor_user_id uuid,
  reason        text,
  detail        jsonb       not null default '{}'::jsonb,
  occurred_at   timestamptz not null default clock_timestamp(),
  constraint tenant_lifecycle_events_pkey primary key (id),
  constraint tenant_lifecycle_events_action_check check (action in ('tenant.created', 'tenant.suspended', 'tenant.resumed', 'tenant.exported', 'tenant.imported', 'tenant.purged')),
  constraint tenant_lifecycle_events_actor_check check (length(actor) between 1 and 200),
  constraint tenant_lifecycle_events_reason_check check (reason is null or length(reason) between 1 and 500)
);
create index tenant_lifecycle_events_tenant_idx on app.tenant_lifecycle_events (tenant_id, id);
comment on table app.tenant_lifecycle_events is 'Global, append-only: every step of a shop''s life (created, suspended, resumed, exported, imported, purged) with actor, reason and details; a purge''s row counts per table stay here after the shop''s own rows and audit are gone.';

alter table app.tenants
  add column status_reason     text,
  add column status_changed_at timestamptz,
  add constraint tenants_status_reason_check check (status_reason is null or length(status_reason) between 1 and 500);
comment on column app.tenants.status_reason is 'Why the shop has its status (the last suspension or resumption''s reason); every change is in app.tenant_lifecycle_events.';
