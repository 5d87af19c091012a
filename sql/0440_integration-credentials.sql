-- Intent: each shop's third-party credentials (payment provider, parts supplier, SMS gateway),
-- stored only as envelopes the API encrypts before they reach the database
-- (server/core/credentialCipher.ts: AES-256-GCM under CREDENTIALS_KEYS, bound to tenant and
-- provider): no key and no plaintext is ever sent here. key_id is read from the envelope, so the
-- two cannot disagree; version counts every change (policies/integrations.sql), for the key
-- rotation's compare-and-swap (`npm run cli -- credentials rotate`).
-- Tenant-owned: RLS, policies, the write check (integrations:manage) and the audit come from the
-- registry like every tenant table. The audit redacts the envelope (app.audit_redact drops every
-- column whose name holds "credential").
-- Rollback plan: forward fix. Before any credential is stored a new migration may drop the table;
-- afterwards dropping it loses the shops' credentials (they would enter them again).

-- Up Migration

create table app.integration_credentials (
  tenant_id           uuid        not null default app.current_tenant_id(),
  id                  uuid        not null default gen_random_uuid(),
  provider            text        not null,
  credential_envelope text        not null,
  key_id              text        generated always as (split_part(credential_envelope, '.', 2)) stored,
  last4               text        not null,
  version             bigint      not null default 1,
  created_at          timestamptz not null default now(),
  changed_at          timestamptz not null default now(),
  rotated_at          timestamptz,
  constraint integration_credentials_pkey primary key (tenant_id, id),
  constraint integration_credentials_tenant_fkey foreign key (tenant_id) references app.tenants (id),
  constraint integration_credentials_tenant_provider_key unique (tenant_id, provider),
  constraint integration_credentials_provider_check check (provider ~ '^[a-z][a-z0-9_-]{0,62}$'),
  -- The envelope's form is the API's (it alone encrypts); the database bounds its size. A
  -- stricter pattern here would also refuse the generic probe rows of verify/verify_rls.sql.
  constraint integration_credentials_envelope_check check (length(credential_envelope) <= 12000),
  constraint integration_credentials_version_check check (version > 0)
);
create index integration_credentials_key_id_idx on app.integration_credentials (key_id);
comment on table app.integration_credentials is 'Tenant-owned: third-party credentials, encrypted by the API (envelope: key id, nonces, ciphertext; never the key or the plaintext). The API answers metadata only (last4, key id, times). version: +1 on every change (compare-and-swap of the key rotation).';
