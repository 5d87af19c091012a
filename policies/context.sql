-- The tenant context: what RLS policies, role checks and the audit read, and the only ways it
-- is established. Re-appliable: create or replace; the seal key is created once.
--
-- Why a proof and a seal (for reviewers):
--   * A plain setting (set_config('app.tenant_id', ...)) can be written by any session, so it
--     proves nothing. The API instead proves each request's identity to SQL: it signs the
--     request's user, tenant refs, token scope, request id, permission, an expiry and a nonce
--     with HMAC-SHA256 under the context key (CONTEXT_KEY), and app.open_tenant_context checks
--     the MAC against its own copy (app.context_keys, owner only), the expiry, and that the nonce
--     was never used (app.context_nonces): a proof opens one transaction, once.
--     A separate key rather than verifying the JWT in SQL: RS256 deployments work unchanged,
--     the proof binds what the request is about to do (tenant, permission, request id) for
--     seconds, not the token's hour, and no JWT parsing runs in the database.
--   * The opened context is kept in two transaction-local settings: app.context (tenant |
--     user | role | request id) and app.context_seal, an HMAC of it bound to pg_backend_pid()
--     and the transaction's start under app.context_seal_key, a key that never leaves the
--     database. app.verified_context() recomputes the seal: a setting written by hand, copied
--     from another transaction or another connection, or edited after opening reads as NULL,
--     so it yields no rows and no writes (the policies fail closed).
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

/* What a proof signs: its kind, its fields, its expiry (epoch ms) and nonce, joined by U+001F. Inlined. */
create or replace function app.proof_message(p_kind text, p_fields text[], p_expires_at bigint, p_nonce text) returns text
language sql stable parallel safe
as $$ select array_to_string(array[p_kind] || p_fields || array[p_expires_at::text, p_nonce], chr(31), '') $$;
revoke execute on function app.proof_message(text, text[], bigint, text) from public;

/* A proof's expiry is in the future and at most 5 minutes ahead; its nonce has 16 to 64 characters. Inlined. */
create or replace function app.proof_bounds_ok(p_expires_at bigint, p_nonce text) returns boolean
language sql stable
as $$ select coalesce(to_timestamp(p_expires_at / 1000.0) between statement_timestamp() and statement_timestamp() + interval '5 minutes'
                      and length(p_nonce) between 16 and 64, false) $$;
revoke execute on function app.proof_bounds_ok(bigint, text) from public;

/* The context value: tenant | user | role | request id (no '|' in it, at most 128 characters). Inlined. */
create or replace function app.context_value(p_tenant_id uuid, p_user_id uuid, p_role text, p_request_id text) returns text
language sql stable parallel safe
as $$ select concat_ws('|', p_tenant_id::text, coalesce(p_user_id::text, ''), coalesce(p_role, ''),
                       coalesce(left(translate(p_request_id, '|', '_'), 128), '')) $$;
revoke execute on function app.context_value(uuid, uuid, text, text) from public;

/*
 * Installs the API's context key (32 to 64 bytes, the CONTEXT_KEY the API holds), replacing
 * the previous one: from then on only proofs signed with it open a context. Owner only.
 */
create or replace function app.install_context_key(p_key bytea) returns void
language plpgsql volatile
set search_path = pg_catalog, pg_temp
as $$
begin
  if p_key is null or length(p_key) not between 32 and 64 then
    raise exception 'a context key has 32 to 64 bytes, not %', coalesce(length(p_key), 0)
      using errcode = '22023', hint = 'CONTEXT_KEY is 64 to 128 hex characters (openssl rand -hex 32)';
  end if;
  insert into app.context_keys (id, ipad, opad, installed_at)
  values (1, app.hmac_pad(p_key, 54), app.hmac_pad(p_key, 92), now())
  on conflict (id) do update set ipad = excluded.ipad, opad = excluded.opad, installed_at = excluded.installed_at
   where (app.context_keys.ipad, app.context_keys.opad) is distinct from (excluded.ipad, excluded.opad);
end
$$;
revoke execute on function app.install_context_key(bytea) from public;

/*
 * HMAC-SHA256 of 'fingerprint' under the installed context key, hex, or NULL when none is
 * installed. The API compares it with its own at boot and in /readyz, so a key mismatch is
 * reported at once (CONTEXT_KEY_MISMATCH) instead of as refused requests. Reveals nothing that
 * helps forge a proof.
 */
create or replace function app.context_key_fingerprint() returns text
language sql stable security definer
set search_path = pg_catalog, pg_temp
as $$
  select app.hmac_sha256_hex(k.ipad, k.opad, 'fingerprint') from app.context_keys k
