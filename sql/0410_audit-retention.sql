-- Intent: retention that leaves a trace. app.audit_purge (policies/audit_functions.sql), the only
-- way audit rows leave, records each purge here: the tenant, the chain position it purged
-- through and that row's hash, the cutoff, when, who (session_user) and an optional operator
-- note, with the id of the audit.purged event it wrote into the tenant's own chain. `audit
-- verify` accepts missing positions only when such a record covers them: before this, deleting a
-- tenant's oldest rows out of band (the append-only guard switched off by the owner), anchored
-- position included, read as retention and verified "intact".
-- Global (named in app.global_table_names(), policies/registry.sql): no application role reads
-- it; append-only (guard in policies/audit_functions.sql).
-- Rollback plan: forward fix; no Down section. This release's policies/ (app.audit_purge,
-- app.audit_verify) need the table, and a purge record is evidence: dropping it would let the
-- purged positions read as deleted history.

-- Up Migration

create table app.audit_purges (
  id                 bigint      generated always as identity,
  tenant_id          uuid        not null,
  purged_through_seq bigint      not null,
  through_hash       text        not null,
  rows_purged        integer     not null,
  cutoff             timestamptz not null,
  purged_at          timestamptz not null default clock_timestamp(),
  actor              text        not null default session_user,
  note               text,
  audit_id           bigint      not null,
  constraint audit_purges_pkey primary key (id),
  constraint audit_purges_tenant_fkey foreign key (tenant_id) references app.tenants (id),
  constraint audit_purges_tenant_through_key unique (tenant_id, purged_through_seq),
  constraint audit_purges_rows_check check (purged_through_seq > 0 and rows_purged > 0)
);
comment on table app.audit_purges is 'Global, append-only: each retention purge of a tenant''s audit chain (app.audit_purge): positions 1 to purged_through_seq are gone by design, recorded with cutoff, time, actor and note, and an audit.purged event (audit_id) in the tenant''s chain.';
