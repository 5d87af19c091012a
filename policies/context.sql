-- The tenant context: what RLS policies, role checks and the audit read. It is established
-- only by the openers of policies/openers.sql, from a proof the API signs and the database
-- checks once (policies/proofs.sql), or by the owner's app.open_operator_context.
-- Re-appliable: create or replace; the seal key is created once.
--
-- For reviewers:
--   * The opened context is kept in two transaction-local settings: app.context
--     (tenant | user | role | request id | permissions | mode) and app.context_seal, an HMAC of
--     it bound to pg_backend_pid() and the transaction's start under app.context_seal_key, a key
--     that never leaves the database. app.verified_context() recomputes the seal: a setting
--     written by hand, copied from another transaction or another connection, or edited after
--     opening reads as NULL, so it yields no rows and no writes (the policies fail closed).
--     Two transactions share a start time only inside one simple-protocol message, and the
--     openers refuse to run in a message of more than one statement (policies/proofs.sql), so a
--     seal copied into session settings dies with its transaction.
--   * permissions: what the transaction may use, fixed when it opens: the permission the proof
--     names and those it opens (app.permissions_opened_by), as far as the member's role holds
--     them; '*' for operator contexts (the whole role). app.has_permission reads them, so a
--     proof for customers:read adds no member and renames no shop whatever the role.
--   * mode: r (read: the transaction is read-only, PostgreSQL refuses every write), w (write),
--     o (operator).
--   * Readers are called by policies as (select app.current_tenant_id()): one verification
--     per statement (an initplan), about 5 µs.
-- HMAC-SHA256 is computed from built-ins (sha256(), PostgreSQL 11+) with precomputed pads, so
-- neither pgcrypto nor any other extension is needed.

