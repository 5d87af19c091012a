-- Intent: the tamper-evident audit trail: one append-only table written by statement-level
-- triggers (attached to every tenant table by policies/audit.sql), sealed into a per-tenant
-- hash chain asynchronously (app.audit_seal), checked by app.audit_verify.
-- Rollback plan: none in place; the audit is evidence. Forward fix only; a snapshot restore
-- (runbooks/rollback.md) brings back the audit as it was at the snapshot.

-- Up Migration

create table app.audit_log (
  tenant_id     uuid        not null,
  id            bigint      generated always as identity,
  occurred_at   timestamptz not null default clock_timestamp(),
  actor_user_id uuid,
  actor_role    text,
  request_id    text,
  action        text        not null,
  entity        text        not null,
  entity_id     text,
  change        jsonb       not null default '{}'::jsonb,
  -- The chain, filled in by app.audit_seal: position, previous hash, this row's hash.
  seq           bigint,
  prev_hash     text,
  hash          text,
  constraint audit_log_pkey primary key (tenant_id, id),
  constraint audit_log_tenant_fkey foreign key (tenant_id) references app.tenants (id),
  constraint audit_log_tenant_seq_key unique (tenant_id, seq),
  constraint audit_log_action_check check (action ~ '^[a-z][a-z0-9_.]{1,63}$'),
  constraint audit_log_sealed_check check ((seq is null) = (hash is null))
);
create index audit_log_tenant_occurred_idx on app.audit_log (tenant_id, occurred_at, id);
create index audit_log_unsealed_idx on app.audit_log (tenant_id, id) where seq is null;
comment on table app.audit_log is 'Tenant-owned, append-only: every mutation of a tenant table and explicit events. app_user reads it through RLS; nobody updates or deletes it but app.audit_seal (chain columns only) and app.audit_purge.';

