-- Intent: the database accepts context proofs under more than one key, so CONTEXT_KEY rotates
-- with no refused request: install the next key beside the current one, roll the API instances
-- over to it, retire the old key. Each key is named by its key id (the first 16 hex characters
-- of HMAC-SHA256(key, 'fingerprint'), which the API computes from CONTEXT_KEY too), and a proof
-- names the key it was signed with. One key is the primary: the one operators declare current.
-- Rollback plan: forward fix (the previous policies expect the single row with id 1).

-- Up Migration

alter table app.context_keys add column key_id text;
alter table app.context_keys add column is_primary boolean not null default true;
-- The key id of an installed key, from its pads: HMAC-SHA256(key, 'fingerprint') is
-- sha256(opad || sha256(ipad || 'fingerprint')).
update app.context_keys
   set key_id = left(encode(sha256(opad || sha256(ipad || convert_to('fingerprint', 'UTF8'))), 'hex'), 16);
alter table app.context_keys alter column key_id set not null;
alter table app.context_keys alter column is_primary set default false;
alter table app.context_keys drop constraint context_keys_pkey;
alter table app.context_keys drop constraint context_keys_single_check;
alter table app.context_keys drop column id;
alter table app.context_keys add constraint context_keys_pkey primary key (key_id);
alter table app.context_keys add constraint context_keys_key_id_check check (key_id ~ '^[0-9a-f]{16}$');
create unique index context_keys_one_primary_idx on app.context_keys (is_primary) where is_primary;
comment on table app.context_keys is 'Global: the keys the API signs context proofs with (HMAC-SHA256 pads), by key id; one primary. Owner only; installed by app.install_context_key(), rotated by app.add_context_key() / promote / retire.';