/* An HMAC-SHA256 pad: the key (at most 64 bytes) zero-padded to 64 bytes, each byte XOR p_byte (0x36 inner, 0x5c outer). */
create or replace function app.hmac_pad(p_key bytea, p_byte integer) returns bytea
language sql immutable parallel safe
as $$
  select decode(string_agg(lpad(to_hex(get_byte(k, i) # p_byte), 2, '0'), '' order by i), 'hex')
    from (select p_key || decode(repeat('00', 64 - length(p_key)), 'hex') as k) x, generate_series(0, 63) i
$$;
revoke execute on function app.hmac_pad(bytea, integer) from public;

-- The seal key: 64 random bytes (from four gen_random_uuid(), 488 random bits), as pads.
insert into app.context_seal_key (id, ipad, opad)
select 1, app.hmac_pad(k, 54), app.hmac_pad(k, 92)
  from (select decode(replace(gen_random_uuid()::text || gen_random_uuid()::text
                              || gen_random_uuid()::text || gen_random_uuid()::text, '-', ''), 'hex') as k) x
on conflict (id) do nothing;

/*
 * HMAC-SHA256, hex, from a key's precomputed pads. Inlined wherever it is called: plain SQL
 * without SET, and STABLE like convert_to() in its body (declared IMMUTABLE, PostgreSQL would
 * refuse to inline it and plan it again on every call: measured 29 µs against 6 µs).
 */
create or replace function app.hmac_sha256_hex(p_ipad bytea, p_opad bytea, p_message text) returns text
language sql stable parallel safe
as $$ select encode(sha256(p_opad || sha256(p_ipad || convert_to(p_message, 'UTF8'))), 'hex') $$;
revoke execute on function app.hmac_sha256_hex(bytea, bytea, text) from public;

/*
 * Whether a tenant ref is a uuid's text (any case) rather than a slug. Inlined; plain string
 * functions instead of a case-insensitive regular expression, which cost the opener 1 µs a call.
 */
create or replace function app.is_uuid_text(p text) returns boolean
language sql immutable parallel safe
as $$ select length(p) = 36 and translate(p, '0123456789abcdefABCDEF', '') = '----'
             and substr(p, 9, 1) = '-' and substr(p, 14, 1) = '-' and substr(p, 19, 1) = '-' and substr(p, 24, 1) = '-' $$;
revoke execute on function app.is_uuid_text(text) from public;

/* What a seal signs: this backend, this transaction's start (µs) and the value. Inlined. */
create or replace function app.seal_input(p_value text) returns text
language sql stable
as $$ select pg_backend_pid()::text || '|' || (extract(epoch from transaction_timestamp()) * 1000000)::bigint::text || '|' || p_value $$;
revoke execute on function app.seal_input(text) from public;

-- Its first form had four fields; the context now also carries its permissions and mode.
drop function if exists app.context_value(uuid, uuid, text, text);

/*
 * The context value: tenant | user | role | request id (no '|' in it, at most 128 characters) |
 * permissions (comma-separated, or '*') | mode (r, w or o). A user context (no tenant) has an
 * empty tenant field. Inlined.
 */
create or replace function app.context_value(p_tenant_id uuid, p_user_id uuid, p_role text, p_request_id text, p_permissions text, p_mode text)
returns text
language sql stable parallel safe
as $$ select concat_ws('|', coalesce(p_tenant_id::text, ''), coalesce(p_user_id::text, ''), coalesce(p_role, ''),
                       coalesce(left(translate(p_request_id, '|', '_'), 128), ''), coalesce(p_permissions, ''), p_mode) $$;
revoke execute on function app.context_value(uuid, uuid, text, text, text, text) from public;

/* The key id of a context key: the first 16 hex characters of HMAC-SHA256(key, 'fingerprint'), as server/db/contextProof.ts computes it. */
create or replace function app.context_key_id(p_key bytea) returns text
language sql immutable parallel safe
as $$ select left(app.hmac_sha256_hex(app.hmac_pad(p_key, 54), app.hmac_pad(p_key, 92), 'fingerprint'), 16) $$;
revoke execute on function app.context_key_id(bytea) from public;

/* Refuses a context key of the wrong size (the CONTEXT_KEY the API holds: 32 to 64 bytes). */
create or replace function app.check_context_key(p_key bytea) returns bytea
language plpgsql immutable
set search_path = pg_catalog, pg_temp
as $$
begin
  if p_key is null or length(p_key) not between 32 and 64 then
    raise exception 'a context key has 32 to 64 bytes, not %', coalesce(length(p_key), 0)
      using errcode = '22023', hint = 'CONTEXT_KEY is 64 to 128 hex characters (openssl rand -hex 32)';
  end if;
  return p_key;
end
$$;
revoke execute on function app.check_context_key(bytea) from public;

/*
 * Installs the API's context key as the only one, replacing any other: from then on only proofs
 * signed with it open a context. What `npm start` does at every start, and a deploy; a rotation
 * uses app.add_context_key instead, so proofs under the old key keep opening meanwhile. Owner
 * only. Changes nothing when it is already the only key.
 */
create or replace function app.install_context_key(p_key bytea) returns void
language plpgsql volatile
set search_path = pg_catalog, pg_temp
as $$
declare
  v_id text := app.context_key_id(app.check_context_key(p_key));
begin
  delete from app.context_keys k where k.key_id <> v_id;
  insert into app.context_keys (key_id, ipad, opad, installed_at, is_primary)
  values (v_id, app.hmac_pad(p_key, 54), app.hmac_pad(p_key, 92), now(), true)
  on conflict (key_id) do update set is_primary = true where not app.context_keys.is_primary;
end
$$;
revoke execute on function app.install_context_key(bytea) from public;

/* Rotation, step 1: accepts proofs under another key beside those installed (not primary). Returns its key id. Owner only. */
create or replace function app.add_context_key(p_key bytea) returns text
language plpgsql volatile
set search_path = pg_catalog, pg_temp
as $$
declare
  v_id text := app.context_key_id(app.check_context_key(p_key));
begin
  insert into app.context_keys (key_id, ipad, opad, installed_at, is_primary)
  values (v_id, app.hmac_pad(p_key, 54), app.hmac_pad(p_key, 92), now(), false)
  on conflict (key_id) do nothing;
  return v_id;
end
$$;
revoke execute on function app.add_context_key(bytea) from public;

/* Rotation, step 2: makes an installed key the primary (once every API instance signs with it). Owner only. */
create or replace function app.promote_context_key(p_key_id text) returns void
language plpgsql volatile
set search_path = pg_catalog, pg_temp
as $$
begin
  if not exists (select 1 from app.context_keys k where k.key_id = p_key_id) then
    raise exception 'no context key % is installed', p_key_id using errcode = '22023';
  end if;
  update app.context_keys k set is_primary = false where k.is_primary and k.key_id <> p_key_id;
  update app.context_keys k set is_primary = true where k.key_id = p_key_id and not k.is_primary;
end
$$;
revoke execute on function app.promote_context_key(text) from public;

/* Rotation, step 3: stops accepting proofs under a key that is not the primary. Owner only. */
create or replace function app.retire_context_key(p_key_id text) returns void
language plpgsql volatile
set search_path = pg_catalog, pg_temp
as $$
begin
  if exists (select 1 from app.context_keys k where k.key_id = p_key_id and k.is_primary) then
    raise exception 'context key % is the primary: promote another first', p_key_id using errcode = '22023';
  end if;
  delete from app.context_keys k where k.key_id = p_key_id;
  if not found then
    raise exception 'no context key % is installed', p_key_id using errcode = '22023';
  end if;
end
$$;
revoke execute on function app.retire_context_key(text) from public;

-- Its first form answered the one key's fingerprint; with a key ring the API asks whether its key is among them.
drop function if exists app.context_key_fingerprint();

/*
 * The key ids of the installed context keys, the primary first. The API checks its own is among
 * them at boot and in /readyz, so a key the database does not hold is reported at once
 * (CONTEXT_KEY_MISMATCH) instead of as refused requests. A key id reveals nothing that helps
 * forge a proof.
 */
create or replace function app.context_key_ids() returns text[]
language sql stable security definer
set search_path = pg_catalog, pg_temp
as $$
  select coalesce(array_agg(k.key_id order by k.is_primary desc, k.installed_at), '{}') from app.context_keys k
$$;
revoke execute on function app.context_key_ids() from public;

-- Its first form returned void; the context it set is returned now.
do $$
begin
  if exists (select 1 from pg_catalog.pg_proc
              where oid = to_regprocedure('app.set_sealed_context(uuid, uuid, text, text)') and prorettype = 'void'::regtype) then
    drop function app.set_sealed_context(uuid, uuid, text, text);
  end if;
end
$$;

/*
 * Sets an operator context for the current transaction: tenant | user | role | request id, the
 * role's whole permissions ('*'), mode o; sealed to this backend and transaction. Internal: only
 * the owner's openers call it; it runs under its caller's fixed search_path.
 */
create or replace function app.set_sealed_context(p_tenant_id uuid, p_user_id uuid, p_role text, p_request_id text)
returns text
language plpgsql volatile
as $$
declare
  v_ctx text;
  v_seal text;
  v_set text;
begin
  -- Assignments rather than PERFORM: plpgsql evaluates a plain expression directly, while a
  -- PERFORM runs a whole query (measured: most of this function's cost).
  if p_tenant_id is null then
    v_set := set_config('app.context', '', true) || set_config('app.context_seal', '', true);
    return null;
  end if;
  v_ctx := app.context_value(p_tenant_id, p_user_id, p_role, p_request_id, '*', 'o');
  select app.hmac_sha256_hex(s.ipad, s.opad, app.seal_input(v_ctx)) into v_seal from app.context_seal_key s where s.id = 1;
  v_set := set_config('app.context', v_ctx, true) || set_config('app.context_seal', v_seal, true);
  return v_ctx;
end
$$;
revoke execute on function app.set_sealed_context(uuid, uuid, text, text) from public;

/*
 * Sets p_value (app.context_value) as the transaction's context, sealed to this backend and
 * transaction as app.set_sealed_context does, making the transaction read-only first when
 * p_read_only. For the openers of a context without a tenant (a user's own, a platform admin's),
 * after they checked their proof. Internal: it runs under its caller's fixed search_path.
 */
create or replace function app.seal_context_value(p_value text, p_read_only boolean) returns text
language plpgsql volatile
as $$
declare
  s app.context_seal_key;
  v_ctx text;
begin
  select * into s from app.context_seal_key where id = 1;
  if p_read_only then
    v_ctx := set_config('transaction_read_only', 'on', true);
  end if;
  v_ctx := set_config('app.context', p_value, true);
  v_ctx := set_config('app.context_seal', app.hmac_sha256_hex(s.ipad, s.opad, app.seal_input(v_ctx)), true);
  return p_value;
end
$$;
revoke execute on function app.seal_context_value(text, boolean) from public;

/*
 * The verified context of the current transaction ('tenant|user|role|request id'), or NULL
 * when there is none or its seal does not match this backend, this transaction and this
 * content. The one function every reader goes through; SECURITY DEFINER only to read the seal
 * key. plpgsql, so its query plan is cached per session.
 */
create or replace function app.verified_context() returns text
language plpgsql stable security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  v_ctx text := current_setting('app.context', true);
  s app.context_seal_key;
begin
  if v_ctx is null or v_ctx = '' then
    return null;
  end if;
  select * into s from app.context_seal_key where id = 1;
  if app.hmac_sha256_hex(s.ipad, s.opad, app.seal_input(v_ctx)) = current_setting('app.context_seal', true) then
    return v_ctx;
  end if;
  return null;
end
$$;
revoke execute on function app.verified_context() from public;

-- The readers. Single-expression SQL without SET: PostgreSQL inlines them, so a policy's
-- (select app.current_tenant_id()) is one initplan calling app.verified_context() once.
-- NULL without a verified context, never a cast error.

/* The tenant of the current transaction, or NULL. */
create or replace function app.current_tenant_id() returns uuid
language sql stable
as $$ select nullif(split_part(app.verified_context(), '|', 1), '')::uuid $$;
revoke execute on function app.current_tenant_id() from public;

/* The acting user of the current transaction, or NULL (operator contexts have none). */
create or replace function app.current_user_id() returns uuid
language sql stable
as $$ select nullif(split_part(app.verified_context(), '|', 2), '')::uuid $$;
revoke execute on function app.current_user_id() from public;

/* The acting member's role in the current tenant (owner, admin, manager, staff, accountant), or NULL. */
create or replace function app.current_member_role() returns text
language sql stable
as $$ select nullif(split_part(app.verified_context(), '|', 3), '') $$;
revoke execute on function app.current_member_role() from public;

/* The request id of the current transaction (for audit), or NULL. */
create or replace function app.current_request_id() returns text
language sql stable
as $$ select nullif(split_part(app.verified_context(), '|', 4), '') $$;
revoke execute on function app.current_request_id() from public;

/* The permissions the current transaction may use: comma-separated, '*' for the whole role (operators), or NULL. */
create or replace function app.current_permissions() returns text
language sql stable
as $$ select nullif(split_part(app.verified_context(), '|', 5), '') $$;
revoke execute on function app.current_permissions() from public;

/* The context's mode: r (read-only), w (write) or o (operator), or NULL without a context. */
create or replace function app.current_context_mode() returns text
language sql stable
as $$ select nullif(split_part(app.verified_context(), '|', 6), '') $$;
revoke execute on function app.current_context_mode() from public;

/*
 * Opens the context of p_tenant_id for the current transaction, acting as p_role (and
 * p_user_id): operator work, verify scripts, the seed, tests and benchmarks. The owner runs it
 * and may then `set local role app_user` to act as the API's role. Never granted to app_user
 * or app_bi: they open contexts only with a proof.
 */
create or replace function app.open_operator_context(p_tenant_id uuid, p_role text default 'owner', p_user_id uuid default null)
returns void
language plpgsql volatile
set search_path = pg_catalog, pg_temp
as $$
declare
  v_ctx text;
begin
  v_ctx := app.set_sealed_context(p_tenant_id, p_user_id, p_role, 'operator');
end
$$;
revoke execute on function app.open_operator_context(uuid, text, uuid) from public;

/* Closes the context early (the transaction goes on without one). Anyone may give up a context. */
create or replace function app.close_context() returns void
language sql volatile
as $$ select set_config('app.context', '', true), set_config('app.context_seal', '', true) $$;
revoke execute on function app.close_context() from public;

/*
 * Capabilities: a named permission for the rest of the transaction, sealed like the context,
 * that only the functions owning it grant (app.audit_seal grants 'audit_sealing', app.audit_purge
 * 'audit_purging'). Guards ask app.has_capability(); a setting written by hand is not a
 * capability.
 */
create or replace function app.grant_capability(p_name text) returns void
language plpgsql volatile
set search_path = pg_catalog, pg_temp
as $$
declare
  s app.context_seal_key;
  v_caps text := concat_ws(',', nullif(app.verified_capabilities(), ''), p_name);
begin
  select * into s from app.context_seal_key where id = 1;
  v_caps := set_config('app.capabilities', v_caps, true)
            || set_config('app.capabilities_seal', app.hmac_sha256_hex(s.ipad, s.opad, 'cap|' || app.seal_input(v_caps)), true);
end
$$;
revoke execute on function app.grant_capability(text) from public;

/* The transaction's verified capabilities, comma-separated, or NULL. */
create or replace function app.verified_capabilities() returns text
language plpgsql stable security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  v_caps text := current_setting('app.capabilities', true);
  s app.context_seal_key;
begin
  if v_caps is null or v_caps = '' then
    return null;
  end if;
  select * into s from app.context_seal_key where id = 1;
  if app.hmac_sha256_hex(s.ipad, s.opad, 'cap|' || app.seal_input(v_caps)) = current_setting('app.capabilities_seal', true) then
    return v_caps;
  end if;
  return null;
end
$$;
revoke execute on function app.verified_capabilities() from public;

/* Whether the transaction holds a capability granted by the function that owns it. */
create or replace function app.has_capability(p_name text) returns boolean
language sql stable
as $$ select coalesce(p_name = any (string_to_array(app.verified_capabilities(), ',')), false) $$;
revoke execute on function app.has_capability(text) from public;

/* Gives up a capability for the rest of the transaction. */
create or replace function app.drop_capability(p_name text) returns void
language plpgsql volatile
set search_path = pg_catalog, pg_temp
as $$
declare
  v_rest text := array_to_string(array_remove(string_to_array(app.verified_capabilities(), ','), p_name), ',');
begin
  perform set_config('app.capabilities', '', true);
  perform set_config('app.capabilities_seal', '', true);
  if v_rest <> '' then
    foreach p_name in array string_to_array(v_rest, ',') loop
      perform app.grant_capability(p_name);
    end loop;
  end if;
end
$$;
revoke execute on function app.drop_capability(text) from public;

