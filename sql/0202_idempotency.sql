-- Intent: Idempotency-Key storage: the first POST's status and body, stored in the same transaction as its effect.
-- Rollback plan: forward fix preferred; the table holds only 24 h of replay data, so a new
-- migration may drop app.idempotency_keys and app.idempotency_cleanup() without loss of record.

-- Up Migration

create table app.idempotency_keys (
  tenant_id       uuid        not null default app.current_tenant_id(),
  key             text        not null,
  user_id         uuid        not null,
  fingerprint     text        not null,
  response_status integer     not null,
  response_body   jsonb,
  created_at      timestamptz not null default now(),
  expires_at      timestamptz not null default now() + interval '24 hours',
  constraint idempotency_keys_pkey primary key (tenant_id, key),
  constraint idempotency_keys_tenant_id_fkey foreign key (tenant_id) references app.tenants (id),
  constraint idempotency_keys_key_check check (length(key) between 1 and 255)
);
create index idempotency_keys_expires_at_idx on app.idempotency_keys (expires_at);
comment on table app.idempotency_keys is 'Tenant-owned: replay data for POSTs carrying an Idempotency-Key (24 h). RLS forced; policies from policies/tenant_isolation.sql.';