$$;
revoke execute on function app.context_key_fingerprint() from public;

/*
 * Checks an API proof: the MAC over p_kind, p_fields, p_expires_at (epoch ms) and p_nonce
 * joined by U+001F, an expiry in the future but at most 5 minutes ahead, and a nonce never
 * seen before (recorded here, so a replay on any connection or in any later transaction is
 * refused). Internal: called by the SECURITY DEFINER openers, never by app_user. No SET clause
 * of its own: its callers fix search_path, and a SET clause costs every call a GUC change.
 */
create or replace function app.proof_is_valid(p_kind text, p_fields text[], p_expires_at bigint, p_nonce text, p_proof text)
returns boolean
language plpgsql volatile
as $$
declare
  v_valid boolean;
begin
  if not app.proof_bounds_ok(p_expires_at, p_nonce) then
    return false;
  end if;
  select app.hmac_sha256_hex(k.ipad, k.opad, app.proof_message(p_kind, p_fields, p_expires_at, p_nonce)) = p_proof
    into v_valid from app.context_keys k where k.id = 1;
  if not coalesce(v_valid, false) then
    return false;
  end if;
  insert into app.context_nonces (nonce, expires_at) values (p_nonce, to_timestamp(p_expires_at / 1000.0)) on conflict do nothing;
  return found;
end
$$;
revoke execute on function app.proof_is_valid(text, text[], bigint, text, text) from public;

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
 * Sets the context of the current transaction: tenant | user | role | request id, sealed to
 * this backend and transaction. Internal: only the openers below (and the owner) call it; like
 * app.proof_is_valid, it runs under its caller's fixed search_path.
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
  v_ctx := app.context_value(p_tenant_id, p_user_id, p_role, p_request_id);
  select app.hmac_sha256_hex(s.ipad, s.opad, app.seal_input(v_ctx)) into v_seal from app.context_seal_key s where s.id = 1;
  v_set := set_config('app.context', v_ctx, true) || set_config('app.context_seal', v_seal, true);
  return v_ctx;
end
$$;
revoke execute on function app.set_sealed_context(uuid, uuid, text, text) from public;

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

/*
 * Opens the request context for one transaction, from the API's proof over exactly these
 * arguments (see app.proof_is_valid). p_tenant_refs are the tenant names the request carried
 * (uuid or slug; header, subdomain, path), p_scope the tenant a scoped token is limited to (or
 * NULL). Every ref must name the same tenant among the user's memberships. In the same call it
 * checks the permission the route needs:
 *   * p_for_row false (a collection: list, create, export): raises SS403 at once;
 *   * p_for_row true (a route naming one row): returns permitted = false and lets the queries
 *     run, so the API answers 404 for a row the caller cannot see and 403 for one it can.
 * Raises (and so opens nothing):
 *   TN401 the proof is missing, tampered with, expired or already used
 *   TN404 not a member, unknown tenant, or outside the token's scope (one answer for all)
 *   TN403 the tenant is suspended (only members learn this)
 *   TN400 the refs name different tenants the user belongs to
 */
-- Its first form returned a set (a tuplestore per call); one row of OUT parameters is cheaper.
do $$
begin
  if exists (select 1 from pg_catalog.pg_proc
              where oid = to_regprocedure('app.open_tenant_context(uuid, text[], uuid, text, text, boolean, bigint, text, text)') and proretset) then
    drop function app.open_tenant_context(uuid, text[], uuid, text, text, boolean, bigint, text, text);
  end if;
end
$$;
create or replace function app.open_tenant_context(
  p_user_id uuid, p_tenant_refs text[], p_scope uuid, p_request_id text, p_permission text, p_for_row boolean,
  p_expires_at bigint, p_nonce text, p_proof text,
  out tenant_id uuid, out member_role text, out permitted boolean
)
language plpgsql volatile security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  v_first text := p_tenant_refs[1];
  v_message text := app.proof_message('ctx', array[p_user_id::text, array_to_string(p_tenant_refs, chr(30), ''), p_scope::text,
                                                   p_request_id, p_permission, case when p_for_row then '1' else '0' end],
                                      p_expires_at, p_nonce);
  v_valid boolean;
  v_sipad bytea;
  v_sopad bytea;
  v_id uuid;
  v_status text;
  v_role text;
  v_permitted boolean;
  v_ref text;
  v_other uuid;
  v_ctx text;
