-- Intent: the tables behind an unforgeable tenant context and BI access by grant:
--   * app.context_keys: the key the API signs context proofs with (HMAC-SHA256), as its
--     inner and outer pads; readable by the owner role only;
--   * app.context_seal_key: a key that never leaves the database, sealing the context that
--     policies read to this backend and this transaction;
--   * app.context_nonces: proofs already used (a proof opens one transaction, once);
--   * app.bi_grants: which tenants each BI login (a member of app_bi) may read.
-- The functions that use them are in policies/context.sql and policies/bi.sql.
-- Rollback plan: forward fix. The tables hold no business data: dropping them (after
-- re-applying the previous policies/) loses only keys, which are installed again.

-- Up Migration

create table app.context_keys (
  id   integer not null default 1,
  ipad bytea   not null,
  opad bytea   not null,
  installed_at timestamptz not null default now(),
  constraint context_keys_pkey primary key (id),
  constraint context_keys_single_check check (id = 1),
  constraint context_keys_pad_check check (length(ipad) = 64 and length(opad) = 64)
);
comment on table app.context_keys is 'Global: the API''s context-proof key (HMAC-SHA256 pads). Owner only; installed by app.install_context_key().';

create table app.context_seal_key (
  id   integer not null default 1,
  ipad bytea   not null,
  opad bytea   not null,
  constraint context_seal_key_pkey primary key (id),
  constraint context_seal_key_single_check check (id = 1),
  constraint context_seal_key_pad_check check (length(ipad) = 64 and length(opad) = 64)
);
comment on table app.context_seal_key is 'Global: the database-only key sealing the transaction''s context to its backend and transaction. Owner only; never leaves the database.';

-- Unlogged: a used nonce matters only until its proof expires (seconds), so it needs no WAL;
-- after a crash the table is empty and proofs issued before the crash expire within their TTL.
create unlogged table app.context_nonces (
  nonce      text        not null,
  expires_at timestamptz not null,
  constraint context_nonces_pkey primary key (nonce),
  constraint context_nonces_nonce_check check (length(nonce) between 16 and 64)
);
create index context_nonces_expires_at_idx on app.context_nonces (expires_at);
comment on table app.context_nonces is 'Global: nonces of context proofs already used, kept until the proof expires. Owner only.';

create table app.bi_grants (
  role_name  name        not null,
  tenant_id  uuid        not null,
  granted_at timestamptz not null default now(),
  constraint bi_grants_pkey primary key (role_name, tenant_id),
  constraint bi_grants_tenant_fkey foreign key (tenant_id) references app.tenants (id) on delete cascade
);
comment on table app.bi_grants is 'Global: the tenants each BI login may read through the views. Changed only by `npm run cli -- bi grant|revoke` (audited).';

-- The previous context openers took the caller's word for the user; they go, so that no
-- release can open a context without a proof.
drop function if exists app.open_tenant_context(uuid, text[], uuid, text);
drop function if exists app.open_tenant_context(uuid, text[], uuid, text, text, boolean);
-- Likewise the login recorder that took its user on trust (policies/audit_functions.sql has the one with a proof).
drop function if exists app.record_login(uuid, boolean, text);