begin
  -- The proof's MAC, both keys, and the membership with tenant status and permission in one
  -- indexed query; the nonce insert is the only other statement (app.proof_is_valid and
  -- app.set_sealed_context do the same in steps, for the other openers). One query per kind of
  -- ref: a single one with CASE in its WHERE has no good generic plan, and PostgreSQL would plan
  -- it again on every call (most of the first wave's 217 µs).
  if app.is_uuid_text(v_first) then
    select app.hmac_sha256_hex(k.ipad, k.opad, v_message) = p_proof, s.ipad, s.opad, x.id, x.status, x.role, x.permitted
      into v_valid, v_sipad, v_sopad, v_id, v_status, v_role, v_permitted
      from app.context_keys k cross join app.context_seal_key s
      left join lateral (
        select t.id, t.status, m.role, p_permission is null or rp.role is not null as permitted
          from app.memberships m join app.tenants t on t.id = m.tenant_id
          left join app.role_permissions rp on rp.role = m.role and rp.permission = p_permission
         where m.tenant_id = v_first::uuid and m.user_id = p_user_id) x on true
     where k.id = 1 and s.id = 1;
  else
    select app.hmac_sha256_hex(k.ipad, k.opad, v_message) = p_proof, s.ipad, s.opad, x.id, x.status, x.role, x.permitted
      into v_valid, v_sipad, v_sopad, v_id, v_status, v_role, v_permitted
      from app.context_keys k cross join app.context_seal_key s
      left join lateral (
        select t.id, t.status, m.role, p_permission is null or rp.role is not null as permitted
          from app.tenants t join app.memberships m on m.tenant_id = t.id and m.user_id = p_user_id
          left join app.role_permissions rp on rp.role = m.role and rp.permission = p_permission
         where t.slug = lower(v_first)) x on true
     where k.id = 1 and s.id = 1;
  end if;
  if not coalesce(v_valid, false) or not app.proof_bounds_ok(p_expires_at, p_nonce) then
    raise exception 'tenant context proof refused' using errcode = 'TN401';
  end if;
  insert into app.context_nonces (nonce, expires_at) values (p_nonce, to_timestamp(p_expires_at / 1000.0)) on conflict do nothing;
  if not found then
    raise exception 'tenant context proof refused' using errcode = 'TN401';
  end if;
  if p_user_id is null or v_id is null then
    raise exception 'tenant not found' using errcode = 'TN404';
  end if;

  -- Further refs (header and path both given): each must be a membership, and the same tenant.
  foreach v_ref in array p_tenant_refs[2:] loop
    if app.is_uuid_text(v_ref) then
      select m.tenant_id into v_other from app.memberships m where m.tenant_id = v_ref::uuid and m.user_id = p_user_id;
    else
      select t.id into v_other from app.tenants t join app.memberships m on m.tenant_id = t.id and m.user_id = p_user_id
       where t.slug = lower(v_ref);
    end if;
    if v_other is null then
      raise exception 'tenant not found' using errcode = 'TN404';
    end if;
    if v_other <> v_id then
      raise exception 'tenant sources disagree' using errcode = 'TN400';
    end if;
  end loop;

  if p_scope is not null and p_scope <> v_id then
    raise exception 'tenant not found' using errcode = 'TN404';
  end if;
  if v_status <> 'active' then
    raise exception 'tenant suspended' using errcode = 'TN403';
  end if;

  -- Sealed to this backend and transaction (as app.set_sealed_context does), by assignment:
  -- plpgsql evaluates a plain expression directly, where PERFORM would run a query.
  v_ctx := set_config('app.context', app.context_value(v_id, p_user_id, v_role, p_request_id), true);
  v_ctx := set_config('app.context_seal', app.hmac_sha256_hex(v_sipad, v_sopad, app.seal_input(v_ctx)), true);

  if not v_permitted and not coalesce(p_for_row, false) then
    raise exception 'permission % required', p_permission
      using errcode = 'SS403', constraint = 'permission', detail = p_permission,
            hint = format('role %s does not hold it (policies/permissions.sql)', v_role);
  end if;
  tenant_id := v_id;
  member_role := v_role;
  permitted := v_permitted;
end
$$;
revoke execute on function app.open_tenant_context(uuid, text[], uuid, text, text, boolean, bigint, text, text) from public;

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
 * 'audit_purging', app.issue_invoice 'invoice_issuing'). Guards ask app.has_capability(); a
 * setting written by hand is not a capability.
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

/* Removes used nonces whose proofs have expired (the API calls it every minute). Returns rows removed. */
create or replace function app.purge_context_nonces() returns bigint
language plpgsql volatile security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  v_count bigint;
begin
  delete from app.context_nonces where expires_at < statement_timestamp() - interval '1 minute';
  get diagnostics v_count = row_count;
  return v_count;
end
$$;
revoke execute on function app.purge_context_nonces() from public;
